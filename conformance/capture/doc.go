// Package capture judges every TCP connection in a pcap or pcapng capture
// with the rules the live checks use (synprobe analyze FILE).
//
// The capture is read as a stream, in one pass: each packet is taken apart
// by its link type (Ethernet with VLAN tags, Linux cooked v1 and v2, raw
// IPv4/IPv6, BSD and OpenBSD loopback), matched to its connection by
// 4-tuple, and judged at once against what the capture has shown of both
// sides so far. Connections are judged from the point of view of an
// observer on the path: the sequence numbers, acknowledgments, windows and
// options each side sent. A capture sees each side's segments, not what the
// other side received, so the rules are fed the observer's best knowledge
// (RCV.NXT is the highest ack a side sent; SND.NXT the end of the highest
// segment it sent) and allow for the difference where it matters.
//
// Each connection becomes one report.Result whose steps are the notable
// segments: the handshake, FINs and their ACKs, resets, and any segment
// that broke a rule; ordinary data and ACKs are counted, not listed.
// Steps are kept in compact form while the connection is open and turned
// into text only when its result is kept, so that a run that keeps only
// failures (Options.OnlyFailures) spends nothing on connections that pass.
//
// Memory is bounded by the open connections, not by the capture: a
// connection that closed (both FINs acknowledged, or an exact RST) is
// judged at once and its state freed, leaving a small tombstone for a
// while (Options.Linger, in capture time) so that retransmissions after the
// close are not mistaken for a new connection; a connection idle for
// Options.IdleTimeout of capture time is reported early; at most
// Options.MaxOpen connections are followed at once (past it, those quiet
// longest are judged early, with a note); each result holds at most
// Options.MaxSteps steps. The results themselves are the only thing
// that grows with the capture: Options.OnlyFailures keeps the failing ones
// only, and Options.OnResult streams each result out instead of keeping it.
//
// A 4-tuple used again after its connection closed, or a SYN with a new
// ISN, starts a new connection. A connection whose handshake or close is
// not in the capture is reported as such in its notes, never failed for it.
//
// Non-TCP packets, IP fragments (not reassembled) and packets cut by the
// snapshot length are counted, never fatal. Damage in the capture file ends
// the reading with an error naming the byte offset; everything read before
// it is still judged and reported.
package capture
