package script

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode/utf8"
)

// FuzzParse: Parse never panics, and returns either a Script or a
// non-empty ErrorList of well-formed errors, never both. A script it
// accepts survives the format-and-parse round trip event by event. A few
// symbols are defined, as the published corpora's runners define them,
// so that substitution is fuzzed too.
func FuzzParse(f *testing.F) {
	f.Add([]byte("0 < S 0:10(10) win W <mss MSS,FOEXP TFO_COOKIE>\n+0 > SW. 0:0(0) ack 1 <ECN e1b 1 ceb 0 e0b 1,nop>\n+0 < icmp unreachable CODE\n+0 < P. 1:2(1) ack 1 win 1 DATA\n"))
	f.Add([]byte("--define=X=`a b`\n--define=Y=\"q\"\n0 < ipv4 1.2.3.4 > 5.6.7.8: gre: . 1:1(0) win 1\n+0 < encap psp spi 7 . 1:1(0) win 1\n"))
	files, _ := filepath.Glob("testdata/*/*.pkt")
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := parse("f.pkt", src, fuzzConfig)
		if (s == nil) == (err == nil) {
			t.Fatalf("Parse returned script %v and error %v: want exactly one", s != nil, err)
		}
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || len(list) > maxErrors+1 {
				t.Fatalf("error %T %v: want an ErrorList of 1 to %d errors", err, err, maxErrors+1)
			}
			for _, e := range list {
				if e.Line < 1 || e.Col < 1 || e.Msg == "" || !utf8.ValidString(e.Source) || !utf8.ValidString(e.Msg) {
					t.Fatalf("malformed error %+v", *e)
				}
				_ = e.Error()
			}
			return
		}
		for _, ev := range s.Events {
			if (ev.Packet == nil) == (ev.Syscall == nil) || ev.Line < 1 || ev.Text == "" {
				t.Fatalf("malformed event %+v", ev)
			}
		}
		checkRoundTrip(t, "fuzz", s)
	})
}

var fuzzConfig = ParseConfig{Defines: map[string]string{
	"MSS": "1460", "W": "0x10", "TFO_COOKIE": "3021b9d889017eeb", "CODE": "host_unreachable", "DATA": `"x"`, "CMD": "`true`", "ROUTER": "10.79.2.253",
}}
