package serverlab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"synprobe/internal/sockdiag"
)

// The addresses of every bed: documentation (RFC 5737) and unique local
// (RFC 4193) ranges, never routed, in namespaces that have no route out.
var (
	Probe4  = netip.MustParseAddr("198.51.100.1")
	Target4 = netip.MustParseAddr("198.51.100.2")
	Probe6  = netip.MustParseAddr("fd00:198:51:100::1")
	Target6 = netip.MustParseAddr("fd00:198:51:100::2")
)

// Prefix lengths of the addresses on the veths.
const (
	Bits4 = 24
	Bits6 = 64
)

// ClosedPort has no listener in the target namespace: the kernel answers
// a SYN to it with a RST.
const ClosedPort = 81

// NamePrefix starts the name of every namespace, veth and temporary
// directory a bed makes; a random suffix tells beds apart.
const NamePrefix = "srvlab-"

// The large file nginx serves, so that a request for it makes it send a
// lot of data (synprobe audit --request 'GET /big HTTP/1.0\r\n\r\n').
const (
	BigPath = "/big"
	BigSize = 200 * 1024
)

// Kind is what an application does on a connection, as a probe sees it.
type Kind string

// The kinds of application a bed has.
const (
	KindHTTP                 Kind = "http"                    // answers a request with a response, large on demand
	KindSpeaksFirst          Kind = "speaks-first"            // sends a banner, then waits for the client
	KindRequestResponse      Kind = "request-response"        // answers each request line, keeps the connection
	KindReadsNeverWrites     Kind = "reads-never-writes"      // reads everything, sends nothing
	KindSpeaksFirstAndCloses Kind = "speaks-first-and-closes" // sends a line and closes at once
	KindEcho                 Kind = "echo"                    // sends back what it reads
	KindStreams              Kind = "streams"                 // sends without end from the start, fills any window
	KindOneAtATime           Kind = "one-at-a-time"           // accepts one connection, echoes it to its end, then the next (backlog 2): its queue fills while clients hold connections
	KindIdleReset            Kind = "idle-reset"              // reads, and aborts a connection idle for 500 ms (SO_LINGER 0: a RST)
	KindDeferAccept          Kind = "defer-accept"            // TCP_DEFER_ACCEPT: a bare ACK leaves the connection half-open until data comes; reads and discards
	KindNeverAccepts         Kind = "never-accepts"           // listen(backlog 1), no accept: the first connections complete, then SYNs are dropped
	KindFullBacklog          Kind = "full-backlog"            // as never-accepts, with the queue already full: every SYN is dropped
)

// App is one application of a bed: a port in the target namespace, on
// both addresses.
type App struct {
	Name   string // short name: nginx, sshd, redis, memcached, discard, daytime, echo, chargen, never-accepts, full-backlog, one-at-a-time, idle-reset, defer-accept
	Kind   Kind
	Port   uint16
	Server string // what serves it: a server of the bed (nginx, sshd, redis-server, memcached, xinetd) or "go" (a listener of the bed's own)
}

// apps is the catalogue, in the order Apps lists it.
var apps = []App{
	{"nginx", KindHTTP, 80, "nginx"},
	{"sshd", KindSpeaksFirst, 22, "sshd"},
	{"redis", KindRequestResponse, 6379, "redis-server"},
	{"memcached", KindRequestResponse, 11211, "memcached"},
	{"discard", KindReadsNeverWrites, 9, "xinetd"},
	{"daytime", KindSpeaksFirstAndCloses, 13, "xinetd"},
	{"echo", KindEcho, 7, "xinetd"},
	{"chargen", KindStreams, 19, "xinetd"},
	{"never-accepts", KindNeverAccepts, 8001, "go"},
	{"one-at-a-time", KindOneAtATime, 8003, "go"},
	{"idle-reset", KindIdleReset, 8004, "go"},
	{"defer-accept", KindDeferAccept, 8005, "go"},
	{"full-backlog", KindFullBacklog, 8002, "go"},
}

// Apps is every app a bed can run.
func Apps() []App { return slices.Clone(apps) }

// AppByName finds an app of the catalogue.
func AppByName(name string) (App, bool) {
	i := slices.IndexFunc(apps, func(a App) bool { return a.Name == name })
	if i < 0 {
		return App{}, false
	}
	return apps[i], true
}

// binary is a program the bed runs and the Debian package that installs it.
type binary struct{ name, pkg string }

// binaries are the programs of each server, and the tools tests may
// Require.
var binaries = map[string][]binary{
	"nginx":        {{"nginx", "nginx-light"}},
	"sshd":         {{"sshd", "openssh-server"}, {"ssh-keygen", "openssh-client"}},
	"redis-server": {{"redis-server", "redis-server"}},
	"memcached":    {{"memcached", "memcached"}},
	"xinetd":       {{"xinetd", "xinetd"}},
	"go":           nil,
	"ip":           {{"ip", "iproute2"}},
	"ss":           {{"ss", "iproute2"}},
	"ethtool":      {{"ethtool", "ethtool"}},
}

// binDirs are where Debian puts programs, for a PATH that lacks the sbin
// directories (they are root's).
var binDirs = []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"}

// lookPath finds a program in PATH or in binDirs.
func lookPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range binDirs {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in PATH or %s", name, strings.Join(binDirs, ", "))
}

// MissingError lists programs a bed needs that are not installed.
type MissingError struct {
	Programs []string // with their package: "nginx (install nginx-light)"
}

func (e *MissingError) Error() string { return "missing: " + strings.Join(e.Programs, ", ") }

// Missing returns a *MissingError naming every program that names need
// and that is not installed, or nil. A name is an app (nginx, echo, ...),
// a server (redis-server, xinetd) or a tool tests use (ip, ss, ethtool);
// no names means every app.
func Missing(names ...string) error {
	if len(names) == 0 {
		for _, a := range apps {
			names = append(names, a.Name)
		}
	}
	var need []binary
	for _, n := range names {
		if a, ok := AppByName(n); ok {
			n = a.Server
		}
		bs, ok := binaries[n]
		if !ok {
			return fmt.Errorf("serverlab: no app, server or tool %q (known: %s)", n, strings.Join(known(), ", "))
		}
		for _, b := range bs {
			if !slices.Contains(need, b) {
				need = append(need, b)
			}
		}
	}
	return missing(need)
}

func missing(need []binary) error {
	var e MissingError
	for _, b := range need {
		if _, err := lookPath(b.name); err != nil {
			e.Programs = append(e.Programs, fmt.Sprintf("%s (install %s)", b.name, b.pkg))
		}
	}
	if len(e.Programs) == 0 {
		return nil
	}
	return &e
}

func known() []string {
	var out []string
	for _, a := range apps {
		out = append(out, a.Name)
	}
	for _, n := range slices.Sorted(maps.Keys(binaries)) {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// Require skips the test, with the one line of a MissingError, unless
// everything names need is installed (see Missing). An unknown name fails
// the test.
func Require(t testing.TB, names ...string) {
	t.Helper()
	err := Missing(names...)
	var me *MissingError
	switch {
	case err == nil:
	case errors.As(err, &me):
		t.Skip(err.Error())
	default:
		t.Fatal(err)
	}
}

// Preset is a named set of kernel settings for the target namespace.
type Preset struct {
	Name    string
	Sysctls map[string]string // "net.ipv4.tcp_sack" -> "0"
}

// stock are the defaults of a fresh namespace on Linux, set explicitly so
// that a bed is the same whatever the kernel's defaults become, and every
// other preset changes one of them.
var stock = map[string]string{
	"net.ipv4.tcp_timestamps":     "1",
	"net.ipv4.tcp_sack":           "1",
	"net.ipv4.tcp_window_scaling": "1",
	"net.ipv4.tcp_syncookies":     "1",
	"net.ipv4.tcp_synack_retries": "5",
	"net.ipv4.tcp_ecn":            "2",
}

// presets are stock with one change each.
var presets = []struct {
	name, sysctl, value string
}{
	{"stock", "", ""},
	{"timestamps-off", "net.ipv4.tcp_timestamps", "0"},
	{"sack-off", "net.ipv4.tcp_sack", "0"},
	{"wscale-off", "net.ipv4.tcp_window_scaling", "0"},
	{"syncookies-always", "net.ipv4.tcp_syncookies", "2"},
	{"synack-retries-1", "net.ipv4.tcp_synack_retries", "1"},
	{"ecn-on", "net.ipv4.tcp_ecn", "1"},
}

// Presets lists the presets: stock (Linux's defaults), timestamps-off,
// sack-off, wscale-off, syncookies-always (tcp_syncookies=2),
// synack-retries-1 and ecn-on (tcp_ecn=1, where stock only answers ECN).
func Presets() []Preset {
	var out []Preset
	for _, p := range presets {
		out = append(out, presetOf(p.name, p.sysctl, p.value))
	}
	return out
}

// PresetByName finds a preset; "" is stock.
func PresetByName(name string) (Preset, bool) {
	if name == "" {
		name = "stock"
	}
	for _, p := range presets {
		if p.name == name {
			return presetOf(p.name, p.sysctl, p.value), true
		}
	}
	return Preset{}, false
}

func presetOf(name, sysctl, value string) Preset {
	s := maps.Clone(stock)
	if sysctl != "" {
		s[sysctl] = value
	}
	return Preset{Name: name, Sysctls: s}
}

// Offloads are a veth's segmentation offloads.
type Offloads struct {
	GRO bool // generic receive offload: merges received segments
	GSO bool // generic segmentation offload: segments cut late, in software
	TSO bool // TCP segmentation offload: veth passes super-segments whole
}

func (o Offloads) String() string {
	on := func(b bool) string {
		if b {
			return "on"
		}
		return "off"
	}
	return fmt.Sprintf("gro %s gso %s tso %s", on(o.GRO), on(o.GSO), on(o.TSO))
}

// Side names one end of the bed.
type Side int

// The two ends.
const (
	SideProbe Side = iota
	SideTarget
)

func (s Side) String() string {
	if s == SideProbe {
		return "probe"
	}
	return "target"
}

// Config describes a bed.
type Config struct {
	// Preset names the kernel settings of the target namespace (see
	// Presets); "" is stock.
	Preset string
	// Sysctls are more per-namespace settings for the target namespace,
	// applied after the preset's: "net.ipv4.tcp_fin_timeout" -> "5".
	// Only net.* ones: the others are the host's.
	Sysctls map[string]string
	// Apps names the apps to start; nil starts them all, an empty slice
	// none.
	Apps []string
	// Offloads are set on both veths before the servers start. nil
	// switches them all off, so that segments cross the veth cut to the
	// MSS as on a wire (as the lab does); SetOffloads changes them later.
	Offloads *Offloads
}

// Conn is a TCP socket in the target namespace, as `ss -tan` shows it.
type Conn = sockdiag.Conn

// FormatConns formats conns as `ss -tan` does, with its header.
func FormatConns(conns []Conn) string { return sockdiag.Format(conns) }

// startTimeout bounds New's start of a bed: a safety net against a hung
// test on a slow, shared machine, not a measurement.
const startTimeout = 30 * time.Second

// Bed is a running test bed (see the package documentation).
type Bed struct {
	// ID is the random suffix in each of the bed's names.
	ID string
	// ProbeNS and TargetNS are the named namespaces (ip netns): synprobe
	// --netns ProbeNS probes the target from the probe side.
	ProbeNS, TargetNS string
	// ProbeIf and TargetIf are the veths, in ProbeNS and TargetNS.
	ProbeIf, TargetIf string
	// Dir is the bed's temporary directory: a directory per server with
	// its configuration and its log.
	Dir string
	// Apps are the apps running, in catalogue order.
	Apps []App
	// Sysctls are the settings applied in the target namespace.
	Sysctls map[string]string

	sys bedSys
}

// Port is the port of a running app, 0 if the bed does not run it.
func (b *Bed) Port(name string) uint16 {
	for _, a := range b.Apps {
		if a.Name == name {
			return a.Port
		}
	}
	return 0
}

// New starts a bed for a test and closes it when the test ends, failed or
// not. It skips the test, with one line, where a bed cannot be made:
// outside Linux, without root, or without the servers cfg.Apps need.
func New(t testing.TB, cfg Config) *Bed {
	t.Helper()
	if runtime.GOOS != "linux" {
		t.Skipf("serverlab: not supported on %s", runtime.GOOS)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: serverlab creates named network namespaces")
	}
	if cfg.Apps == nil {
		Require(t)
	} else if len(cfg.Apps) > 0 {
		Require(t, cfg.Apps...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	b, err := Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close server bed: %v", err)
		}
	})
	return b
}
