package scenarios

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"synprobe/conformance"
	"synprobe/conformance/report"
	"synprobe/conformance/script"
	"synprobe/probe"
)

//go:embed closed listen validity options established timers
var files embed.FS

// Areas are the groups of the suite, in the order reports list them.
var Areas = []string{"closed", "listen", "validity", "options", "established", "timers"}

// Scenario is one check of the suite: a script, or a Go Check.
type Scenario struct {
	Name        string
	Area        string
	Level       string // MUST, SHOULD or info
	RFC         string
	Description string
	Needs       []string
	// Script is set for scripted scenarios; File is its embedded path.
	Script *script.Script
	File   string
	// Check is set for scenarios written in Go.
	Check *Check
	// Broken, when set, is why the script File could not be read or
	// parsed: the scenario is an error result and runs nothing.
	Broken string
	// Estimate is how long the scenario takes against a close target:
	// the audit starts the longest first so they overlap the rest.
	Estimate time.Duration
}

// Early reports whether the scenario can start before the application's
// profile and the closed port are known: it sends the application no data
// and needs no closed port. Premises the profile settles (SYN cookies) are
// applied to its result afterwards.
func (s Scenario) Early() bool {
	for _, n := range s.Needs {
		if conformance.Need(n) == conformance.NeedClosedPort {
			return false
		}
	}
	if s.Check != nil {
		return !s.Check.Application
	}
	if s.Script == nil {
		return true
	}
	for _, ev := range s.Script.Events {
		if p := ev.Packet; p != nil && (p.Len > 0 || p.LenAny || len(p.Payload) > 0) {
			return false
		}
	}
	for _, n := range s.Needs {
		if conformance.Need(n) == conformance.NeedSYNState {
			return false
		}
	}
	return true
}

// Check is a scenario written in Go.
type Check struct {
	Name, Area, Level, RFC, Description string
	Needs                               []string
	Estimate                            time.Duration
	// Application is set when the check sends the application data (the
	// request, the filler) or judges what it does: it waits for the
	// application's profile.
	Application bool
	Run         func(ctx context.Context, env *Env) report.Result
}

// Env is what a Go check works with.
type Env struct {
	Prober     *probe.Prober
	Target     netip.AddrPort
	ClosedPort uint16
	Timeout    time.Duration
	// Pace must be called before every SYN sent to the target.
	Pace func(context.Context) error
	// Facts are what the run knows of the target: the application's
	// profile (the data to send, the request), SYN cookies.
	Facts *conformance.Facts
	// ListenerDown says why the listener does not accept connections
	// ("" when it does): asked when a SYN to the open port met silence.
	ListenerDown func(context.Context) string

	// conns are the connections the check opened: what the local host
	// did to them is judged after it.
	conns []*conformance.Conn
}

var (
	suiteOnce sync.Once
	suite     []Scenario
	suiteErr  error
)

// Suite returns every scenario, scripts parsed once, in area order then by
// name.
func Suite() ([]Scenario, error) {
	suiteOnce.Do(func() { suite, suiteErr = load() })
	return suite, suiteErr
}

func load() ([]Scenario, error) {
	var out []Scenario
	err := fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".pkt") {
			return err
		}
		src, err := files.ReadFile(p)
		if err != nil {
			return err
		}
		s, err := script.Parse("scenarios/"+p, src)
		if err != nil {
			return fmt.Errorf("built-in scenario %s: %w", p, err)
		}
		out = append(out, Scenario{
			Name: s.Meta.Name, Area: path.Dir(p), Level: level(s.Meta.Level), RFC: s.Meta.RFC,
			Description: s.Meta.Description, Needs: s.Meta.Needs, Script: s, File: "scenarios/" + p,
			Estimate: s.Length(),
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, c := range checks {
		out = append(out, Scenario{
			Name: c.Name, Area: c.Area, Level: c.Level, RFC: c.RFC, Description: c.Description,
			Needs: c.Needs, Check: c, Estimate: c.Estimate,
		})
	}
	seen := map[string]bool{}
	for _, s := range out {
		if seen[s.Name] {
			return nil, fmt.Errorf("built-in scenarios: two are named %q", s.Name)
		}
		seen[s.Name] = true
	}
	areaRank := map[string]int{}
	for i, a := range Areas {
		areaRank[a] = i
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Area != out[j].Area {
			return areaRank[out[i].Area] < areaRank[out[j].Area]
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func level(l string) string {
	if l == "" {
		return "MUST"
	}
	return l
}

// Lookup finds a scenario by name.
func Lookup(name string) (Scenario, bool) {
	all, err := Suite()
	if err != nil {
		return Scenario{}, false
	}
	for _, s := range all {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}
