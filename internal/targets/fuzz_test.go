package targets

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/netip"
	"strings"
	"testing"

	"synprobe/internal/exclude"
	"synprobe/internal/fuzzseed"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite the fuzz seed corpora in testdata/fuzz")

// readerSeeds are one input of every format, and bad ones.
var readerSeeds = map[string][]byte{
	"hostport":   []byte("10.0.0.1:80\n[2001:db8::1]:443\n# c\n\n"),
	"host":       []byte("10.0.0.1\nexample.com\n"),
	"cidr":       []byte("10.0.0.0/29\n2001:db8::/126\n"),
	"masscan-oL": []byte("#masscan\nopen tcp 80 10.0.0.1 1700000000\n# end\n"),
	"masscan-oJ": []byte("[\n{\"ip\": \"10.0.0.1\", \"ports\": [{\"port\": 80, \"proto\": \"tcp\", \"status\": \"open\"}]},\n{finished: 1}\n]\n"),
	"nmap-oG":    []byte("Host: 10.0.0.1 ()\tPorts: 22/open/tcp//ssh///, 80/closed/tcp//http///\n"),
	"zmap":       []byte("saddr,sport,success\n10.0.0.1,80,1\n"),
	"sweep":      []byte("{\"addr\":\"10.0.0.1\",\"port\":80,\"state\":\"open\"}\n"),
	"bad":        []byte("open tcp x 1\nHost: \n{\n10.0.0.0/200\n"),
}

var doneSeeds = map[string][]byte{
	"report":  []byte("{\"target\":{\"address\":\"10.0.0.1:80\"}}\n{\"target\":\"[::1]:1\",\"interrupted\":true}\n{\"tar"),
	"bad":     []byte("{}\n"),
	"numbers": []byte("{\"target\":5}\n"),
}

func TestFuzzSeedCorpus(t *testing.T) {
	fuzzseed.Sync(t, "testdata/fuzz/FuzzReader", readerSeeds, *updateSeeds)
	fuzzseed.Sync(t, "testdata/fuzz/FuzzReadDone", doneSeeds, *updateSeeds)
}

// FuzzReader: any input gives targets with a port, or one line error
// naming its line; never a panic. The walk of a CIDR is capped so that a
// fuzzed /0 ends.
func FuzzReader(f *testing.F) {
	for _, s := range readerSeeds {
		f.Add(s)
	}
	lookup := func(context.Context, string, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("10.9.9.9")}, nil
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := NewReader(strings.NewReader(string(in)), Options{Name: "f", DefaultPort: 7, Exclude: exclude.Default(false), Shard: Shard{0, 2}, Lookup: lookup})
		for range 10000 {
			ap, err := r.Next()
			if err == io.EOF {
				return
			}
			var le *LineError
			if err != nil {
				if !errors.As(err, &le) || le.Line < 1 || !strings.HasPrefix(err.Error(), "f:") {
					t.Fatalf("error %v is not a line error", err)
				}
				return
			}
			if !ap.IsValid() || ap.Port() == 0 || ap.Addr().Zone() != "" || ap.Addr().Is4In6() {
				t.Fatalf("target %v: want an address without zone or mapping, and a port", ap)
			}
		}
	})
}

func FuzzReadDone(f *testing.F) {
	for _, s := range doneSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := ReadDone(strings.NewReader(string(in)), "f")
		if err == nil && d == nil {
			t.Fatal("no set and no error")
		}
	})
}
