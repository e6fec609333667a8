package scenarios

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"synprobe/conformance/report"
	"synprobe/internal/labtest"
	"synprobe/internal/serverlab"
	"synprobe/probe"
)

// TestFloodDrops: under a local flood that makes synprobe's socket drop
// frames, each result keeps the verdict it has without the flood, or is
// error with the drop count: a frame lost on this host is never read as
// the target's silence or fault.
func TestFloodDrops(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: two audits of a real server")
	}
	b := serverlab.New(t, serverlab.Config{Apps: []string{"nginx"}})
	target := netip.AddrPortFrom(serverlab.Target4, b.Port("nginx"))
	auditWith := func(recvBuffer int) (*report.Report, probe.ProberStats) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		p := labtest.DialBed(t, b, target.Addr(), probe.DialConfig{RecvBuffer: recvBuffer})
		defer p.Close()
		rep, err := Audit(ctx, p, AuditConfig{RunConfig: RunConfig{Target: target, ClosedPort: serverlab.ClosedPort, Request: []byte("GET /big HTTP/1.0\r\n\r\n")}})
		if err != nil {
			t.Fatal(err)
		}
		return rep, p.Stats()
	}
	calm, _ := auditWith(0)

	// The flood: RSTs from the target host to synprobe's source ports (the
	// probe side's kernel ignores them, the flow filter passes them), in
	// bursts, so that some checks run between them.
	stop := make(chan struct{})
	var sent atomic.Uint64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		flood(t, b, stop, &sent)
	}()
	flooded, stats := auditWith(64 << 10)
	close(stop)
	wg.Wait()
	if stats.Drops == 0 {
		t.Fatalf("the flood (%d frames) made the socket drop nothing: the test proves nothing", sent.Load())
	}
	t.Logf("flood: %d frames sent, %d dropped by synprobe's socket", sent.Load(), stats.Drops)
	want := map[string]report.Verdict{}
	for _, r := range calm.Results {
		want[r.Name] = r.Verdict
	}
	kept, erred := 0, 0
	for _, r := range flooded.Results {
		switch {
		case r.Verdict == want[r.Name]:
			kept++
		case r.Verdict == report.Error && r.Cause == report.CauseLocalDrops && strings.Contains(r.Reason, "dropped"):
			erred++
		default:
			t.Errorf("%s: %s [%s] under the flood (%s), %s without: neither the same verdict nor error with the drop count", r.Name, r.Verdict, r.Cause, r.Reason, want[r.Name])
		}
	}
	t.Logf("under the flood: %d results kept their verdict, %d became error with the drop count", kept, erred)
}

// flood sends RST segments from the target's address to the probe's, at
// every port of synprobe's range, from the target namespace's veth, in
// bursts of 50 ms every 300 ms, until stop.
func flood(t *testing.T, b *serverlab.Bed, stop <-chan struct{}, sent *atomic.Uint64) {
	var conn *packet.Conn
	var srcHW, dst net.HardwareAddr
	err := b.InTarget(func() error {
		ifi, err := net.InterfaceByName(b.TargetIf)
		if err != nil {
			return err
		}
		srcHW = ifi.HardwareAddr
		conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err == nil {
		err = b.InProbe(func() error {
			ifi, err := net.InterfaceByName(b.ProbeIf)
			if err == nil {
				dst = ifi.HardwareAddr
			}
			return err
		})
	}
	if err != nil {
		t.Errorf("flood: %v", err)
		return
	}
	defer conn.Close()
	src, _ := probe.MACFrom(srcHW)
	dstMAC, _ := probe.MACFrom(dst)
	frames := make([][]byte, 0, 512)
	for port := uint16(61000); len(frames) < cap(frames); port++ {
		f := probe.Frame{
			Ethernet: probe.Ethernet{Src: src, Dst: dstMAC},
			IP:       probe.IP{Src: serverlab.Target4, Dst: serverlab.Probe4, Protocol: probe.ProtocolTCP, TTL: 64},
			TCP:      probe.TCP{SrcPort: 1, DstPort: port, Seq: 1, Flags: probe.RST},
		}
		data, err := f.Encode()
		if err != nil {
			t.Errorf("flood: %v", err)
			return
		}
		frames = append(frames, data)
	}
	addr := &packet.Addr{HardwareAddr: dst}
	for {
		burst := time.Now().Add(50 * time.Millisecond)
		for i := 0; time.Now().Before(burst); i++ {
			if _, err := conn.WriteTo(frames[i%len(frames)], addr); err == nil {
				sent.Add(1)
			}
		}
		select {
		case <-stop:
			return
		case <-time.After(250 * time.Millisecond):
		}
	}
}
