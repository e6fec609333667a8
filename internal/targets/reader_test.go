package targets

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"synprobe/internal/exclude"
)

// readAll reads every target of in, or the error that stopped the reader.
func readAll(t testing.TB, in string, opt Options) ([]string, Stats, error) {
	t.Helper()
	r := NewReader(strings.NewReader(in), opt)
	var got []string
	for {
		ap, err := r.Next()
		if err == io.EOF {
			return got, r.Stats(), nil
		}
		if err != nil {
			return got, r.Stats(), err
		}
		got = append(got, ap.String())
	}
}

func TestReaderFormats(t *testing.T) {
	tests := []struct {
		name string
		in   string
		port uint16
		want []string
	}{
		{"host:port", "10.0.0.1:80\n[2001:db8::1]:443\n", 0, []string{"10.0.0.1:80", "[2001:db8::1]:443"}},
		{"host with --port", "10.0.0.1\n2001:db8::2\n", 22, []string{"10.0.0.1:22", "[2001:db8::2]:22"}},
		{"comments and blanks", "# list\n\n  10.0.0.1:80  \n# end\n", 0, []string{"10.0.0.1:80"}},
		{"no final newline", "10.0.0.1:80\n10.0.0.2:80", 0, []string{"10.0.0.1:80", "10.0.0.2:80"}},
		{"CRLF", "10.0.0.1:80\r\n10.0.0.2:81\r\n", 0, []string{"10.0.0.1:80", "10.0.0.2:81"}},
		{"mapped v4", "[::ffff:10.0.0.1]:80\n", 0, []string{"10.0.0.1:80"}},
		{"CIDR", "10.0.0.0/30\n", 80, []string{"10.0.0.0:80", "10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"}},
		{"CIDR host bits dropped", "10.0.0.3/31\n", 80, []string{"10.0.0.2:80", "10.0.0.3:80"}},
		{"CIDR v6", "2001:db8::/127\n", 443, []string{"[2001:db8::]:443", "[2001:db8::1]:443"}},
		{"CIDR then host", "10.0.0.0/31\n10.9.9.9:1\n", 80, []string{"10.0.0.0:80", "10.0.0.1:80", "10.9.9.9:1"}},
		{"masscan -oL",
			"#masscan\nopen tcp 80 10.0.0.1 1700000000\nopen tcp 443 10.0.0.2 1700000001\nopen udp 53 10.0.0.3 1700000002\nbanner tcp 80 10.0.0.1 1700000003 http HTTP/1.0\n# end\n",
			0, []string{"10.0.0.1:80", "10.0.0.2:443"}},
		{"masscan -oJ",
			"[\n{   \"ip\": \"10.0.0.1\",   \"timestamp\": \"1700000000\", \"ports\": [ {\"port\": 80, \"proto\": \"tcp\", \"status\": \"open\", \"reason\": \"syn-ack\", \"ttl\": 64} ] },\n{   \"ip\": \"10.0.0.2\", \"ports\": [ {\"port\": 22, \"proto\": \"tcp\", \"status\": \"open\"}, {\"port\": 23, \"proto\": \"tcp\", \"status\": \"closed\"} ] }\n]\n",
			0, []string{"10.0.0.1:80", "10.0.0.2:22"}},
		{"masscan -oJ finished", "{\"ip\": \"10.0.0.1\", \"ports\": [{\"port\": 80}]},\n{finished: 1}\n", 0, []string{"10.0.0.1:80"}},
		{"nmap -oG",
			"# Nmap 7.94 scan initiated\nHost: 10.0.0.1 ()\tStatus: Up\nHost: 10.0.0.1 ()\tPorts: 22/open/tcp//ssh///, 80/open/tcp//http///, 81/closed/tcp//hosts2-ns///, 53/open/udp//domain///\tIgnored State: filtered (996)\n# Nmap done\n",
			0, []string{"10.0.0.1:22", "10.0.0.1:80"}},
		{"zmap CSV", "saddr,sport,classification,success,repeat\n10.0.0.1,80,synack,1,0\n10.0.0.2,80,rst,0,0\n10.0.0.1,80,synack,1,1\n", 0, []string{"10.0.0.1:80"}},
		{"zmap saddr only", "saddr\n", 0, nil},
		{"zmap CSV without sport", "saddr,daddr\n10.0.0.7,10.1.1.1\n", 443, []string{"10.0.0.7:443"}},
		{"sweep JSONL",
			`{"addr":"10.0.0.1","port":80,"state":"open","ttl":64,"window":65160,"options":"M1460,S,T,N,W7","attempt":1}` + "\n" +
				`{"addr":"10.0.0.2","port":80,"state":"closed","attempt":1}` + "\n",
			0, []string{"10.0.0.1:80"}},
		{"mixed", "10.0.0.1:1\nopen tcp 2 10.0.0.2 0\n10.0.0.3\n", 3, []string{"10.0.0.1:1", "10.0.0.2:2", "10.0.0.3:3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := readAll(t, tt.in, Options{Name: "f", DefaultPort: tt.port})
			if err != nil {
				t.Fatalf("error %v; want %v", err, tt.want)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReaderBareZmapList: zmap's default output is one address a line,
// which is a list of HOSTs.
func TestReaderBareZmapList(t *testing.T) {
	got, _, err := readAll(t, "10.0.0.1\n10.0.0.2\n", Options{DefaultPort: 80})
	if err != nil || !slices.Equal(got, []string{"10.0.0.1:80", "10.0.0.2:80"}) {
		t.Errorf("got %v, %v; want two targets on port 80", got, err)
	}
}

func TestReaderBadLines(t *testing.T) {
	tests := []struct {
		in   string
		port uint16
		want string
	}{
		{"10.0.0.1:80\n10.0.0.1\n", 0, "f:2: \"10.0.0.1\" names no port: give HOST:PORT, or --port"},
		{"10.0.0.0/24\n", 0, "f:1: 10.0.0.0/24 names no port"},
		{"10.0.0.1:0\n", 0, "f:1: \"10.0.0.1:0\": port 0"},
		{"10.0.0.1:99999\n", 0, `f:1: "10.0.0.1:99999": port "99999" is not a number from 1 to 65535`},
		{"10.0.0.0/33\n", 80, `f:1: "10.0.0.0/33" is not an address or a CIDR prefix`},
		{"2001:db8::/64\n", 80, "f:1: 2001:db8::/64 has 2^64 addresses"},
		{"\n\nfe80::1%eth0\n", 80, "f:3: \"fe80::1%eth0\": an address with a zone"},
		{"example.com:80\n", 0, `f:1: "example.com": host names are not resolved here`},
		{"what is this?\n", 80, `f:1: "what is this?" is not HOST:PORT, HOST, CIDR or a line of masscan`},
		{"open tcp http 10.0.0.1 0\n", 0, `f:1: masscan line: port "http"`},
		{"open tcp 80 ten 0\n", 0, `f:1: masscan line: "ten" is not an IP address`},
		{"Host: \tPorts: 80/open/tcp\n", 0, `f:1: nmap -oG line: no address after "Host:"`},
		{"Host: 10.0.0.1 ()\tPorts: 80-open\n", 0, `f:1: nmap -oG line: port entry "80-open" is not PORT/STATE/PROTO`},
		{"10.0.0.1,80\n", 0, "f:1: a CSV line with no zmap header naming saddr"},
		{"saddr,sport\n10.0.0.1\n", 0, "f:2: \"10.0.0.1\" names no port"},
		{"saddr,sport\n10.0.0.1,80,x\n", 0, "f:2: zmap CSV row has 3 fields, its header 2"},
		{"saddr,sport\nx,80\n", 0, `f:2: zmap CSV row: saddr: "x" is not an IP address`},
		{"{\"ip\": 5}\n", 0, "f:1: not a JSON object of masscan -oJ or synprobe sweep"},
		{"{\"foo\": 1}\n", 0, `f:1: a JSON object with neither "ip" (masscan -oJ) nor "addr" (synprobe sweep)`},
		{"{\"addr\": \"10.0.0.1\", \"port\": 0, \"state\": \"open\"}\n", 0, "f:1: sweep JSON: port 0"},
		{"{\"ip\": \"10.0.0.1\", \"ports\": [{\"port\": 70000}]}\n", 0, "f:1: masscan JSON: port 70000"},
		{strings.Repeat("1", MaxLineLength+10) + "\n", 0, "f:1: line longer than"},
	}
	for _, tt := range tests {
		_, _, err := readAll(t, tt.in, Options{Name: "f", DefaultPort: tt.port})
		var le *LineError
		if err == nil || !errors.As(err, &le) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%.40q: error %v; want a line error containing %q", tt.in, err, tt.want)
		}
	}
}

// TestReaderStopsAtError: targets before a bad line come out, then the
// error, again and again.
func TestReaderStopsAtError(t *testing.T) {
	r := NewReader(strings.NewReader("10.0.0.1:1\nbad line\n10.0.0.2:2\n"), Options{Name: "f"})
	if ap, err := r.Next(); err != nil || ap.String() != "10.0.0.1:1" {
		t.Fatalf("first: %v %v; want 10.0.0.1:1", ap, err)
	}
	for range 2 {
		if _, err := r.Next(); err == nil || !strings.HasPrefix(err.Error(), "f:2: ") {
			t.Errorf("then: %v; want the error of line 2", err)
		}
	}
}

func TestReaderLookup(t *testing.T) {
	lookup := func(_ context.Context, _, host string) ([]netip.Addr, error) {
		if host == "web.example" {
			return []netip.Addr{netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("10.0.0.5")}, nil
		}
		return nil, errors.New("no such host")
	}
	got, _, err := readAll(t, "web.example:80\nweb.example\n", Options{Lookup: lookup, DefaultPort: 8080})
	if err != nil || !slices.Equal(got, []string{"10.0.0.5:80", "10.0.0.5:8080"}) {
		t.Errorf("got %v, %v; want the IPv4 address on ports 80 and 8080", got, err)
	}
	if _, _, err := readAll(t, "nowhere.example:80\n", Options{Name: "f", Lookup: lookup}); err == nil || !strings.Contains(err.Error(), `f:1: cannot resolve "nowhere.example"`) {
		t.Errorf("error %v; want f:1: cannot resolve", err)
	}
}

func TestReaderExclusions(t *testing.T) {
	ex := exclude.Default(false)
	ex.Add(netip.MustParsePrefix("10.1.0.0/24"), "excluded by test")
	in := "127.0.0.1:80\n192.0.2.1:80\n10.1.0.5:80\n10.0.0.1:80\n10.1.0.0/23\n224.0.0.1\n[fe80::1]:80\n"
	got, st, err := readAll(t, in, Options{DefaultPort: 80, Exclude: ex})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1+256 || got[0] != "10.0.0.1:80" || got[1] != "10.1.1.0:80" {
		t.Errorf("got %d targets starting %v; want 10.0.0.1 and 10.1.1.0/24", len(got), got[:min(3, len(got))])
	}
	want := map[string]uint64{
		exclude.ReasonLoopback: 1, exclude.ReasonDocumentation: 1, "excluded by test": 257,
		exclude.ReasonMulticast: 1, exclude.ReasonLinkLocal: 1,
	}
	for reason, n := range want {
		if st.Excluded[reason] != n {
			t.Errorf("excluded for %q: %d, want %d (all: %v)", reason, st.Excluded[reason], n, st.Excluded)
		}
	}
	if st.ExcludedTotal() != 261 || st.Targets != 257 {
		t.Errorf("stats %+v; want 261 excluded, 257 targets", st)
	}
	// Private ranges are never excluded by default; documentation ones
	// are, unless allowed.
	got, _, _ = readAll(t, "192.168.1.1:80\n172.16.0.1:80\n192.0.2.1:80\n", Options{Exclude: exclude.Default(true)})
	if len(got) != 3 {
		t.Errorf("with documentation allowed: %v; want all three", got)
	}
}

func TestReaderNotOpenCounted(t *testing.T) {
	in := "open udp 53 10.0.0.3 0\nHost: 10.0.0.1 ()\tPorts: 81/closed/tcp//x///\n{\"addr\":\"10.0.0.1\",\"port\":1,\"state\":\"silent\"}\n"
	got, st, err := readAll(t, in, Options{})
	if err != nil || len(got) != 0 || st.NotOpen != 3 {
		t.Errorf("got %v %v, not open %d; want nothing and 3 not open", got, err, st.NotOpen)
	}
}

// TestReaderWholeV4Space: the last address of the space ends the walk.
func TestReaderEndOfSpace(t *testing.T) {
	got, _, err := readAll(t, "255.255.255.254/31\n", Options{DefaultPort: 1})
	if err != nil || !slices.Equal(got, []string{"255.255.255.254:1", "255.255.255.255:1"}) {
		t.Errorf("got %v %v", got, err)
	}
}
