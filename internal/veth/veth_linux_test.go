package veth_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
)

func prefixes(s ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(s))
	for i, p := range s {
		out[i] = netip.MustParsePrefix(p)
	}
	return out
}

// TestNew checks each end as New leaves it, then carries a TCP connection
// across over IPv4 and IPv6.
func TestNew(t *testing.T) {
	probeMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	targetMAC := net.HardwareAddr{0x02, 0, 0, 0, 0, 0x02}
	cfg := veth.Config{
		Probe:  veth.End{Name: "vt-probe", MAC: probeMAC, Addrs: prefixes("10.66.0.1/24", "fd66::1/64")},
		Target: veth.End{Name: "vt-target", MAC: targetMAC, Addrs: prefixes("10.66.0.2/24", "fd66::2/64")},
		MTU:    1400,
	}
	p := vethtest.New(t, cfg)
	for _, tc := range []struct {
		side veth.Side
		end  veth.End
	}{{p.Probe, cfg.Probe}, {p.Target, cfg.Target}} {
		s := tc.side
		if s.NS <= 0 || s.Name != tc.end.Name || s.Index <= 0 || s.MAC.String() != tc.end.MAC.String() {
			t.Errorf("side %+v: want a namespace, name %s, an index and MAC %s", s, tc.end.Name, tc.end.MAC)
		}
		err := netns.Do(s.NS, func() error {
			for _, name := range []string{"lo", s.Name} {
				l, err := netlink.LinkByName(name)
				if err != nil {
					t.Errorf("%s: %v", name, err)
					continue
				}
				if l.Attrs().Flags&net.FlagUp == 0 {
					t.Errorf("%s: down, want up", name)
				}
			}
			l, err := netlink.LinkByIndex(s.Index)
			if err != nil {
				return err
			}
			if a := l.Attrs(); a.Name != s.Name || a.MTU != cfg.MTU || a.OperState != netlink.OperUp {
				t.Errorf("link %d: got %s with MTU %d, operstate %s; want %s with MTU %d, up", s.Index, a.Name, a.MTU, a.OperState, s.Name, cfg.MTU)
			}
			addrs, err := netlink.AddrList(l, netlink.FAMILY_ALL)
			if err != nil {
				return err
			}
			have := map[netip.Prefix]bool{}
			for _, a := range addrs {
				ip, _ := netip.AddrFromSlice(a.IP)
				bits, _ := a.Mask.Size()
				have[netip.PrefixFrom(ip.Unmap(), bits)] = true
				if a.Flags&unix.IFA_F_TENTATIVE != 0 {
					t.Errorf("%s: address %s is tentative", s.Name, a.IPNet)
				}
			}
			for _, want := range tc.end.Addrs {
				if !have[want] {
					t.Errorf("%s: no address %s; has %v", s.Name, want, addrs)
				}
			}
			b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + s.Name + "/accept_dad")
			if err != nil {
				return err
			}
			if got := strings.TrimSpace(string(b)); got != "0" {
				t.Errorf("%s: accept_dad %s, want 0", s.Name, got)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("look at %s: %v", s.Name, err)
		}
	}

	for _, target := range []string{"10.66.0.2:7", "[fd66::2]:7"} {
		var ln net.Listener
		err := netns.Do(p.Target.NS, func() (err error) { ln, err = net.Listen("tcp", target); return err })
		if err != nil {
			t.Fatalf("listen on %s: %v", target, err)
		}
		defer ln.Close()
		go func() {
			c, err := ln.Accept()
			if err == nil {
				io.Copy(c, c)
				c.Close()
			}
		}()
		var c net.Conn
		err = netns.Do(p.Probe.NS, func() (err error) { c, err = net.Dial("tcp", target); return err })
		if err != nil {
			t.Fatalf("dial %s: %v", target, err)
		}
		if _, err := c.Write([]byte("ping")); err != nil {
			t.Fatalf("write to %s: %v", target, err)
		}
		got := make([]byte, 4)
		if _, err := io.ReadFull(c, got); err != nil || string(got) != "ping" {
			t.Errorf("echo from %s: got %q, %v; want \"ping\"", target, got, err)
		}
		c.Close()
	}

	if err := p.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if p.Probe.NS != 0 || p.Target.NS != 0 {
		t.Errorf("after Close: namespaces %d and %d, want 0 and 0", p.Probe.NS, p.Target.NS)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestNewNoAutoLinkLocal: the ends have only the link-local addresses they
// were given.
func TestNewNoAutoLinkLocal(t *testing.T) {
	p := vethtest.New(t, veth.Config{
		Probe:           veth.End{Name: "vt-probe", Addrs: prefixes("fe80::1/64")},
		Target:          veth.End{Name: "vt-target"},
		NoAutoLinkLocal: true,
	})
	for _, tc := range []struct {
		side veth.Side
		want []string
	}{{p.Probe, []string{"fe80::1"}}, {p.Target, nil}} {
		var got []string
		err := netns.Do(tc.side.NS, func() error {
			l, err := netlink.LinkByIndex(tc.side.Index)
			if err != nil {
				return err
			}
			addrs, err := netlink.AddrList(l, netlink.FAMILY_V6)
			for _, a := range addrs {
				got = append(got, a.IP.String())
			}
			return err
		})
		if err != nil {
			t.Fatalf("list addresses of %s: %v", tc.side.Name, err)
		}
		if strings.Join(got, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%s: IPv6 addresses %q, want %q", tc.side.Name, got, tc.want)
		}
	}
}

// TestNewFails: a pair that cannot be made gives an error naming it and
// leaves no descriptor open.
func TestNewFails(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and a veth pair")
	}
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	for _, tc := range []struct {
		name string
		cfg  veth.Config
		want string
	}{
		{"name too long", veth.Config{Probe: veth.End{Name: "a-name-far-too-long"}, Target: veth.End{Name: "vt-target"}}, "create veth pair a-name-far-too-long/vt-target: add veth"},
		{"same address twice", veth.Config{
			Probe:  veth.End{Name: "vt-probe", Addrs: prefixes("10.66.0.1/24", "10.66.0.1/24")},
			Target: veth.End{Name: "vt-target"},
		}, "add 10.66.0.1/24 to vt-probe in probe namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := fds()
			p, err := veth.New(context.Background(), tc.cfg)
			if err == nil {
				p.Close()
				t.Fatalf("New: no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New: got %q, want it to contain %q", err, tc.want)
			}
			if after := fds(); after != before {
				t.Errorf("New failed with %d descriptors open, had %d before", after, before)
			}
		})
	}
}

// TestNewExistingNamespace: an end given a namespace is made there, and
// the caller's descriptor stays its own: Close leaves it open, with the
// veth still in it.
func TestNewExistingNamespace(t *testing.T) {
	ns := vethtest.Namespace(t)
	p := vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: "vt-probe", NS: ns, Addrs: prefixes("10.66.0.1/24")},
		Target: veth.End{Name: "vt-target", Addrs: prefixes("10.66.0.2/24")},
	})
	if p.Probe.NS == ns {
		t.Errorf("probe side uses the caller's descriptor %d, want a duplicate", ns)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	err := netns.Do(ns, func() error {
		_, err := netlink.LinkByName("vt-probe")
		return err
	})
	if err != nil {
		t.Errorf("after Close, vt-probe in the caller's namespace: %v", err)
	}
}
