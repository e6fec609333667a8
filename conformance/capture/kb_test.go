package capture

import (
	"path/filepath"
	"slices"
	"testing"

	"synprobe/conformance/report"
	"synprobe/internal/kbframes"
)

// kbCapture is the seven frames of KB 172983 as a pcap.
func kbCapture(tb testing.TB) []byte {
	tb.Helper()
	frames, err := kbframes.ReadFile(filepath.Join("..", "..", "testdata", "kb172983-frames.txt"))
	if err != nil {
		tb.Fatal(err)
	}
	data, err := kbframes.Pcap(frames)
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// TestKB172983 is the reference exchange: the seven frames hold two
// connections (the article's prose says one), the first with a correct
// handshake and no close in the capture, the second with a correct
// four-segment close whose handshake is not in the capture.
func TestKB172983(t *testing.T) {
	rep := mustAnalyze(t, kbCapture(t), Options{})
	if rep.Command != "analyze" || rep.Target.Address != "test.pcap" {
		t.Errorf("command %q target %q, want analyze test.pcap", rep.Command, rep.Target.Address)
	}
	if len(rep.Results) != 2 {
		t.Fatalf("%d results, want 2:\n%s", len(rep.Results), textOf(rep))
	}
	want := []struct {
		name  string
		lines []int
		notes []string
	}{
		{"131.107.2.214:1037 > 131.107.2.211:139", []int{1, 2, 3}, []string{"no close in the capture"}},
		{"192.94.222.123:2337 > 192.94.222.87:1352", []int{4, 5, 6, 7}, []string{"handshake not in the capture", "four-segment close: FIN, ACK, FIN, ACK"}},
	}
	for i, w := range want {
		r := rep.Results[i]
		if r.Name != w.name {
			t.Errorf("result %d: name %q, want %q", i, r.Name, w.name)
		}
		if r.Verdict != report.Pass {
			t.Errorf("%s: verdict %s (%s), want pass", r.Name, r.Verdict, r.Reason)
		}
		var lines []int
		for _, s := range r.Steps {
			lines = append(lines, s.Line)
			if s.Verdict != report.Pass || s.Direction != report.Observe {
				t.Errorf("%s: step at packet %d: %s %s, want observe pass", r.Name, s.Line, s.Direction, s.Verdict)
			}
		}
		if !slices.Equal(lines, w.lines) {
			t.Errorf("%s: steps at packets %v, want %v", r.Name, lines, w.lines)
		}
		for _, n := range w.notes {
			if !slices.Contains(r.Notes, n) {
				t.Errorf("%s: notes %q lack %q", r.Name, r.Notes, n)
			}
		}
	}
	if rep.Summary[report.Pass] != 2 || rep.ExitCode() != 0 {
		t.Errorf("summary %s, exit %d; want 2 pass, exit 0", rep.Summary.Counts(), rep.ExitCode())
	}
	if t.Failed() {
		t.Log("\n" + textOf(rep))
	}
}
