// Package lab makes disposable TCP targets for synprobe to probe: the Linux
// kernel in a pair of anonymous network namespaces joined by a veth pair, or
// the gVisor netstack running in this process behind an in-memory link.
//
// Both run the same small application (see the package's server): it accepts
// every connection, answers each "GET /N" request with N bytes, and closes the
// connection as soon as the peer's FIN (end of stream) arrives. A lab lives
// until Close, which leaves nothing behind: the namespaces are anonymous, so
// even a crashed synprobe leaves none, and the gVisor stack stops all of its
// goroutines.
//
// All addresses are documentation ranges (RFC 5737, RFC 3849) that exist only
// inside the lab.
package lab
