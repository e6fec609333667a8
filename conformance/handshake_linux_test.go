package conformance

import (
	"strings"
	"sync"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

// targetCapture records the TCP frames that reach the Linux lab's open
// port, seen from inside the target's namespace.
type targetCapture struct {
	link   *probe.PacketLink
	mu     sync.Mutex
	frames []probe.Frame
	done   chan struct{}
}

func captureAtTarget(t *testing.T, tg *lab.Target) *targetCapture {
	t.Helper()
	l, err := probe.OpenPacketLink(probe.PacketLinkConfig{
		NetNS:     tg.TargetNetNS(),
		Interface: lab.TargetInterface,
		Filter:    probe.FlowFilter{Remote: lab.ProbeAddr4, LocalPorts: probe.PortRange{Lo: lab.OpenPort, Hi: lab.OpenPort}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := &targetCapture{link: l, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			fr, err := l.ReadFrame()
			if err != nil {
				return
			}
			var f probe.Frame
			if f.Decode(fr.Data) == nil && !fr.Outgoing {
				c.mu.Lock()
				c.frames = append(c.frames, f)
				c.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { l.Close(); <-c.done })
	return c
}

// arrived returns the frames from the probe host to the target port so far
// (after a short settle).
func (c *targetCapture) arrived() []probe.Frame {
	time.Sleep(100 * time.Millisecond)
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]probe.Frame(nil), c.frames...)
}

func rsts(frames []probe.Frame) []probe.Frame {
	var out []probe.Frame
	for _, f := range frames {
		if f.TCP.Flags&probe.RST != 0 {
			out = append(out, f)
		}
	}
	return out
}

// TestNoRSTReachesTarget: with the RST guard, nothing but synprobe's own
// segments reaches the target: no RST from the probing host's kernel.
func TestNoRSTReachesTarget(t *testing.T) {
	tg := labtest.Start(t, lab.StackLinux, nil)
	seen := captureAtTarget(t, tg)
	p := labtest.Dial(t, tg, tg.Open.Addr(), probe.DialConfig{})
	res := runHandshake(t, p, tg.Open.String(), 2*time.Second)
	checkSteps(t, res, allPass, nil)
	frames := seen.arrived()
	if len(frames) < 4 {
		t.Fatalf("the target saw %d frames from the probe, want at least SYN, ACK, FIN, ACK: the capture is not working", len(frames))
	}
	if r := rsts(frames); len(r) > 0 {
		t.Errorf("a RST from the probing host reached the target: %v", &r[0])
	}
}

// TestWithoutGuardTheLocalKernelIsBlamed: without the guard the probing
// host's kernel resets the connection; the capture at the target shows it,
// and the result says the local host disturbed the run (error), never
// that the target failed.
func TestWithoutGuardTheLocalKernelIsBlamed(t *testing.T) {
	tg := labtest.Start(t, lab.StackLinux, nil)
	seen := captureAtTarget(t, tg)
	p := labtest.Dial(t, tg, tg.Open.Addr(), probe.DialConfig{NoGuard: true})
	res := runHandshake(t, p, tg.Open.String(), 500*time.Millisecond)
	if r := rsts(seen.arrived()); len(r) == 0 {
		t.Fatal("no RST from the probing host reached the target without the guard: this test proves nothing")
	}
	if res.Verdict != report.Error || !strings.Contains(res.Reason, "disturbed by the local host") {
		t.Errorf("got %s %q, want error: disturbed by the local host\n%s", res.Verdict, res.Reason, dump(res))
	}
}
