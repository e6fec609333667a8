package reflector

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzParseRequest: the request parser never panics, never repeats the
// request in its errors, and what it accepts the client can send back.
func FuzzParseRequest(f *testing.F) {
	f.Add([]byte(`{"v":1,"port":8080,"within_ms":5000,"seq":[1,2],"tsval":[3],"payload_sha256":["` + strings.Repeat("ab", 32) + `"]}`))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		req, err := parseRequest(line)
		if err != nil {
			if bytes.ContainsRune(line, '{') && len(line) > 2 && strings.Contains(err.Error(), string(line)) {
				t.Fatalf("error %q repeats the request", err)
			}
			return
		}
		b, err := req.marshal()
		if err != nil {
			t.Fatalf("accepted %q, but marshal of %+v fails: %v", line, req, err)
		}
		if _, err := parseRequest(b[:len(b)-1]); err != nil {
			t.Fatalf("accepted %q, but not its re-encoding %q: %v", line, b, err)
		}
	})
}

// FuzzReadAnswer: the client's decoder never panics and never returns more
// records than the protocol allows.
func FuzzReadAnswer(f *testing.F) {
	f.Add([]byte(`{"type":"end","v":1,"port":2,"records":0,"truncated":false,"kept":0,"capacity":10,"expiry_ms":1000,"oldest_age_us":0,"overwritten":0,"kernel_drops":0}` + "\n"))
	f.Add([]byte(`{"type":"error","error":"bad request: no"}` + "\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		a, err := readAnswer(bytes.NewReader(text))
		if err == nil && len(a.Records) > MaxAnswerRecords {
			t.Fatalf("%d records, more than %d", len(a.Records), MaxAnswerRecords)
		}
	})
}
