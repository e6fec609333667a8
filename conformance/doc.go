// Package conformance judges TCP behaviour: the rules, the connection state
// the runner keeps for a probe connection, the script runner, the built-in
// handshake, the application profile, and (in subpackages) scripts and
// reports.
//
// Rules are small named functions over what was sent, what came back and
// the connection state. They return precise problems ("ack: want ISN+1
// (8221823), got 8221822") at the level of the requirement they check; live
// runs and capture analysis use the same rules. Nothing here touches a
// socket: frames go through a probe.Session.
//
// # Who did it: stack, application, path, local host
//
// Four things shape what comes back on the wire: the target's TCP stack,
// its application, the path, and this host. Only the stack's behaviour
// earns fail or warn. Everything the target sends is attributed before a
// rule judges it, in the script runner and the Go checks alike:
//
//   - The application. Bytes no line (or check) describes and a FIN no line
//     expects are the application's: a banner, an answer, its close
//     (Conn.Attribute). A segment that carries nothing else (no new
//     acknowledgment) is taken in, acknowledged as a peer would
//     (Conn.ACKApplication) and skipped; one that also carries the stack's
//     answer (a piggybacked ACK) is judged on that answer alone. Either
//     way the application's bytes shift the target's sequence space
//     (AppState.Shift): seq and ack are compared and sent past them. After
//     the application closed, or when it drops connections on the checks'
//     data, what the stack does next (a RST for later data) is not judged:
//     the result is skip with cause application:closed or
//     application:reset. A profile taken before the checks (Profile) says
//     what the application does: it speaks first, answers the request,
//     closes after answering, ignores which bytes (the checks send those:
//     Facts.FillerBytes), accepts connections at all.
//   - Premises. A check names what the target must offer (@needs:
//     timestamps, sack, wscale, ecn, syn-state, closed-port, ipv4, ipv6).
//     One that does not hold, known before the check (Facts) or at the
//     SYN-ACK (premiseAtSYNACK), ends it as skip with cause premise:....
//     A listener that does not accept connections (its accept queue is
//     full: Runner.ListenerDown) gives application:not-accepting.
//   - What a remote black box cannot be made to do. packetdrill runs a
//     script's calls and shell lines on the target's host; synprobe runs
//     none. A script that makes the target connect, sets a socket option
//     that changes its TCP, or sets its sysctls or routes stops at that
//     line as skip with cause premise:black-box, naming it (blackBox);
//     what came before does not depend on it and is judged.
//   - The path. An ICMP error where the stack's answer was expected is the
//     path's: skip with cause path:icmp. A router's ICMP error (any source
//     but the target) does not break "> none" unless the next packet line
//     expects ICMP; it is noted. One from the target does break it, as
//     packetdrill fails on any packet its script does not expect.
//   - The path, asked. A script that expects a router's answer ("> icmp
//     time_exceeded from R [S 0:0(0) win * <mss 1200,...>]" after a
//     TTL-limited probe) asks a question about the path: an answer that
//     differs (another type, another source, a quote that shows what a box
//     changed) fails at the script's level, and the problem names the
//     router ("quote from router 10.79.2.253: options: expected <mss
//     1200,...> got <mss 1460>"). The same verdict comes from the target's
//     own ICMP. A field the line asks of the quote that the router did not
//     quote (RFC 792 asks for 8 bytes of TCP only) is not judged: the
//     result notes it. The quote's numbers are the script's numbering of
//     the "<" line that sent the quoted segment (see package script).
//   - This host. Frames the local kernel sent on synprobe's ports (no RST
//     guard) and frames its socket dropped make a result error, with the
//     count (LocalHost).
//
// Every result that is not a pass carries its cause (report.Cause). A cause
// explains a result; it never hides a failure the stack made before it.
//
// Hygiene: Conn.Release resets whatever a check left open at the target,
// at the target's RCV.NXT as it last acknowledged it (and at synprobe's
// SND.NXT when data may be in flight), and a connection an earlier run left
// on a reused 4-tuple (Conn.Stale) is reset and the check started again on
// another port, never judged.
package conformance
