package script

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the .events golden files under testdata")

// dump renders a parsed script for the golden files: what the runner will
// see, one event per line, in the canonical syntax of format_test.go.
func dump(s *Script) string {
	var b strings.Builder
	fmt.Fprintf(&b, "meta %+v\n", s.Meta)
	fmt.Fprintf(&b, "config %+v\n", s.Config)
	for _, o := range s.Options {
		fmt.Fprintf(&b, "option %d %s=%q\n", o.Line, o.Name, o.Value)
	}
	for _, n := range s.Ignored {
		fmt.Fprintf(&b, "ignored %d %s: %s\n", n.Line, n.Text, n.Reason)
	}
	if s.Unsupported != "" {
		fmt.Fprintf(&b, "unsupported %s\n", s.Unsupported)
	}
	for _, ev := range s.Events {
		kind := "packet"
		if ev.Syscall != nil {
			kind = "syscall"
		}
		fmt.Fprintf(&b, "%3d %-7s %s\n", ev.Line, kind, formatEvent(ev))
	}
	return b.String()
}

// checkRoundTrip formats every event and parses the result again: it must
// give the same event. Parsing the event's Text alone must give the same
// packet or call too (its time may differ: see TestIgnoredTimeKept).
func checkRoundTrip(t *testing.T, name string, s *Script) {
	t.Helper()
	for _, ev := range s.Events {
		if s2, err := Parse("text.pkt", []byte(ev.Text)); err != nil {
			t.Errorf("%s:%d: Text %q does not parse alone: %v", name, ev.Line, ev.Text, err)
		} else if ev2 := s2.Events[0]; !reflect.DeepEqual(ev2.Packet, ev.Packet) || !reflect.DeepEqual(ev2.Syscall, ev.Syscall) {
			t.Errorf("%s:%d: Text %q parses alone to %+v %+v, want %+v %+v", name, ev.Line, ev.Text, ev2.Packet, ev2.Syscall, ev.Packet, ev.Syscall)
		}
		text := formatEvent(ev)
		s2, err := Parse("roundtrip.pkt", []byte(text))
		if err != nil {
			t.Errorf("%s:%d: %q formats as %q, which does not parse: %v", name, ev.Line, ev.Text, text, err)
			continue
		}
		ev2 := s2.Events[0]
		if ev2.Time != ev.Time || !reflect.DeepEqual(ev2.Packet, ev.Packet) || !reflect.DeepEqual(ev2.Syscall, ev.Syscall) {
			t.Errorf("%s:%d: %q formats as %q, which parses differently:\n got %+v %+v %+v\nwant %+v %+v %+v",
				name, ev.Line, ev.Text, text, ev2.Time, ev2.Packet, ev2.Syscall, ev.Time, ev.Packet, ev.Syscall)
		}
	}
}

func testScripts(t *testing.T, dir string, singleLine bool) {
	files, err := filepath.Glob(filepath.Join("testdata", dir, "*.pkt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts in testdata/%s: %v", dir, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(f, src)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got := dump(s)
			golden := strings.TrimSuffix(f, ".pkt") + ".events"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("parse of %s differs from %s:\n--- got\n%s--- want\n%s", f, golden, got, want)
			}
			checkRoundTrip(t, f, s)
			if singleLine {
				// Each event is its source line, comments removed and
				// whitespace collapsed.
				lines := strings.Split(string(src), "\n")
				for _, ev := range s.Events {
					line := lines[ev.Line-1]
					if i := strings.Index(line, "//"); i >= 0 {
						line = line[:i]
					}
					if want := strings.Join(strings.Fields(line), " "); ev.Text != want {
						t.Errorf("line %d: Text %q, want %q", ev.Line, ev.Text, want)
					}
				}
			}
		})
	}
}

// TestPacketdrillScripts parses scripts written like the published
// listener-only packetdrill scripts (notes section 7): they must parse
// unchanged, into the events recorded in the .events files.
func TestPacketdrillScripts(t *testing.T) { testScripts(t, "packetdrill", true) }

// TestSynprobeScripts parses scripts that use every extension.
func TestSynprobeScripts(t *testing.T) { testScripts(t, "synprobe", false) }

// TestRoundTripTables runs the round trip over the table tests' inputs.
func TestRoundTripTables(t *testing.T) {
	srcs := []string{
		"0 > . 1:1(0)", "0.1~0.2 > . 1:1(0)", "+0~+.04 > . 1:1(0)", "+.1...0.2 read(4, ..., 2000) = 2000",
		"0 < S.7 0:0(0) win 1000", "0 < .5 0:0(0) win 1000", "0 < FSRP.UEWA 0:0(0) win 1000", "0 < - 0:0(0) win 1",
		"0 < . 0x10:0x20(0x10) ack 0xffffffff win 0xffff urg 0x1",
		"0 > S. 0:0(0) ack 1 <mss *,sackOK,TS val * ecr 100,nop,wscale *>",
		"0 > S. 0:0(0) ack 1 <FO *,FOEXP *>", "0 < S 0:0(0) win 1 <FO 0102030405060708,nop,nop>",
		"0 < S 0:0(0) win 1 <md5 000102030405060708090a0b0c0d0e0f,nop,nop>",
		"0 < S 0:0(0) win 1 <raw 0x0200>", "0 < . 1:1(0) ack 1 win 1 <nop,nop,sack 1001:2001 3001:4001>",
		"0 > [ttl *, id *, tos *, flowlabel *] . 1:1(0)", "0 < [ttl 64, df, id 7, ect0] S 0:0(0) win 1",
		"0 < [nodf, ce] S 0:0(0) win 1", "0 > [ect01] S. 0:0(0) ack 1",
		`0 < P. 1:19(18) ack 1 win 257 "GET / HTTP/1.0\r\n\r\n"`, "0 < P. 1:5(4) ack 1 win 257 0xdeadbeef",
		`0 > P. 1:*(*) ack 19 "HTTP/1.0 200"`,
		"0 < . 1:1(0) ack 1 win 1 {tcpsum bad, ipsum 0x1234, doff 4, reserved 0x2, iplen 20, ihl 4, ipver 6}",
		"0 < S 0:0(0) win 1 <mss 1460,nop> {doff 6}",
		"0 < icmp unreachable frag_needed mtu 1200 [1:1461(1460)]", "0 > icmp type_3 code_4", "0 > none",
		"0 > icmp time_exceeded from 10.79.2.253 [S 0:0(0) win * <mss 1200,...>]",
		"0 > [ttl *, tos 0x10] icmp time_exceeded exceeded_hop_limit from fd00::1 [(ttl 1, df, id *) S. 0:0(0) ack 1 <...>]",
		`0 > icmp unreachable frag_needed from 10.1.2.3 mtu 1400 [P. 1:1461(1460) ack * "GET"]`,
		"0 > icmp time_exceeded [. 1:*(*) <nop,nop,TS val * ecr *>]", "0 > icmp time_exceeded from 10.0.0.1 [0:0(0)]",
		"0 > S. 0:0(0) ack 1 <mss 1460,sackOK,...>", "0 < [tos 0x10, ttl 9, id 3, nodf] icmp unreachable port_unreachable",
		"0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0",
	}
	for _, src := range srcs {
		checkRoundTrip(t, "table", mustParse(t, src))
	}
}
