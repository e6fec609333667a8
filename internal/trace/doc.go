// Package trace finds where on the path a TCP segment is changed, dropped
// or answered by something other than the target: synprobe trace, and the
// path check of audit, handshake and run.
//
// Each probe family keeps one 5-tuple and one ISN for its whole walk and
// is sent with TTLs 1, 2, ... (the TTL also in the IPv4 ID, 0x5300|ttl;
// in the TSval for IPv6). Every ICMP time-exceeded quotes the probe as the
// router saw it: each quote is compared field by field and option by
// option with what was sent and with the previous hop's quote, so each
// change is attributed once, "between hop k-1 and hop k". What the last
// router forwards is seen by nobody but the target (a blind segment): a
// cooperating reflector on the target host (synprobe reflect) sees it.
//
// Findings are about the path, never about the target: the conformance
// runner uses them to turn results a box explains into skips with a
// "path:" cause (Explain), never to hide a failure the box does not
// explain. The design is in TRACE.md.
package trace
