package lab

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestRequestScanner(t *testing.T) {
	long := "GET /5 " + strings.Repeat("x", maxRequestSize) + "\r\n\r\n"
	tests := []struct {
		name   string
		stream string
		want   []int
	}{
		{"none", "", nil},
		{"incomplete", "GET /10\r\n", nil},
		{"bare", "GET /10\r\n\r\n", []int{10}},
		{"http/1.0 with headers", "GET /7 HTTP/1.0\r\nHost: x\r\n\r\n", []int{7}},
		{"zero", "GET /0\r\n\r\n", []int{0}},
		{"not a number", "GET /index.html HTTP/1.0\r\n\r\n", []int{DefaultResponseSize}},
		{"empty path", "GET / HTTP/1.0\r\n\r\n", []int{DefaultResponseSize}},
		{"signed", "GET /+5\r\n\r\n", []int{DefaultResponseSize}},
		{"query", "GET /5?x\r\n\r\n", []int{DefaultResponseSize}},
		{"capped", "GET /1048577\r\n\r\n", []int{MaxResponseSize}},
		{"huge", "GET /99999999999999999999999999\r\n\r\n", []int{MaxResponseSize}},
		{"pipelined", "GET /1\r\n\r\nGET /2\r\n\r\nGET /3\r\n\r\n", []int{1, 2, 3}},
		{"leading empty lines", "GET /1\r\n\r\n\r\nGET /2\r\n\r\n", []int{1, 2}},
		{"not GET", "POST /1\r\n\r\nHEAD /2\r\n\r\nget /3\r\n\r\nGET /4\r\n\r\n", []int{4}},
		{"too long", long + "GET /6\r\n\r\n", []int{6}},
		{"just short enough", "GET /5 " + strings.Repeat("x", maxRequestSize-7) + "\r\n\r\n", []int{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Whole, then byte by byte: the split must not matter.
			for _, chunk := range []int{len(tt.stream) + 1, 1} {
				if got := scanAll([]byte(tt.stream), chunk); !slices.Equal(got, tt.want) {
					t.Errorf("in pieces of %d: got sizes %v, want %v", chunk, got, tt.want)
				}
			}
		})
	}
}

func scanAll(stream []byte, chunk int) []int {
	var r requestScanner
	var sizes []int
	for len(stream) > 0 {
		n := min(chunk, len(stream))
		sizes = append(sizes, r.Feed(stream[:n])...)
		stream = stream[n:]
	}
	return sizes
}

func TestResponse(t *testing.T) {
	got := response(30)
	want := "HTTP/1.0 200 OK\r\nContent-Length: 30\r\n\r\nabcdefghijklmnopqrstuvwxyzabcd"
	if string(got) != want {
		t.Errorf("response(30) = %q, want %q", got, want)
	}
}

// FuzzRequestScanner feeds the application's request parser arbitrary
// streams split at arbitrary points: it must not panic, must give the same
// answer however the stream is split, and must not buffer without bound.
func FuzzRequestScanner(f *testing.F) {
	f.Add([]byte("GET /10\r\n\r\n"), uint8(1))
	f.Add([]byte("GET /x HTTP/1.0\r\nHost: a\r\n\r\nGET /3\r\n\r\n"), uint8(5))
	f.Add([]byte("\r\n\r\n\r\n\r\r\n"), uint8(2))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		whole := scanAll(stream, len(stream)+1)
		var r requestScanner
		var split []int
		step := int(chunk%64) + 1
		for rest := stream; len(rest) > 0; {
			n := min(step, len(rest))
			split = append(split, r.Feed(rest[:n])...)
			rest = rest[n:]
			if len(r.buf) > maxRequestSize+len(endOfRequest)-1 {
				t.Fatalf("scanner holds %d bytes, want at most %d", len(r.buf), maxRequestSize+len(endOfRequest)-1)
			}
		}
		if !slices.Equal(whole, split) {
			t.Fatalf("whole stream gives %v, in pieces of %d gives %v", whole, step, split)
		}
		for _, n := range whole {
			if n < 0 || n > MaxResponseSize {
				t.Fatalf("size %d out of range [0, %d]", n, MaxResponseSize)
			}
		}
		if got, want := len(whole), bytes.Count(stream, []byte("GET /")); got > want {
			t.Fatalf("%d requests answered from a stream with %d GETs", got, want)
		}
	})
}
