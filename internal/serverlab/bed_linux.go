package serverlab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"

	"synprobe/internal/netns"
	"synprobe/internal/sockdiag"
	"synprobe/internal/veth"
)

// netns.NamedDir is where ip netns binds named namespaces (/var/run is a link
// to /run on Debian).

// bedSys is what a bed holds on Linux.
type bedSys struct {
	probeNS, targetNS   int    // our descriptors of the named namespaces
	probeIno, targetIno uint64 // their inodes, which /proc/PID/ns/net shows
	pair                *veth.Pair
	servers             []*server
	listeners           []int          // the Go listeners' sockets
	serving             []net.Listener // the Go apps' listeners
	acceptedMu          sync.Mutex
	accepted            []net.Conn // the Go apps' connections, closed with the bed
	fillers             []net.Conn // the local connections that fill full-backlog's queue
	closed              bool
}

// Start makes a bed as cfg says and returns once every app listens. ctx
// bounds the start (without a deadline, 30 s). On error it leaves nothing
// behind. It first removes what killed beds left (see the package
// documentation).
func Start(ctx context.Context, cfg Config) (*Bed, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	sysctls, run, err := resolve(cfg)
	if err != nil {
		return nil, fmt.Errorf("start server bed: %w", err)
	}
	if err := removeStale(); err != nil {
		return nil, fmt.Errorf("start server bed: %w", err)
	}
	id, err := randomID()
	if err != nil {
		return nil, fmt.Errorf("start server bed: %w", err)
	}
	b := &Bed{
		ID:       id,
		ProbeNS:  NamePrefix + id + "-probe",
		TargetNS: NamePrefix + id + "-target",
		ProbeIf:  "probe-" + id,
		TargetIf: "target-" + id,
		Apps:     run,
		Sysctls:  sysctls,
	}
	if err := b.setup(ctx, cfg); err != nil {
		b.Close()
		return nil, fmt.Errorf("start server bed %s: %w", id, err)
	}
	return b, nil
}

// resolve checks cfg and returns the sysctls to apply and the apps to run.
func resolve(cfg Config) (map[string]string, []App, error) {
	p, ok := PresetByName(cfg.Preset)
	if !ok {
		var names []string
		for _, p := range Presets() {
			names = append(names, p.Name)
		}
		return nil, nil, fmt.Errorf("no preset %q (known: %s)", cfg.Preset, strings.Join(names, ", "))
	}
	sysctls := p.Sysctls
	for k, v := range cfg.Sysctls {
		sysctls[k] = v
	}
	for k := range sysctls {
		// Inside a namespace only the per-namespace settings exist under
		// net; any other sysctl is the host's.
		if !strings.HasPrefix(k, "net.") || strings.ContainsAny(k, "/ ") || strings.Contains(k, "..") {
			return nil, nil, fmt.Errorf("sysctl %q: only per-namespace net.* settings may be set", k)
		}
	}
	names := cfg.Apps
	if names == nil {
		for _, a := range apps {
			names = append(names, a.Name)
		}
	}
	var run []App
	for _, a := range apps {
		if slices.Contains(names, a.Name) {
			run = append(run, a)
		}
	}
	for _, n := range names {
		if _, ok := AppByName(n); !ok {
			return nil, nil, fmt.Errorf("no app %q (known: %s)", n, strings.Join(appNames(apps), ", "))
		}
	}
	var servers []string
	for _, a := range run {
		servers = append(servers, a.Server)
	}
	if len(servers) > 0 {
		if err := Missing(servers...); err != nil {
			return nil, nil, err
		}
	}
	return sysctls, run, nil
}

func appNames(as []App) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

func randomID() (string, error) {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fmt.Errorf("make a random name: %w", err)
	}
	return hex.EncodeToString(r[:]), nil
}

func (b *Bed) setup(ctx context.Context, cfg Config) error {
	var err error
	if b.sys.probeNS, b.sys.probeIno, err = netns.NewNamed(b.ProbeNS); err != nil {
		return err
	}
	if b.sys.targetNS, b.sys.targetIno, err = netns.NewNamed(b.TargetNS); err != nil {
		return err
	}
	b.sys.pair, err = veth.New(ctx, veth.Config{
		Probe: veth.End{Name: b.ProbeIf, NS: b.sys.probeNS, Addrs: []netip.Prefix{
			netip.PrefixFrom(Probe4, Bits4), netip.PrefixFrom(Probe6, Bits6)}},
		Target: veth.End{Name: b.TargetIf, NS: b.sys.targetNS, Addrs: []netip.Prefix{
			netip.PrefixFrom(Target4, Bits4), netip.PrefixFrom(Target6, Bits6)}},
	})
	if err != nil {
		return err
	}
	if err := b.applySysctls(); err != nil {
		return err
	}
	off := Offloads{}
	if cfg.Offloads != nil {
		off = *cfg.Offloads
	}
	for _, s := range []Side{SideProbe, SideTarget} {
		if err := b.SetOffloads(s, off); err != nil {
			return err
		}
	}
	if len(b.Apps) == 0 {
		return nil
	}
	if b.Dir, err = os.MkdirTemp("", NamePrefix+b.ID+"-"); err != nil {
		return fmt.Errorf("make temporary directory: %w", err)
	}
	// The servers run as nobody and must reach their own directories.
	if err := os.Chmod(b.Dir, 0o755); err != nil {
		return fmt.Errorf("make temporary directory: %w", err)
	}
	if err := b.startApps(); err != nil {
		return err
	}
	return b.waitListening(ctx)
}

// removeStale removes what beds of killed processes left: named
// namespaces with the bed prefix that no process uses, and the temporary
// directories of beds that have no namespace in use. A bed holds
// descriptors of its namespaces from before their names appear until it
// deletes them, so a live bed is never taken for stale.
func removeStale() error {
	// The directories first: a bed makes its directory after its
	// namespaces and removes it before them, so a directory seen here
	// whose bed lives has its namespaces in the list read next.
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), NamePrefix+"*"))
	byIno, err := netns.NamedWithPrefix(NamePrefix)
	if err != nil {
		return fmt.Errorf("remove stale beds: %w", err)
	}
	inos := slices.Collect(maps.Keys(byIno))
	used, err := netns.Users(inos)
	if err != nil {
		return fmt.Errorf("remove stale beds: %w", err)
	}
	inUse := map[string]bool{} // bed IDs
	var errs []error
	for ino, names := range byIno {
		for _, name := range names {
			if len(used[ino]) > 0 {
				inUse[bedID(name)] = true
				continue
			}
			if err := netns.DeleteNamed(name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	for _, d := range dirs {
		if id := bedID(filepath.Base(d)); id != "" && !inUse[id] {
			if err := os.RemoveAll(d); err != nil {
				errs = append(errs, fmt.Errorf("remove stale directory: %w", err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove stale beds: %w", err)
	}
	return nil
}

// bedID is the ID in a bed's namespace or directory name, "" if there is
// none.
func bedID(name string) string {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "-")
	if len(id) != 8 {
		return ""
	}
	return id
}

// Processes lists the processes in the bed's namespaces: the servers and
// their children, and whatever else runs there.
func (b *Bed) Processes() []int {
	return netns.ProcessesIn(b.sys.probeIno, b.sys.targetIno)
}

// InProbe runs fn on a thread in the probe namespace: sockets it opens
// stay there.
func (b *Bed) InProbe(fn func() error) error { return netns.Do(b.sys.probeNS, fn) }

// InTarget runs fn on a thread in the target namespace.
func (b *Bed) InTarget(fn func() error) error { return netns.Do(b.sys.targetNS, fn) }

// Dial connects from the probe namespace, with an ordinary socket.
func (b *Bed) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := b.InProbe(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// applySysctls sets b.Sysctls in the target namespace and reads each back:
// the kernel may refuse or clamp a value.
func (b *Bed) applySysctls() error {
	return b.InTarget(func() error {
		for _, k := range slices.Sorted(maps.Keys(b.Sysctls)) {
			v := b.Sysctls[k]
			path := sysctlPath(k)
			if err := os.WriteFile(path, []byte(v+"\n"), 0); err != nil {
				return fmt.Errorf("set sysctl %s=%s in target namespace: %w", k, v, err)
			}
			got, err := readSysctl(path)
			if err != nil {
				return err
			}
			if got != strings.Join(strings.Fields(v), " ") {
				return fmt.Errorf("set sysctl %s=%s in target namespace: reads back %q", k, v, got)
			}
		}
		return nil
	})
}

func sysctlPath(name string) string {
	return "/proc/sys/" + strings.ReplaceAll(name, ".", "/")
}

func readSysctl(path string) (string, error) {
	v, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read sysctl: %w", err)
	}
	return strings.Join(strings.Fields(string(v)), " "), nil
}

// Sysctl reads a sysctl ("net.ipv4.tcp_sack") in the target namespace,
// with runs of blanks made one space.
func (b *Bed) Sysctl(name string) (string, error) {
	var v string
	err := b.InTarget(func() (err error) {
		v, err = readSysctl(sysctlPath(name))
		return err
	})
	return v, err
}

// sockets lists the TCP sockets of the target namespace.
func (b *Bed) sockets() ([]Conn, error) { return sockdiag.List(b.sys.targetNS) }

// Leftovers lists the connections the target namespace holds with the
// probe addresses in SYN-RECV, ESTAB, CLOSE-WAIT, FIN-WAIT-1, FIN-WAIT-2,
// CLOSING or LAST-ACK, sorted; FormatConns shows them as ss would. A probe
// run that cleans up after itself leaves none. (Connections complete in
// never-accepts' queue stay there, ESTAB, for the bed's life.)
func (b *Bed) Leftovers() ([]Conn, error) {
	all, err := b.sockets()
	if err != nil {
		return nil, fmt.Errorf("list leftover connections: %w", err)
	}
	return sockdiag.Leftovers(all, Probe4, Probe6), nil
}

// Listening lists the listening sockets of the target namespace, sorted:
// Recv-Q is the number of connections waiting to be accepted, Send-Q the
// backlog.
func (b *Bed) Listening() ([]Conn, error) {
	all, err := b.sockets()
	if err != nil {
		return nil, fmt.Errorf("list listening sockets: %w", err)
	}
	var out []Conn
	for _, c := range all {
		if c.State == "LISTEN" {
			out = append(out, c)
		}
	}
	sockdiag.Sort(out)
	return out, nil
}

// Close stops the servers, kills whatever else still runs in the bed's
// namespaces, and removes the veth pair, the directory and the namespaces'
// names; the namespaces themselves go once nothing holds them (a socket a
// test still has open does). It is idempotent, but not safe for concurrent
// use.
func (b *Bed) Close() error {
	if b == nil || b.sys.closed {
		return nil
	}
	b.sys.closed = true
	var errs []error
	errs = append(errs, b.stopApps())
	if b.sys.pair != nil {
		// Delete the veth now: a socket a test still holds in a namespace
		// would keep it, and the veth, alive.
		err := b.InProbe(func() error {
			l, err := netlink.LinkByName(b.ProbeIf)
			if err == nil {
				err = netlink.LinkDel(l)
			}
			var nf netlink.LinkNotFoundError
			if errors.As(err, &nf) {
				return nil
			}
			return err
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("delete veth %s: %w", b.ProbeIf, err))
		}
		errs = append(errs, b.sys.pair.Close())
	}
	// The directory goes before the names: removeStale relies on it.
	if b.Dir != "" {
		if err := os.RemoveAll(b.Dir); err != nil {
			errs = append(errs, fmt.Errorf("remove %s: %w", b.Dir, err))
		}
	}
	for _, ns := range []struct {
		name string
		fd   *int
	}{{b.ProbeNS, &b.sys.probeNS}, {b.TargetNS, &b.sys.targetNS}} {
		if *ns.fd == 0 {
			continue
		}
		errs = append(errs, netns.DeleteNamed(ns.name), netns.Close(*ns.fd))
		*ns.fd = 0
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close server bed %s: %w", b.ID, err)
	}
	return nil
}
