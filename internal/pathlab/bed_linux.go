package pathlab

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
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	vnetns "github.com/vishvananda/netns"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
)

// netns.NamedDir is where ip netns binds named namespaces.

// startTimeout bounds Start when its context has no deadline.
const startTimeout = 30 * time.Second

// bedSys is what a bed holds on Linux.
type bedSys struct {
	mu     sync.Mutex // serializes SetBox and Close
	fds    [4]int     // our descriptors of the named namespaces, by Node
	inos   [4]uint64  // their inodes, which /proc/PID/ns/net shows
	ifs    [4][]string
	pairs  []*veth.Pair
	app    *tcpApp   // the server application
	proxy  []*tcpApp // the proxy box's listeners on both routers
	closed bool
}

// Available says whether a bed can start here, and if not, why in one
// line: root (or CAP_NET_ADMIN and CAP_SYS_ADMIN) and the nft program.
func Available() (bool, string) {
	if os.Geteuid() != 0 {
		return false, "pathlab needs root (network namespaces, nftables)"
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return false, "pathlab needs the nft program (Debian package nftables)"
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return false, "pathlab needs network namespaces: " + err.Error()
	}
	return true, ""
}

// Start makes a bed as cfg says and returns once the client reaches the
// server through both routers. ctx bounds the start (without a deadline,
// 30 s). On error it leaves nothing behind. It first removes what killed
// beds left: namespaces named with NamePrefix that no process uses.
func Start(ctx context.Context, cfg Config) (*Bed, error) {
	if ok, why := Available(); !ok {
		return nil, fmt.Errorf("start path bed: %s", why)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, startTimeout)
		defer cancel()
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultPort
	}
	if cfg.Port == ClosedPort || cfg.Port == AltPort || cfg.Port == ProxyPort || cfg.Port == ProxyClosedPort {
		return nil, fmt.Errorf("start path bed: port %d is one of the bed's own (closed %d, alt %d, proxy %d and %d)",
			cfg.Port, ClosedPort, AltPort, ProxyPort, ProxyClosedPort)
	}
	if err := removeStale(); err != nil {
		return nil, fmt.Errorf("start path bed: %w", err)
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return nil, fmt.Errorf("start path bed: make a random name: %w", err)
	}
	id := hex.EncodeToString(r[:])
	b := &Bed{
		ID:         id,
		ClientNS:   NamePrefix + id + "-client",
		Router1NS:  NamePrefix + id + "-r1",
		Router2NS:  NamePrefix + id + "-r2",
		ServerNS:   NamePrefix + id + "-server",
		Target:     netip.AddrPortFrom(Server4, cfg.Port),
		ClosedPort: ClosedPort,
		AltPort:    AltPort,
		Hops:       []netip.Addr{R1Client4, R2Prev4, Server4},
		ClientIf:   "cli-" + id,
		ServerIf:   "srv-" + id,
		cfg:        cfg,
		box:        BoxNone,
	}
	if cfg.IPv6 {
		b.Target6 = netip.AddrPortFrom(Server6, cfg.Port)
		b.Hops6 = []netip.Addr{R1Client6, R2Prev6, Server6}
	}
	if err := b.setup(ctx); err != nil {
		b.Close()
		return nil, fmt.Errorf("start path bed %s: %w", id, err)
	}
	return b, nil
}

// names returns the namespace names by Node.
func (b *Bed) names() [4]string {
	return [4]string{b.ClientNS, b.Router1NS, b.Router2NS, b.ServerNS}
}

// link is one veth pair of the chain.
type link struct {
	a, b           Node
	aIf, bIf       string
	aAddrs, bAddrs []netip.Addr
}

func (b *Bed) setup(ctx context.Context) error {
	for i, name := range b.names() {
		fd, ino, err := netns.NewNamed(name)
		if err != nil {
			return err
		}
		b.sys.fds[i], b.sys.inos[i] = fd, ino
	}
	links := []link{
		{a: Client, b: Router1, aIf: b.ClientIf, bIf: "r1c-" + b.ID,
			aAddrs: []netip.Addr{Client4, Client6}, bAddrs: []netip.Addr{R1Client4, R1Client6}},
		{a: Router1, b: Router2, aIf: "r1n-" + b.ID, bIf: "r2p-" + b.ID,
			aAddrs: []netip.Addr{R1Next4, R1Next6}, bAddrs: []netip.Addr{R2Prev4, R2Prev6}},
		{a: Router2, b: Server, aIf: "r2s-" + b.ID, bIf: b.ServerIf,
			aAddrs: []netip.Addr{R2Server4, R2Server6}, bAddrs: []netip.Addr{Server4, Server6}},
	}
	for _, l := range links {
		p, err := veth.New(ctx, veth.Config{
			Probe:  veth.End{Name: l.aIf, NS: b.sys.fds[l.a], Addrs: b.prefixes(l.aAddrs)},
			Target: veth.End{Name: l.bIf, NS: b.sys.fds[l.b], Addrs: b.prefixes(l.bAddrs)},
		})
		if err != nil {
			return err
		}
		b.sys.pairs = append(b.sys.pairs, p)
		b.sys.ifs[l.a] = append(b.sys.ifs[l.a], l.aIf)
		b.sys.ifs[l.b] = append(b.sys.ifs[l.b], l.bIf)
	}
	for n := Client; n <= Server; n++ {
		for _, ifName := range b.sys.ifs[n] {
			if err := offloadsOff(b.sys.fds[n], ifName); err != nil {
				return fmt.Errorf("%s: %w", n, err)
			}
		}
	}
	routerSysctls := map[string]string{
		"net.ipv4.ip_forward":                  "1",
		"net.ipv6.conf.all.forwarding":         "1",
		"net.ipv4.icmp_ratelimit":              "0",
		"net.ipv4.icmp_msgs_per_sec":           "1000000",
		"net.ipv4.icmp_msgs_burst":             "1000000",
		"net.ipv6.icmp.ratelimit":              "0",
		"net.netfilter.nf_conntrack_tcp_loose": "1",
	}
	for _, n := range []Node{Router1, Router2} {
		if err := b.sysctls(n, routerSysctls); err != nil {
			return err
		}
	}
	type route struct {
		node Node
		dst  string
		via4 netip.Addr
		via6 netip.Addr
		dst6 string
	}
	routes := []route{
		{Client, "10.79.0.0/16", R1Client4, R1Client6, "fd79::/16"},
		{Router1, ServerNet4.String(), R2Prev4, R2Prev6, ServerNet6.String()},
		{Router2, ClientNet4.String(), R1Next4, R1Next6, ClientNet6.String()},
		{Server, "10.79.0.0/16", R2Server4, R2Server6, "fd79::/16"},
	}
	for _, r := range routes {
		if err := b.addRoute(r.node, r.dst, r.via4); err != nil {
			return err
		}
		if b.cfg.IPv6 {
			if err := b.addRoute(r.node, r.dst6, r.via6); err != nil {
				return err
			}
		}
	}
	targets := []netip.AddrPort{b.Target}
	if b.cfg.IPv6 {
		targets = append(targets, b.Target6)
	}
	app, err := listenApp(b.sys.fds[Server], targets, serveRequests)
	if err != nil {
		return fmt.Errorf("start the server application: %w", err)
	}
	b.sys.app = app
	for _, n := range []Node{Router1, Router2} {
		p, err := b.startProxy(n)
		if err != nil {
			return fmt.Errorf("start the proxy box's listeners on %s: %w", n, err)
		}
		b.sys.proxy = append(b.sys.proxy, p)
	}
	// One connection per family end to end: routes and neighbours work,
	// and the neighbour caches are warm for the first probe.
	for _, t := range targets {
		if err := b.warm(ctx, t); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bed) prefixes(addrs []netip.Addr) []netip.Prefix {
	var out []netip.Prefix
	for _, a := range addrs {
		switch {
		case a.Is4():
			out = append(out, netip.PrefixFrom(a, 24))
		case b.cfg.IPv6:
			out = append(out, netip.PrefixFrom(a, 64))
		}
	}
	return out
}

func (b *Bed) addRoute(n Node, dst string, via netip.Addr) error {
	_, ipnet, err := net.ParseCIDR(dst)
	if err != nil {
		return fmt.Errorf("add route to %s on %s: %w", dst, n, err)
	}
	h, err := netlink.NewHandleAt(vnetns.NsHandle(b.sys.fds[n]))
	if err != nil {
		return fmt.Errorf("add route to %s on %s: open netlink: %w", dst, n, err)
	}
	defer h.Close()
	if err := h.RouteAdd(&netlink.Route{Dst: ipnet, Gw: via.AsSlice()}); err != nil {
		return fmt.Errorf("add route to %s via %s on %s: %w", dst, via, n, err)
	}
	return nil
}

// warm connects from the client to t until it works or ctx ends.
func (b *Bed) warm(ctx context.Context, t netip.AddrPort) error {
	for {
		var c net.Conn
		err := b.InClient(func() (err error) {
			d := net.Dialer{Timeout: time.Second}
			c, err = d.DialContext(ctx, "tcp", t.String())
			return err
		})
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("connect from the client to %s: %w", t, err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// sysctls sets per-namespace settings on node n and reads each back.
func (b *Bed) sysctls(n Node, kv map[string]string) error {
	return b.In(n, func() error {
		keys := make([]string, 0, len(kv))
		for k := range kv {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			path := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
			if err := os.WriteFile(path, []byte(kv[k]+"\n"), 0); err != nil {
				return fmt.Errorf("set sysctl %s=%s on %s: %w", k, kv[k], n, err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read sysctl %s on %s: %w", k, n, err)
			}
			if strings.TrimSpace(string(got)) != kv[k] {
				return fmt.Errorf("set sysctl %s=%s on %s: reads back %q", k, kv[k], n, strings.TrimSpace(string(got)))
			}
		}
		return nil
	})
}

// offloadsOff switches off checksum offloads, TSO, GSO and GRO on a veth:
// every segment crosses the routers and reaches a capture as sent, one
// frame each, with its checksum computed.
func offloadsOff(ns int, ifName string) error {
	for _, o := range []veth.Offload{veth.TXCSUM, veth.RXCSUM, veth.TSO, veth.GSO, veth.GRO} {
		if err := veth.SetOffload(ns, ifName, o, false); err != nil {
			return err
		}
	}
	return nil
}

// removeStale removes the named namespaces of beds whose process died: a
// name with NamePrefix whose namespace no process uses (a live bed holds a
// descriptor of each of its namespaces from before the name appears until
// Close removes it, so it is never taken for stale).
func removeStale() error {
	byIno, err := netns.NamedWithPrefix(NamePrefix)
	if err != nil {
		return fmt.Errorf("remove stale beds: %w", err)
	}
	inos := slices.Collect(maps.Keys(byIno))
	if len(inos) == 0 {
		return nil
	}
	used, err := netns.Users(inos)
	if err != nil {
		return fmt.Errorf("remove stale beds: %w", err)
	}
	var errs []error
	for ino, names := range byIno {
		if len(used[ino]) > 0 {
			continue
		}
		for _, name := range names {
			errs = append(errs, netns.DeleteNamed(name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove stale beds: %w", err)
	}
	return nil
}

// In runs fn on a thread in node n's namespace: sockets it opens stay
// there.
func (b *Bed) In(n Node, fn func() error) error {
	if n < Client || n > Server {
		return fmt.Errorf("run in %s: no such node", n)
	}
	if b.sys.fds[n] == 0 {
		return fmt.Errorf("run in %s: the bed is closed", n)
	}
	return netns.Do(b.sys.fds[n], fn)
}

// InClient runs fn in the client namespace.
func (b *Bed) InClient(fn func() error) error { return b.In(Client, fn) }

// InServer runs fn in the server namespace.
func (b *Bed) InServer(fn func() error) error { return b.In(Server, fn) }

// NSFD returns the bed's descriptor of node n's namespace, for
// probe.DialConfig.NetNS and the like; the bed owns it (0 once closed).
func (b *Bed) NSFD(n Node) int {
	if n < Client || n > Server {
		return 0
	}
	return b.sys.fds[n]
}

// Dial connects from the client namespace with a kernel socket.
func (b *Bed) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := b.InClient(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Close stops the server application and the proxy, kills whatever else
// runs in the bed's namespaces, deletes the veths and the namespaces'
// names (with them the routes and the nftables tables). A namespace lives
// on, unnamed, while a socket a caller still holds is in it. Close is
// idempotent; nothing else may use the bed while it runs.
func (b *Bed) Close() error {
	if b == nil {
		return nil
	}
	b.sys.mu.Lock()
	defer b.sys.mu.Unlock()
	if b.sys.closed {
		return nil
	}
	b.sys.closed = true
	var errs []error
	if b.sys.app != nil {
		b.sys.app.close()
	}
	for _, p := range b.sys.proxy {
		p.close()
	}
	for _, pid := range netns.ProcessesIn(b.sys.inos[:]...) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("kill process %d in the bed: %w", pid, err))
		}
	}
	// Delete the veths now: a socket a caller still holds would keep its
	// namespace, and the veth, alive.
	for n := Client; n <= Router2; n++ {
		if b.sys.fds[n] == 0 || len(b.sys.ifs[n]) == 0 {
			continue
		}
		ifName := b.sys.ifs[n][len(b.sys.ifs[n])-1] // the end towards the next node
		err := b.In(n, func() error {
			l, err := netlink.LinkByName(ifName)
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
			errs = append(errs, fmt.Errorf("delete veth %s: %w", ifName, err))
		}
	}
	for _, p := range b.sys.pairs {
		errs = append(errs, p.Close())
	}
	for i, name := range b.names() {
		if b.sys.fds[i] == 0 {
			continue
		}
		errs = append(errs, netns.DeleteNamed(name), netns.Close(b.sys.fds[i]))
		b.sys.fds[i] = 0
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close path bed %s: %w", b.ID, err)
	}
	return nil
}
