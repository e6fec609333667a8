package conformance

import (
	"strings"
	"testing"
	"time"

	"synprobe/conformance/report"
)

// TestLate: a result that did not pass while synprobe sent a segment later
// than LateBound is this host's (error, local-host:busy), naming the
// segment; a pass stays a pass, and a fail with every segment on time
// stays the stack's.
func TestLate(t *testing.T) {
	late := &Conn{}
	late.NoteLate("line 7", 1300*time.Millisecond)
	late.NoteLate("line 8", 20*time.Millisecond) // the worst is kept
	onTime := &Conn{}
	onTime.NoteLate("line 7", LateBound)
	for _, tc := range []struct {
		name    string
		verdict report.Verdict
		conns   []*Conn
		want    report.Verdict
	}{
		{"fail, ACK 1.3 s late", report.Fail, []*Conn{onTime, late}, report.Error},
		{"warn, ACK 1.3 s late", report.Warn, []*Conn{late}, report.Error},
		{"pass, ACK 1.3 s late", report.Pass, []*Conn{late}, ""},
		{"skip, ACK 1.3 s late", report.Skip, []*Conn{late}, ""},
		{"fail, every segment on time", report.Fail, []*Conn{onTime}, ""},
	} {
		v, cause, why := Late(report.Result{Verdict: tc.verdict}, tc.conns...)
		if v != tc.want {
			t.Errorf("%s: verdict %q, want %q", tc.name, v, tc.want)
			continue
		}
		if v == "" {
			continue
		}
		if cause != report.CauseLocalBusy || !strings.Contains(why, "line 7 1300 ms late") {
			t.Errorf("%s: cause %q, reason %q; want %s naming line 7, 1300 ms", tc.name, cause, why, report.CauseLocalBusy)
		}
	}
}
