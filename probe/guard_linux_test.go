package probe

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/nftables"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
)

// patience bounds every wait on the kernel: generous, because the machine
// is shared and noisy, and only a failing test ever waits that long.
const patience = 30 * time.Second

// vethPair is two anonymous network namespaces joined by a veth pair: the
// probe side, where synprobe runs and the guard is installed, and the target
// side, which injects SYN-ACKs and watches for the probe kernel's RSTs.
type vethPair struct {
	probeNS, targetNS int
	probe4, target4   netip.Addr
	probe6, target6   netip.Addr
}

func newVethPair(t *testing.T) *vethPair {
	t.Helper()
	p := &vethPair{
		probe4:  netip.MustParseAddr("192.0.2.1"),
		target4: netip.MustParseAddr("192.0.2.2"),
		probe6:  netip.MustParseAddr("2001:db8::1"),
		target6: netip.MustParseAddr("2001:db8::2"),
	}
	pair := vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: "probe0", Addrs: []netip.Prefix{netip.PrefixFrom(p.probe4, 24), netip.PrefixFrom(p.probe6, 64)}},
		Target: veth.End{Name: "target0", Addrs: []netip.Prefix{netip.PrefixFrom(p.target4, 24), netip.PrefixFrom(p.target6, 64)}},
	})
	p.probeNS, p.targetNS = pair.Probe.NS, pair.Target.NS
	return p
}

// rstKey names a RST by its ports: the probe side's source port and the
// target side's port it answers. Each check uses a fresh target port, so a
// late RST is never counted for a later check.
type rstKey struct{ probePort, targetPort uint16 }

// target is the target side: a raw TCP socket in the target namespace that
// sends SYN-ACKs to the probe side and records the RSTs that come back.
type target struct {
	t       *testing.T
	conn    *net.IPConn
	local   netip.Addr
	peer    netip.Addr
	nextPrt uint16

	mu      sync.Mutex
	rsts    map[rstKey]int
	changed chan struct{} // closed and replaced whenever a RST arrives
}

func newTarget(t *testing.T, p *vethPair, ipv6 bool) *target {
	t.Helper()
	network, local, peer := "ip4:tcp", p.target4, p.probe4
	if ipv6 {
		network, local, peer = "ip6:tcp", p.target6, p.probe6
	}
	tg := &target{t: t, local: local, peer: peer, nextPrt: 20000, rsts: map[rstKey]int{}, changed: make(chan struct{})}
	err := netns.Do(p.targetNS, func() error {
		var err error
		tg.conn, err = net.ListenIP(network, &net.IPAddr{IP: local.AsSlice()})
		return err
	})
	if err != nil {
		t.Fatalf("open raw TCP socket in target namespace: %v", err)
	}
	done := make(chan struct{})
	go tg.read(done)
	t.Cleanup(func() {
		tg.conn.Close()
		<-done
	})
	return tg
}

func (tg *target) read(done chan<- struct{}) {
	defer close(done)
	buf := make([]byte, 2048)
	for {
		n, _, err := tg.conn.ReadFrom(buf) // the IPv4 header is stripped
		if err != nil {
			return
		}
		if n < header.TCPMinimumSize {
			continue
		}
		seg := header.TCP(buf[:n])
		if seg.Flags()&header.TCPFlagRst == 0 {
			continue
		}
		tg.mu.Lock()
		tg.rsts[rstKey{seg.SourcePort(), seg.DestinationPort()}]++
		close(tg.changed)
		tg.changed = make(chan struct{})
		tg.mu.Unlock()
	}
}

// sendSYNACK sends a SYN-ACK that no socket on the probe side expects, to
// probePort, from a fresh target port, and returns the key its RST would
// carry.
func (tg *target) sendSYNACK(probePort uint16) rstKey {
	tg.t.Helper()
	tg.nextPrt++
	k := rstKey{probePort, tg.nextPrt}
	seg := header.TCP(make([]byte, header.TCPMinimumSize))
	seg.Encode(&header.TCPFields{
		SrcPort:    k.targetPort,
		DstPort:    k.probePort,
		SeqNum:     1000,
		AckNum:     2000,
		DataOffset: header.TCPMinimumSize,
		Flags:      header.TCPFlagSyn | header.TCPFlagAck,
		WindowSize: 65535,
	})
	src := tcpip.AddrFromSlice(tg.local.AsSlice())
	dst := tcpip.AddrFromSlice(tg.peer.AsSlice())
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(seg)))
	seg.SetChecksum(^seg.CalculateChecksum(xsum))
	if _, err := tg.conn.WriteTo(seg, &net.IPAddr{IP: tg.peer.AsSlice()}); err != nil {
		tg.t.Fatalf("send SYN-ACK to %s port %d: %v", tg.peer, probePort, err)
	}
	return k
}

func (tg *target) count(k rstKey) int {
	tg.mu.Lock()
	defer tg.mu.Unlock()
	return tg.rsts[k]
}

// waitRST waits up to timeout for the RST k and reports whether it came.
func (tg *target) waitRST(k rstKey, timeout time.Duration) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		tg.mu.Lock()
		n, changed := tg.rsts[k], tg.changed
		tg.mu.Unlock()
		if n > 0 {
			return true
		}
		select {
		case <-changed:
		case <-deadline.C:
			return false
		}
	}
}

// expectRST sends SYN-ACKs to probePort until the probe kernel answers one
// with a RST. It resends because the veth link may still be coming up.
func (tg *target) expectRST(probePort uint16, why string) {
	tg.t.Helper()
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		if tg.waitRST(tg.sendSYNACK(probePort), 200*time.Millisecond) {
			return
		}
	}
	tg.t.Fatalf("%s: got no RST from %s port %d within %v, want one", why, tg.peer, probePort, patience)
}

// expectDropped proves that the probe kernel's RST to a SYN-ACK for port is
// dropped by g: it sends a SYN-ACK to port, then one to the unprotected port
// marker, whose RST must come (the guard is narrow); the guard's counter
// shows that the kernel did answer port and the guard dropped the answer.
func (tg *target) expectDropped(g *Guard, port, marker uint16) {
	tg.t.Helper()
	before, err := g.Dropped()
	if err != nil {
		tg.t.Fatal(err)
	}
	k := tg.sendSYNACK(port)
	if !tg.waitRST(tg.sendSYNACK(marker), patience) {
		tg.t.Fatalf("unprotected port %d: got no RST within %v, want one (the guard must be narrow)", marker, patience)
	}
	waitFor(tg.t, fmt.Sprintf("%s to drop the RST from port %d", g.Name(), port), func() bool {
		n, err := g.Dropped()
		return (err == nil && n > before) || tg.count(k) > 0
	})
	if n := tg.count(k); n != 0 {
		tg.t.Fatalf("protected port %d: got %d RSTs at the target, want 0", port, n)
	}
}

// waitFor polls cond until it holds, failing the test after patience.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s", patience, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// guardTables lists the synprobe tables in the namespace ns.
func guardTables(t testing.TB, ns int) []*nftables.Table {
	t.Helper()
	conn, err := nftables.New(nftables.WithNetNSFd(ns))
	if err != nil {
		t.Fatal(err)
	}
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		t.Fatalf("list nftables tables: %v", err)
	}
	var ours []*nftables.Table
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, guardTablePrefix) {
			ours = append(ours, tb)
		}
	}
	return ours
}

func hasTable(t testing.TB, ns int, name string) (*nftables.Table, bool) {
	t.Helper()
	for _, tb := range guardTables(t, ns) {
		if tb.Name == name {
			return tb, true
		}
	}
	return nil, false
}

func installTestGuard(t *testing.T, ns int) *Guard {
	t.Helper()
	g, err := InstallGuard(ns)
	if err != nil {
		t.Fatalf("InstallGuard: %v", err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

func TestGuardDropsOnlyProtectedPorts(t *testing.T) {
	for _, tc := range []struct {
		name string
		ipv6 bool
	}{
		{"IPv4", false},
		{"IPv6", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newVethPair(t)
			tg := newTarget(t, p, tc.ipv6)
			const protected, unprotected = 61001, 61002

			tg.expectRST(protected, "without a guard")

			g := installTestGuard(t, p.probeNS)
			if err := g.Protect(protected, 10*time.Minute); err != nil {
				t.Fatal(err)
			}
			tg.expectDropped(g, protected, unprotected)

			if err := g.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if _, ok := hasTable(t, p.probeNS, g.Name()); ok {
				t.Fatalf("after Close: table %s still exists, want it gone", g.Name())
			}
			tg.expectRST(protected, "after Close")
		})
	}
}

func TestGuardUnprotect(t *testing.T) {
	p := newVethPair(t)
	tg := newTarget(t, p, false)
	g := installTestGuard(t, p.probeNS)
	const port, marker = 61001, 61002
	if err := g.Protect(port, 10*time.Minute); err != nil {
		t.Fatal(err)
	}
	tg.expectDropped(g, port, marker)
	if err := g.Unprotect(port); err != nil {
		t.Fatalf("Unprotect: %v", err)
	}
	tg.expectRST(port, "after Unprotect")
	// Neither a port unprotected twice nor one never protected is an error.
	for _, p := range []uint16{port, 61003} {
		if err := g.Unprotect(p); err != nil {
			t.Errorf("Unprotect(%d) of an unprotected port: got %v, want nil", p, err)
		}
	}
}

func TestGuardProtectRestartsTTL(t *testing.T) {
	p := newVethPair(t)
	g := installTestGuard(t, p.probeNS)
	const port = 61001
	for _, ttl := range []time.Duration{time.Hour, 2 * time.Hour, time.Minute} {
		if err := g.Protect(port, ttl); err != nil {
			t.Fatal(err)
		}
		els, err := g.sys.conn.GetSetElements(g.sys.set)
		if err != nil {
			t.Fatal(err)
		}
		if len(els) != 1 {
			t.Fatalf("after Protect(%d, %v): got %d elements, want 1", port, ttl, len(els))
		}
		if got := els[0].Timeout; got != ttl {
			t.Errorf("after Protect(%d, %v): element timeout %v, want %v", port, ttl, got, ttl)
		}
		if got := els[0].Expires; got <= 0 || got > ttl {
			t.Errorf("after Protect(%d, %v): element expires in %v, want within (0, %v]", port, ttl, got, ttl)
		}
	}
}

func TestGuardElementExpires(t *testing.T) {
	p := newVethPair(t)
	tg := newTarget(t, p, false)
	const port, marker = 61001, 61002
	tg.expectRST(marker, "link up")
	g := installTestGuard(t, p.probeNS)

	const ttl = 3 * time.Second
	start := time.Now()
	if err := g.Protect(port, ttl); err != nil {
		t.Fatal(err)
	}
	// Within the ttl the RST must be dropped. Only a RST seen at the target
	// before the ttl ran out proves a leak; on a machine too slow to answer
	// within the ttl there is nothing to judge.
	k := tg.sendSYNACK(port)
	waitFor(t, "the RST to be dropped or to arrive", func() bool {
		n, err := g.Dropped()
		return (err == nil && n > 0) || tg.count(k) > 0
	})
	if tg.count(k) > 0 {
		if since := time.Since(start); since < ttl {
			t.Fatalf("RST from protected port %d reached the target %v after Protect with ttl %v, want it dropped", port, since, ttl)
		}
		t.Logf("the machine took longer than the ttl %v: drop not checked", ttl)
	}
	// After the ttl the element is gone and RSTs come again.
	tg.expectRST(port, "after the ttl")
	waitFor(t, "the expired element to leave the set", func() bool {
		els, err := g.sys.conn.GetSetElements(g.sys.set)
		return err == nil && len(els) == 0
	})
}

func TestGuardRejectsBadArguments(t *testing.T) {
	p := newVethPair(t)
	g := installTestGuard(t, p.probeNS)
	for _, tc := range []struct {
		port uint16
		ttl  time.Duration
	}{
		{0, time.Minute},
		{61001, 0},
		{61001, -time.Second},
	} {
		if err := g.Protect(tc.port, tc.ttl); err == nil {
			t.Errorf("Protect(%d, %v): got nil, want an error", tc.port, tc.ttl)
		}
	}
	// A sub-millisecond ttl is rounded up, not lost.
	if err := g.Protect(61001, time.Microsecond); err != nil {
		t.Errorf("Protect(61001, 1µs): got %v, want nil", err)
	}
}

func TestGuardCloseTwiceAndConcurrently(t *testing.T) {
	p := newVethPair(t)
	g := installTestGuard(t, p.probeNS)
	if err := g.Protect(61001, time.Minute); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = g.Close() })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("Close #%d: got %v, want nil", i, err)
		}
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close after Close: got %v, want nil", err)
	}
	if tables := guardTables(t, p.probeNS); len(tables) != 0 {
		t.Errorf("after Close: got %d synprobe tables, want 0", len(tables))
	}
	if err := g.Protect(61001, time.Minute); !errors.Is(err, ErrGuardClosed) {
		t.Errorf("Protect after Close: got %v, want ErrGuardClosed", err)
	}
	if err := g.Unprotect(61001); !errors.Is(err, ErrGuardClosed) {
		t.Errorf("Unprotect after Close: got %v, want ErrGuardClosed", err)
	}
}

func TestGuardTablesPerProcess(t *testing.T) {
	p := newVethPair(t)
	g1 := installTestGuard(t, p.probeNS)
	g2 := installTestGuard(t, p.probeNS)
	if g1.Name() == g2.Name() {
		t.Fatalf("two guards in one namespace: both named %s, want distinct tables", g1.Name())
	}
	for _, g := range []*Guard{g1, g2} {
		pid, ok := guardTablePID(g.Name())
		if !ok || pid != os.Getpid() {
			t.Errorf("table %s: got pid %d (%v), want %d", g.Name(), pid, ok, os.Getpid())
		}
		tb, ok := hasTable(t, p.probeNS, g.Name())
		if !ok {
			t.Fatalf("table %s not found", g.Name())
		}
		if g.Owned() != (tableFlags(tb)&tableFlagOwner != 0) {
			t.Errorf("table %s: Owned() %v, table flags %#x", g.Name(), g.Owned(), tableFlags(tb))
		}
		if !g.Owned() {
			t.Logf("kernel refused NFT_TABLE_F_OWNER: stale tables are swept at install time")
		}
	}
}

func TestGuardSweepsStaleTables(t *testing.T) {
	p := newVethPair(t)
	// A pid that is surely dead: a child that has been waited for.
	child := exec.Command("/bin/true")
	if err := child.Run(); err != nil {
		t.Fatal(err)
	}
	dead := guardTableName(child.Process.Pid, 0)
	alive := guardTableName(1, 0) // init never dies
	conn, err := nftables.New(nftables.WithNetNSFd(p.probeNS))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{dead, alive} {
		conn.AddTable(&nftables.Table{Name: name, Family: nftables.TableFamilyINet})
	}
	if err := conn.Flush(); err != nil {
		t.Fatalf("add stale tables: %v", err)
	}

	installTestGuard(t, p.probeNS)
	if _, ok := hasTable(t, p.probeNS, dead); ok {
		t.Errorf("table %s of a dead process: still there after InstallGuard, want it swept", dead)
	}
	if _, ok := hasTable(t, p.probeNS, alive); !ok {
		t.Errorf("table %s of a live process: gone after InstallGuard, want it kept", alive)
	}
	conn.DelTable(&nftables.Table{Name: alive, Family: nftables.TableFamilyINet})
	if err := conn.Flush(); err != nil {
		t.Errorf("delete table %s: %v", alive, err)
	}
}

func TestGuardTableNames(t *testing.T) {
	for _, tc := range []struct {
		name string
		pid  int
		ok   bool
	}{
		{"synprobe_42", 42, true},
		{"synprobe_42_3", 42, true},
		{"synprobe_", 0, false},
		{"synprobe_0", 0, false},
		{"synprobe_042", 0, false},
		{"synprobe_x", 0, false},
		{"filter", 0, false},
	} {
		pid, ok := guardTablePID(tc.name)
		if pid != tc.pid || ok != tc.ok {
			t.Errorf("guardTablePID(%q): got %d, %v; want %d, %v", tc.name, pid, ok, tc.pid, tc.ok)
		}
	}
	if got, want := guardTableName(42, 0), "synprobe_42"; got != want {
		t.Errorf("guardTableName(42, 0): got %q, want %q", got, want)
	}
	if got, want := guardTableName(42, 3), "synprobe_42_3"; got != want {
		t.Errorf("guardTableName(42, 3): got %q, want %q", got, want)
	}
}

// guardChildEnv makes the test binary a child that installs a guard in the
// namespace on fd 3 and then dies as told.
const guardChildEnv = "SYNPROBE_GUARD_CHILD"

// TestGuardChild is not a test: it is the child of
// TestGuardVanishesWithProcess and TestInstallGuardWithoutPrivileges.
func TestGuardChild(t *testing.T) {
	mode := os.Getenv(guardChildEnv)
	if mode == "" {
		t.Skip("helper process for the guard crash tests")
	}
	const nsFD = 3
	g, err := InstallGuard(nsFD)
	if mode == "unprivileged" {
		fmt.Printf("unavailable=%v permission=%v err=%v\n", errors.Is(err, ErrGuardUnavailable), errors.Is(err, os.ErrPermission), err)
		os.Exit(0)
	}
	if err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	if err := g.Protect(61001, time.Hour); err != nil {
		fmt.Printf("error %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("table %s\n", g.Name())
	// Wait for the parent to look at the table, then die without Close.
	bufio.NewReader(os.Stdin).ReadString('\n')
	switch mode {
	case "exit":
		os.Exit(0)
	case "kill":
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
	select {}
}

// startGuardChild runs this test binary as TestGuardChild in mode, with the
// namespace ns as its fd 3.
func startGuardChild(t *testing.T, ns int, mode string, attr *syscall.SysProcAttr) (*exec.Cmd, *bufio.Reader, io.Writer) {
	t.Helper()
	dup, err := unix.Dup(ns)
	if err != nil {
		t.Fatal(err)
	}
	nsFile := os.NewFile(uintptr(dup), "netns")
	defer nsFile.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestGuardChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), guardChildEnv+"="+mode)
	cmd.ExtraFiles = []*os.File{nsFile}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = attr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start child: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd, bufio.NewReader(stdout), stdin
}

func TestGuardVanishesWithProcess(t *testing.T) {
	for _, mode := range []string{"exit", "kill"} {
		t.Run(mode, func(t *testing.T) {
			p := newVethPair(t)
			cmd, out, in := startGuardChild(t, p.probeNS, mode, nil)
			line, err := out.ReadString('\n')
			if err != nil {
				t.Fatalf("read from child: %v", err)
			}
			name, ok := strings.CutPrefix(strings.TrimSpace(line), "table ")
			if !ok {
				t.Fatalf("child said %q, want \"table NAME\"", line)
			}
			tb, ok := hasTable(t, p.probeNS, name)
			if !ok {
				t.Fatalf("table %s of the live child: not found", name)
			}
			if tableFlags(tb)&tableFlagOwner == 0 {
				t.Skipf("kernel refused NFT_TABLE_F_OWNER (table flags %#x): tables are swept at install time instead", tableFlags(tb))
			}
			in.Write([]byte("die\n"))
			err = cmd.Wait()
			t.Logf("child ended: %v", err)
			waitFor(t, "the dead child's table "+name+" to vanish", func() bool {
				_, ok := hasTable(t, p.probeNS, name)
				return !ok
			})
		})
	}
}

func TestInstallGuardWithoutPrivileges(t *testing.T) {
	p := newVethPair(t)
	// A child in a user namespace of its own is root there, but has no
	// capability over the probe namespace, which belongs to the initial
	// user namespace.
	attr := &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: 0, Size: 1}},
	}
	cmd, out, _ := startGuardChild(t, p.probeNS, "unprivileged", attr)
	line, err := out.ReadString('\n')
	if err != nil {
		t.Fatalf("read from child: %v", err)
	}
	cmd.Wait()
	if !strings.HasPrefix(line, "unavailable=true permission=true ") {
		t.Errorf("child in a user namespace: got %q, want an error that is ErrGuardUnavailable and a permission error", strings.TrimSpace(line))
	}
	if tables := guardTables(t, p.probeNS); len(tables) != 0 {
		t.Errorf("after a failed InstallGuard: got %d synprobe tables, want 0", len(tables))
	}
}

func TestGuardOutlivesNamespaceDescriptor(t *testing.T) {
	p := newVethPair(t)
	fd, err := unix.Dup(p.probeNS)
	if err != nil {
		t.Fatal(err)
	}
	g, err := InstallGuard(fd)
	netns.Close(fd)
	if err != nil {
		t.Fatalf("InstallGuard: %v", err)
	}
	defer g.Close()
	if err := g.Protect(61001, time.Minute); err != nil {
		t.Errorf("Protect after closing the namespace descriptor: %v", err)
	}
	if _, err := g.Dropped(); err != nil {
		t.Errorf("Dropped after closing the namespace descriptor: %v", err)
	}
	if err := g.Close(); err != nil {
		t.Errorf("Close after closing the namespace descriptor: %v", err)
	}
	if tables := guardTables(t, p.probeNS); len(tables) != 0 {
		t.Errorf("after Close: got %d synprobe tables, want 0", len(tables))
	}
}

// TestGuardProtectFlow: a (host, port) pair drops the kernel's RSTs from
// the port to that host only; another host's pair on the same port does
// not, and UnprotectFlow lets them through again.
func TestGuardProtectFlow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		ipv6  bool
		other netip.Addr
	}{
		{"IPv4", false, netip.MustParseAddr("10.93.255.9")},
		{"IPv6", true, netip.MustParseAddr("fd93::9")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newVethPair(t)
			tg := newTarget(t, p, tc.ipv6)
			const port, marker = 61001, 61002
			g := installTestGuard(t, p.probeNS)
			if err := g.ProtectFlow(tc.other, port, 10*time.Minute); err != nil {
				t.Fatal(err)
			}
			tg.expectRST(port, "port protected for another host")
			if err := g.ProtectFlow(tg.local, port, 10*time.Minute); err != nil {
				t.Fatal(err)
			}
			tg.expectDropped(g, port, marker)
			if err := g.UnprotectFlow(tg.local, port); err != nil {
				t.Fatalf("UnprotectFlow: %v", err)
			}
			tg.expectRST(port, "after UnprotectFlow")
			if err := g.UnprotectFlow(tg.local, port); err != nil {
				t.Errorf("UnprotectFlow of a pair not protected: %v, want nil", err)
			}
			// In one batch, with a pair that is not protected: the
			// kernel refuses the batch, and the pairs go one by one.
			if err := g.ProtectFlow(tg.local, port, 10*time.Minute); err != nil {
				t.Fatal(err)
			}
			tg.expectDropped(g, port, marker)
			if err := g.UnprotectFlows(tg.local, []uint16{61003, port}); err != nil {
				t.Fatalf("UnprotectFlows with a pair not protected: %v, want nil", err)
			}
			tg.expectRST(port, "after UnprotectFlows")
		})
	}
}
