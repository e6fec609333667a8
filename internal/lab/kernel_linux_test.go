package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
	"synprobe/probe"
)

func skipUnlessLinuxLab(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("linux lab needs root: network namespaces and veth pairs")
	}
	if ok, why := LinuxAvailable(); !ok {
		t.Skip(why)
	}
}

// TestLinuxLab talks to the kernel lab as an ordinary client from the probe
// namespace: a request over IPv4 and IPv6, the application's close on EOF,
// and a refused connection to the closed port. After Close both namespaces
// are gone.
func TestLinuxLab(t *testing.T) {
	skipUnlessLinuxLab(t)
	target, err := Start(context.Background(), StackLinux)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer target.Close()
	if target.Stack != StackLinux {
		t.Errorf("Stack: got %q, want %q", target.Stack, StackLinux)
	}
	ps := target.Probe
	if ps.NetNS <= 0 || ps.Interface != probeIfName || ps.Link != nil || ps.Path4 != (probe.Path{}) || ps.Path6 != (probe.Path{}) {
		t.Fatalf("ProbeSide: got %+v, want NetNS and Interface %q only", ps, probeIfName)
	}
	k := target.impl.(*kernelLab)
	namespaces := []*watchedNS{watchNS(t, "probe", k.pair.Probe.NS), watchNS(t, "target", k.pair.Target.NS)}
	checkVeth(t, ps.NetNS, ps.Interface, ProbeMAC)
	checkVeth(t, k.pair.Target.NS, targetIfName, TargetMAC)

	tests := []struct {
		name         string
		open, closed netip.AddrPort
	}{
		{"IPv4", target.Open, target.Closed},
		{"IPv6", target.Open6, target.Closed6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dialFrom(ps.NetNS, tt.open)
			if err != nil {
				t.Fatalf("dial %s: %v", tt.open, err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(replyWait))
			if _, err := c.Write([]byte("GET /10\r\n\r\n")); err != nil {
				t.Fatalf("write request: %v", err)
			}
			want := "HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nabcdefghij"
			got := make([]byte, len(want))
			if _, err := io.ReadFull(c, got); err != nil || string(got) != want {
				t.Fatalf("response: got %q, %v; want %q", got, err, want)
			}
			// Our FIN: the application sees EOF and closes; its FIN is
			// our EOF.
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				t.Fatalf("half-close: %v", err)
			}
			if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
				t.Fatalf("read after half-close: got %d bytes, %v; want 0, EOF", n, err)
			}

			c2, err := dialFrom(ps.NetNS, tt.closed)
			if err == nil {
				c2.Close()
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("dial closed port %s: got %v, want %v", tt.closed, err, syscall.ECONNREFUSED)
			}
		})
	}

	if err := target.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := target.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for _, ns := range namespaces {
		ns.waitGone(t)
	}
}

// TestLinuxLabAbortsOpenConnections closes a lab while a connection is
// still open (the probe never sends its FIN): Close must not wait for it,
// and the namespaces must still go.
func TestLinuxLabAbortsOpenConnections(t *testing.T) {
	skipUnlessLinuxLab(t)
	target, err := Start(context.Background(), StackAuto)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer target.Close()
	if target.Stack != StackLinux {
		t.Errorf("auto stack as root: got %q, want %q", target.Stack, StackLinux)
	}
	k := target.impl.(*kernelLab)
	namespaces := []*watchedNS{watchNS(t, "probe", k.pair.Probe.NS), watchNS(t, "target", k.pair.Target.NS)}
	c, err := dialFrom(target.Probe.NetNS, target.Open6)
	if err != nil {
		t.Fatalf("dial %s: %v", target.Open6, err)
	}
	c.SetDeadline(time.Now().Add(replyWait))
	if _, err := c.Write([]byte("GET /3\r\n\r\n")); err != nil {
		t.Fatalf("write request: %v", err)
	}
	if _, err := io.ReadFull(c, make([]byte, len("HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc"))); err != nil {
		t.Fatalf("read response: %v", err)
	}
	if err := target.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	// The application aborted the connection.
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("read after Close: got %v, want %v", err, syscall.ECONNRESET)
	}
	// Our socket holds the probe namespace until it is closed.
	c.Close()
	for _, ns := range namespaces {
		ns.waitGone(t)
	}
}

// dialFrom connects to addr from a socket made in namespace ns.
func dialFrom(ns int, addr netip.AddrPort) (net.Conn, error) {
	var c net.Conn
	err := netns.Do(ns, func() (err error) {
		c, err = net.DialTimeout("tcp", addr.String(), replyWait)
		return err
	})
	return c, err
}

func checkVeth(t *testing.T, ns int, name string, mac probe.MAC) {
	t.Helper()
	err := netns.Do(ns, func() error {
		link, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		if got, ok := probe.MACFrom(link.Attrs().HardwareAddr); !ok || got != mac {
			return fmt.Errorf("MAC: got %s, want %s", link.Attrs().HardwareAddr, mac)
		}
		if link.Type() != "veth" || link.Attrs().MTU != MTU {
			return fmt.Errorf("got %s with MTU %d, want veth with MTU %d", link.Type(), link.Attrs().MTU, MTU)
		}
		// The veth inherited the quiet IPv6 defaults.
		for _, knob := range []string{"accept_dad", "router_solicitations"} {
			b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + name + "/" + knob)
			if err != nil {
				return err
			}
			if got := strings.TrimSpace(string(b)); got != "0" {
				return fmt.Errorf("%s: got %s, want 0", knob, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("veth %s: %v", name, err)
	}
}

// watchedNS lets a test see a namespace die without keeping it alive: it
// gets an id in the test's own namespace (RTM_NEWNSID), which the kernel
// drops when the namespace is destroyed, and its inode is looked for among
// every process's namespaces and descriptors.
type watchedNS struct {
	name  string
	nsid  int
	inode uint64
}

func watchNS(t *testing.T, name string, fd int) *watchedNS {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatalf("stat %s namespace: %v", name, err)
	}
	// -1 asks the kernel to choose a free id.
	if err := netlink.SetNetNsIdByFd(fd, -1); err != nil {
		t.Fatalf("give %s namespace an id: %v", name, err)
	}
	id, err := netlink.GetNetNsIdByFd(fd)
	if err != nil || id < 0 {
		t.Fatalf("id of %s namespace: got %d, %v", name, id, err)
	}
	w := &watchedNS{name: name, nsid: id, inode: st.Ino}
	if alive, err := w.alive(); err != nil || !alive {
		t.Fatalf("%s namespace before Close: alive %v, %v; want alive", name, alive, err)
	}
	return w
}

// alive asks the kernel whether the namespace with w's id still exists.
func (w *watchedNS) alive() (bool, error) {
	req := nl.NewNetlinkRequest(unix.RTM_GETNSID, unix.NLM_F_REQUEST)
	req.AddData(nl.NewRtGenMsg())
	b := make([]byte, 4)
	nl.NativeEndian().PutUint32(b, uint32(w.nsid))
	req.AddData(nl.NewRtAttr(netlink.NETNSA_NSID, b))
	_, err := req.Execute(unix.NETLINK_ROUTE, unix.RTM_NEWNSID)
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return err == nil, err
}

// waitGone waits until the kernel has dropped the namespace: the last
// socket in it may take a moment to be freed after its close.
func (w *watchedNS) waitGone(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(replyWait)
	for {
		alive, err := w.alive()
		if err != nil {
			t.Fatalf("look up %s namespace: %v", w.name, err)
		}
		if !alive {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s namespace (nsid %d, inode %d) still exists %v after Close", w.name, w.nsid, w.inode, replyWait)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if holders := nsHolders(w.inode); len(holders) > 0 {
		t.Errorf("%s namespace inode %d still referenced by %v", w.name, w.inode, holders)
	}
}

// nsHolders lists the /proc entries (threads' namespaces, open descriptors)
// that refer to network namespace inode.
func nsHolders(inode uint64) []string {
	want := fmt.Sprintf("net:[%d]", inode)
	var holders []string
	for _, pattern := range []string{"/proc/[0-9]*/task/[0-9]*/ns/net", "/proc/[0-9]*/fd/*"} {
		paths, _ := filepath.Glob(pattern)
		for _, p := range paths {
			if target, err := os.Readlink(p); err == nil && target == want {
				holders = append(holders, p)
			}
		}
	}
	return holders
}
