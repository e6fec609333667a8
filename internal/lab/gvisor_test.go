package lab

import (
	"context"
	"errors"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"synprobe/probe"
)

// TestGVisorLab talks to the gVisor lab the way synprobe does, with raw
// frames on its MemoryLink: handshake, a request, the close, and a SYN to
// the closed port, over IPv4 and IPv6. After Close no goroutine is left.
func TestGVisorLab(t *testing.T) {
	before := runtime.NumGoroutine()
	target, err := Start(context.Background(), StackGVisor)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer target.Close()
	if target.Stack != StackGVisor {
		t.Errorf("Stack: got %q, want %q", target.Stack, StackGVisor)
	}
	link := target.Probe.Link
	if link == nil || target.Probe.NetNS != 0 || target.Probe.Interface != "" {
		t.Fatalf("ProbeSide: got %+v, want only Link and paths", target.Probe)
	}
	if got := link.HardwareAddr(); got != ProbeMAC {
		t.Errorf("link MAC: got %s, want %s", got, ProbeMAC)
	}
	frames := readFrames(link)

	tests := []struct {
		name         string
		path         probe.Path
		open, closed netip.AddrPort
		source       netip.Addr
	}{
		{"IPv4", target.Probe.Path4, target.Open, target.Closed, ProbeAddr4},
		{"IPv6", target.Probe.Path6, target.Open6, target.Closed6, ProbeAddr6},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path.Source != tt.source || tt.path.LocalMAC != ProbeMAC || tt.path.NextHopMAC != TargetMAC || tt.path.MTU != MTU {
				t.Fatalf("path: got %+v, want source %s, MACs %s -> %s, MTU %d", tt.path, tt.source, ProbeMAC, TargetMAC, MTU)
			}
			port := uint16(40000 + 10*i)

			// The ISN sits just below 2^32, so the exchange wraps.
			c := newWireClient(t, link, frames, tt.path, tt.open, port, 0xfffffff0)
			c.handshake()
			if body := c.request(10); string(body) != "abcdefghij" {
				t.Errorf("body of GET /10: got %q, want %q", body, "abcdefghij")
			}
			// Several segments: more than one MSS.
			if body := c.request(4000); len(body) != 4000 || !strings.HasPrefix(string(body), "abcdefghijklmnopqrstuvwxyzabc") {
				t.Errorf("body of GET /4000: got %d bytes starting %.10q, want 4000 starting \"abcdefghij\"", len(body), body)
			}
			c.closeActive()

			// No request at all: the application reads to EOF and closes.
			c = newWireClient(t, link, frames, tt.path, tt.open, port+1, 1000)
			c.handshake()
			c.closeActive()

			c = newWireClient(t, link, frames, tt.path, tt.closed, port+2, 2000)
			c.refused()
		})
	}

	if err := target.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := target.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := link.ReadFrame(); !errors.Is(err, probe.ErrLinkClosed) {
		t.Errorf("ReadFrame after Close: got %v, want %v", err, probe.ErrLinkClosed)
	}
	if err := link.WriteFrame(make([]byte, 60)); !errors.Is(err, probe.ErrLinkClosed) {
		t.Errorf("WriteFrame after Close: got %v, want %v", err, probe.ErrLinkClosed)
	}
	waitGoroutines(t, before)
}

// waitGoroutines waits for the number of goroutines to settle back to n:
// goroutines that are ending may take a moment to be gone.
func waitGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(replyWait)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines after Close: got %d, want at most %d as before Start\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestGVisorLabStartStop starts and closes labs back to back, in parallel:
// each stack is independent and none leaves a goroutine behind.
func TestGVisorLabStartStop(t *testing.T) {
	before := runtime.NumGoroutine()
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() {
			target, err := Start(context.Background(), StackGVisor)
			if err != nil {
				errs <- err
				return
			}
			errs <- target.Close()
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("Start/Close: %v", err)
		}
	}
	waitGoroutines(t, before)
}

func TestStartUnknownStack(t *testing.T) {
	if _, err := Start(context.Background(), "bsd"); err == nil || !strings.Contains(err.Error(), `"bsd"`) {
		t.Errorf("Start(\"bsd\"): got error %v, want one naming the stack", err)
	}
	if _, err := ParseStack("bsd"); err == nil {
		t.Errorf("ParseStack(\"bsd\"): got no error, want one")
	}
	for _, s := range []Stack{StackAuto, StackLinux, StackGVisor} {
		if got, err := ParseStack(string(s)); err != nil || got != s {
			t.Errorf("ParseStack(%q) = %q, %v; want %q, nil", s, got, err, s)
		}
	}
}
