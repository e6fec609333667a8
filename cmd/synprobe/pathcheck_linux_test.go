package main

import (
	"encoding/json"
	"strings"
	"testing"

	"synprobe/internal/pathlab"
	"synprobe/internal/pathlab/pathlabtest"
)

// TestHandshakeThroughProxy: handshake --path-check auto through a box
// that answers for the target (a terminating proxy, a SYN proxy) labels
// the result as the box's, says so in the path object, and never exits 1.
func TestHandshakeThroughProxy(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: a path bed")
	}
	b := pathlabtest.Start(t, pathlab.Config{})
	for _, box := range []pathlab.Box{pathlab.BoxProxy, pathlab.BoxSYNProxy} {
		t.Run(string(box), func(t *testing.T) {
			if err := b.SetBox(box, pathlab.Last); err != nil {
				t.Fatalf("SetBox: %v", err)
			}
			code, out, errOut := synprobe(t, "handshake", "--netns", b.ClientNS, "--format", "json", b.Target.String())
			var rep struct {
				Results []struct {
					Verdict, Cause, Reason string
					Notes                  []string
				}
				Path struct {
					AnsweredBy string `json:"answered_by"`
				}
			}
			if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Results) != 1 {
				t.Fatalf("exit %d: not a report with one result (%v):\n%s\n%s", code, err, out, errOut)
			}
			r := rep.Results[0]
			t.Logf("exit %d: %s [%s] %s; notes %q; path answered by %s", code, r.Verdict, r.Cause, r.Reason, r.Notes, rep.Path.AnsweredBy)
			const want = "answered by a box at hop 2 (10.79.2.254), not by 10.79.3.1"
			labelled := strings.Contains(r.Reason, want) || strings.Contains(strings.Join(r.Notes, "\n"), want)
			if code == 1 || !labelled || rep.Path.AnsweredBy == "" {
				t.Errorf("exit %d, %s [%s] %q, notes %q, path answered by %q: want exit 0 or 3, the result labelled %q",
					code, r.Verdict, r.Cause, r.Reason, r.Notes, rep.Path.AnsweredBy, want)
			}
		})
	}
}
