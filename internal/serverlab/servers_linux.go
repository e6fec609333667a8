package serverlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
)

// server is a process of the bed: a Debian package's server.
type server struct {
	name string // as in App.Server
	dir  string // its own directory, its working directory
	log  string // its standard output and error, and its own log lines
	cmd  *exec.Cmd
	done chan struct{} // closed when it has exited
	err  error         // how it exited, once done is closed
}

// configure writes a server's configuration into dir and returns its
// command line. apps are the apps it serves.
type configure func(dir string, apps []App) ([]string, error)

var configures = map[string]configure{
	"nginx":        nginxConf,
	"sshd":         sshdConf,
	"redis-server": redisConf,
	"memcached":    memcachedConf,
	"xinetd":       xinetdConf,
}

// listenBacklog is the Go listeners' backlog: the kernel then completes
// backlog+1 connections before the accept queue counts as full.
const listenBacklog = 1

// startApps starts every server and Go listener the bed's apps need, in
// the target namespace.
func (b *Bed) startApps() error {
	uid, gid, err := nobody()
	if err != nil {
		return err
	}
	var order []string
	byServer := map[string][]App{}
	for _, a := range b.Apps {
		if _, ok := byServer[a.Server]; !ok {
			order = append(order, a.Server)
		}
		byServer[a.Server] = append(byServer[a.Server], a)
	}
	for _, name := range order {
		if name == "go" {
			if err := b.startListeners(byServer[name]); err != nil {
				return err
			}
			continue
		}
		s := &server{name: name, dir: filepath.Join(b.Dir, name), done: make(chan struct{})}
		s.log = filepath.Join(s.dir, "log")
		if err := os.Mkdir(s.dir, 0o700); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		// Made now, so that chownTree gives it to the server too, which
		// may open it by name.
		if err := os.WriteFile(s.log, nil, 0o644); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		argv, err := configures[name](s.dir, byServer[name])
		if err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		if err := chownTree(s.dir, uid, gid); err != nil {
			return fmt.Errorf("start %s: %w", name, err)
		}
		if err := b.spawn(s, argv, uid, gid); err != nil {
			return fmt.Errorf("start %s: %w (log %s)", name, err, s.log)
		}
	}
	return nil
}

// nobody is the user the servers run as.
func nobody() (uid, gid uint32, err error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return 0, 0, fmt.Errorf("find user nobody: %w", err)
	}
	id, err1 := strconv.ParseUint(u.Uid, 10, 32)
	g, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("find user nobody: %w", err)
	}
	return uint32(id), uint32(g), nil
}

func chownTree(dir string, uid, gid uint32) error {
	return filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, int(uid), int(gid))
	})
}

// spawn starts a server in the target namespace: forked on a thread that
// is in it, so the server inherits it, as `ip netns exec` would do without
// a process of its own in between. The server runs as nobody, with only
// the capability to bind ports below 1024 (so it reads no key or
// configuration of the host's and writes nowhere but its directory), in a
// process group of its own, and gets SIGKILL if the test binary dies.
func (b *Bed) spawn(s *server, argv []string, uid, gid uint32) error {
	path, err := lookPath(argv[0])
	if err != nil {
		return err
	}
	log, err := os.OpenFile(s.log, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(path, argv[1:]...)
	cmd.Dir = s.dir
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + s.dir, "LANG=C"}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:     true,
		Pdeathsig:   syscall.SIGKILL,
		Credential:  &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}},
		AmbientCaps: []uintptr{unix.CAP_NET_BIND_SERVICE},
	}
	if err := b.InTarget(cmd.Start); err != nil {
		return err
	}
	s.cmd = cmd
	b.sys.servers = append(b.sys.servers, s)
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	return nil
}

// startListeners opens the Go listeners on each target address: with
// listen(backlog 1) and no accept for never-accepts and full-backlog (the
// full-backlog ones filled with local connections from inside the target
// namespace); with an accept loop for the Go apps that serve (Serve).
func (b *Bed) startListeners(as []App) error {
	for _, a := range as {
		for _, addr := range []netip.Addr{Target4, Target6} {
			ap := netip.AddrPortFrom(addr, a.Port)
			if serve, ok := goApps[a.Kind]; ok {
				if err := b.InTarget(func() error { return b.serveGo(ap, serve) }); err != nil {
					return fmt.Errorf("start %s: serve on %s: %w", a.Name, ap, err)
				}
				continue
			}
			if err := b.InTarget(func() error { return b.listen(ap) }); err != nil {
				return fmt.Errorf("start %s: listen on %s: %w", a.Name, ap, err)
			}
			if a.Kind != KindFullBacklog {
				continue
			}
			for range listenBacklog + 1 {
				var c net.Conn
				err := b.InTarget(func() (err error) {
					c, err = net.DialTimeout("tcp", ap.String(), 5*time.Second)
					return err
				})
				if err != nil {
					return fmt.Errorf("start %s: fill the accept queue of %s: %w", a.Name, ap, err)
				}
				b.sys.fillers = append(b.sys.fillers, c)
			}
		}
	}
	return nil
}

// listen opens a listening socket that never accepts.
func (b *Bed) listen(ap netip.AddrPort) error {
	fd, err := listenFD(ap, listenBacklog, nil)
	if err != nil {
		return err
	}
	b.sys.listeners = append(b.sys.listeners, fd)
	return nil
}

// listenFD opens a listening socket with raw system calls: net.Listen
// takes its backlog from net.core.somaxconn, and sets no option before
// listen(2).
func listenFD(ap netip.AddrPort, backlog int, opts func(fd int) error) (int, error) {
	var family int
	var sa unix.Sockaddr
	if ap.Addr().Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}
	} else {
		family, sa = unix.AF_INET6, &unix.SockaddrInet6{Port: int(ap.Port()), Addr: ap.Addr().As16()}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err == nil && family == unix.AF_INET6 {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
	}
	if err == nil && opts != nil {
		err = opts(fd)
	}
	if err == nil {
		err = unix.Bind(fd, sa)
	}
	if err == nil {
		err = unix.Listen(fd, backlog)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// goApp is a Go application of the bed: its listen backlog, the socket
// options of its listener, and what it does with each connection (in a
// goroutine of its own, or in the accept loop when serial).
type goApp struct {
	backlog int
	opts    func(fd int) error
	serial  bool
	serve   func(c net.Conn)
}

var goApps = map[Kind]goApp{
	KindOneAtATime: {backlog: 2, serial: true, serve: func(c net.Conn) { io.Copy(c, c) }},
	KindIdleReset: {backlog: 128, serve: func(c net.Conn) {
		buf := make([]byte, 4096)
		for {
			c.SetReadDeadline(time.Now().Add(idleReset))
			if _, err := c.Read(buf); err != nil {
				if tc, ok := c.(*net.TCPConn); ok && errors.Is(err, os.ErrDeadlineExceeded) {
					tc.SetLinger(0) // the close aborts: a RST
				}
				return
			}
		}
	}},
	KindDeferAccept: {backlog: 128, serve: func(c net.Conn) { io.Copy(io.Discard, c) },
		opts: func(fd int) error { return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_DEFER_ACCEPT, 5) }},
}

// idleReset is how long idle-reset lets a connection be idle.
const idleReset = 500 * time.Millisecond

// serveGo listens on ap as app says and serves what comes until Close.
func (b *Bed) serveGo(ap netip.AddrPort, app goApp) error {
	fd, err := listenFD(ap, app.backlog, app.opts)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), "listener")
	l, err := net.FileListener(f)
	f.Close()
	if err != nil {
		return err
	}
	b.sys.serving = append(b.sys.serving, l)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return // closed
			}
			b.sys.acceptedMu.Lock()
			b.sys.accepted = append(b.sys.accepted, c)
			b.sys.acceptedMu.Unlock()
			if app.serial {
				app.serve(c)
				c.Close()
				continue
			}
			go func() {
				defer c.Close()
				app.serve(c)
			}()
		}
	}()
	return nil
}

// waitListening waits until every app listens on both addresses (and
// full-backlog's queues are full), or a server exits, or ctx ends.
func (b *Bed) waitListening(ctx context.Context) error {
	for {
		ls, err := b.Listening()
		if err != nil {
			return err
		}
		var waiting []string // "nginx on [fd00:198:51:100::2]:80"
		var late []*server
		for _, a := range b.Apps {
			for _, addr := range []netip.Addr{Target4, Target6} {
				ap := netip.AddrPortFrom(addr, a.Port)
				i := slices.IndexFunc(ls, func(c Conn) bool { return listensOn(c, ap) })
				if i >= 0 && (a.Kind != KindFullBacklog || ls[i].RecvQ > listenBacklog) {
					continue
				}
				waiting = append(waiting, fmt.Sprintf("%s on %s", a.Name, ap))
				if s := b.server(a.Server); s != nil && !slices.Contains(late, s) {
					late = append(late, s)
				}
			}
		}
		if len(waiting) == 0 {
			return nil
		}
		for _, s := range late {
			select {
			case <-s.done:
				return fmt.Errorf("%s exited before it listened (%v); log %s:\n%s", s.name, s.err, s.log, tail(s.log))
			default:
			}
		}
		select {
		case <-ctx.Done():
			var logs []string
			for _, s := range late {
				logs = append(logs, fmt.Sprintf("log of %s, %s:\n%s", s.name, s.log, tail(s.log)))
			}
			return fmt.Errorf("wait for the apps to listen: %w: not listening: %s\n%s",
				ctx.Err(), strings.Join(waiting, ", "), strings.Join(logs, "\n"))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// listensOn says whether a listening socket takes connections to ap.
func listensOn(c Conn, ap netip.AddrPort) bool {
	if c.Local.Port() != ap.Port() {
		return false
	}
	a := c.Local.Addr()
	return a == ap.Addr() || (a.IsUnspecified() && a.Is4() == ap.Addr().Is4())
}

func (b *Bed) server(name string) *server {
	for _, s := range b.sys.servers {
		if s.name == name {
			return s
		}
	}
	return nil
}

// tail is the end of a log, for an error message.
func tail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "  (" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > 10 {
		lines = lines[len(lines)-10:]
	}
	return "  " + strings.Join(lines, "\n  ")
}

// stopApps kills the servers and every process left in the bed's
// namespaces (sshd's connection processes leave its process group), and
// closes the Go listeners and their local connections. SIGKILL at once:
// nothing a server would save matters, and a graceful stop costs time.
func (b *Bed) stopApps() error {
	for _, s := range b.sys.servers {
		syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	}
	var errs []error
	deadline := time.Now().Add(5 * time.Second)
	for _, s := range b.sys.servers {
		select {
		case <-s.done:
		case <-time.After(time.Until(deadline)):
			errs = append(errs, fmt.Errorf("stop %s: pid %d still runs", s.name, s.cmd.Process.Pid))
		}
	}
	b.sys.servers = nil
	for {
		pids := netns.ProcessesIn(b.sys.probeIno, b.sys.targetIno)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			errs = append(errs, fmt.Errorf("stop processes in the bed's namespaces: %v still run", pids))
			break
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range b.sys.fillers {
		c.Close()
	}
	b.sys.fillers = nil
	for _, fd := range b.sys.listeners {
		unix.Close(fd)
	}
	b.sys.listeners = nil
	for _, l := range b.sys.serving {
		l.Close()
	}
	b.sys.serving = nil
	b.sys.acceptedMu.Lock()
	for _, c := range b.sys.accepted {
		c.Close()
	}
	b.sys.accepted = nil
	b.sys.acceptedMu.Unlock()
	return errors.Join(errs...)
}

// The servers' configurations. Each names only files in dir, listens on
// the two target addresses only, and stays in the foreground.

// bigFile is BigPath's content: printable, so that a capture reads well.
func bigFile() []byte {
	line := []byte("synprobe serverlab: a large file, so that one request makes the server send a lot.\n")
	return bytes.Repeat(line, BigSize/len(line)+1)[:BigSize]
}

func nginxConf(dir string, as []App) ([]string, error) {
	port := as[0].Port
	www := filepath.Join(dir, "www")
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o700); err != nil {
		return nil, err
	}
	if err := os.Mkdir(www, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(www, strings.TrimPrefix(BigPath, "/")), bigFile(), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(www, "index.html"), []byte("serverlab\n"), 0o644); err != nil {
		return nil, err
	}
	// master_process off: one process, which serves; Close has nothing
	// else to find. A stock server: GET /N is a 404, as on any web server;
	// tests that need data ask for BigPath (synprobe audit --request).
	conf := fmt.Sprintf(`# written by synprobe's serverlab
daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/log info;
events {
	worker_connections 1024;
}
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/tmp/body;
	proxy_temp_path %[1]s/tmp/proxy;
	fastcgi_temp_path %[1]s/tmp/fastcgi;
	uwsgi_temp_path %[1]s/tmp/uwsgi;
	scgi_temp_path %[1]s/tmp/scgi;
	default_type application/octet-stream;
	server {
		listen %[2]s:%[4]d;
		listen [%[3]s]:%[4]d;
		root %[5]s;
	}
}
`, dir, Target4, Target6, port, www)
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// -e: nginx opens its compiled-in error log before it reads the
	// configuration.
	return []string{"nginx", "-p", dir, "-e", filepath.Join(dir, "log"), "-c", path}, nil
}

func sshdConf(dir string, as []App) ([]string, error) {
	key := filepath.Join(dir, "ssh_host_ed25519_key")
	keygen, err := lookPath("ssh-keygen")
	if err != nil {
		return nil, err
	}
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "serverlab", "-f", key).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("generate host key: %v: %s", err, out)
	}
	// As nobody sshd needs no privilege separation directory (/run/sshd,
	// which a service never started has not made). MaxStartups: no early
	// drop of connections that have not logged in, which an audit opens
	// many of.
	conf := fmt.Sprintf(`# written by synprobe's serverlab
Port %[4]d
ListenAddress %[2]s
ListenAddress %[3]s
HostKey %[5]s
PidFile %[1]s/sshd.pid
UsePAM no
PermitRootLogin no
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication no
AuthorizedKeysFile none
MaxStartups 1000
UseDNS no
PrintMotd no
`, dir, Target4, Target6, as[0].Port, key)
	path := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	// -D: no daemon; -e: log to standard error (the log file); -f: this
	// configuration only. sshd re-executes itself, from an absolute path.
	sshd, err := lookPath("sshd")
	if err != nil {
		return nil, err
	}
	return []string{sshd, "-D", "-e", "-f", path}, nil
}

func redisConf(dir string, as []App) ([]string, error) {
	conf := fmt.Sprintf(`# written by synprobe's serverlab
bind %[2]s %[3]s
port %[4]d
protected-mode no
daemonize no
supervised no
save ""
appendonly no
dir %[1]s
logfile ""
databases 1
`, dir, Target4, Target6, as[0].Port)
	path := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return []string{"redis-server", path}, nil
}

func memcachedConf(dir string, as []App) ([]string, error) {
	// -U 0: no UDP; it would listen on the same port.
	return []string{"memcached", "-l", fmt.Sprintf("%s,[%s]", Target4, Target6),
		"-p", strconv.Itoa(int(as[0].Port)), "-U", "0", "-c", "1024", "-v"}, nil
}

func xinetdConf(dir string, as []App) ([]string, error) {
	var b strings.Builder
	// cps and instances: xinetd's default turns a service off for 10 s
	// after 50 connections in a second.
	fmt.Fprintf(&b, `# written by synprobe's serverlab
defaults
{
	log_type = FILE %s
	instances = UNLIMITED
	per_source = UNLIMITED
	cps = 100000 1
}
`, filepath.Join(dir, "services.log"))
	for _, a := range as {
		for _, addr := range []netip.Addr{Target4, Target6} {
			flags, v := "IPv4", "4"
			if addr.Is6() {
				flags, v = "IPv6", "6"
			}
			fmt.Fprintf(&b, `
service %s
{
	id = %s-%s
	type = INTERNAL UNLISTED
	flags = %s
	socket_type = stream
	protocol = tcp
	wait = no
	port = %d
	bind = %s
}
`, a.Name, a.Name, v, flags, a.Port, addr)
		}
	}
	path := filepath.Join(dir, "xinetd.conf")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return nil, err
	}
	return []string{"xinetd", "-dontfork", "-f", path, "-filelog", filepath.Join(dir, "log"),
		"-pidfile", filepath.Join(dir, "xinetd.pid")}, nil
}
