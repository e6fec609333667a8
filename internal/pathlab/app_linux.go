package pathlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"synprobe/internal/netns"
)

// tcpApp is a set of listeners in one namespace and the connections they
// accepted, each served by handle in a goroutine of its own.
type tcpApp struct {
	wg        sync.WaitGroup
	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	conns     map[net.Conn]struct{}
}

// listenApp listens on every address of addrs in namespace ns and serves
// each connection with handle until close.
func listenApp(ns int, addrs []netip.AddrPort, handle func(a *tcpApp, c net.Conn)) (*tcpApp, error) {
	a := &tcpApp{conns: map[net.Conn]struct{}{}}
	for _, ap := range addrs {
		var l net.Listener
		err := netns.Do(ns, func() (err error) {
			network := "tcp4"
			if ap.Addr().Is6() {
				network = "tcp6"
			}
			l, err = net.Listen(network, ap.String())
			return err
		})
		if err != nil {
			a.close()
			return nil, fmt.Errorf("listen on %s: %w", ap, err)
		}
		a.listeners = append(a.listeners, l)
		a.wg.Add(1)
		go a.accept(l, handle)
	}
	return a, nil
}

func (a *tcpApp) accept(l net.Listener, handle func(a *tcpApp, c net.Conn)) {
	defer a.wg.Done()
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // out of descriptors, say
			continue
		}
		if !a.track(c) {
			c.Close()
			return
		}
		go func() {
			defer a.wg.Done()
			defer a.untrack(c)
			handle(a, c)
		}()
	}
}

// track registers c so that close can abort it; false once closed.
func (a *tcpApp) track(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return false
	}
	a.conns[c] = struct{}{}
	a.wg.Add(1)
	return true
}

func (a *tcpApp) untrack(c net.Conn) {
	a.mu.Lock()
	delete(a.conns, c)
	a.mu.Unlock()
	c.Close()
}

// close stops accepting, closes every connection and waits for the
// goroutines.
func (a *tcpApp) close() {
	a.mu.Lock()
	a.closed = true
	for _, l := range a.listeners {
		l.Close()
	}
	for c := range a.conns {
		c.Close()
	}
	a.mu.Unlock()
	a.wg.Wait()
}

// maxResponse bounds the body a request may ask for.
const maxResponse = 64 << 20

// serveRequests is the server application, as internal/lab's: each
// complete request "GET /N ...\r\n\r\n" gets "HTTP/1.0 200 OK", a
// Content-Length of N and N bytes; anything else is read and ignored. It
// closes the connection when the client's FIN arrives.
func serveRequests(_ *tcpApp, c net.Conn) {
	var pending []byte
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		pending = append(pending, buf[:n]...)
		for {
			end := bytes.Index(pending, []byte("\r\n\r\n"))
			if end < 0 {
				break
			}
			req := pending[:end]
			pending = pending[end+4:]
			if size, ok := requestSize(req); ok {
				if _, werr := c.Write(response(size)); werr != nil {
					return
				}
			}
		}
		if len(pending) > 64<<10 {
			pending = pending[len(pending)-4:] // no request is that long
		}
		if err != nil {
			return
		}
	}
}

// requestSize reads N from "GET /N ...".
func requestSize(req []byte) (int, bool) {
	line, _, _ := bytes.Cut(req, []byte("\r\n"))
	rest, ok := bytes.CutPrefix(line, []byte("GET /"))
	if !ok {
		return 0, false
	}
	num, _, _ := bytes.Cut(rest, []byte(" "))
	n, err := strconv.Atoi(string(num))
	if err != nil || n < 0 || n > maxResponse {
		return 0, false
	}
	return n, true
}

// response is the reply to "GET /size", header and body in one write.
func response(size int) []byte {
	head := "HTTP/1.0 200 OK\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	b := make([]byte, len(head)+size)
	copy(b, head)
	for i := range b[len(head):] {
		b[len(head)+i] = 'a' + byte(i%26)
	}
	return b
}

// proxyDialTimeout bounds the proxy's connection to the server.
const proxyDialTimeout = 3 * time.Second

// startProxy starts the proxy box's listeners on router n (they wait
// whatever the box; only the proxy box's redirect sends them anything).
// A connection to ProxyPort is relayed to the server port, one to
// ProxyClosedPort to ClosedPort, on a connection of the router's own.
func (b *Bed) startProxy(n Node) (*tcpApp, error) {
	ns := b.sys.fds[n]
	upstream := map[uint16]uint16{ProxyPort: b.cfg.Port, ProxyClosedPort: ClosedPort}
	var addrs []netip.AddrPort
	for _, p := range []uint16{ProxyPort, ProxyClosedPort} {
		addrs = append(addrs, netip.AddrPortFrom(netip.IPv4Unspecified(), p))
		if b.cfg.IPv6 {
			addrs = append(addrs, netip.AddrPortFrom(netip.IPv6Unspecified(), p))
		}
	}
	return listenApp(ns, addrs, func(a *tcpApp, c net.Conn) {
		local := c.LocalAddr().(*net.TCPAddr).AddrPort()
		server := Server4
		if local.Addr().Unmap().Is6() {
			server = Server6
		}
		dst := netip.AddrPortFrom(server, upstream[local.Port()])
		var up net.Conn
		err := netns.Do(ns, func() (err error) {
			ctx, cancel := context.WithTimeout(context.Background(), proxyDialTimeout)
			defer cancel()
			var d net.Dialer
			up, err = d.DialContext(ctx, "tcp", dst.String())
			return err
		})
		if err != nil {
			// The server refused (a closed port): abort the client's
			// connection as a proxy that mirrors the refusal does.
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			return
		}
		if !a.track(up) {
			up.Close()
			return
		}
		defer a.wg.Done()
		defer a.untrack(up)
		relay(c, up)
	})
}

// relay copies both ways until both directions end, passing on each
// half-close.
func relay(a, b net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	half := func(dst, src net.Conn) {
		defer wg.Done()
		io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			tc.CloseWrite()
		} else {
			dst.Close()
		}
	}
	go half(a, b)
	go half(b, a)
	wg.Wait()
}
