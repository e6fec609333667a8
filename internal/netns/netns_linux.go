package netns

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into the namespace ns (an fd; 0 runs fn
// where it is). The thread is switched back afterwards; if that fails the
// thread is left locked so that the Go runtime retires it.
func Do(ns int, fn func() error) error {
	if ns == 0 {
		return fn()
	}
	errc := make(chan error, 1)
	// A fresh goroutine: if switching back fails, it exits locked to its
	// thread and the runtime destroys the thread instead of reusing it.
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("leave network namespace: %w", err)
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// New creates an anonymous network namespace and returns a descriptor for it.
// The namespace disappears when the descriptor and every socket in it are
// closed.
func New() (int, error) {
	fdc := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open current network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("create network namespace: %w", err)
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
			if err == nil {
				unix.Close(fd)
			}
			errc <- fmt.Errorf("leave new network namespace: %w", serr)
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		if err != nil {
			errc <- fmt.Errorf("open new network namespace: %w", err)
			return
		}
		fdc <- fd
	}()
	select {
	case fd := <-fdc:
		return fd, nil
	case err := <-errc:
		return 0, err
	}
}

// Open opens a namespace by path: /var/run/netns/NAME (ip netns) or
// /proc/PID/ns/net.
func Open(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, fmt.Errorf("open network namespace %s: %w", path, err)
	}
	return fd, nil
}

// Close closes a namespace descriptor returned by New or Open.
func Close(ns int) error {
	if ns == 0 {
		return nil
	}
	return unix.Close(ns)
}
