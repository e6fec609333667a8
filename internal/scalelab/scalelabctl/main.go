// Command scalelabctl runs the scale lab for scripts (scripts/bench-sweep.sh)
// and scores sweep results against its plan.
//
//	scalelabctl up PREFIX [serve]
//	    builds the lab (serve: its open ports answered by an application,
//	    see scalelab.Plan.Serve), prints "PROBE_NS TARGET_NS GATEWAY_MAC PROBE_IF
//	    PROBE_ADDR" on one line, and removes the lab when standard input
//	    closes or on SIGINT/SIGTERM.
//	scalelabctl check PREFIX TARGET PORTS FORMAT FILE
//	    scores FILE, the results of a sweep of TARGET (a prefix inside
//	    the lab's PREFIX) x PORTS in FORMAT
//	    (synprobe: sweep's JSON lines; masscan: masscan -oL with --show
//	    closed), and prints "correct total percent". masscan reports only
//	    open and closed ports: an expected filtered or silent probe that it
//	    does not report counts as correct.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"synprobe/internal/exclude"
	"synprobe/internal/scalelab"
	"synprobe/internal/sweep"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "scalelabctl:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 {
		return fmt.Errorf("usage: scalelabctl up PREFIX [serve] | check PREFIX TARGET PORTS FORMAT FILE")
	}
	prefix, err := exclude.ParsePrefix(args[1])
	if err != nil {
		return err
	}
	plan, err := scalelab.NewPlan(prefix, scalelab.DefaultOpenPorts())
	if err != nil {
		return err
	}
	switch {
	case args[0] == "up" && len(args) == 2:
		return up(plan)
	case args[0] == "up" && len(args) == 3 && args[2] == "serve":
		plan.Serve = true
		return up(plan)
	case args[0] == "check" && len(args) == 6:
		target, err := exclude.ParsePrefix(args[2])
		if err != nil {
			return err
		}
		ports, err := sweep.ParsePorts(args[3])
		if err != nil {
			return err
		}
		return check(plan, target, ports, args[4], args[5])
	}
	return fmt.Errorf("usage: scalelabctl up PREFIX [serve] | check PREFIX TARGET PORTS FORMAT FILE")
}

func up(plan scalelab.Plan) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	lab, err := scalelab.Start(ctx, plan)
	cancel()
	if err != nil {
		return err
	}
	defer lab.Close()
	fmt.Printf("%s %s %s %s %s\n", lab.ProbeNS, lab.TargetNS, lab.GatewayMAC, scalelab.ProbeIf, scalelab.ProbeAddr)
	os.Stdout.Sync()
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-done:
	case <-sig:
	}
	return lab.Close()
}

type seen struct {
	state string
	code  int
}

func check(plan scalelab.Plan, target netip.Prefix, ports []uint16, format, file string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	got := map[netip.AddrPort]seen{}
	dups := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var k netip.AddrPort
		var s seen
		switch format {
		case "synprobe":
			var r sweep.Result
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				return fmt.Errorf("%s: %w", file, err)
			}
			k, s = netip.AddrPortFrom(r.Addr, r.Port), seen{string(r.State), -1}
			if r.ICMPCode != nil {
				s.code = int(*r.ICMPCode)
			}
		case "masscan":
			// open tcp 80 10.200.0.1 1700000000
			fs := strings.Fields(line)
			if len(fs) < 4 {
				continue
			}
			p, _ := strconv.ParseUint(fs[2], 10, 16)
			a, err := netip.ParseAddr(fs[3])
			if err != nil {
				continue
			}
			k, s = netip.AddrPortFrom(a, uint16(p)), seen{fs[0], -1}
		default:
			return fmt.Errorf("format %q: want synprobe or masscan", format)
		}
		if _, ok := got[k]; ok {
			dups++
			if format == "synprobe" {
				s.state = "duplicate"
			} else if got[k].state != s.state {
				s.state = "conflicting"
			}
		}
		got[k] = s
	}
	if err := sc.Err(); err != nil {
		return err
	}
	var total, correct uint64
	a := target.Addr()
	n := exclude.Size(target)
	for i := uint64(0); i < n; i++ {
		for _, p := range ports {
			total++
			e := plan.Expect(a, p)
			s, ok := got[netip.AddrPortFrom(a, p)]
			switch {
			case format == "masscan" && !ok:
				if e.State == "filtered" || e.State == "silent" {
					correct++
				}
			case !ok:
			case s.state == e.State && (e.State != "filtered" || s.code == int(e.ICMPCode)):
				correct++
			}
		}
		a = a.Next()
	}
	fmt.Printf("%d %d %.2f\n", correct, total, 100*float64(correct)/float64(total))
	return nil
}
