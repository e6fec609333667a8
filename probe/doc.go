// Package probe is synprobe's wire layer: it builds and parses frames, moves
// them over a link, and keeps the state of probe connections (sessions).
//
// The codec covers Ethernet, IPv4, IPv6, TCP with every option kind, and the
// ICMP errors that quote a TCP connection. Encoding computes lengths and
// checksums unless told otherwise: a conformance tester must be able to lie,
// so any header field can be overridden after encoding (see Override).
// Decoding never panics, honours the IP total length over Ethernet padding,
// and reports structural damage as a *DecodeError naming the layer, the field
// and the byte offset. Checksums are verified on decode and reported, not
// treated as errors: a reply with a bad checksum is still a reply to judge.
//
// Sequence numbers are 32-bit and wrap; every comparison goes through Seq.
//
// A Link moves whole Ethernet frames: an AF_PACKET socket on Linux, or an
// in-memory link that plugs into an in-process stack. Nothing in this
// package knows about verdicts.
package probe
