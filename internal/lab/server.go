package lab

import (
	"net"
	"strconv"
	"sync"
	"time"
)

// server is the lab's application, the same for every stack. It accepts
// every connection and reads it; each complete "GET /N ...\r\n\r\n" request
// is answered with "HTTP/1.0 200 OK", a Content-Length of N and N bytes of
// body. When the peer's FIN arrives (EOF) the connection is closed at once,
// so the default behaviour is "read to end of stream, then close": the
// handshake check waits for the target's own FIN.
type server struct {
	wg   sync.WaitGroup
	done chan struct{} // closed by close

	mu        sync.Mutex
	closed    bool
	listeners []net.Listener
	conns     map[net.Conn]struct{}
}

func newServer() *server {
	return &server{done: make(chan struct{}), conns: make(map[net.Conn]struct{})}
}

// serve accepts connections on l until close.
func (s *server) serve(l net.Listener) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return
	}
	s.listeners = append(s.listeners, l)
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		var backoff time.Duration
		for {
			c, err := l.Accept()
			if err != nil {
				// Out of descriptors, say: back off and retry, as
				// net/http does, rather than leave the port dead.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				select {
				case <-s.done:
					return
				case <-time.After(backoff):
				}
				continue
			}
			backoff = 0
			if !s.track(c) {
				c.Close()
				return
			}
			go s.handle(c)
		}
	}()
}

// track registers c so that close can abort it; false once closed.
func (s *server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

func (s *server) handle(c net.Conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	var requests requestScanner
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		for _, size := range requests.Feed(buf[:n]) {
			if _, werr := c.Write(response(size)); werr != nil {
				return
			}
		}
		if err != nil {
			return // EOF: the peer sent its FIN; close ours now
		}
	}
}

// response is the reply to "GET /size": header and body in one write, so
// that the stack segments it as it likes.
func response(size int) []byte {
	head := "HTTP/1.0 200 OK\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	b := make([]byte, len(head)+size)
	copy(b, head)
	body := b[len(head):]
	for i := range body {
		body[i] = 'a' + byte(i%26)
	}
	return b
}

// close stops accepting, aborts every open connection and waits until all
// of the server's goroutines have returned.
func (s *server) close() {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
	for _, l := range s.listeners {
		l.Close()
	}
	for c := range s.conns {
		// An abortive close (RST) frees the socket at once instead of
		// leaving it to retransmit its FIN to a peer that has gone.
		if tc, ok := c.(interface{ SetLinger(int) error }); ok {
			tc.SetLinger(0)
		}
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}
