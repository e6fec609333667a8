package fingerprint

import (
	"bufio"
	"context"
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/internal/netns"
	"synprobe/probe"
)

// sysctl reads or (with value) writes a sysctl of the lab's target
// namespace. /proc/sys/net belongs to the namespace of the thread that
// opens it.
func sysctl(t *testing.T, tg *lab.Target, name, value string) string {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
	var got []byte
	err := netns.Do(tg.TargetNetNS(), func() (err error) {
		if value != "" {
			return os.WriteFile(path, []byte(value+"\n"), 0)
		}
		got, err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatalf("sysctl %s in the target namespace: %v", name, err)
	}
	return strings.TrimSpace(string(got))
}

// labWScale is the window scale Linux offers for the namespace's buffer
// limits (tcp_select_initial_window): ilog2 of the larger of tcp_rmem's
// maximum and net.core.rmem_max, less 15, within 0..14.
func labWScale(t *testing.T, tg *lab.Target) int {
	rmem := strings.Fields(sysctl(t, tg, "net.ipv4.tcp_rmem", ""))
	space, err := strconv.ParseUint(rmem[2], 10, 64)
	if err != nil {
		t.Fatalf("tcp_rmem %q: %v", rmem, err)
	}
	if b, err := os.ReadFile("/proc/sys/net/core/rmem_max"); err == nil {
		if v, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			space = max(space, v)
		}
	}
	return min(max(bits.Len64(space)-1-15, 0), probe.MaxWScale)
}

// probeConnections lists the target's sockets (other than listeners) with
// the probe side's address, from /proc/net/tcp and tcp6 of the target
// namespace (thread-self: /proc/net follows the process's first thread).
func probeConnections(t *testing.T, tg *lab.Target) []string {
	t.Helper()
	probe4 := fmt.Sprintf("%08X", bitsReverse(lab.ProbeAddr4))
	var out []string
	err := netns.Do(tg.TargetNetNS(), func() error {
		for _, file := range []string{"tcp", "tcp6"} {
			f, err := os.Open("/proc/thread-self/net/" + file)
			if err != nil {
				return err
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				if len(fields) < 4 || fields[3] == "0A" { // LISTEN
					continue
				}
				if strings.HasPrefix(fields[2], probe4+":") || strings.Contains(strings.ToUpper(fields[2]), "B80D0120") {
					out = append(out, file+" "+sc.Text())
				}
			}
			f.Close()
		}
		return nil
	})
	if err != nil {
		t.Fatalf("read the target's sockets: %v", err)
	}
	return out
}

// bitsReverse is an IPv4 address as /proc/net/tcp writes it (host order
// on a little-endian machine).
func bitsReverse(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[3])<<24 | uint32(b[2])<<16 | uint32(b[1])<<8 | uint32(b[0])
}

// requireNoState waits up to a second for the target to drop every
// connection from the probe side: Measure resets all of them.
func requireNoState(t *testing.T, tg *lab.Target) {
	t.Helper()
	deadline := time.Now().Add(time.Second)
	for {
		left := probeConnections(t, tg)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("the target kept state of probe connections:\n%s", strings.Join(left, "\n"))
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestLinux asserts what the Linux 6.18 kernel really does in the lab, with
// its default sysctls: initial TTL 64, DF on everything, IP ID 0 on
// SYN-ACKs and RSTs (DF set, no socket) and a per-connection counter on
// an established connection; window 65535 (the lab's packetdrill-sized
// receive buffer lets the initial window reach the 16-bit limit); the
// window scale its buffer limits give;
// ECN (tcp_ecn=2 answers ECN when asked); a 1 kHz timestamp clock with a
// random offset per 4-tuple (one 4-tuple keeps its clock; others do not);
// SYN-ACK retransmissions at 1 s and 3 s with the current TSval; challenge
// ACKs at most one per 500 ms per connection (tcp_invalid_ratelimit).
func TestLinux(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		t.Run(fmt.Sprintf("ipv6=%v", v6), func(t *testing.T) {
			tg := labtest.Start(t, lab.StackLinux, nil)
			c := check{t}
			c.eq("net.ipv4.tcp_ecn", sysctl(t, tg, "net.ipv4.tcp_ecn", ""), "2")
			target, closed := tg.Open, tg.Closed
			if v6 {
				target, closed = tg.Open6, tg.Closed6
			}
			fp := measure(t, tg, target, Config{ClosedPort: closed.Port()}, probe.DialConfig{})
			checkCommon(t, fp, v6)
			window, win := 65535, "FFFF"
			c.intp("window", fp.SYNACK.Window, window)
			c.intp("window scale", fp.SYNACK.WScale, labWScale(t, tg))
			c.eq("nmap win", fp.Nmap.WIN, strings.NewReplacer("X", win).Replace("W1=X%W2=X%W3=X%W4=X%W5=X%W6=X"))
			c.boolp("ecn", fp.ECN.Supported, true)
			c.boolp("per-4-tuple timestamp offsets", fp.Timestamps.PerTupleOffsets, true)
			c.boolp("retransmission repeats the tsval", fp.Timestamps.RetransSameTSval, false)
			c.contains("timestamp rate from", fp.Timestamps.RateFrom, "retransmission")
			if fp.Timestamps.UptimeS != nil {
				t.Errorf("implied uptime: got %v s, want none (random offset per 4-tuple)", *fp.Timestamps.UptimeS)
			}
			if !v6 {
				c.boolp("df on syn-ack", fp.DF.SYNACK, true)
				c.boolp("df on rst", fp.DF.RST, true)
				c.eq("ip id of syn-acks", fp.IPID.SYNACK.Behaviour, IPIDZero)
				c.eq("ip id of rsts", fp.IPID.RST.Behaviour, IPIDZero)
				s := fp.IPID.Connection
				c.eq("ip id in a connection", fmt.Sprint(s.Behaviour, s.StepMin, s.StepMax), fmt.Sprint(IPIDIncrementing, 1, 1))
			}
			requireNoState(t, tg)
		})
	}
}

// TestLinuxSYNCookies: with net.ipv4.tcp_syncookies=2 Linux answers every
// SYN from a cookie. The measurement sees all three signs: no
// retransmission, an ISN that repeats on one 4-tuple, and the MSS class
// in the ISN (1460 is class 3, 536 class 0: the ISN moves by -3).
func TestLinuxSYNCookies(t *testing.T) {
	tg := labtest.Start(t, lab.StackLinux, nil)
	sysctl(t, tg, "net.ipv4.tcp_syncookies", "2")
	fp := measure(t, tg, tg.Open, Config{ClosedPort: tg.Closed.Port()}, probe.DialConfig{})
	c := check{t}
	c.boolp("syn cookies", fp.SYNCookies.InUse, true)
	ev := strings.Join(fp.SYNCookies.Evidence, "; ")
	c.contains("evidence", ev, "no SYN-ACK retransmission")
	c.contains("evidence", ev, "the ISN repeated on one 4-tuple")
	c.contains("evidence", ev, "moved the ISN by -3")
	c.eq("retransmissions", len(fp.Retransmission.AtMS), 0)
	// A cookie's ISN holds still within a minute and jumps when the
	// minute counter in it ticks over (one run in 25 or so sees that): 0 Hz
	// or no steady rate, never a clock.
	if r := fp.ISN.OneTuple.RateHz; r != nil && *r != 0 {
		t.Errorf("isn rate on one 4-tuple: got %v Hz, want 0 or none", *r)
	}
	c.boolp("alive after the rst train (a cookie connection)", fp.ChallengeACK.AliveAfter, true)
	requireNoState(t, tg)
}

// TestLinuxFastOpenWithoutECN: a listener with TCP_FASTOPEN under
// net.ipv4.tcp_fastopen=3 hands out an 8-byte cookie to a cookie request;
// with net.ipv4.tcp_ecn=0 the SYN-ACK to an ECN setup SYN has no ECE.
func TestLinuxFastOpenWithoutECN(t *testing.T) {
	tg := labtest.Start(t, lab.StackLinux, nil)
	sysctl(t, tg, "net.ipv4.tcp_ecn", "0")
	sysctl(t, tg, "net.ipv4.tcp_fastopen", "3")
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_FASTOPEN, 16) })
		if err != nil {
			return err
		}
		return serr
	}}
	target := netip.AddrPortFrom(lab.TargetAddr4, 8080)
	var l net.Listener
	err := netns.Do(tg.TargetNetNS(), func() (err error) {
		l, err = lc.Listen(context.Background(), "tcp4", target.String())
		return err
	})
	if err != nil {
		t.Fatalf("listen with TCP_FASTOPEN in the target namespace: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	fp := measure(t, tg, target, Config{ClosedPort: tg.Closed.Port()}, probe.DialConfig{})
	c := check{t}
	c.boolp("fast open", fp.FastOpen.Supported, true)
	c.contains("fast open detail", fp.FastOpen.Detail, "a cookie of 8 bytes in a Fast Open option (kind 34)")
	// Linux 6.18 sends a SYN-ACK with a Fast Open cookie without the
	// timestamps option, whatever the order of the SYN's options and
	// though 12 bytes of option space are left.
	c.contains("fast open detail", fp.FastOpen.Detail, "left out the timestamps option")
	c.boolp("ecn", fp.ECN.Supported, false)
	c.boolp("sack", fp.SACK.Supported, true)
	requireNoState(t, tg)
}

// TestLinuxWithoutGuard: without the RST guard the probing host's kernel
// resets every half-open probe connection, so the target stops
// retransmitting and the challenge connection dies. The fingerprint blames
// the local host and infers nothing (in particular, no SYN cookies).
func TestLinuxWithoutGuard(t *testing.T) {
	tg := labtest.Start(t, lab.StackLinux, nil)
	fp := measure(t, tg, tg.Open, Config{ClosedPort: tg.Closed.Port()}, probe.DialConfig{NoGuard: true})
	c := check{t}
	c.contains("retransmission why", fp.Retransmission.Why, "disturbed by the local host")
	c.contains("syn cookies why", fp.SYNCookies.Why, "disturbed by the local host")
	c.contains("challenge ack why", fp.ChallengeACK.Why, "disturbed by the local host")
	if fp.SYNCookies.InUse != nil || fp.Retransmission.AtMS != nil || fp.ChallengeACK.Summary != "" {
		t.Errorf("inferred from a disturbed run: cookies %v, retransmissions %v, challenge %q", fp.SYNCookies.InUse, fp.Retransmission.AtMS, fp.ChallengeACK.Summary)
	}
	c.contains("notes", strings.Join(fp.Notes, "; "), "disturbed by the local host")
	// What the SYN-ACK itself says is still the target's.
	c.intp("window", fp.SYNACK.Window, 65535)
}
