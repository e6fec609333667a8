package summary

import (
	"bytes"
	"flag"
	"strings"
	"testing"

	"synprobe/internal/fuzzseed"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpus in testdata/fuzz")

var readSeeds = map[string][]byte{
	"report":      []byte(`{"command":"audit","target":{"address":"10.0.0.1:80"},"results":[{"name":"a","verdict":"fail","cause":"stack","reason":"x"}],"fingerprint":{"ttl":{"initial":64},"syn_ack":{"window":1,"options":"<mss 1,wscale 2>"},"isn":{"one_4tuple":{"rate_hz":250000},"adjacent_ports":{"random_bits":31}},"timestamps":{"answered":true,"rate_hz":999}},"path":{"findings":[{"kind":"nat","verdict":"info"}]}}` + "\n"),
	"interrupted": []byte(`{"command":"handshake","target":"[2001:db8::1]:443","interrupted":true,"results":[]}` + "\n" + `{"command":"handshake","target":"[2001:db8::1]:443","results":[{"name":"handshake","verdict":"pass"}]}`),
	"sweep":       []byte(`{"addr":"10.0.0.1","port":80,"state":"open","ttl":50,"window":5,"options":"M1,S"}` + "\n" + `{"addr":"10.0.0.2","port":80,"state":"closed"}` + "\n"),
	"bad":         []byte("{\n{}\n"),
	"trace":       []byte(`{"command":"trace","target":{"address":"10.0.0.3:80"},"results":[{"name":"trace","verdict":"warn","cause":"path:drop(syn)"}],"path":{"mode":"trace","verdict":"warn","findings":[{"kind":"drop(syn)","verdict":"warn"}]}}` + "\n" + `{"command":"trace","target":{"address":"10.0.0.4:80"},"results":[{"name":"trace","verdict":"pass"}],"path":{"mode":"trace","verdict":"pass","findings":[]},"fingerprint":{"timestamps":{"nominal_hz":1000,"per_4tuple_offsets":false},"isn":{"adjacent_ports":{"random_bits":3}}}}` + "\n"),
}

func TestFuzzSeedCorpus(t *testing.T) {
	fuzzseed.Sync(t, "testdata/fuzz/FuzzRead", readSeeds, *updateSeeds)
}

// FuzzRead: any input is counted or refused with a line error, never a
// panic, and every writer writes what was counted.
func FuzzRead(f *testing.F) {
	for _, s := range readSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s := New()
		err := s.Read(bytes.NewReader(in), "f")
		if err != nil && !strings.HasPrefix(err.Error(), "f:") {
			t.Fatalf("error %v does not name the line", err)
		}
		s.Finish()
		var b bytes.Buffer
		if err := s.WriteText(&b); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteCSV(&b); err != nil {
			t.Fatal(err)
		}
		if err := s.WriteJSON(&b); err != nil {
			t.Fatal(err)
		}
	})
}
