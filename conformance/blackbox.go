package conformance

import (
	"fmt"
	"regexp"
	"strings"

	"synprobe/conformance/script"
	"synprobe/probe"
)

// What a remote black box cannot be made to do. packetdrill runs a
// script's system calls and shell commands on the target's own host, so a
// script may make the target connect, set a socket option that changes
// what its TCP puts on the wire, or change its sysctls and routes; the
// expectations after such a line describe a target configured that way.
// synprobe runs none of them: such a script is skipped, naming the line,
// rather than failed on expectations the target was never set up to meet.

// harmlessSockopts are the socket options (and ioctl requests) scripts use
// that leave the target's TCP behaviour on the wire unchanged: addressing,
// what the application is told (timestamps, queue sizes, control
// messages), how its own calls block. Any other option skips the script:
// an unknown one is not assumed harmless.
var harmlessSockopts = map[string]bool{
	"SO_REUSEADDR": true, "SO_REUSEPORT": true, "SO_DEBUG": true,
	"SO_RCVTIMEO": true, "SO_SNDTIMEO": true, "SO_OOBINLINE": true,
	"SO_TIMESTAMP": true, "SO_TIMESTAMPNS": true, "SO_TIMESTAMPING": true,
	// MSG_ZEROCOPY sends the same bytes; only completion notices differ.
	"SO_ZEROCOPY": true,
	// A control message with the bytes queued: nothing on the wire.
	"TCP_INQ": true,
	// How much unsent data a write may leave queued: when the application
	// may write, which is its own doing (writes are never made to happen).
	"TCP_NOTSENT_LOWAT": true,
	"TCP_SAVE_SYN":      true,
	"IP_FREEBIND":       true, "IPV6_V6ONLY": true, "IP_RECVERR": true, "IPV6_RECVERR": true,
	// ioctl requests that only read or set blocking.
	"SIOCINQ": true, "SIOCOUTQ": true, "SIOCOUTQNSD": true, "FIONREAD": true, "FIONBIO": true, "SIOCATMARK": true,
}

// targetSettings finds shell commands that configure the target's host:
// sysctls set (sysctl name=value, a /proc/sys path written), routes and
// route metrics, queueing disciplines, offloads, TCP metrics. Shell
// commands that only read (nstat, grep) or run the corpora's common
// defaults are not configuration of this script's own.
var targetSettings = regexp.MustCompile(`(?:\bsysctl\s+(?:(?:-\w+|\\)\s+)*([a-z0-9_./]+)\s*=)|(/proc/sys/[a-z0-9_/]+)\s*=|>\s*(/proc/sys/[a-z0-9_/]+)|\b(ip(?:\s+-[46])?\s+route\s+(?:change|add|replace))|\b(ip\s+tcp_metrics)|\b(tc\s+qdisc)|\b(ethtool)\b`)

// blackBox says which line of s a remote black box cannot honour and why,
// or 0 and "" when there is none: the target would have to connect, the
// script changes the target's TCP behaviour (a socket option, an ioctl, a
// sysctl, a route), or it names a Fast Open cookie, which only a target
// whose key and addresses the script knows would accept or send (a
// cookie request, "FO" alone, and "FO *" are fine).
func blackBox(s *script.Script) (int, string) {
	for _, ev := range s.Events {
		if p := ev.Packet; p != nil && p.Dir == script.Outbound && !p.Silence && p.ICMP == nil && p.Flags&(probe.SYN|probe.ACK) == probe.SYN {
			return ev.Line, fmt.Sprintf("line %d expects a SYN from the target: the target would have to connect, and a remote black box cannot be made to", ev.Line)
		}
		if p := ev.Packet; p != nil {
			for _, o := range p.Options.List {
				if cookie, ok := o.Option.FastOpenCookie(); ok && len(cookie) > 0 && !o.AnyValue {
					return ev.Line, fmt.Sprintf("line %d names a Fast Open cookie: a cookie is made from the target's secret key and its addresses, which a remote black box does not share with a script", ev.Line)
				}
			}
		}
		if c := ev.Syscall; c != nil {
			if why := callNotHonoured(c); why != "" {
				return ev.Line, fmt.Sprintf("%s at line %d: %s", callName(c), ev.Line, why)
			}
		}
	}
	for _, n := range s.Ignored {
		if !strings.Contains(n.Text, "`") {
			continue
		}
		if m := targetSettings.FindStringSubmatch(n.Text); m != nil {
			what := ""
			for _, g := range m[1:] {
				if g != "" {
					what = g
					break
				}
			}
			return n.Line, fmt.Sprintf("the shell command at line %d configures the target's host (%s): a remote black box cannot be configured by a script", n.Line, what)
		}
	}
	return 0, ""
}

// callNotHonoured says why a remote black box cannot honour a system call
// of its application, or "" when the call leaves the target's TCP as it
// is (or is one the application may or may not make: writes, reads,
// closes are judged when their effect is awaited).
func callNotHonoured(c *script.Syscall) string {
	args := splitArgs(c.Args)
	switch c.Name {
	case "connect":
		return "the target would have to connect: a remote black box cannot be made to"
	case "sendto", "sendmsg", "send":
		if strings.Contains(c.Args, "MSG_FASTOPEN") {
			return "the target would have to connect (Fast Open): a remote black box cannot be made to"
		}
	case "setsockopt":
		if len(args) >= 3 && !harmlessSockopts[args[2]] {
			return "a remote black box cannot set its application's socket options, and what follows depends on it"
		}
	case "ioctl":
		if len(args) >= 2 && !harmlessSockopts[args[1]] {
			return "a remote black box cannot make its application change the socket, and what follows depends on it"
		}
	}
	return ""
}

// callName is the call with what it sets: "setsockopt(TCP_MAXSEG)".
func callName(c *script.Syscall) string {
	args := splitArgs(c.Args)
	switch {
	case c.Name == "setsockopt" && len(args) >= 3:
		return fmt.Sprintf("setsockopt(%s)", args[2])
	case c.Name == "ioctl" && len(args) >= 2:
		return fmt.Sprintf("ioctl(%s)", args[1])
	}
	return c.Name + "()"
}

// splitArgs splits a call's arguments at the commas outside brackets,
// braces and parentheses, trimmed.
func splitArgs(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}
