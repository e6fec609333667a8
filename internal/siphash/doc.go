// Package siphash implements SipHash-2-4 with a 64-bit output (Aumasson and
// Bernstein, "SipHash: a fast short-input PRF", 2012).
//
// synprobe sweep derives each probe's ISN from a keyed hash of its 4-tuple,
// so that a reply is validated (its ACK is ISN+1) without any per-probe
// state. A PRF keyed per run makes the ISN unguessable to third parties who
// might otherwise forge replies. No SipHash module is served to this
// project, and the function is small: it lives here, checked against the
// paper's test vectors.
package siphash
