//go:build linux

package scalelab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
)

// labCount numbers the labs of this process, for their names.
var labCount atomic.Uint64

type labSys struct {
	probeFD, targetFD int
	pair              *veth.Pair
	listeners         []net.Listener
	// serving counts the accept loops and the connections being served
	// (Plan.Serve); conns are the latter, closed by Close.
	serving sync.WaitGroup
	connMu  sync.Mutex
	conns   map[net.Conn]struct{}
}

// targetSysctls lift the ICMP rate limits and let one listener hold a
// sweep's worth of half-open connections.
var targetSysctls = map[string]string{
	"net/ipv4/icmp_ratelimit":         "0",
	"net/ipv4/icmp_msgs_per_sec":      "100000000",
	"net/ipv4/icmp_msgs_burst":        "100000000",
	"net/core/somaxconn":              "65535",
	"net/ipv4/tcp_max_syn_backlog":    "1048576",
	"net/ipv4/conf/all/rp_filter":     "0",
	"net/ipv4/conf/default/rp_filter": "0",
}

// sweepSysctls are the target's in a sweep's lab (not Plan.Serve):
// tcp_synack_retries 0: a lost SYN-ACK is the sweep's to retry, not the
// target's to repeat.
var sweepSysctls = map[string]string{
	"net/ipv4/tcp_synack_retries": "0",
}

// Start builds the lab for plan. Close removes everything, also what a
// failed Start left; labs of dead processes are removed first.
func Start(ctx context.Context, plan Plan) (*Lab, error) {
	for _, prog := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(prog); err != nil {
			return nil, fmt.Errorf("start scale lab: %s not found (install iproute2 and nftables)", prog)
		}
	}
	removeStale()
	id := strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(labCount.Add(1), 10)
	l := &Lab{Plan: plan, ProbeNS: NamePrefix + id + "-probe", TargetNS: NamePrefix + id + "-target"}
	if err := l.setup(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("start scale lab: %w", err)
	}
	return l, nil
}

func (l *Lab) setup(ctx context.Context) error {
	var err error
	for _, ns := range []string{l.ProbeNS, l.TargetNS} {
		if err := ip("netns", "add", ns); err != nil {
			return err
		}
	}
	if l.sys.probeFD, err = netns.Open(filepath.Join("/var/run/netns", l.ProbeNS)); err != nil {
		return err
	}
	if l.sys.targetFD, err = netns.Open(filepath.Join("/var/run/netns", l.TargetNS)); err != nil {
		return err
	}
	l.sys.pair, err = veth.New(ctx, veth.Config{
		Probe:  veth.End{Name: ProbeIf, NS: l.sys.probeFD, Addrs: []netip.Prefix{netip.PrefixFrom(ProbeAddr, 30)}},
		Target: veth.End{Name: TargetIf, NS: l.sys.targetFD, Addrs: []netip.Prefix{netip.PrefixFrom(TargetAddr, 30)}},
	})
	if err != nil {
		return err
	}
	l.ProbeMAC, l.GatewayMAC = l.sys.pair.Probe.MAC.String(), l.sys.pair.Target.MAC.String()
	for _, s := range []veth.Side{l.sys.pair.Probe, l.sys.pair.Target} {
		for _, o := range []veth.Offload{veth.TSO, veth.GSO, veth.GRO} {
			if err := veth.SetOffload(s.NS, s.Name, o, false); err != nil {
				return err
			}
		}
	}
	prefix := l.Plan.Prefix.String()
	if err := ip("-n", l.ProbeNS, "route", "add", prefix, "via", TargetAddr.String()); err != nil {
		return err
	}
	if err := ip("-n", l.TargetNS, "link", "set", "lo", "up"); err != nil {
		return err
	}
	// The whole prefix is local: the kernel answers for every address.
	if err := ip("-n", l.TargetNS, "route", "add", "local", prefix, "dev", "lo"); err != nil {
		return err
	}
	if err := netns.Do(l.sys.targetFD, func() error {
		sets := []map[string]string{targetSysctls}
		if !l.Plan.Serve {
			sets = append(sets, sweepSysctls)
		}
		for _, set := range sets {
			for name, v := range set {
				if err := os.WriteFile("/proc/sys/"+name, []byte(v), 0); err != nil {
					return fmt.Errorf("set %s: %w", strings.ReplaceAll(name, "/", "."), err)
				}
			}
		}
		return nil
	}); err != nil {
		return err
	}
	cmd := exec.Command("ip", "netns", "exec", l.TargetNS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(l.Plan.nftRules("scalelab"))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("load nftables rules: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return netns.Do(l.sys.targetFD, func() error {
		for _, p := range l.Plan.OpenPorts {
			lc := net.ListenConfig{}
			ln, err := lc.Listen(context.Background(), "tcp4", "0.0.0.0:"+strconv.Itoa(int(p)))
			if err != nil {
				return fmt.Errorf("listen on port %d: %w", p, err)
			}
			l.sys.listeners = append(l.sys.listeners, ln)
			if l.Plan.Serve {
				l.sys.serving.Add(1)
				go l.serve(ln)
			}
		}
		return nil
	})
}

// serve accepts the connections of ln until it is closed, each served in
// a goroutine of its own.
func (l *Lab) serve(ln net.Listener) {
	defer l.sys.serving.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return // closed
		}
		l.sys.connMu.Lock()
		if l.sys.conns == nil {
			l.sys.conns = map[net.Conn]struct{}{}
		}
		l.sys.conns[c] = struct{}{}
		l.sys.connMu.Unlock()
		l.sys.serving.Add(1)
		go func() {
			defer l.sys.serving.Done()
			serveConn(c)
			l.sys.connMu.Lock()
			delete(l.sys.conns, c)
			l.sys.connMu.Unlock()
		}()
	}
}

// serveConn reads a request (to its blank line, or what came within
// serveWait) and answers as a web server would: "GET /N" gets N bytes
// (up to maxAnswer), anything else a short answer; then it closes.
func serveConn(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(serveWait))
	var req []byte
	buf := make([]byte, 2048)
	for len(req) < 8192 && !bytes.Contains(req, []byte("\r\n\r\n")) {
		n, err := c.Read(buf)
		req = append(req, buf[:n]...)
		if err != nil {
			break
		}
	}
	if len(req) == 0 {
		return
	}
	size := 0
	if rest, ok := bytes.CutPrefix(req, []byte("GET /")); ok {
		end := bytes.IndexAny(rest, " ?\r\n")
		if end < 0 {
			end = len(rest)
		}
		size, _ = strconv.Atoi(string(rest[:end]))
		size = min(max(size, 0), maxAnswer)
	}
	c.SetDeadline(time.Now().Add(serveWait))
	fmt.Fprintf(c, "HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", size)
	c.Write(make([]byte, size))
}

// serveWait bounds each read and the answer's write; maxAnswer is the
// largest answer.
const (
	serveWait = 10 * time.Second
	maxAnswer = 1 << 20
)

// ProbeFD is a descriptor of the probe namespace (the lab owns it).
func (l *Lab) ProbeFD() int { return l.sys.probeFD }

// Close removes the lab: listeners, veth pair, namespaces (the nftables
// table goes with its namespace).
func (l *Lab) Close() error {
	var errs []error
	for _, ln := range l.sys.listeners {
		ln.Close()
	}
	l.sys.listeners = nil
	l.sys.connMu.Lock()
	for c := range l.sys.conns {
		c.Close()
	}
	l.sys.connMu.Unlock()
	l.sys.serving.Wait()
	if l.sys.pair != nil {
		errs = append(errs, l.sys.pair.Close())
		l.sys.pair = nil
	}
	for _, fd := range []*int{&l.sys.probeFD, &l.sys.targetFD} {
		if *fd > 0 {
			netns.Close(*fd)
			*fd = 0
		}
	}
	for _, ns := range []string{l.ProbeNS, l.TargetNS} {
		if _, err := os.Stat(filepath.Join("/var/run/netns", ns)); err == nil {
			errs = append(errs, ip("netns", "delete", ns))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close scale lab: %w", err)
	}
	return nil
}

// removeStale deletes the namespaces of labs whose process is gone.
func removeStale() {
	names, _ := filepath.Glob("/var/run/netns/" + NamePrefix + "*")
	for _, path := range names {
		name := filepath.Base(path)
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(name, NamePrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			ip("netns", "delete", name)
		}
	}
}

func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
