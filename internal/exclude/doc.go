// Package exclude decides which addresses a sweep may send to.
//
// A List holds excluded prefixes, each with the reason it is excluded. The
// default list holds addresses no probe should ever reach: this network,
// loopback, link-local, multicast, reserved space and, unless allowed, the
// documentation ranges. Private ranges (RFC 1918, 100.64/10, fc00::/7) are
// the users' own estates and are never excluded by default. More prefixes
// come from --exclude: a CIDR, or a file in zmap's blocklist format.
//
// Set turns target prefixes into what remains after the exclusions, and
// counts what each reason took away, so that a run can say how many
// targets it skipped and why.
package exclude
