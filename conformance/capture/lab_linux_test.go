package capture

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/sys/unix"

	"synprobe/conformance/report"
	"synprobe/internal/netns"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
	"synprobe/probe"
	"synprobe/probe/pcap"
)

// capLab is two fresh network namespaces joined by a veth pair, and an
// AF_PACKET capture of everything on the client's end:
//
//	client ca0 10.77.0.1/24  <->  server ca1 10.77.0.2/24
type capLab struct {
	client, server int
	mu             sync.Mutex
	frames         [][]byte
	times          []time.Time
	conn           *packet.Conn
	done           chan struct{}
}

func newCapLab(t *testing.T) *capLab {
	t.Helper()
	pair := vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: "ca0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.1/24")}},
		Target: veth.End{Name: "ca1", Addrs: []netip.Prefix{netip.MustParsePrefix("10.77.0.2/24")}},
	})
	lab := &capLab{client: pair.Probe.NS, server: pair.Target.NS, done: make(chan struct{})}
	err := netns.Do(lab.client, func() error {
		ifi, err := net.InterfaceByName("ca0")
		if err != nil {
			return err
		}
		lab.conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ALL, nil)
		return err
	})
	if err != nil {
		t.Fatalf("open packet socket on ca0: %v", err)
	}
	go lab.capture()
	t.Cleanup(func() {
		lab.conn.Close()
		<-lab.done
	})
	return lab
}

// capture records every frame on ca0, both directions, until the socket
// is closed.
func (lab *capLab) capture() {
	defer close(lab.done)
	buf := make([]byte, 65536)
	for {
		n, _, err := lab.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		lab.mu.Lock()
		lab.frames = append(lab.frames, bytes.Clone(buf[:n]))
		lab.times = append(lab.times, time.Now())
		lab.mu.Unlock()
	}
}

// pcap writes what was captured so far.
func (lab *capLab) pcap(t *testing.T) []byte {
	t.Helper()
	lab.mu.Lock()
	defer lab.mu.Unlock()
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf, pcap.LinkTypeEthernet)
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range lab.frames {
		if err := w.WritePacket(lab.times[i], f); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestLabCapture judges real Linux connections captured on a veth pair: a
// request and response closed by the client, and a SYN to a closed port.
// The kernel's own segments must pass; on veth they carry the partial
// checksums of checksum offload, which must be recognised, not blamed.
func TestLabCapture(t *testing.T) {
	lab := newCapLab(t)
	var ln net.Listener
	if err := netns.Do(lab.server, func() (err error) { ln, err = net.Listen("tcp4", "10.77.0.2:8080"); return err }); err != nil {
		t.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		req := make([]byte, 5)
		if _, err := io.ReadFull(c, req); err != nil {
			served <- err
			return
		}
		if _, err := c.Write([]byte("world")); err != nil {
			served <- err
			return
		}
		_, err = io.Copy(io.Discard, c) // until the client's FIN
		served <- err
	}()

	var client net.Conn
	if err := netns.Do(lab.client, func() (err error) { client, err = net.Dial("tcp4", "10.77.0.2:8080"); return err }); err != nil {
		t.Fatalf("dial: %v", err)
	}
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	resp := make([]byte, 5)
	if _, err := io.ReadFull(client, resp); err != nil {
		t.Fatal(err)
	}
	client.(*net.TCPConn).CloseWrite()
	if _, err := io.Copy(io.Discard, client); err != nil { // until the server's FIN
		t.Fatal(err)
	}
	client.Close()
	if err := <-served; err != nil {
		t.Fatalf("server: %v", err)
	}
	var refusedErr error
	if err := netns.Do(lab.client, func() error {
		c, err := net.Dial("tcp4", "10.77.0.2:9")
		if err == nil {
			c.Close()
		}
		refusedErr = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(refusedErr, unix.ECONNREFUSED) {
		t.Fatalf("dial a closed port: %v, want connection refused", refusedErr)
	}

	// The client's last ACK may still be on its way to the capture: wait
	// for the report to show both connections closed.
	var rep *report.Report
	for deadline := time.Now().Add(10 * time.Second); ; {
		rep = mustAnalyze(t, lab.pcap(t), Options{})
		if len(rep.Results) == 2 && !slices.ContainsFunc(rep.Results, func(r report.Result) bool {
			return slices.ContainsFunc(r.Notes, func(n string) bool { return strings.HasPrefix(n, "no close in the capture") })
		}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the capture never showed both connections closed:\n%s", textOf(rep))
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Log("\n" + textOf(rep))
	for _, r := range rep.Results {
		if r.Verdict != report.Pass {
			t.Errorf("%s: verdict %s (%s), want pass", r.Name, r.Verdict, r.Reason)
		}
	}
	served0, refused := rep.Results[0], rep.Results[1]
	if !strings.HasPrefix(served0.Name, "10.77.0.1:") || !strings.HasSuffix(served0.Name, " > 10.77.0.2:8080") {
		t.Errorf("first connection %q, want the client's to 10.77.0.2:8080", served0.Name)
	}
	notes := strings.Join(served0.Notes, "\n")
	for _, want := range []string{"client closed first (active close)", "ISNs: client"} {
		if !strings.Contains(notes, want) {
			t.Errorf("notes %q lack %q", served0.Notes, want)
		}
	}
	if !strings.Contains(strings.Join(refused.Notes, "\n"), "connection refused: server answered the SYN with RST (port closed)") {
		t.Errorf("second connection's notes %q do not say the port was closed", refused.Notes)
	}

	// Every segment whose checksum is wrong must have been recognised as
	// a partial checksum, and said so.
	partial := 0
	r, _ := pcap.NewReader(bytes.NewReader(lab.pcap(t)))
	var rec pcap.Record
	var f probe.Frame
	for r.Next(&rec) == nil {
		if f.Decode(rec.Data) == nil && f.Has(probe.LayerTCP) && f.Checksum == probe.ChecksumInvalid {
			if !partialChecksum(&f) {
				t.Errorf("segment %v has a bad checksum that is not a partial one", &f)
			}
			partial++
		}
	}
	t.Logf("%d segments with partial checksums", partial)
	if partial > 0 && !strings.Contains(notes, "carry a partial checksum") {
		t.Errorf("%d segments had partial checksums, but the notes %q do not say so", partial, served0.Notes)
	}
}
