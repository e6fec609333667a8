// Package scalelab is a lab for sweeps: one network namespace answers for
// a whole prefix (a /16 for benchmarks, a /24 for tests), and nftables
// rules give sub-ranges of it different behaviours, so that the class of
// every (address, port) is known by construction (Plan.Expect).
//
// Two named namespaces (named so that other tools, such as masscan, can be
// run in them with `ip netns exec`) are joined by a veth pair with its
// offloads off. The probe side routes the prefix to the target side, which
// holds it as a local route on lo: its kernel answers for every address,
// with listeners on 0.0.0.0 for the open ports. The target side lifts the
// ICMP rate limits, which otherwise let Linux answer only a few percent of
// the SYNs to a port that rejects with ICMP.
//
// Linux only (root, the ip and nft programs).
package scalelab
