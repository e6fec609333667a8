//go:build linux

package sweep

import (
	"context"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
)

// dummyTx opens the sweep's send socket on a veth whose peer has no
// address and a MAC address the frames are not for (so that its kernel
// drops them on arrival, as for another host; the dummy driver is not in
// every kernel), in a namespace of its own: what it measures is the
// sending host's cost with the least a receiver can cost, the raw TX
// ceiling.
func dummyTx(b *testing.B) int {
	b.Helper()
	if os.Geteuid() != 0 {
		b.Skip("needs root: a namespace with a dummy interface, AF_PACKET")
	}
	ns, err := netns.New()
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { netns.Close(ns) })
	var fd int
	err = netns.Do(ns, func() error {
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "d0"}, PeerName: "d1"}); err != nil {
			return err
		}
		l, err := netlink.LinkByName("d0")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(l); err != nil {
			return err
		}
		peer, err := netlink.LinkByName("d1")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetUp(peer); err != nil {
			return err
		}
		fd, err = openTx(l.Attrs().Index)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return fd
}

// BenchmarkTxCeiling compares the sweep's send loop (next probe, SipHash
// ISN, patched frame, sendmmsg of 64) with sendmmsg of one unchanging
// frame, and with one write(2) per frame, on a dummy interface.
func BenchmarkTxCeiling(b *testing.B) {
	tmpl := newTemplate(testMAC, testMAC, testSrc, testSport, 1)
	b.Run("write-per-frame", func(b *testing.B) {
		fd := dummyTx(b)
		for b.Loop() {
			if _, err := unix.Write(fd, tmpl.frame[:]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	})
	b.Run("sendmmsg-fixed-frame", func(b *testing.B) {
		fd := dummyTx(b)
		var iov [batchMax]unix.Iovec
		var msgs [batchMax]unix.Mmsghdr
		for k := range batchMax {
			iov[k].Base = &tmpl.frame[0]
			iov[k].SetLen(frameLen)
			msgs[k].Hdr.Iov = &iov[k]
			msgs[k].Hdr.SetIovlen(1)
		}
		s := &sweeper{txfd: fd}
		n := 0
		for b.Loop() {
			if err := s.sendmmsg(msgs[:]); err != nil {
				b.Fatal(err)
			}
			n += batchMax
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "frames/s")
	})
	b.Run("sweep-send", func(b *testing.B) {
		fd := dummyTx(b)
		sp, err := newSpace([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, []uint16{80})
		if err != nil {
			b.Fatal(err)
		}
		s := &sweeper{
			cfg:  Config{Rate: 1 << 30},
			sp:   sp,
			tmpl: tmpl,
			cls:  &classifier{key: testKey, src: testSrc, sport: testSport, space: sp},
			txfd: fd,
		}
		const perPass = 1 << 16
		n := 0
		for b.Loop() {
			perm := newPermutation(sp.total(), uint64(n))
			perm.left = perPass // one slice of the /8 per iteration
			if err := s.send(context.Background(), perm, false); err != nil {
				b.Fatal(err)
			}
			n += int(s.sent.Swap(0))
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "frames/s")
	})
}
