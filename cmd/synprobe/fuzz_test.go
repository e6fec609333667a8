package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCommandLine runs synprobe's command line, flag parsing and every
// check of arguments, with arbitrary arguments (NUL-separated) in a
// check-only context: every command stops before it reads a file,
// resolves a name, makes a lab or dials, so nothing here touches the host
// or the network. It must never panic; a refusal is exit 2 with one line
// naming the problem, escapes and all; anything else is exit 0 with nothing
// on standard error.
func FuzzCommandLine(f *testing.F) {
	for _, args := range [][]string{
		{"audit", "192.0.2.9:80"},
		{"audit", "--rate", "NaN", "--timeout", "1ns", "--jobs", "0", "--level", "must", "--only", "listen-*", "192.0.2.9:80"},
		{"audit", "--request", `GET / HTTP/1.0\r\n\r\n`, "--closed-port", "81", "--profile=false", "[2001:db8::1]:443"},
		{"run", "--target", "192.0.2.9:80", "--rate", "1e-10", "listen-rst"},
		{"run", "-t", "[fe80::1%eth0]:80", "-o", "/nonexistent/x", "-f", "json", "dir/"},
		{"handshake", "--timeout", "2h", "--source-port", "70000", "host.example:http"},
		{"handshake", "--netns", "x", "--pcap", "p.pcap", "--source", "192.0.2.1", "-i", "eth0", "192.0.2.9:80"},
		{"analyze", "--max-open", "0", "--max-steps", "9", "-"},
		{"analyze", "--only-failures", "-v", "capture.pcap"},
		{"lab", "--stack", "gvisor", "run", "--rate", "Inf", "listen-rst"},
		{"lab", "handshake", "[2001:db8::2]:81"},
		{"lab", "--stack", "bsd"},
		{"lab", "lab"},
		{"sweep", "--ports", "1-65535,0", "--rate", "0", "--exclude", "bl.conf", "--wait", "-1s", "192.0.2.0/24"},
		{"sweep", "-p", "80", "--progress", "always", "--allow-documentation", "10.0.0.0/8", "127.0.0.1"},
		{"scenarios", "--format", "json"},
		{"reflect", "--listen", "10.1.2.3:8080", "--allow", "10.9.8.0/24", "--report", "9", "--max-records", "0", "--expiry", "1h"},
		{"scenarios", "--causes"},
		{"handshake", "--bog\x1b[31mus", ":80"},
		{"--help"},
		{"frobnicate"},
		{},
	} {
		f.Add(strings.Join(args, "\x00"))
	}
	f.Fuzz(func(t *testing.T, line string) {
		var args []string
		if line != "" {
			args = strings.Split(line, "\x00")
		}
		if len(args) > 64 {
			return
		}
		ctx := context.WithValue(context.Background(), checkOnlyKey{}, true)
		var stdout, stderr bytes.Buffer
		code := run(ctx, append([]string{"synprobe"}, args...), &stdout, &stderr)
		msg := stderr.String()
		switch code {
		case exitOK:
			if msg != "" {
				t.Fatalf("%q: exit 0 with stderr %q", args, msg)
			}
		case exitUsage:
			body, ok := strings.CutSuffix(msg, "\n")
			if !ok || !strings.HasPrefix(body, "synprobe: ") || strings.Contains(body, "\n") {
				t.Fatalf("%q: stderr %q, want one line 'synprobe: ...'", args, msg)
			}
			if !utf8.ValidString(body) || strings.ContainsFunc(body, func(r rune) bool { return r < 0x20 || r == 0x7f || r == 0x9b }) {
				t.Fatalf("%q: stderr %q holds what a terminal would act on", args, msg)
			}
		default:
			t.Fatalf("%q: exit %d, stderr %q; want 0 or 2 when nothing runs", args, code, msg)
		}
	})
}
