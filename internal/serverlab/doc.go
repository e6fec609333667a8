// Package serverlab is a test bed of real server software for tests that
// audit TCP stacks: the suite was tuned against the lab's own application
// (internal/lab), and a real server behaves differently in ways the
// verdicts must take into account (it speaks first, answers slowly, never
// writes, closes first, never accepts).
//
// A bed (Start, or New from a test) is two named network namespaces, made
// as `ip netns add` makes them (bound under /var/run/netns), so that other
// processes can enter them: `synprobe audit --netns NAME` probes from the
// probe namespace, `ip netns exec NAME ...` runs anything in either. A veth
// pair joins them, with IPv4 and IPv6 documentation addresses (Probe4,
// Target4, Probe6, Target6) that are the same in every bed: each bed is
// its own pair of namespaces, so parallel beds never see each other, and
// nothing routes out of them.
//
// In the target namespace the bed applies kernel settings (a Preset and
// any other per-namespace sysctls), then starts the servers of Debian
// packages (nginx, sshd, redis-server, memcached, xinetd's internal
// services) and two Go listeners that never accept, each app on its own
// port and on both addresses (Apps lists them with the kind of application
// they are). Each server runs from a directory of its own under the bed's
// temporary directory, with a configuration the bed writes, as user nobody
// with only the capability to bind ports below 1024: it reads no
// configuration of the host's and cannot write outside its directory. The
// bed returns once every app listens. A server that is not installed is
// reported as "missing: nginx (install nginx-light)"; Require and New skip
// a test with that line.
//
// Leftovers lists the connections the target still holds with the probe
// side (as `ss` would), which a clean probe run leaves none of.
//
// Close removes everything the bed made: processes, listeners, the veth
// pair, the namespaces and the temporary directory. Servers get SIGKILL if
// the test binary dies, so a killed test leaves at most the two named
// namespaces and the directory; the next bed to start removes those whose
// name has the bed prefix (NamePrefix) when no process uses them.
//
// Linux only, and root only: elsewhere Start returns a "not supported"
// error and New skips.
package serverlab
