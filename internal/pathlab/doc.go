// Package pathlab is a test bed of Linux routers with middleboxes on the
// path, for synprobe trace and --path-check (issue 11; design in TRACE.md):
//
//	client 10.79.1.1 ── r1 10.79.1.254 | 10.79.2.1 ── r2 10.79.2.254 | 10.79.3.254 ── server 10.79.3.1
//	       fd79:1::1       fd79:1::fe | fd79:2::1       fd79:2::fe | fd79:3::fe          fd79:3::1
//
// Start makes four named network namespaces (/run/netns/pathlab-ID-client,
// -r1, -r2, -server: synprobe --netns NAME and ip netns exec NAME work on
// them) joined by three veth pairs, /24 and /64 on each link (IPv6 only
// with Config.IPv6, without duplicate address detection). The client
// reaches the server through r1 then r2 and back: hop 1 is r1, hop 2 is
// r2, hop 3 the server (Bed.Hops). Nothing routes out of the namespaces.
//
// The routers forward IPv4 and IPv6 with no ICMP rate limit
// (icmp_ratelimit=0, icmp_msgs_per_sec and icmp_msgs_burst 1000000,
// ipv6.icmp.ratelimit=0), so a fast TTL walk gets every time-exceeded.
// Every veth has TX and RX checksum offload, TSO, GSO and GRO off: each
// segment crosses the bed and reaches a capture as sent, one frame each,
// with a final checksum. The client and the server keep Linux's defaults
// (timestamps, SACK, window scaling, tcp_ecn=2).
//
// The server namespace runs a Go application on Bed.Target (and
// Bed.Target6) that answers "GET /N ...\r\n\r\n" with N bytes, as
// internal/lab's does. ClosedPort (8081) and AltPort (8082) have no
// listener: the server's kernel answers a SYN with a RST, unless a box
// intercepts ClosedPort (proxy, synproxy); no box ever intercepts AltPort.
//
// InClient, InServer and In run code in a namespace (sockets opened there
// stay there); NSFD gives the bed's descriptor of one, for
// probe.DialConfig.NetNS; Dial connects from the client with a kernel
// socket; Sniff records what arrives at a node (Sniff(Server): what the
// server's link delivers, before the server's TCP sees it).
//
// # Boxes
//
// SetBox(box, at) puts one box on r1 (First) or r2 (Last) and removes any
// other; BoxNone removes it. A box is the nftables table "inet
// pathlab_box" in the router's namespace (Ruleset prints it), loaded with
// nft, plus the router's conntrack settings; SetBox also flushes both
// routers' conntrack tables so no state carries over from an earlier box.
// The table dies with the namespace. Rules in the forward hook (priority
// mangle) act on both directions. What the server gets (tested by
// TestBoxes with crafted segments from the client and a capture on the
// server's veth; IPv4 at both positions, and IPv6 where marked):
//
//	box                   rules (inet table)                                            what the server sees
//	none                  (no table)                                                    the segment as sent (v6)
//	mss-clamp             forward: tcp flags syn tcp option maxseg size > 1200          MSS 1200 in SYNs (an MSS below 1200 is kept); the client's
//	                        tcp option maxseg size set 1200                             SYN-ACK carries MSS 1200 too: both directions are clamped (v6)
//	strip-ts              forward: reset tcp option timestamp                           TS replaced by 10 NOPs on every segment, both directions (v6)
//	strip-sack            forward: reset tcp option sack-perm; reset tcp option sack    sackOK and SACK blocks replaced by NOPs, every segment
//	strip-ws              forward: reset tcp option window                              wscale replaced by NOPs
//	strip-ts-data         forward: tcp flags & syn == 0 reset tcp option timestamp      SYN and SYN-ACK keep TS (negotiated); TS NOPed on every
//	                                                                                    later segment: a connection-breaking box
//	nat                   postrouting nat: saddr client net, daddr server net:          source r1 10.79.2.1 (First) or r2 10.79.3.254 (Last),
//	                        masquerade random,fully-random                              random source port; replies translated back (v6)
//	ecn-clear             forward: SYN without ACK with ECE or CWR: tcp flags set syn;  SYN|ECE|CWR arrives as a bare SYN (other flags of such a
//	                        ip ecn set not-ect; ip6 ecn set not-ect                     SYN go too); IP ECN not-ECT on every packet; DSCP kept (v6)
//	dscp-rewrite          forward: ip dscp set cs0; ip6 dscp set cs0                    DSCP 0 (bleached) on every packet, ECN bits kept
//	proxy                 prerouting nat: daddr server, dport Port: redirect to :3128;  nothing from the client: the router's kernel answers the
//	                        dport 8081: redirect to :3129                               SYN (TTL of the router), a Go relay on the router dials the
//	                                                                                    server from its own address with its own SYN and options
//	                                                                                    (First 10.79.2.1, Last 10.79.3.254); 8081 is SYN-ACKed by
//	                                                                                    the box, then reset when the relay's dial is refused (v6)
//	synproxy              raw prerouting: dport {Port, 8081} tcp flags syn notrack;     nothing until the client's ACK: the box answers the SYN
//	                      forward: dport {Port, 8081} ct state invalid,untracked        with window 0, MSS in the ISN, its own TTL, and 8081 too;
//	                        synproxy mss 1460 wscale 7 timestamp sack-perm;             after the ACK the server gets the box's SYN with the
//	                        ct state invalid drop; nf_conntrack_tcp_loose=0             client's addresses. IPv4 only: see Kernel facts
//	drop-syndata          forward: SYN without ACK with payload (@ih,0,8 loads): drop   SYNs with data never arrive; other SYNs and data segments do
//	drop-unknown-options  forward: SYN without ACK with option 253 or 254: drop         SYNs with RFC 6994 experimental options never arrive; a TFO
//	                                                                                    cookie request (kind 34) does
//	drop-badsum           forward: ct state invalid drop; nf_conntrack_checksum=1,      segments with a bad TCP checksum never arrive; everything
//	                        tcp_loose=1, tcp_be_liberal=1                               else does, even an ACK on no connection (v6)
//	drop-out-of-state     forward: ct state invalid drop; nf_conntrack_tcp_loose=0,     an ACK on no connection and out-of-window data never
//	                        tcp_be_liberal=0                                            arrive; in-window data does; an ACK above SND.NXT does
//	                                                                                    too (see Kernel facts) (v6)
//
// # Kernel facts measured on this bed (Linux 6.18)
//
//   - A router's time-exceeded comes from the address of its interface
//     towards the sender (the route back to the client picks the source:
//     icmp_errors_use_inbound_ifaddr=0), IPv4 and IPv6 alike: hop 1 is
//     10.79.1.254, hop 2 10.79.2.254 (TestHops).
//   - A router checks the TTL before its FORWARD hook: a box on r1 changes
//     nothing in r1's own quote, r2's quote shows the change (mss-clamp on
//     r1: MSS 1460 quoted by r1, 1200 by r2). The quotes hold the whole
//     packet (TestHops).
//   - A box at Last is blind to a TTL walk (no router after it quotes);
//     proxy and synproxy answer at the hop of their router (TTL 64 at the
//     client for First, 63 for Last; the server's answers arrive with 62).
//   - The nftables synproxy drops IPv6 SYNs whose checksum the kernel has
//     to verify in software, and answers nothing (/proc/net/stat/synproxy
//     counts no SYN), in an inet or an ip6 table: the bed's (checksum
//     offload off) and every frame written to a packet socket, so every
//     synprobe probe. With TX checksum offload on at the client (the
//     segment crosses the veths CHECKSUM_PARTIAL, which is not verified)
//     a kernel connection gets through. The cause looks like the
//     expression verifying the checksum with the IPv4 function for IPv6
//     too. TestSYNProxyIPv6 pins this; IPv4 works.
//   - Conntrack (tcp_loose=0, tcp_be_liberal=0) no longer marks an ACK
//     outside the acceptable range invalid: it ignores it (no state
//     update) and ct state invalid drop lets it pass. drop-out-of-state
//     therefore drops ACKs on no connection and out-of-window data, but
//     not ACKs above SND.NXT.
//   - nft 1.0.6 cannot set TCP flags from an expression (tcp flags set
//     tcp flags & ...): ecn-clear sets a SYN's flags to exactly SYN.
//
// Close kills what runs in the bed's namespaces, stops the application and
// the proxy relays, deletes the veths and the namespaces' names. A killed
// test leaves the named namespaces; the next Start removes those with
// NamePrefix that no process uses (a live bed holds a descriptor of each).
//
// Linux only, and root only (Available says why not in one line):
// elsewhere Start returns a "not supported" error.
package pathlab
