// Package trace finds where on the path a TCP segment is changed, dropped
// or answered by something other than the target: synprobe trace, and the
// path check of audit, handshake and run. The design is TRACE.md; this
// says what the implementation decided.
//
// # Probes
//
// Each probe family (Families) has its own Session (source port) and ISN
// and is walked over the TTLs Paris style: per TTL only the TTL and the
// IPv4 ID (0x5300|ttl) change. IPv6 has no ID: the hop limit is added to
// the TSval, and the flow label is fixed per family so that ECMP keeps the
// walk on one path. An ICMP error is matched to its TTL by the quoted ID,
// else (IPv6) the quoted TSval, else by arrival order (the lowest TTL sent
// that has no answer yet). The prober hands an ICMP error to a session by
// the quoted (destination, source port); a box that rewrites the source
// port without translating the ICMP back makes routers beyond it quote a
// port no session has: trace dials with probe.DialConfig.AnyQuotedPort
// (the link's filter passes ICMP errors quoting TCP to the target from any
// port) and takes those from Prober.WatchICMP, matched by the quoted seq
// (the family's ISN) and destination port.
//
// # Speed without impoliteness
//
// Run first sends one control SYN at TTL 64 for the syn family and for the
// alt port (the answered controls of the drop rule), and one to
// Config.ClosedPort when it is given (a SYN-ACK there: something answers
// for every port), and infers the hop
// distance of each from its reply's IP TTL (initial 64, 128 or 255). Then
// it sends TTLs FirstHop..d+1 of every family at once, TTL by TTL with the
// families interleaved, so that a router sees at most one probe per
// family per round (within Linux's default ICMP burst of 6). Only probes
// that can reach the target (TTL >= its distance; all of them when the
// distance is unknown) wait for the --rate pacer, so the quick walk to a
// target d hops away costs 2 + 2*2 paced probes whatever d is. A round
// ends as soon as every TTL before the target has its ICMP and the target
// has answered (a family the target never answers, badsum and the
// out-of-state walks, needs only its routers), else after Wait; silent
// TTLs are sent again, Tries rounds in all. The conn family runs after the
// SYN families: it needs a handshake (TTL 64) before its four walks, which
// go out together and are told apart by their sequence numbers. The SYN
// walks' half-open connections are reset at the end (RST at ISN+1).
//
// # Comparison and attribution
//
// Compare lists how a quote differs from the probe as sent with that TTL:
// IP (DSCP, ECN, total length, ID, DF/MF, flow label, addresses), TCP
// (ports, seq, ack, data offset, reserved bits, each flag, window, urgent
// pointer), the options option by option (CompareOptions: modified,
// removed, nop-replaced when the option's bytes became kind 1, added,
// reordered), and for a full quote the payload and whether the TCP
// checksum is still valid. Only the fields a quote covers are compared
// (an RFC 792 quote: ports and seq). The quoted TTL must be 1 (or 0): a
// note says otherwise. Attribute reports each change once, at the first
// hop whose quote shows it, "between" the last hop whose quote covered the
// field unchanged (0: this host) and that hop: a silent or short quote
// widens the range. Linux routers check the TTL before their FORWARD hook,
// so a box on router k shows in the quote of hop k+1: "between hop k and
// hop k+1".
//
// # Findings
//
// Each change maps to a kind (kindOf); findings of one kind and place are
// merged across families. Beyond TRACE.md's table: option-modified(x),
// header-rewrite(x), payload-rewrite and checksum-broken (fail), for
// changes TRACE.md does not name, and drop(syn) for a port filtered where
// the alt port passes. A change whose full quote carries an invalid TCP
// checksum fails; TS stripped from conn's data after the handshake
// negotiated it fails. Silence is a drop only where the control (syn for
// the SYN families, conn's in-window data for its other walks, the alt
// port for syn) was answered at the same TTL in the same rounds; silence
// at the target counts only for probes the target answers (not badsum,
// not out-of-window data or an ACK above SND.NXT), and is reported blind
// ("after hop k (blind)"): the target, or a box after the last router.
//
// At the destination: a SYN answered from fewer hops (by the SYN-ACK's IP
// TTL, or its TTL position) than the alt port's RST is answered by a box
// at that hop: syn-proxy when the SYN-ACK's window is 0, terminating-proxy
// otherwise. An RST whose seq is the ack of conn's ACK above SND.NXT came
// from the host for a segment that reached it untranslated: nat-leak
// (conformant NATs translate quotes back, so NAT itself is invisible and
// the leak is not localized). What the target's answers lack of what was
// offered (TS, sackOK, wscale, an MSS below the one offered, ECE to an
// ECN-setup SYN, TS on its data ACKs, or a TSecr that shows the data came
// without TS), unless a finding explains it, is one "unobserved" finding
// blind after the last router: a box there, or the target's choice.
// Not done: whether the SYN-ACK is retransmitted and the TSval clocks of
// SYN-ACK and RST (a quick trace ends before the first retransmission).
// Coverage lines say what could not be seen (silent and partial hops, the
// blind segment, the reverse path, NAT, families not sent).
//
// # Reflector
//
// Config.Reflector is a synprobe reflect on the target host
// (NewReflectorClient wraps package reflector's client; --reflector in
// cmd/synprobe). After the walks, one query asks it for the segments to
// the target port whose seq is one of the walks' ISNs (and the conn
// walks' seqs) or whose payload is one of theirs, recorded in the trace's
// duration plus a margin, measured on the reflector's clock (the clocks
// are never compared), and what the target's host sent on their 4-tuples.
// A segment is a walk's by its seq and flags, its TTL by the IP ID
// (IPv6: the TSval); the in-window data also by its payload alone, when
// it arrived no earlier than it was sent (a proxy's own connection).
//
// Each arrival is compared as one more hop after the last router's quote
// (Attribute): a change no quote showed is placed after the last router
// that quoted, before the target, with Where.Reflector set; NAT (addresses
// and ports), seq translation, DSCP, ECN (SYN flags and the data's IP
// field), options (TS stripped from data fails as with quotes) and
// payloads. A walk the reflector did not record while it recorded the
// control (another SYN family; the in-window data for the conn walks) is
// a drop there, unless a quote placed it already or the reflector reports
// lost captures, overwritten records or a truncated answer (a coverage
// line instead). The target's answers (SYN-ACKs; the data's ACK) as its
// host sent them are compared with what arrived here: a change of a kind
// already found is added to that finding (the same box, most likely),
// another is placed on the reverse path (Where.Reverse). Blind findings
// of a kind the reflector placed, and "unobserved" symptoms of walks it
// saw arrive, are removed. Behind a proxy or SYN proxy what the reflector
// saw (no SYN probe; the box's own connection; the handshake's SYN after
// the ACK and the SYN-ACK's seq translated) is evidence of that finding.
// The coverage says the blind segment and the reverse path were observed,
// or why not.
//
// Findings are about the path, never about the target.
package trace
