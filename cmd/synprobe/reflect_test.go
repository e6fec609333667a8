package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"synprobe/internal/netns"
	"synprobe/internal/reflector"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
)

// TestReflectFlags: bad flags are refused with exit 2 and one line, before
// anything is opened.
func TestReflectFlags(t *testing.T) {
	const l = "10.93.0.2:8080"
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"reflect"}, "reflect needs --listen ADDR:PORT"},
		{[]string{"reflect", "--allow", "10.0.0.1"}, "reflect needs --listen"},
		{[]string{"reflect", "--listen", l}, "reflect needs --allow CIDR"},
		{[]string{"reflect", "--listen", "host.example:80", "--allow", "10.0.0.1"}, `--listen "host.example:80": want ADDR:PORT with an IP address`},
		{[]string{"reflect", "--listen", "10.93.0.2", "--allow", "10.0.0.1"}, `--listen "10.93.0.2": want ADDR:PORT`},
		{[]string{"reflect", "--listen", "0.0.0.0:80", "--allow", "10.0.0.1"}, "not a wildcard"},
		{[]string{"reflect", "--listen", "[::]:80", "--allow", "10.0.0.1"}, "not a wildcard"},
		{[]string{"reflect", "--listen", "10.93.0.2:0", "--allow", "10.0.0.1"}, "want a port from 1 to 65535"},
		{[]string{"reflect", "--listen", "10.93.0.2:65535", "--allow", "10.0.0.1"}, "give --report PORT"},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.1", "--report", "8080"}, "--report 8080: the listen port"},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.1", "--report", "70000"}, "--report 70000: want a port from 1 to 65535"},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.1", "--report", "0"}, "--report 0"},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.0/33"}, `--allow "10.0.0.0/33": want a CIDR`},
		{[]string{"reflect", "--listen", l, "--allow", "everyone"}, `--allow "everyone"`},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.1", "--max-records", "0"}, "--max-records 0: want 1 to 1048576"},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.1", "--max-records", "2000000"}, "--max-records 2000000"},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.1", "--expiry", "10ms"}, "--expiry 10ms: want a duration from 1s to 24h"},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.1", "--expiry", "48h"}, "--expiry 48h0m0s"},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.1", "extra"}, `reflect takes no arguments (got "extra")`},
		{[]string{"reflect", "--listen", "10.93.0.2:80\x1b[31m", "--allow", "10.0.0.1"}, `\x1b`},
		{[]string{"reflect", "--listen", l, "--allow", "10.0.0.1", "--netns", "no-such-namespace-here"}, "no such network namespace"},
		{[]string{"reflect", "--bogus"}, "flag provided but not defined: -bogus"},
	} {
		refused(t, tt.args, tt.want)
	}
}

// syncBuffer is a bytes.Buffer that the command and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestReflectRuns runs the command in a namespace until it is
// interrupted: it says what it does, answers an allowed client, and stops
// cleanly (exit 0, sockets closed).
func TestReflectRuns(t *testing.T) {
	cli, srv := netip.MustParseAddr("10.93.0.1"), netip.MustParseAddr("10.93.0.2")
	p := vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: "rc-cli", Addrs: []netip.Prefix{netip.PrefixFrom(cli, 24)}},
		Target: veth.End{Name: "rc-srv", Addrs: []netip.Prefix{netip.PrefixFrom(srv, 24)}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"synprobe", "reflect", "--netns", fmt.Sprintf("/proc/self/fd/%d", p.Target.NS),
			"--listen", "10.93.0.2:9000", "--allow", "10.93.0.0/30", "--max-records", "100"}, &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "recording") {
		select {
		case code := <-done:
			t.Fatalf("exit %d before it started: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no startup line after 10s: %q", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	want := "synprobe reflect: recording 10.93.0.2:9000 on rc-srv, reports on 10.93.0.2:9001 to 10.93.0.0/30; 100 records, expiry 2m0s"
	if !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("startup line %q, want it to start %q", stderr.String(), want)
	}
	var conn net.Conn
	err := netns.Do(p.Probe.NS, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", "10.93.0.2:9000", 5*time.Second)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	client := reflector.Client{NetNS: p.Probe.NS}
	report := netip.MustParseAddrPort("10.93.0.2:9001")
	for {
		a, err := client.Ask(context.Background(), report, reflector.Request{})
		if err != nil {
			t.Fatal(err)
		}
		if len(a.Records) >= 3 { // SYN, SYN-ACK, ACK at least
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d records after 10s, want the handshake's", len(a.Records))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != exitOK {
			t.Errorf("exit %d after the interrupt, want 0; stderr %q", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("still running 10s after the interrupt")
	}
	if !strings.Contains(stderr.String(), "synprobe reflect: stopped: ") || !strings.Contains(stderr.String(), " 1 connection, ") {
		t.Errorf("stderr %q: want a last line saying what it did (1 connection, at least 1 query)", stderr.String())
	}
	if stdout.String() != "" {
		t.Errorf("stdout %q, want nothing", stdout.String())
	}
	// The ports are closed.
	err = netns.Do(p.Probe.NS, func() error {
		c, err := net.DialTimeout("tcp", report.String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err
	})
	if err == nil {
		t.Error("the report port still accepts connections after the command returned")
	}
}

// TestReflectBroadAllow: an --allow shorter than /8 is taken, with one
// line saying what it lets in.
func TestReflectBroadAllow(t *testing.T) {
	for _, tc := range []struct {
		allow []string
		want  string
	}{
		{[]string{"10.0.0.0/8", "10.9.8.7"}, ""},
		{[]string{"0.0.0.0/0"}, "synprobe reflect: warning: --allow 0.0.0.0/0 (every IPv4 address) lets anyone there query the records of what arrived here"},
		{[]string{"::/0", "10.0.0.1"}, "--allow ::/0 (every IPv6 address) lets"},
		{[]string{"64.0.0.0/2", "2000::/3"}, "--allow 64.0.0.0/2 (2^30 addresses), 2000::/3 (2^125 addresses) lets"},
	} {
		var ps []netip.Prefix
		for _, a := range tc.allow {
			p, err := parseAllow(a)
			if err != nil {
				t.Fatal(err)
			}
			ps = append(ps, p)
		}
		got := broadAllow(ps)
		if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
			t.Errorf("broadAllow(%q) = %q, want %q", tc.allow, got, tc.want)
		}
	}
	// Said before the run goes on (here it stops at the namespace).
	code, _, errOut := synprobe(t, "reflect", "--listen", "10.93.0.2:8080", "--allow", "0.0.0.0/0", "--netns", "no-such-namespace-here")
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if code != exitUsage || len(lines) != 2 || !strings.Contains(lines[0], "warning: --allow 0.0.0.0/0") || !strings.Contains(lines[1], "no such network namespace") {
		t.Errorf("exit %d, stderr %q: want %d, the warning, then the namespace refused", code, errOut, exitUsage)
	}
}
