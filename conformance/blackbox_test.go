package conformance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/internal/lab"
	"synprobe/internal/labtest"
	"synprobe/probe"
)

// TestBlackBox: what a remote black box cannot honour is found, with the
// line; what leaves the target's TCP as it is is not.
func TestBlackBox(t *testing.T) {
	const listen = "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 bind(3, ..., ...) = 0\n+0 listen(3, 1) = 0\n"
	tests := []struct {
		name, src string
		line      int
		why       string // "" when the script runs
	}{
		{"listener only", listen + "+0 < S 0:0(0) win 1000\n+0 > S. 0:0(0) ack 1 <...>", 0, ""},
		{"harmless options", listen + `+0 setsockopt(3, SOL_SOCKET, SO_REUSEADDR, [1], 4) = 0
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 setsockopt(3, SOL_SOCKET, SO_ZEROCOPY, [1], 4) = 0
+0 setsockopt(3, SOL_SOCKET, SO_TIMESTAMPING, [SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_ID], 4) = 0
+0 getsockopt(3, SOL_SOCKET, SO_RCVBUF, [65536], [4]) = 0
+0 ioctl(3, SIOCINQ, [0]) = 0
+0 setsockopt(3, SOL_TCP, TCP_INQ, [1], 4) = 0
+0 setsockopt(3, SOL_TCP, TCP_NOTSENT_LOWAT, [1], 4) = 0
` + "`../common/defaults.sh`\n`/tmp/sysctl_restore_${PPID}.sh`\n`nstat > /dev/null`\n", 0, ""},
		{"TCP_MAXSEG", listen + "+0 setsockopt(3, IPPROTO_TCP, TCP_MAXSEG, [1100], 4) = 0\n", 4, "setsockopt(TCP_MAXSEG) at line 4: a remote black box cannot set its application's socket options"},
		{"SO_RCVBUF", listen + "+0 setsockopt(3, SOL_SOCKET, SO_RCVBUF, [20000], 4) = 0\n", 4, "setsockopt(SO_RCVBUF) at line 4"},
		{"SO_LINGER", listen + "+0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0\n", 4, "setsockopt(SO_LINGER) at line 4"},
		{"an unknown option", listen + "+0 setsockopt(3, SOL_TCP, TCP_SOMETHING_NEW, [1], 4) = 0\n", 4, "setsockopt(TCP_SOMETHING_NEW) at line 4"},
		{"an ioctl that sets", listen + "+0 ioctl(3, SIOCSHWTSTAMP, {}) = 0\n", 4, "ioctl(SIOCSHWTSTAMP) at line 4"},
		{"connect", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 connect(3, ..., ...) = 0\n", 2, "connect() at line 2: the target would have to connect: a remote black box cannot be made to"},
		{"a SYN expected", "0 > S 0:0(0) <...>\n", 1, "line 1 expects a SYN from the target: the target would have to connect"},
		{"Fast Open sendto", "0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3\n+0 sendto(3, ..., 1000, MSG_FASTOPEN, ..., ...) = 1000\n", 2, "sendto() at line 2: the target would have to connect (Fast Open)"},
		{"a Fast Open cookie sent", listen + "+0 < S 0:10(10) win 32792 <mss 1460,sackOK,nop,nop,FO 3021b9d889017eeb,nop,nop>\n", 4, "line 4 names a Fast Open cookie"},
		{"a Fast Open cookie expected", listen + "+0 < S 0:0(0) win 32792 <mss 1460,FO,nop,nop>\n+0 > S. 0:0(0) ack 1 <mss 1460,FO 3021b9d889017eeb,nop,nop>\n", 5, "line 5 names a Fast Open cookie"},
		{"a Fast Open cookie asked for", listen + "+0 < S 0:0(0) win 32792 <mss 1460,FO,nop,nop>\n+0 > S. 0:0(0) ack 1 <mss 1460,FO *,nop,nop>\n", 0, ""},
		{"sysctl", "`sysctl -q net.ipv4.tcp_timestamps=0`\n" + listen, 1, "the shell command at line 1 configures the target's host (net.ipv4.tcp_timestamps)"},
		{"sysctl continued", "`../common/defaults.sh\nsysctl -q \\\n  net.ipv4.tcp_fastopen=0x30403 \\\n  net.ipv4.tcp_fastopen_key=a0bf63f7-ed803d81-cd641d30-cebc4a90`\n" + listen, 1, "(net.ipv4.tcp_fastopen)"},
		{"set_sysctls", "`../common/defaults.sh\n ../common/set_sysctls.py /proc/sys/net/ipv4/tcp_fastopen=0x207`\n" + listen, 1, "(/proc/sys/net/ipv4/tcp_fastopen)"},
		{"a route", listen + "+0 `ip route change 192.0.2.1 via 192.168.0.2 dev tun0 advmss 1460 mtu lock 1500`\n", 4, "(ip route change)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			line, why := blackBox(mustParse(t, "bb.pkt", tt.src))
			if tt.why == "" {
				if why != "" {
					t.Errorf("got line %d %q, want the script to run", line, why)
				}
				return
			}
			if line != tt.line || !strings.Contains(why, tt.why) {
				t.Errorf("got line %d %q, want line %d with %q", line, why, tt.line, tt.why)
			}
		})
	}
}

// loadRunnerScript parses a regression script of testdata/runner.
func loadRunnerScript(t testing.TB, name string) *script.Script {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "runner", name))
	if err != nil {
		t.Fatal(err)
	}
	return mustParse(t, name, string(src))
}

// TestBlackBoxScripts: against real stacks, scripts that set a socket
// option changing the target's TCP, set its sysctls or make it connect are
// skip naming the line (they failed before: the SYN-ACK's MSS, its
// timestamps, a SYN that never comes), and harmless calls still run and
// pass.
func TestBlackBoxScripts(t *testing.T) {
	tests := []struct {
		file    string
		verdict report.Verdict
		reason  string
	}{
		{"sockopt-maxseg.pkt", report.Skip, "setsockopt(TCP_MAXSEG) at line 8: a remote black box cannot set its application's socket options"},
		{"sysctl-timestamps.pkt", report.Skip, "the shell command at line 5 configures the target's host (net.ipv4.tcp_timestamps)"},
		{"connect.pkt", report.Skip, "connect() at line 7: the target would have to connect"},
		{"fastopen-cookie.pkt", report.Skip, "line 9 names a Fast Open cookie"},
		{"harmless-calls.pkt", report.Pass, ""},
		{"sockopt-after-handshake.pkt", report.Skip, "setsockopt(SO_SNDBUF) at line 14"},
	}
	var scripts []*script.Script
	for _, tt := range tests {
		scripts = append(scripts, loadRunnerScript(t, tt.file))
	}
	for _, stack := range labtest.Stacks(t) {
		t.Run(string(stack), func(t *testing.T) {
			for i, res := range runScripts(t, stack, scripts...) {
				tt := tests[i]
				if res.Verdict != tt.verdict || !strings.Contains(res.Reason, tt.reason) {
					t.Errorf("%s: got %s [%s] %q, want %s with %q\n%s", tt.file, res.Verdict, res.Cause, res.Reason, tt.verdict, tt.reason, dump(res))
				}
				if tt.verdict == report.Skip && res.Cause != report.CausePremiseBlackBox {
					t.Errorf("%s: cause %q, want %q", tt.file, res.Cause, report.CausePremiseBlackBox)
				}
				if tt.file == "sockopt-after-handshake.pkt" && (len(res.Steps) < 2 || res.Steps[1].Verdict != report.Pass) {
					t.Errorf("%s: the SYN-ACK before the option was not judged\n%s", tt.file, dump(res))
				}
			}
		})
	}
}

// TestBeforeBlackBoxJudged: what a script does before a line a black box
// cannot honour is judged: a wrong SYN-ACK fails it.
func TestBeforeBlackBoxJudged(t *testing.T) {
	tamper := &lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
		if t := &f.TCP; t.Flags.Has(probe.SYN | probe.ACK) {
			t.Ack++
		}
		return true
	})}
	res := runTampered(t, tamper, time.Second, loadRunnerScript(t, "sockopt-after-handshake.pkt"))
	wantFail(t, res, "fail at line 11: ack: expected 1")
}

// TestHarmlessCallsStillJudged: a script with harmless calls is judged:
// a stack that announces another MSS than the script expects fails it.
func TestHarmlessCallsStillJudged(t *testing.T) {
	tamper := &lab.Tamper{ToProbe: labtest.TamperTCP(func(f *probe.Frame) bool {
		if t := &f.TCP; t.Flags.Has(probe.SYN | probe.ACK) {
			for i, o := range t.Options {
				if o.Kind == probe.OptionMSS {
					t.Options[i] = probe.MSSOption(1000)
				}
			}
		}
		return true
	})}
	res := runTampered(t, tamper, time.Second, loadRunnerScript(t, "harmless-calls.pkt"))
	wantFail(t, res, "mss: expected mss 1460 got mss 1000")
}
