package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/urfave/cli/v2"

	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
	"synprobe/internal/trace"
)

// Bounds of the numeric flags: values outside them cannot be honoured, or
// only by accident (a rate below minRate is an interval of minutes that
// time.Duration may not even hold; NaN and Inf compare false and slip
// through any "< 0" test).
const (
	minRate    = 0.01 // SYNs per second: one every 100 s
	maxRate    = 1e6  // a microsecond apart: past it the cap caps nothing
	minTimeout = time.Millisecond
	maxTimeout = time.Hour

	// analyze: the defaults of capture.Options, and bounds that keep a
	// typo from asking for all the memory there is.
	defaultMaxOpen  = 1 << 16
	maxMaxOpen      = 1 << 24
	defaultMaxSteps = 64
	maxMaxSteps     = 1 << 16
	maxJitter       = 10 * time.Second
)

// jitterFlag is --jitter of run and audit, checked by checkRunFlags.
func jitterFlag() cli.Flag {
	return &cli.DurationFlag{Name: "jitter", Usage: "let a reply come `DURATION` later than the measured round trip allows, for a path whose round trip varies (the internet); 0 for a quiet path"}
}

// pathCheckFlag is --path-check of audit, handshake and run, read by
// pathCheckMode.
func pathCheckFlag() cli.Flag {
	return &cli.StringFlag{Name: "path-check", Value: string(trace.ModeAuto), Usage: "check the path for middleboxes: `MODE` auto (walk the TTLs beside the checks, then the probes that could explain each result that did not pass), full (every probe first) or off; a result a box on the path explains is skip with cause path:..., never fail"}
}

// pathCheckMode reads --path-check.
func pathCheckMode(c *cli.Context) (trace.Mode, error) {
	m, err := trace.ParseMode(c.String("path-check"))
	if err != nil {
		return "", usageErr("--path-check %q: want auto, off or full", c.String("path-check"))
	}
	return m, nil
}

// checkRunFlags validates the flags run and audit share.
func checkRunFlags(c *cli.Context) error {
	if _, err := pathCheckMode(c); err != nil {
		return err
	}
	if p := c.Uint("closed-port"); p > 65535 {
		return usageErr("--closed-port %d: want 1 to 65535", p)
	}
	if c.Int("jobs") < 1 {
		return usageErr("--jobs %d: want at least 1", c.Int("jobs"))
	}
	if err := checkRate(c.Float64("rate")); err != nil {
		return err
	}
	if j := c.Duration("jitter"); j < 0 || j > maxJitter {
		return usageErr("--jitter %v: want a duration from 0 to %v, such as 20ms", j, maxJitter)
	}
	return checkTimeout(c.Duration("timeout"))
}

// checkRate accepts 0 (no limit) or a rate from minRate to maxRate SYNs
// per second.
func checkRate(r float64) error {
	switch {
	case r == 0:
		return nil
	case math.IsNaN(r) || math.IsInf(r, 0) || r < 0:
		return usageErr("--rate %v: want a number of SYNs per second, 0 for no limit", r)
	case r < minRate:
		return usageErr("--rate %v: below %v SYNs per second (one every %v) cannot be kept; 0 for no limit", r, minRate, time.Duration(float64(time.Second)/minRate))
	case r > maxRate:
		return usageErr("--rate %v: above %v SYNs per second caps nothing; 0 for no limit", r, maxRate)
	}
	return nil
}

// checkTimeout accepts a --timeout from minTimeout to maxTimeout.
func checkTimeout(d time.Duration) error {
	if d < minTimeout || d > maxTimeout {
		return usageErr("--timeout %v: want a duration from %v to %v, such as 2s", d, minTimeout, maxTimeout)
	}
	return nil
}

// checkLimit accepts an integer flag from 1 to most.
func checkLimit(c *cli.Context, name string, most int) error {
	if n := c.Int(name); n < 1 || n > most {
		return usageErr("--%s %d: want 1 to %d", name, n, most)
	}
	return nil
}

// fileErr says why the file what names (a flag, "capture") could not be
// opened: a path that leads to no file (a missing directory, a directory)
// is bad input (2); a refusal of the host (permission, a read-only or full
// file system) is the environment (3).
func fileErr(what, name string, err error) error {
	var errno unix.Errno
	msg := err.Error()
	if errors.As(err, &errno) {
		msg = errno.Error()
	}
	switch {
	case errors.Is(err, unix.ENOENT):
		if dir := filepath.Dir(name); dir != "." {
			if _, serr := os.Stat(dir); serr != nil {
				msg += fmt.Sprintf(" (no directory %q)", dir)
			}
		}
	case errors.Is(err, fs.ErrPermission), errors.Is(err, unix.EROFS), errors.Is(err, unix.ENOSPC), errors.Is(err, unix.EDQUOT):
		return envErr(fmt.Errorf("%s %q: %s", what, name, msg))
	}
	return usageErr("%s %q: %s", what, name, msg)
}

// openFile opens the file name given as what (a flag, or "capture") for
// reading. A directory is refused here, as bad input naming both, rather
// than failing at the first read as if the environment were at fault.
func openFile(what, name string) (*os.File, error) {
	f, err := os.Open(name)
	if err == nil {
		err = notDir(f)
	}
	if err != nil {
		return nil, fileErr(what, name, err)
	}
	return f, nil
}

// errIsDir is a directory given where a file is read.
var errIsDir = errors.New("is a directory; want a file")

// notDir closes f and returns errIsDir when f is a directory.
func notDir(f *os.File) error {
	if st, err := f.Stat(); err == nil && st.IsDir() {
		f.Close()
		return errIsDir
	}
	return nil
}

// openNetNS opens the network namespace --netns names (a name of `ip
// netns`, or a path) and makes sure this process may enter it. A name that
// names nothing is bad input (2); not being allowed in is the environment
// (3).
func openNetNS(name string) (int, error) {
	path := name
	if !strings.Contains(name, "/") {
		path = filepath.Join("/var/run/netns", name)
	}
	fd, err := netns.Open(path)
	if err == nil {
		// Entering is what needs privileges: find out now, not deep
		// inside the first netlink call.
		err = netns.Do(fd, func() error { return nil })
		if err != nil {
			netns.Close(fd)
		}
	}
	switch {
	case err == nil:
		return fd, nil
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return 0, usageErr("--netns %q: no such network namespace (%s does not exist; see `ip netns`)", name, path)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return 0, envErr(fmt.Errorf("--netns %q: not permitted: entering a network namespace needs root (CAP_SYS_ADMIN)", name))
	case errors.Is(err, unix.EINVAL):
		return 0, usageErr("--netns %q: %s is not a network namespace", name, path)
	}
	return 0, envErr(fmt.Errorf("--netns %q: %w", name, err))
}

// lookupFunc resolves a host name, as net.Resolver.LookupNetIP does.
type lookupFunc func(ctx context.Context, network, host string) ([]netip.Addr, error)

type lookupKey struct{}

// lookupFrom is the resolver of ctx: the system's unless a test put
// another there. A check-only context resolves nothing.
func lookupFrom(ctx context.Context) lookupFunc {
	if f, ok := ctx.Value(lookupKey{}).(lookupFunc); ok {
		return f
	}
	if ctx.Value(checkOnlyKey{}) != nil {
		return func(_ context.Context, _, host string) ([]netip.Addr, error) {
			return nil, &net.DNSError{Err: "not resolved in a check-only run", Name: host, IsNotFound: true}
		}
	}
	return net.DefaultResolver.LookupNetIP
}

// parseTarget reads HOST:PORT; HOST may be a name, resolved here. A name
// that does not exist is bad input (2); a resolver that does not answer is
// the environment (3).
func parseTarget(ctx context.Context, s string) (netip.AddrPort, error) {
	host, portText, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, usageErr("target %q: want HOST:PORT, e.g. 192.0.2.10:80 or [2001:db8::1]:443", s)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil || port == 0 {
		return netip.AddrPort{}, usageErr("target %q: port %q is not a number from 1 to 65535", s, portText)
	}
	if host == "" {
		return netip.AddrPort{}, usageErr("target %q: no host before the port", s)
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		addrs, lerr := lookupFrom(ctx)(ctx, "ip", host)
		var dnsErr *net.DNSError
		switch {
		case lerr == nil && len(addrs) == 0:
			return netip.AddrPort{}, usageErr("target %q: %q has no address", s, host)
		case errors.As(lerr, &dnsErr) && !dnsErr.IsNotFound:
			return netip.AddrPort{}, envErr(fmt.Errorf("target %q: cannot resolve %q: the resolver failed (%v)", s, host, lerr))
		case lerr != nil:
			return netip.AddrPort{}, usageErr("target %q: cannot resolve %q: no such host", s, host)
		}
		addr = addrs[0]
		for _, a := range addrs {
			if a.Is4() || a.Is4In6() {
				addr = a // IPv4 first, as most tools do
				break
			}
		}
	}
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// checkOnlyKey marks a context in which commands validate their flags and
// arguments and stop before anything reads a file, resolves a name, makes
// a lab or sends a packet (FuzzCommandLine).
type checkOnlyKey struct{}

// errChecked ends a command in a check-only context.
var errChecked = errors.New("arguments checked; nothing run")

// stopIfCheckOnly returns errChecked in a check-only context: the command
// has validated everything it can without touching the host.
func stopIfCheckOnly(c *cli.Context) error {
	if c.Context.Value(checkOnlyKey{}) != nil {
		return errChecked
	}
	return nil
}

// printable escapes what a terminal would act on (escape sequences, line
// breaks) and bytes that are not UTF-8 in text that echoes the user's
// input, as Go escapes them: \x1b, \n, \xff.
func printable(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == utf8.RuneError && strings.HasPrefix(s[i:], "\uFFFD"):
			b.WriteRune(r) // a real U+FFFD
		case r == utf8.RuneError:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case unicode.IsPrint(r) || r == ' ':
			b.WriteRune(r)
		default:
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		}
	}
	return b.String()
}

// printableLines is printable line by line: a message may list several
// problems, one a line.
func printableLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = printable(l)
	}
	return strings.Join(lines, "\n")
}
