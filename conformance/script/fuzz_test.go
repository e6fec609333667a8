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
// accepts survives the format-and-parse round trip event by event.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*/*.pkt")
	for _, file := range files {
		src, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := parse("f.pkt", src)
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
