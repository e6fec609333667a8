package progress

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY opens a pseudo-terminal: what is written to tty is read from
// the returned function's buffer.
func openPTY(t *testing.T) (tty *os.File, read func() string) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: open /dev/ptmx: %v", err)
	}
	master := os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Fatalf("unlock the pty: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Fatalf("pty number: %v", err)
	}
	if err := unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 160}); err != nil {
		master.Close()
		t.Fatalf("pty size: %v", err)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Fatalf("open the pty: %v", err)
	}
	var (
		mu  sync.Mutex
		buf bytes.Buffer
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 4096)
		for {
			n, err := master.Read(b)
			mu.Lock()
			buf.Write(b[:n])
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		tty.Close()
		master.Close()
		<-done
	})
	return tty, func() string {
		mu.Lock()
		defer mu.Unlock()
		return buf.String()
	}
}

// TestPTY draws on a real terminal: the line says done/total, the rate
// and the estimate, results written Above come out whole, and the line
// is erased at the end.
func TestPTY(t *testing.T) {
	tty, read := openPTY(t)
	if !IsTerminal(tty) {
		t.Fatalf("IsTerminal(pty) = false, want true")
	}
	l := Start(tty, Options{Name: "audit", Unit: "targets", Total: 10, Extra: func() string { return "2 errors" }})
	out := l.Above(tty)
	for i := range 4 {
		fmt.Fprintf(out, "{\"target\":%d}\n", i)
		l.Add(1)
		time.Sleep(60 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // a frame with 4 done
	fmt.Fprintf(out, "{\"target\":\"last\"}\n{\"partial\"")
	l.Stop()
	fmt.Fprintf(out, ":1}\n")
	fmt.Fprintln(tty, "audit: summary")
	time.Sleep(100 * time.Millisecond)
	got := read()
	for _, want := range []string{`audit: \[=*>? *\] 4/10 targets 40%, \d+\.\d/s, ETA \d+s, 2 errors`, `\{"target":3\}`, `\{"target":"last"\}\r\n`, `\{"partial":1\}\r\naudit: summary`} {
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("terminal got %q, want a match of %s", got, want)
		}
	}
}
