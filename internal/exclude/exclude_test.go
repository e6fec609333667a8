package exclude

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestDefaultMatch(t *testing.T) {
	tests := []struct {
		addr      string
		allowDocs bool
		want      string // reason, "" for not excluded
	}{
		{"0.1.2.3", false, ReasonThisNetwork},
		{"127.0.0.1", false, ReasonLoopback},
		{"169.254.1.1", false, ReasonLinkLocal},
		{"224.0.0.1", false, ReasonMulticast},
		{"255.255.255.255", false, ReasonReserved},
		{"::1", false, ReasonLoopback},
		{"fe80::1", false, ReasonLinkLocal},
		{"ff02::1", false, ReasonMulticast},
		{"192.0.2.7", false, ReasonDocumentation},
		{"2001:db8::1", false, ReasonDocumentation},
		{"192.0.2.7", true, ""},
		{"10.1.2.3", false, ""},
		{"172.16.0.1", false, ""},
		{"192.168.1.1", false, ""},
		{"100.64.0.1", false, ""},
		{"fd00::1", false, ""},
		{"8.8.8.8", false, ""},
	}
	for _, tt := range tests {
		r, ok := Default(tt.allowDocs).Match(netip.MustParseAddr(tt.addr))
		if got := r.Reason; got != tt.want || ok != (tt.want != "") {
			t.Errorf("Default(%v).Match(%s) = %q, %v; want %q", tt.allowDocs, tt.addr, got, ok, tt.want)
		}
	}
}

func TestApply(t *testing.T) {
	l := Default(false)
	l.Add(netip.MustParsePrefix("10.0.0.128/25"), "excluded by test")
	s := l.Apply([]netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/24"),
		netip.MustParsePrefix("10.0.0.0/26"), // inside the first: swept once
		netip.MustParsePrefix("127.0.0.1/32"),
		netip.MustParsePrefix("192.0.2.0/30"),
	})
	if got, want := s.Prefixes, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/25")}; !slices.Equal(got, want) {
		t.Errorf("Apply prefixes = %v, want %v", got, want)
	}
	want := map[string]uint64{"excluded by test": 128, ReasonLoopback: 1, ReasonDocumentation: 4}
	for k, v := range want {
		if s.Excluded[k] != v {
			t.Errorf("Excluded[%q] = %d, want %d", k, s.Excluded[k], v)
		}
	}
	if s.Size() != 128 || s.ExcludedTotal() != 133 {
		t.Errorf("Size, ExcludedTotal = %d, %d; want 128, 133", s.Size(), s.ExcludedTotal())
	}
}

func TestApplySplits(t *testing.T) {
	var l List
	l.Add(netip.MustParsePrefix("10.0.0.5/32"), "x")
	s := l.Apply([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/29")})
	if s.Size() != 7 {
		t.Fatalf("size after removing one of 8 = %d, want 7 (%v)", s.Size(), s.Prefixes)
	}
	for _, p := range s.Prefixes {
		if p.Contains(netip.MustParseAddr("10.0.0.5")) {
			t.Errorf("%v still holds the excluded 10.0.0.5", p)
		}
	}
}

func TestReadBlocklist(t *testing.T) {
	var l List
	in := "# zmap blocklist\n10.0.0.0/8   # RFC1918\n\n192.168.1.1\n2001:db8::/48\n"
	if err := l.ReadBlocklist(strings.NewReader(in), "bl.conf"); err != nil {
		t.Fatalf("ReadBlocklist: %v", err)
	}
	if got := len(l.Rules()); got != 3 {
		t.Errorf("rules = %d, want 3", got)
	}
	if r, ok := l.Match(netip.MustParseAddr("10.9.9.9")); !ok || r.Reason != "excluded by bl.conf" {
		t.Errorf("Match(10.9.9.9) = %v, %v; want excluded by bl.conf", r, ok)
	}
	err := l.ReadBlocklist(strings.NewReader("10.0.0.0/8\nnot-an-address\n"), "bad.conf")
	if err == nil || !strings.Contains(err.Error(), "bad.conf:2") {
		t.Errorf("ReadBlocklist(bad) = %v, want an error naming bad.conf:2", err)
	}
}

func TestParsePrefix(t *testing.T) {
	tests := []struct{ in, want, err string }{
		{"10.1.2.3", "10.1.2.3/32", ""},
		{"10.1.2.3/24", "10.1.2.0/24", ""},
		{"::ffff:10.0.0.1", "10.0.0.1/32", ""},
		{"2001:db8::1", "2001:db8::1/128", ""},
		{"10.0.0.0/33", "", "not an address"},
		{"fe80::1%eth0", "", "zone"},
		{"host.example", "", "not an address"},
	}
	for _, tt := range tests {
		p, err := ParsePrefix(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParsePrefix(%q) error = %v, want one with %q", tt.in, err, tt.err)
			}
			continue
		}
		if err != nil || p.String() != tt.want {
			t.Errorf("ParsePrefix(%q) = %v, %v; want %s", tt.in, p, err, tt.want)
		}
	}
}

func FuzzReadBlocklist(f *testing.F) {
	f.Add("10.0.0.0/8\n# c\n192.168.0.1 # x\n")
	f.Add("::/0\n")
	f.Fuzz(func(t *testing.T, in string) {
		var l List
		if l.ReadBlocklist(strings.NewReader(in), "f") != nil {
			return
		}
		s := l.Apply([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/16")})
		if s.Size()+s.ExcludedTotal() != 1<<16 {
			t.Errorf("kept %d + excluded %d != 65536", s.Size(), s.ExcludedTotal())
		}
	})
}
