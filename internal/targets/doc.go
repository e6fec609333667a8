// Package targets reads the targets of a many-target run (synprobe audit
// and handshake --targets) as a stream: one target at a time, so that a list
// of millions, or a /8, never sits in memory.
//
// A Reader takes, line by line and mixed freely: HOST:PORT, HOST and CIDR
// (with a default port), masscan's -oL and -oJ/-oD output, nmap's -oG
// output, zmap's CSV output (with its header) and synprobe sweep's JSON
// lines; comments (#) and blank lines are skipped. Scan outputs give only
// open TCP ports. A CIDR is expanded lazily, address by address.
//
// Every target passes three filters, each counted in Stats: the
// exclusions (internal/exclude: the default ranges and --exclude), the
// shard (a fixed SipHash of the address and port, so that shards are
// balanced for CIDRs too and agree across machines) and the targets a
// previous run already did (Done, read from its JSON lines: the one thing
// held per target, as big as that output's list of targets).
package targets
