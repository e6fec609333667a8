package serverlab_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"synprobe/internal/serverlab"
)

// ioTimeout bounds each read and write of a test: the servers answer in
// microseconds; only a broken one is slow.
const ioTimeout = 5 * time.Second

// silence is how long a test waits to see that nothing comes.
const silence = 300 * time.Millisecond

// TestBed starts a bed with every app, checks that each behaves as its
// kind says over IPv4 and IPv6, that the leftover check sees a connection
// held open and not one closed, that offloads switch, and that Close
// leaves nothing behind.
func TestBed(t *testing.T) {
	b := serverlab.New(t, serverlab.Config{})
	if len(b.Apps) != len(serverlab.Apps()) {
		t.Fatalf("bed runs %d apps, want all %d", len(b.Apps), len(serverlab.Apps()))
	}
	for _, ns := range []string{b.ProbeNS, b.TargetNS} {
		if _, err := os.Stat(filepath.Join("/var/run/netns", ns)); err != nil {
			t.Errorf("named namespace %s: %v", ns, err)
		}
	}

	// The queue-filling apps go last: a connection that completes in
	// never-accepts' queue stays there, and would be a leftover.
	for _, a := range b.Apps {
		for _, addr := range []netip.Addr{serverlab.Target4, serverlab.Target6} {
			t.Run(fmt.Sprintf("%s/%s", a.Name, family(addr)), func(t *testing.T) {
				checkApp(t, b, a, netip.AddrPortFrom(addr, a.Port))
			})
		}
	}
	t.Run("closed port", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
		defer cancel()
		_, err := b.Dial(ctx, "tcp", netip.AddrPortFrom(serverlab.Target4, serverlab.ClosedPort).String())
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial closed port %d: %v, want connection refused", serverlab.ClosedPort, err)
		}
	})
	t.Run("offloads", func(t *testing.T) { checkOffloads(t, b) })
	t.Run("close", func(t *testing.T) { checkClose(t, b) })
}

func family(a netip.Addr) string {
	if a.Is4() {
		return "ipv4"
	}
	return "ipv6"
}

// dial connects from the probe namespace; the test fails if it cannot.
func dial(t *testing.T, b *serverlab.Bed, ap netip.AddrPort) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	c, err := b.Dial(ctx, "tcp", ap.String())
	if err != nil {
		t.Fatalf("dial %s: %v", ap, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(ioTimeout))
	return c
}

func checkApp(t *testing.T, b *serverlab.Bed, a serverlab.App, ap netip.AddrPort) {
	switch a.Kind {
	case serverlab.KindHTTP:
		c := dial(t, b, ap)
		io.WriteString(c, "GET "+serverlab.BigPath+" HTTP/1.0\r\nHost: serverlab\r\n\r\n")
		resp, err := io.ReadAll(c)
		if err != nil {
			t.Fatalf("read response to GET %s: %v", serverlab.BigPath, err)
		}
		head, body, _ := bytes.Cut(resp, []byte("\r\n\r\n"))
		if !bytes.HasPrefix(head, []byte("HTTP/1.1 200 ")) || len(body) != serverlab.BigSize {
			t.Errorf("GET %s: %q and %d bytes, want 200 and %d bytes", serverlab.BigPath, firstLine(head), len(body), serverlab.BigSize)
		}
		c = dial(t, b, ap)
		io.WriteString(c, "GET /3000 HTTP/1.0\r\n\r\n")
		resp, _ = io.ReadAll(c)
		if !bytes.HasPrefix(resp, []byte("HTTP/1.1 404 ")) {
			t.Errorf("GET /3000: %q, want a stock server's 404", firstLine(resp))
		}
	case serverlab.KindSpeaksFirst:
		c := dial(t, b, ap)
		got := make([]byte, 8)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "SSH-2.0-" {
			t.Errorf("first bytes %q (%v), want \"SSH-2.0-\"", got, err)
		}
	case serverlab.KindRequestResponse:
		c := dial(t, b, ap)
		req, want := "PING\r\n", "+PONG"
		if a.Name == "memcached" {
			req, want = "version\r\n", "VERSION "
		}
		for range 2 { // it answers, and keeps the connection
			io.WriteString(c, req)
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil || !strings.HasPrefix(line, want) {
				t.Errorf("%q answered %q (%v), want %q...", req, line, err, want)
			}
		}
	case serverlab.KindReadsNeverWrites:
		c := dial(t, b, ap)
		if _, err := io.WriteString(c, "hello\r\n"); err != nil {
			t.Fatal(err)
		}
		expectSilence(t, c)
	case serverlab.KindSpeaksFirstAndCloses:
		c := dial(t, b, ap)
		got, err := io.ReadAll(c)
		if err != nil || len(got) == 0 || !bytes.HasSuffix(got, []byte("\n")) {
			t.Errorf("read %q (%v), want a line and the end of the stream", got, err)
		}
	case serverlab.KindEcho:
		c := dial(t, b, ap)
		io.WriteString(c, "echo me\n")
		got := make([]byte, 8)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "echo me\n" {
			t.Errorf("echo: %q (%v), want \"echo me\\n\"", got, err)
		}
		checkLeftovers(t, b, c)
	case serverlab.KindStreams:
		c := dial(t, b, ap)
		n, err := io.CopyN(io.Discard, c, 100_000)
		if err != nil {
			t.Errorf("read %d bytes (%v), want 100000 without asking", n, err)
		}
	case serverlab.KindNeverAccepts:
		// The kernel completes backlog+1 = 2 connections, then the
		// accept queue is full and SYNs are dropped.
		for i := range 2 {
			dial(t, b, ap)
			waitQueue(t, b, ap, uint32(i+1))
		}
		expectDialTimeout(t, b, ap)
	case serverlab.KindFullBacklog:
		expectDialTimeout(t, b, ap)
	case serverlab.KindOneAtATime:
		// The first connection is served; a second waits until it ends.
		first := dial(t, b, ap)
		second := dial(t, b, ap)
		io.WriteString(second, "queued\n")
		second.SetReadDeadline(time.Now().Add(silence))
		if n, err := second.Read(make([]byte, 16)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a second connection was served while the first was open: %d bytes, %v", n, err)
		}
		first.Close()
		got := make([]byte, 7)
		second.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := io.ReadFull(second, got); err != nil || string(got) != "queued\n" {
			t.Errorf("the second connection after the first closed: %q (%v), want its echo", got, err)
		}
		second.Close()
	case serverlab.KindIdleReset:
		c := dial(t, b, ap)
		c.SetReadDeadline(time.Now().Add(ioTimeout))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("an idle connection: %v, want a reset", err)
		}
	case serverlab.KindDeferAccept:
		c := dial(t, b, ap)
		io.WriteString(c, "taken\n")
		c.SetReadDeadline(time.Now().Add(silence))
		if n, err := c.Read(make([]byte, 16)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("defer-accept answered: %d bytes, %v", n, err)
		}
		c.Close()
	default:
		t.Fatalf("no check for kind %s", a.Kind)
	}
}

func firstLine(b []byte) string {
	l, _, _ := bytes.Cut(b, []byte("\r\n"))
	return string(l)
}

func expectSilence(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(silence))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read %q (%v), want nothing until the deadline", buf[:n], err)
	}
}

func expectDialTimeout(t *testing.T, b *serverlab.Bed, ap netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), silence)
	defer cancel()
	c, err := b.Dial(ctx, "tcp", ap.String())
	if err == nil {
		c.Close()
		t.Fatalf("dial %s: connected, want the SYN dropped", ap)
	}
	if ne, ok := errors.AsType[net.Error](err); !ok || !ne.Timeout() {
		t.Errorf("dial %s: %v, want a timeout", ap, err)
	}
}

// waitQueue waits until n connections wait in the accept queue of the
// listener on ap: the ACK that completes a connection may cross the veth
// after the next SYN.
func waitQueue(t *testing.T, b *serverlab.Bed, ap netip.AddrPort, n uint32) {
	t.Helper()
	var ls []serverlab.Conn
	for end := time.Now().Add(ioTimeout); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		var err error
		if ls, err = b.Listening(); err != nil {
			t.Fatal(err)
		}
		for _, l := range ls {
			if l.Local == ap && l.RecvQ == n {
				return
			}
		}
	}
	t.Fatalf("accept queue of %s: want %d connections; listening:\n%s", ap, n, serverlab.FormatConns(ls))
}

// checkLeftovers: the leftover check lists the connection c holds open,
// and not once it is closed.
func checkLeftovers(t *testing.T, b *serverlab.Bed, c net.Conn) {
	t.Helper()
	local := netip.MustParseAddrPort(c.RemoteAddr().String())
	peer := netip.MustParseAddrPort(c.LocalAddr().String())
	want := serverlab.Conn{State: "ESTAB", Local: local, Peer: peer}
	// The connections of the apps checked before may take a moment to
	// close.
	var left []serverlab.Conn
	var err error
	for end := time.Now().Add(ioTimeout); ; time.Sleep(5 * time.Millisecond) {
		if left, err = b.Leftovers(); err != nil {
			t.Fatal(err)
		}
		if len(left) == 1 && left[0] == want {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("leftovers with the connection open:\n%swant:\n%s", serverlab.FormatConns(left), serverlab.FormatConns([]serverlab.Conn{want}))
		}
	}
	c.Close()
	for end := time.Now().Add(ioTimeout); ; time.Sleep(5 * time.Millisecond) {
		if left, err = b.Leftovers(); err != nil {
			t.Fatal(err)
		}
		if len(left) == 0 {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("leftovers after close:\n%s", serverlab.FormatConns(left))
		}
	}
}

// checkOffloads switches each offload on and off on both veths, and
// checks with the ethtool program, in the namespace by its name.
func checkOffloads(t *testing.T, b *serverlab.Bed) {
	serverlab.Require(t, "ethtool", "ip")
	for _, side := range []serverlab.Side{serverlab.SideProbe, serverlab.SideTarget} {
		ns, ifName := b.ProbeNS, b.ProbeIf
		if side == serverlab.SideTarget {
			ns, ifName = b.TargetNS, b.TargetIf
		}
		got, err := b.Offloads(side)
		if err != nil {
			t.Fatal(err)
		}
		if got != (serverlab.Offloads{}) {
			t.Errorf("%s: offloads %s at the start, want all off", side, got)
		}
		for _, o := range []serverlab.Offloads{{GRO: true}, {GSO: true}, {TSO: true}, {GRO: true, GSO: true, TSO: true}, {}} {
			if err := b.SetOffloads(side, o); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("ip", "netns", "exec", ns, "ethtool", "-k", ifName).CombinedOutput()
			if err != nil {
				t.Fatalf("ethtool -k %s in %s: %v: %s", ifName, ns, err, out)
			}
			features := map[string]string{} // "tx-tcp-segmentation" -> "on"
			for _, l := range strings.Split(string(out), "\n") {
				if k, v, ok := strings.Cut(strings.TrimSpace(l), ": "); ok {
					features[k], _, _ = strings.Cut(v, " ")
				}
			}
			for feature, want := range map[string]bool{
				"generic-receive-offload":      o.GRO,
				"generic-segmentation-offload": o.GSO,
				"tx-tcp-segmentation":          o.TSO,
				"tx-tcp6-segmentation":         o.TSO,
			} {
				if w := map[bool]string{true: "on", false: "off"}[want]; features[feature] != w {
					t.Errorf("%s after SetOffloads(%s): ethtool -k says %s: %q, want %q", side, o, feature, features[feature], w)
				}
			}
		}
	}
}

// checkClose: Close leaves no namespace, veth, process or directory.
func checkClose(t *testing.T, b *serverlab.Bed) {
	pids := b.Processes()
	if len(pids) < 5 { // nginx, sshd, redis-server, memcached, xinetd
		t.Errorf("processes in the bed before Close: %v, want at least the 5 servers", pids)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("after Close, pid %d: %v, want gone", pid, err)
		}
	}
	for _, ns := range []string{b.ProbeNS, b.TargetNS} {
		if _, err := os.Stat(filepath.Join("/var/run/netns", ns)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after Close, /var/run/netns/%s: %v, want gone", ns, err)
		}
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil || bytes.Contains(out, []byte(b.ID)) {
		t.Errorf("after Close, ip netns list (%v):\n%s", err, out)
	}
	if out, err := exec.Command("ip", "-o", "link").CombinedOutput(); err != nil || bytes.Contains(out, []byte(b.ID)) {
		t.Errorf("after Close, ip link (%v):\n%s", err, out)
	}
	if _, err := os.Stat(b.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after Close, %s: %v, want gone", b.Dir, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if cmd, err := os.ReadFile(p); err == nil && bytes.Contains(cmd, []byte(b.Dir)) {
			t.Errorf("after Close, %s: %q", p, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
		}
	}
	if err := b.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestPresets: each preset is set in the target namespace, and only
// there.
func TestPresets(t *testing.T) {
	host := map[string]string{}
	for k := range serverlab.Presets()[0].Sysctls {
		host[k] = readHost(t, k)
	}
	// After the parallel subtests, which run once this function returns.
	t.Cleanup(func() {
		for k, v := range host {
			if got := readHost(t, k); got != v {
				t.Errorf("host's %s changed from %s to %s", k, v, got)
			}
		}
	})
	for _, p := range serverlab.Presets() {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			b := serverlab.New(t, serverlab.Config{Preset: p.Name, Apps: []string{}})
			for k, want := range p.Sysctls {
				got, err := b.Sysctl(k)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Errorf("%s in target namespace: %s, want %s", k, got, want)
				}
			}
		})
	}
}

func readHost(t *testing.T, name string) string {
	t.Helper()
	v, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(name, ".", "/"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(v))
}

// TestSysctls: settings beyond the preset are applied; ones that are not
// the namespace's are refused before anything is made.
func TestSysctls(t *testing.T) {
	b := serverlab.New(t, serverlab.Config{Preset: "sack-off", Apps: []string{},
		Sysctls: map[string]string{"net.ipv4.tcp_fin_timeout": "7", "net.ipv4.tcp_rmem": "4096 131072 1048576"}})
	for k, want := range map[string]string{"net.ipv4.tcp_sack": "0", "net.ipv4.tcp_fin_timeout": "7", "net.ipv4.tcp_rmem": "4096 131072 1048576"} {
		if got, err := b.Sysctl(k); err != nil || got != want {
			t.Errorf("%s: %q (%v), want %q", k, got, err, want)
		}
	}
	for _, name := range []string{"kernel.hostname", "net/../kernel/hostname"} {
		_, err := serverlab.Start(context.Background(), serverlab.Config{Apps: []string{}, Sysctls: map[string]string{name: "x"}})
		if err == nil || !strings.Contains(err.Error(), "only per-namespace net.* settings") {
			t.Errorf("sysctl %q: %v, want it refused", name, err)
		}
	}
}

// TestStale: a bed removes the namespaces and directories that killed
// beds left, and keeps those in use.
func TestStale(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: serverlab creates named network namespaces")
	}
	serverlab.Require(t, "ip")
	// Random IDs: test binaries may run side by side.
	stale := serverlab.NamePrefix + randomID(t)
	used := serverlab.NamePrefix + randomID(t)
	for _, ns := range []string{stale + "-probe", used + "-probe"} {
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", ns, err, out)
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "delete", ns).Run() })
	}
	// A process in the used one, as a server a killed bed left would be.
	sleeper := exec.Command("ip", "netns", "exec", used+"-probe", "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	dir, err := os.MkdirTemp("", stale+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	// Wait until sleep runs in the namespace (ip execs it).
	for end := time.Now().Add(ioTimeout); ; time.Sleep(5 * time.Millisecond) {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", sleeper.Process.Pid))
		if bytes.HasPrefix(cmd, []byte("sleep")) {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("sleep did not start in %s", used)
		}
	}

	serverlab.New(t, serverlab.Config{Apps: []string{}})

	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	if bytes.Contains(out, []byte(stale)) {
		t.Errorf("stale namespace %s-probe not removed:\n%s", stale, out)
	}
	if !bytes.Contains(out, []byte(used)) {
		t.Errorf("namespace %s-probe, in use, removed:\n%s", used, out)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale directory %s: %v, want removed", dir, err)
	}
}

// TestRequire: an app, a server and a tool are known; an unknown name is
// an error, not a skip.
func TestRequire(t *testing.T) {
	if err := serverlab.Missing("no-such-app"); err == nil || !strings.Contains(err.Error(), `no app, server or tool "no-such-app"`) {
		t.Errorf("Missing(no-such-app): %v", err)
	}
	var me *serverlab.MissingError
	if err := serverlab.Missing("never-accepts", "full-backlog"); err != nil {
		t.Errorf("Missing(never-accepts, full-backlog): %v, want nil: they are the bed's own", err)
	}
	if err := serverlab.Missing(); err != nil && !errors.As(err, &me) {
		t.Errorf("Missing(): %v, want nil or a MissingError", err)
	}
	e := &serverlab.MissingError{Programs: []string{"nginx (install nginx-light)", "sshd (install openssh-server)"}}
	if got, want := e.Error(), "missing: nginx (install nginx-light), sshd (install openssh-server)"; got != want {
		t.Errorf("MissingError: %q, want %q", got, want)
	}
	kinds := map[serverlab.Kind]bool{}
	for _, a := range serverlab.Apps() {
		kinds[a.Kind] = true
		if a.Port == serverlab.ClosedPort {
			t.Errorf("app %s on the closed port", a.Name)
		}
	}
	if !slices.Contains(serverlab.Apps(), serverlab.App{Name: "nginx", Kind: serverlab.KindHTTP, Port: 80, Server: "nginx"}) || len(kinds) != 12 {
		t.Errorf("apps %v: want nginx on 80 and 12 kinds", serverlab.Apps())
	}
}

func randomID(t *testing.T) string {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(r[:])
}
