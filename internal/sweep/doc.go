// Package sweep is synprobe's stateless SYN sweep: one SYN to every
// (address, port) of a target set, each reply classified as it arrives.
//
// No state is kept per probe. The ISN of each SYN is a keyed hash
// (SipHash-2-4, key chosen per run) of its 4-tuple, so a SYN-ACK or a RST
// is ours when its ACK is that ISN plus one, and an ICMP error is ours when
// the TCP header it quotes carries that ISN. What is kept is one bit per
// probe (answered or not), for the retries and the final list of silent
// probes.
//
// Frames are patched from one template (destination address and port, ISN,
// checksums updated from precomputed sums) and sent in batches with
// sendmmsg on an AF_PACKET socket that bypasses the queueing discipline.
// Replies come through a classic BPF filter (the sweep's source port;
// SYN-ACK, RST, ICMP destination unreachable) read with recvmmsg.
//
// The local kernel would answer every SYN-ACK with a RST (it has no socket
// for the source port): the probe package's RST guard drops those.
//
// Targets reached through a gateway all get its MAC address. Targets on
// the local link are each resolved (ARP, a few at a time; at most 256 of
// them), and those that do not answer are reported silent without a SYN.
//
// Limits: IPv4 only; one route per sweep (one interface, one gateway).
package sweep
