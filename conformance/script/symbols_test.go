package script

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"synprobe/probe"
)

// firstError parses src with cfg and returns its first error, failing the
// test when there is none.
func firstError(t *testing.T, src string, cfg ParseConfig) *SyntaxError {
	t.Helper()
	s, err := ParseWith("t.pkt", []byte(src), cfg)
	var list ErrorList
	if err == nil || s != nil || !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("ParseWith(%q) = %v, %v: want an ErrorList and no script", src, s != nil, err)
	}
	return list[0]
}

const synLine = "0 < S 0:0(0) win 1000\n"

// TestDefines: -D symbols stand for integers, hex, strings and words
// wherever packetdrill's lexer substitutes them, the command line wins over
// the script's --define lines, keywords are never symbols, and an
// undefined symbol where a value is needed is one error at its place.
func TestDefines(t *testing.T) {
	tests := []struct {
		name string
		defs map[string]string
		src  string
		want string // the last event, formatted
	}{
		{"fo cookie", map[string]string{"TFO_COOKIE": "3021b9d889017eeb"},
			"0 < S 0:10(10) win 32792 <mss 1460,sackOK,nop,nop,FOEXP TFO_COOKIE>",
			"0 < S 0:10(10) win 32792 <mss 1460,sackOK,nop,nop,FOEXP 3021b9d889017eeb>"},
		{"number", map[string]string{"MSS": "1460"}, "0 > S. 0:0(0) ack 1 <mss MSS,nop,wscale 8>", "0 > S. 0:0(0) ack 1 <mss 1460,nop,wscale 8>"},
		{"hex", map[string]string{"W": "0x10"}, "0 < . 1:1(0) ack 1 win W", "0 < . 1:1(0) ack 1 win 16"},
		{"empty as strtol reads it", map[string]string{"W": ""}, "0 < . 1:1(0) ack 1 win W", "0 < . 1:1(0) ack 1 win 0"},
		{"octal as strtol reads it", map[string]string{"W": "010"}, "0 < . 1:1(0) ack 1 win W", "0 < . 1:1(0) ack 1 win 8"},
		{"string payload", map[string]string{"REQ": `"GET /\r\n"`}, "0 < P. 1:8(7) ack 1 win 1 REQ", `0 < P. 1:8(7) ack 1 win 1 "GET /\r\n"`},
		{"icmp code", map[string]string{"CODE": "host_unreachable"}, "0 < icmp unreachable CODE", "0 < icmp unreachable host_unreachable"},
		{"syscall args", map[string]string{"CMSG_LEVEL_IP": "SOL_IP"}, "0 setsockopt(3, CMSG_LEVEL_IP, IP_RECVERR, [1], 4) = 0", "0 setsockopt(3, SOL_IP, IP_RECVERR, [1], 4) = 0"},
		{"header define", nil, "--define=W=7\n0 < . 1:1(0) ack 1 win W", "0 < . 1:1(0) ack 1 win 7"},
		{"header define quoted with spaces", nil, "--define=DATA=\"a b\"\n0 < P. 1:4(3) ack 1 win 1 DATA", `0 < P. 1:4(3) ack 1 win 1 "a b"`},
		{"command line wins", map[string]string{"W": "9"}, "--define=W=7\n0 < . 1:1(0) ack 1 win W", "0 < . 1:1(0) ack 1 win 9"},
		{"keyword is no symbol", map[string]string{"win": "5", "ack": "3"}, "0 < . 1:1(0) ack 1 win 2", "0 < . 1:1(0) ack 1 win 2"},
		{"header option value", map[string]string{"TOL": "10000"}, "--tolerance_usecs=TOL\n0 < . 1:1(0) ack 1 win 1", "0 < . 1:1(0) ack 1 win 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := ParseWith("t.pkt", []byte(tt.src), ParseConfig{Defines: tt.defs})
			if err != nil {
				t.Fatalf("ParseWith(%q): %v", tt.src, err)
			}
			ev := s.Events[len(s.Events)-1]
			if got := formatEvent(ev); got != tt.want {
				t.Errorf("%q: got %q, want %q", tt.src, got, tt.want)
			}
			checkRoundTrip(t, tt.name, s)
		})
	}
	s, err := ParseWith("t.pkt", []byte("--tolerance_usecs=TOL\n0 < . 1:1(0) ack 1 win 1"), ParseConfig{Defines: map[string]string{"TOL": "10000"}})
	if err != nil || s.Config.ToleranceUsecs != 10000 {
		t.Errorf("--tolerance_usecs=TOL with TOL=10000: tolerance %v, error %v; want 10000", s.Config.ToleranceUsecs, err)
	}

	errs := []struct {
		name      string
		defs      map[string]string
		src       string
		line, col int
		msg       string
	}{
		{"undefined in option", nil, "0 > S. 0:0(0) ack 1 <mss MSS,nop,wscale 8>", 1, 26,
			"undefined symbol 'MSS': give its value with --define MSS=VALUE (packetdrill's -D) or a '--define=MSS=VALUE' line at the top of the script"},
		{"undefined cookie", nil, synLine + "+0 < S 0:10(10) win 1 <FOEXP TFO_COOKIE,nop,nop>", 2, 30,
			"undefined symbol 'TFO_COOKIE': give its value with --define TFO_COOKIE=VALUE (packetdrill's -D) or a '--define=TFO_COOKIE=VALUE' line at the top of the script"},
		{"undefined icmp code", nil, "0 < icmp unreachable CODE", 1, 22,
			"undefined symbol 'CODE': give its value with --define CODE=VALUE (packetdrill's -D) or a '--define=CODE=VALUE' line at the top of the script"},
		{"undefined payload", nil, "0 < P. 1:4(3) ack 1 win 1 DATA", 1, 27,
			"undefined symbol 'DATA': give its value with --define DATA=VALUE (packetdrill's -D) or a '--define=DATA=VALUE' line at the top of the script"},
		{"defined as a word where a number goes", map[string]string{"W": "big"}, "0 < . 1:1(0) ack 1 win W", 1, 24, "expected a number after 'win', found 'W' (defined as 'big')"},
		{"bad header define", nil, "--define=NOVALUE\n" + synLine, 1, 10, "--define: bad definition \"NOVALUE\": want NAME=VALUE"},
		{"bad header define name", nil, "--define=A-B=1\n" + synLine, 1, 10, "--define: bad symbol name \"A-B\": a name is letters, digits and '_'"},
		{"bad name in config", map[string]string{"A B": "1"}, synLine, 1, 1, "bad symbol name \"A B\": a name is letters, digits and '_'"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			e := firstError(t, tt.src, ParseConfig{Defines: tt.defs})
			if e.Line != tt.line || e.Col != tt.col || e.Msg != tt.msg {
				t.Errorf("%q:\n got %d:%d: %s\nwant %d:%d: %s", tt.src, e.Line, e.Col, e.Msg, tt.line, tt.col, tt.msg)
			}
		})
	}
}

// TestAccECNOption: "ECN e1b N ceb N e0b N" and its shorter and other
// ordered forms become the AccECN option of the right kind; fields out of
// order or out of range are errors.
func TestAccECNOption(t *testing.T) {
	tests := []struct {
		src  string
		want probe.Option
	}{
		{"0 > SW. 0:0(0) ack 1 <mss 1460,ECN e1b 1 ceb 0 e0b 1,nop,nop,nop,sackOK,nop,wscale 8>", probe.AccECNOption(true, 1, 0, 1)},
		{"0 < [ect0] W. 1:1(0) ack 1 win 320 <ECN e0b 1 ceb 0 e1b 1,nop>", probe.AccECNOption(false, 1, 0, 1)},
		{"0 < . 1:1(0) ack 1 win 320 <ECN e0b 16777215,nop,nop,nop>", probe.AccECNOption(false, 0xffffff)},
		{"0 < . 1:1(0) ack 1 win 320 <ECN e1b 5 ceb 6,nop,nop,nop,nop>", probe.AccECNOption(true, 5, 6)},
	}
	for _, tt := range tests {
		s := mustParse(t, tt.src)
		var got *probe.Option
		for _, o := range s.Events[0].Packet.Options.List {
			if o.Option.Kind == probe.OptionAccECN0 || o.Option.Kind == probe.OptionAccECN1 {
				got = &o.Option
			}
		}
		if got == nil || got.Kind != tt.want.Kind || !bytes.Equal(got.Data, tt.want.Data) {
			t.Errorf("%q: got %v, want %v", tt.src, got, tt.want)
		}
		checkRoundTrip(t, "accecn", s)
	}
	errs := []struct {
		src string
		col int
		msg string
	}{
		{"0 < . 1:1(0) ack 1 win 1 <ECN ceb 1>", 31, "expected 'e0b' or 'e1b' after 'ECN' ('ECN e1b 1 ceb 0 e0b 1'), found 'ceb'"},
		{"0 < . 1:1(0) ack 1 win 1 <ECN e0b 1 e1b 2>", 37, "AccECN fields go in the order e0b, ceb, e1b: found 'e1b'"},
		{"0 < . 1:1(0) ack 1 win 1 <ECN e1b 16777216>", 35, "AccECN e1b 16777216 is out of range (0 to 16777215)"},
		{"0 < . 1:1(0) ack 1 win 1 <ECN>", 30, "expected 'e0b' or 'e1b' after 'ECN' ('ECN e1b 1 ceb 0 e0b 1'), found '>'"},
		{"0 < . 1:1(0) ack 1 win 1 <ECN e0b 1>", 26, "TCP options are not padded correctly: they take 5 bytes, not a multiple of 4 (add nop or eol)"},
	}
	for _, tt := range errs {
		e := firstError(t, tt.src, ParseConfig{})
		if e.Line != 1 || e.Col != tt.col || e.Msg != tt.msg {
			t.Errorf("%q:\n got %d:%d: %s\nwant 1:%d: %s", tt.src, e.Line, e.Col, e.Msg, tt.col, tt.msg)
		}
	}
}

// TestUnsupported: valid packetdrill that a remote black box cannot honour
// parses to a Script marked Unsupported (the first such line named) and
// without those lines; real syntax errors elsewhere are still errors.
func TestUnsupported(t *testing.T) {
	tests := []struct {
		name string
		line string
		want string
	}{
		{"ipv4 encapsulation", "+0 < ipv4 192.168.0.2 > 192.168.0.1: gre: . 1:1(0) ack 1 win 1",
			"not supported by a remote black box: an encapsulation prefix ('ipv4 ... :'): synprobe sends and sees plain IP and TCP (line 2)"},
		{"ipv6 encapsulation", "+0 > ipv6 fd3d::1 > fd3d::2: . 1:1(0) ack 1",
			"not supported by a remote black box: an encapsulation prefix ('ipv6 ... :'): synprobe sends and sees plain IP and TCP (line 2)"},
		{"gre", "+0 < gre flags 0x0: . 1:1(0) ack 1 win 1",
			"not supported by a remote black box: an encapsulation prefix ('gre ... :'): synprobe sends and sees plain IP and TCP (line 2)"},
		{"mpls", "+0 < mpls (label 123, tc 1, [S], ttl 255): . 1:1(0) ack 1 win 1",
			"not supported by a remote black box: an encapsulation prefix ('mpls ... :'): synprobe sends and sees plain IP and TCP (line 2)"},
		{"psp", "+0 < encap psp spi 7 . 501:501(0) ack 1001 win 50000",
			"not supported by a remote black box: an encapsulated segment ('encap psp'): synprobe sends and sees plain TCP (line 2)"},
		{"psp after ip info", "+0 > [ect0] encap psp spi 23 P. 1001:1501(500) ack 1001",
			"not supported by a remote black box: an encapsulated segment ('encap psp'): synprobe sends and sees plain TCP (line 2)"},
		{"udp", "+0 < udp (100)", "not supported by a remote black box: a UDP packet: synprobe tests TCP (line 2)"},
		{"udp with ip info", "+0 < [ect0] udp (100)", "not supported by a remote black box: a UDP packet: synprobe tests TCP (line 2)"},
		{"ports", "+0 < 1234>8080 . 1:1(0) win 1",
			"not supported by a remote black box: explicit ports ('1234>8080'): synprobe picks its own port, and the target's comes from --target (line 2)"},
		{"icmp echo", "+0 < icmp echo_request id 7", "not supported by a remote black box: an ICMP echo ('id N'): synprobe sends ICMP errors about TCP segments (line 2)"},
		{"icmp quoting udp", "+0 < icmp unreachable port_unreachable [udp (10)]",
			"not supported by a remote black box: an ICMP message quoting a udp packet: synprobe tests TCP (line 2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := synLine + tt.line + "\n+0 > S. 0:0(0) ack 1 <...>\n+0 < udp (1)\n"
			s, err := Parse("t.pkt", []byte(src))
			if err != nil {
				t.Fatalf("%q: %v", src, err)
			}
			if s.Unsupported != tt.want {
				t.Errorf("%q: Unsupported\n got %q\nwant %q", tt.line, s.Unsupported, tt.want)
			}
			if len(s.Events) != 2 {
				t.Errorf("%q: %d events, want the 2 that can run", tt.line, len(s.Events))
			}
			// A syntax error elsewhere is still an error.
			e := firstError(t, src+"+0 < XYZ 1:1(0) win 1\n", ParseConfig{})
			if e.Line != 5 || !strings.HasPrefix(e.Msg, "invalid TCP flag 'X'") {
				t.Errorf("%q with a bad line after it: got %d:%d: %s, want the bad flag on line 5", tt.line, e.Line, e.Col, e.Msg)
			}
		})
	}
	// Only unsupported lines: the script still parses (no "no events").
	s, err := Parse("t.pkt", []byte("0 < udp (100)\n"))
	if err != nil || s.Unsupported == "" {
		t.Errorf("a script of only a udp line: %v, Unsupported %q; want it parsed and marked", err, s.Unsupported)
	}
}

// TestBackquotedOptionValue is the regression test for "a header option in
// backquotes breaks the next line": a backquoted value with spaces was cut
// at the first space, and its closing backquote then opened a command that
// swallowed the lines after it.
func TestBackquotedOptionValue(t *testing.T) {
	src := "--define=CMD=`sysctl -q net.ipv4.tcp_ecn=3`\n--tolerance_usecs=10000\n0 < S 0:0(0) win 1000\n+0 > S. 0:0(0) ack 1 <...>\n`echo done`\n"
	s := mustParse(t, src)
	if len(s.Events) != 2 || s.Events[0].Line != 3 || s.Events[1].Line != 4 || s.Config.ToleranceUsecs != 10000 {
		t.Errorf("events %+v, tolerance %d: want lines 3 and 4 and 10000", s.Events, s.Config.ToleranceUsecs)
	}
	if len(s.Ignored) != 1 || s.Ignored[0].Line != 5 {
		t.Errorf("Ignored %+v: want the command on line 5", s.Ignored)
	}
	// Unterminated: one error on its own line; the next lines are intact.
	e := firstError(t, "--define=CMD=`sysctl -q x\n0 < S 0:0(0) win 1000\n+0 > S. 0:0(0) ack 1 <...>\n", ParseConfig{})
	if e.Line != 1 || e.Col != 14 || e.Msg != "unterminated ` in the option's value: it needs a closing ` on the same line" {
		t.Errorf("got %d:%d: %s", e.Line, e.Col, e.Msg)
	}
	_, err := Parse("t.pkt", []byte("--define=CMD=`sysctl -q x\n0 < S 0:0(0) win 1000\n+0 > S. 0:0(0) ack 1 <...>\n"))
	if list := err.(ErrorList); len(list) != 1 {
		t.Errorf("an unterminated backquote gives %d errors, want 1: %v", len(list), err)
	}
}

// TestLimits: script size, line length and event count each give one
// error naming the limit.
func TestLimits(t *testing.T) {
	tests := []struct {
		name      string
		src       string
		cfg       ParseConfig
		line, col int
		msg       string
	}{
		{"size", synLine + "+0 > S. 0:0(0) ack 1 <...>\n", ParseConfig{MaxSize: 30}, 1, 1, "the script is larger than the limit of 30 bytes (--max-script-size)"},
		{"line", synLine + "+0 < P. 1:41(40) ack 1 win 1 0x" + strings.Repeat("00", 40) + "\n", ParseConfig{MaxLineLength: 64}, 2, 65, "line is 111 bytes, longer than the limit of 64 (--max-line-length)"},
		{"events", synLine + strings.Repeat("+0 < . 1:1(0) ack 1 win 1\n", 5), ParseConfig{MaxEvents: 3}, 4, 1, "more than 3 events: the limit (--max-events) is reached"},
		{"default size", strings.Repeat("// x\n", DefaultMaxSize/5+1), ParseConfig{}, 1, 1, "the script is larger than the limit of 1048576 bytes (--max-script-size)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWith("t.pkt", []byte(tt.src), tt.cfg)
			list, ok := err.(ErrorList)
			if !ok || len(list) != 1 {
				t.Fatalf("error %v: want exactly one", err)
			}
			if e := list[0]; e.Line != tt.line || e.Col != tt.col || e.Msg != tt.msg {
				t.Errorf("got %d:%d: %s\nwant %d:%d: %s", e.Line, e.Col, e.Msg, tt.line, tt.col, tt.msg)
			}
		})
	}
}

// TestErrorQuoting: what a syntax error quotes is safe to print (control
// characters and terminal escapes escaped) and cut short.
func TestErrorQuoting(t *testing.T) {
	long := strings.Repeat("A", 500)
	tests := []struct {
		name string
		src  string
		want []string // substrings of Error()
	}{
		{"escape in flags", "0 < \x1b[2J\x1b]0;pwned\x07S 0:0(0) win 1", []string{`\x1b[2J\x1b]0;pwned\aS`, `invalid TCP flag '\x1b'`}},
		{"escape in a word", "0 < S 0:0(0) win 1 <mss\x1b[31m 5>", []string{"\\x1b"}},
		{"long word", "0 < S 0:0(0) win 1 <" + long + ">", []string{"unknown TCP option '" + strings.Repeat("A", 40) + "...'"}},
		{"long line", synLine + "+0 < P. 1:251(250) ack 1 win 1 0x" + strings.Repeat("00", 250) + " junk\n", []string{"..." + strings.Repeat("0", 36)}},
		{"long symbol", synLine + "+0 < . 1:1(0) ack 1 win 1 " + long + "\n", []string{"undefined symbol '" + strings.Repeat("A", 40) + "...'"}},
		{"file name", synLine + "+0 < X 1:1(0) win 1\n", []string{`"t\x1b.pkt":2:`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := "t.pkt"
			if tt.name == "file name" {
				file = "t\x1b.pkt"
			}
			_, err := Parse(file, []byte(tt.src))
			if err == nil {
				t.Fatalf("%q: no error", tt.src)
			}
			msg := err.Error()
			for _, line := range strings.Split(msg, "\n") {
				if strings.ContainsAny(line, "\x1b\x07\r") {
					t.Errorf("%q: error holds a control character: %q", tt.src, msg)
				}
				if n := len([]rune(line)); n > 500 {
					t.Errorf("%q: an error line of %d characters", tt.src, n)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%q: error %q lacks %q", tt.src, msg, w)
				}
			}
		})
	}
	// The caret stays under the column in a cut line.
	src := synLine + "+0 < P. 1:251(250) ack 1 win 1 0x" + strings.Repeat("00", 250) + " junk\n"
	_, err := Parse("t.pkt", []byte(src))
	lines := strings.Split(err.(ErrorList)[0].Error(), "\n")
	if len(lines) != 3 || len(lines[1]) > 4+3+excerptWidth+3 {
		t.Fatalf("error %q: want a head, an excerpt of at most %d characters and a caret", lines, excerptWidth+6)
	}
	caret := strings.Index(lines[2], "^")
	if caret < 0 || caret >= len(lines[1]) || lines[1][caret] != 'j' {
		t.Errorf("caret at %d under %q", caret, lines[1])
	}
}

// TestReadFile: a device, a FIFO or a file over the limit is refused at
// once with the file's name; a script within it is read whole.
func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "ok.pkt")
	if err := os.WriteFile(ok, []byte(synLine), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(ok, 0); err != nil || string(b) != synLine {
		t.Errorf("ReadFile(ok) = %q, %v", b, err)
	}
	if _, err := ReadFile(ok, 5); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "ok.pkt") {
		t.Errorf("ReadFile(ok, 5) = %v: want ErrTooLarge naming the file", err)
	}
	if _, err := ReadFile(dir, 0); err == nil || !strings.Contains(err.Error(), "not a regular file (a directory)") {
		t.Errorf("ReadFile(dir) = %v", err)
	}
	if _, err := os.Stat("/dev/zero"); err == nil {
		if _, err := ReadFile("/dev/zero", 0); err == nil || !strings.Contains(err.Error(), "/dev/zero: not a regular file (a character device)") {
			t.Errorf("ReadFile(/dev/zero) = %v", err)
		}
	}
}
