package conformance

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"synprobe/internal/labtest"
	"synprobe/internal/serverlab"
	"synprobe/probe"
)

// TestProfileRealServers: the application profile says what each real
// server does, and whether SYN cookies answer the listener.
func TestProfileRealServers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: real servers")
	}
	tests := []struct {
		app, preset string
		check       func(f *Facts) string
	}{
		{"nginx", "", func(f *Facts) string {
			a := f.App
			switch {
			case !a.Accepts || a.SpeaksFirst:
				return "want accepts, not speaks first"
			case a.Answer.Bytes == 0 || !strings.Contains(a.Answer.First, "HTTP/1.1 404") || a.Answer.Then != ThenClosed:
				return "want a 404 to the default request, then a close (HTTP/1.0)"
			case a.Unexpected.Then != ThenClosed || a.Unexpected.Bytes == 0:
				return "want a 400 and a close for NUL bytes"
			case !a.FillerReaction.Quiet() || a.filler != fillerLetters:
				return "want the letters ignored, and chosen"
			case f.SYNCookies || !f.SYNCookiesKnown:
				return "want SYN cookies known to be off"
			}
			return ""
		}},
		{"nginx", "syncookies-always", func(f *Facts) string {
			if !f.SYNCookies || !f.SYNCookiesKnown {
				return "want SYN cookies found"
			}
			return ""
		}},
		{"sshd", "", func(f *Facts) string {
			a := f.App
			switch {
			case !a.SpeaksFirst || !strings.Contains(a.Greeting.First, "SSH-2.0-") || a.Greeting.Then != ThenOpen:
				return "want an SSH banner first, the connection left open"
			case a.Answer.Then != ThenReset:
				return "want a reset after the HTTP request"
			case !a.FillerReaction.Quiet():
				return "want the letters ignored"
			}
			return ""
		}},
		{"discard", "", func(f *Facts) string {
			a := f.App
			if !a.Accepts || a.SpeaksFirst || a.Answer.Bytes != 0 || a.Answer.Then != ThenOpen || !a.FillerReaction.Quiet() {
				return "want a quiet application that keeps the connection"
			}
			return ""
		}},
		{"daytime", "", func(f *Facts) string {
			if !f.ClosesAfterGreeting() || f.App.Greeting.Bytes == 0 {
				return "want a greeting and a close"
			}
			return ""
		}},
		{"echo", "", func(f *Facts) string {
			a := f.App
			if a.FillerReaction.Bytes != 20 || a.FillerReaction.Then != ThenOpen || a.filler != fillerLetters {
				return "want the 20 bytes echoed, the connection kept, the letters chosen"
			}
			return ""
		}},
		{"full-backlog", "", func(f *Facts) string {
			if f.App.Accepts || f.NotAccepting() == "" {
				return "want accepts=false"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.app+"/"+tt.preset, func(t *testing.T) {
			t.Parallel()
			b := serverlab.New(t, serverlab.Config{Apps: []string{tt.app}, Preset: tt.preset})
			target := netip.AddrPortFrom(serverlab.Target4, b.Port(tt.app))
			p := labtest.DialBed(t, b, target.Addr(), probe.DialConfig{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			f := Profile(ctx, p, ProfileConfig{Target: target})
			if msg := tt.check(f); msg != "" {
				t.Errorf("%s: %s\ngot %+v (SYN cookies %v, known %v)\n%s", tt.app, msg, *f.App, f.SYNCookies, f.SYNCookiesKnown, f.App.Summary())
			}
		})
	}
}
