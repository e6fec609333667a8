// Package fingerprint measures what a target's TCP stack is like, for the
// fingerprint section of `synprobe audit`: initial TTL and hops, DF, IP ID
// behaviour, the SYN-ACK's window, window scale and MSS, the options it
// answers nmap's six SEQ probes with, how ISNs advance and how random they
// are, the timestamp clock, ECN, SACK and Fast Open, the SYN-ACK
// retransmission schedule, SYN cookies and the RFC 5961 challenge-ACK rate
// limit.
//
// It reports numbers, not verdicts: nothing here is a conformance check.
// Where a value cannot be measured the fingerprint says why, and nothing the
// local host did (its kernel resetting a probe connection, its socket
// dropping replies) is passed off as the target's behaviour.
//
// Every part runs on probe connections of its own, concurrently with the
// others, and every connection is reset at the end so that the target keeps
// no state. Every SYN waits for the caller's pacer first.
package fingerprint
