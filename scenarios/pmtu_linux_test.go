package scenarios

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/internal/netns"
	"synprobe/probe"
)

// pmtuScripts are, for one family, a script that teaches the target a path
// MTU (it answers by cutting its data again, which the script checks) and
// one that wants a full segment of data, as it gets on a fresh path. The
// second waits half a second before it asks, so that, run beside the first
// as before, it would see the MTU the first taught.
func pmtuScripts(t *testing.T, v6 bool) (lowers, data Scenario) {
	t.Helper()
	mss, icmp, mtu, cut := 1460, "unreachable frag_needed", 1200, 1160
	if v6 {
		mss, icmp, mtu, cut = 1440, "packet_too_big", 1280, 1220
	}
	open := fmt.Sprintf(`0    < S 0:0(0) win 65535 <mss 1460>
+0   > S. 0:0(0) ack 1 <mss %d>
+0   < . 1:1(0) ack 1 win 65535
`, mss)
	ask := `+0   < P. 1:23(22) ack 1 win 65535 "GET /1300 HTTP/1.0\r\n\r\n"
+0   > . 1:1(0) ack 23
+0   > P. 1:1342(1341) ack 23
`
	parse := func(name, src string) Scenario {
		s, err := script.Parse(name+".pkt", []byte("// @name "+name+"\n"+src))
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		return FromScript(s)
	}
	lowers = parse("pmtu-lowers", open+ask+fmt.Sprintf(`+0   < icmp %s mtu %d [1:1342(1341)]
+0   > . 1:%d(%d) ack 23
`, icmp, mtu, cut+1, cut))
	data = parse("pmtu-data", open+"+.5 "+strings.TrimPrefix(ask, "+0  "))
	return lowers, data
}

// learnedMTU is the path MTU the target keeps towards addr (a route
// exception), 0 when it keeps none.
func learnedMTU(t *testing.T, tg *lab.Target, addr netip.Addr) int {
	t.Helper()
	var mtu int
	err := netns.Do(tg.TargetNetNS(), func() error {
		h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer h.Close()
		routes, err := h.RouteGet(addr.AsSlice())
		if err != nil || len(routes) == 0 {
			return fmt.Errorf("route to %v: %v", addr, err)
		}
		mtu = routes[0].MTU
		return nil
	})
	if err != nil {
		t.Fatalf("target's route: %v", err)
	}
	return mtu
}

// TestPathMTUScriptChangesNoOtherVerdict: a directory run with a script
// that lowers the target's path MTU and a data script gives the data script
// the verdict it has alone. The lab makes the target forget the MTU after
// the script; a remote target keeps it, and the report says for how long.
func TestPathMTUScriptChangesNoOtherVerdict(t *testing.T) {
	if ok, why := lab.LinuxAvailable(); !ok {
		t.Skip("linux lab unavailable: " + why)
	}
	for _, v6 := range []bool{false, true} {
		t.Run(map[bool]string{false: "IPv4", true: "IPv6"}[v6], func(t *testing.T) {
			lowers, data := pmtuScripts(t, v6)
			tg := labtest.Start(t, lab.StackLinux, nil)
			target, source := tg.Open, lab.ProbeAddr4
			if v6 {
				target, source = tg.Open6, lab.ProbeAddr6
			}
			p := labtest.Dial(t, tg, target.Addr(), probe.DialConfig{})
			run := func(flush bool, items ...Scenario) *report.Report {
				cfg := RunConfig{Target: target, Rate: 100}
				if flush {
					cfg.AfterPathMTU = func(context.Context) error { return tg.FlushPathMTU() }
				}
				return Run(context.Background(), p, cfg, items)
			}

			alone := verdicts(run(true, data))["pmtu-data"]
			if alone != report.Pass {
				t.Fatalf("data script alone: %s, want pass", alone)
			}

			// The lab: the target forgets what the script taught it.
			rep := run(true, lowers, data)
			if got := verdicts(rep); got["pmtu-lowers"] != report.Pass || got["pmtu-data"] != alone {
				t.Errorf("lab run: verdicts %v, want the MTU script to pass (the target cut its data) and the data script %s as alone", got, alone)
			}
			if mtu := learnedMTU(t, tg, source); mtu != 0 {
				t.Errorf("after the lab run the target keeps a path MTU of %d towards %v, want none", mtu, source)
			}

			// A remote target: the script runs last, and the report
			// names what the target keeps, which it does keep.
			rep = run(false, lowers, data)
			if got := verdicts(rep); got["pmtu-lowers"] != report.Pass || got["pmtu-data"] != alone {
				t.Errorf("remote-style run: verdicts %v, want both %s", got, alone)
			}
			var mtu int
			if v6 {
				mtu = 1280
			} else {
				mtu = 1200
			}
			note := strings.Join(rep.Notes, "\n")
			if want := fmt.Sprintf("with MTU %d: the target may keep that path MTU towards %v for its mtu_expires (600 s on Linux)", mtu, source); !strings.Contains(note, want) {
				t.Errorf("notes lack %q:\n%s", want, note)
			}
			if got := learnedMTU(t, tg, source); got != mtu {
				t.Errorf("after the remote-style run the target keeps a path MTU of %d, want %d (what the note says)", got, mtu)
			}
			if err := tg.FlushPathMTU(); err != nil {
				t.Fatalf("FlushPathMTU: %v", err)
			}
			if got := learnedMTU(t, tg, source); got != 0 {
				t.Errorf("after FlushPathMTU the target keeps a path MTU of %d, want none", got)
			}
		})
	}
}
