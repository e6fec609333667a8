package netns

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	vnetns "github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// NamedDir is where `ip netns` binds named namespaces (/var/run is a link
// to /run on Debian).
const NamedDir = "/run/netns"

// NewNamed makes a named network namespace as `ip netns add` does and
// returns a descriptor of it and its inode. vishvananda/netns.NewNamed
// leaves the calling thread in the new namespace, so it runs on a thread
// of its own that switches back; a thread that cannot is never reused.
func NewNamed(name string) (fd int, ino uint64, err error) {
	type result struct {
		fd  int
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := vnetns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			c <- result{err: fmt.Errorf("open current network namespace: %w", err)}
			return
		}
		defer orig.Close()
		h, err := vnetns.NewNamed(name)
		if serr := vnetns.Set(orig); serr != nil {
			if err == nil {
				h.Close()
				vnetns.DeleteNamed(name)
			}
			c <- result{err: fmt.Errorf("leave network namespace %s: %w", name, serr)}
			return // still locked: the thread dies with this goroutine
		}
		runtime.UnlockOSThread()
		c <- result{int(h), err}
	}()
	r := <-c
	if r.err != nil {
		return 0, 0, fmt.Errorf("create network namespace %s: %w", name, r.err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		unix.Close(r.fd)
		vnetns.DeleteNamed(name)
		return 0, 0, fmt.Errorf("create network namespace %s: %w", name, err)
	}
	return r.fd, st.Ino, nil
}

// DeleteNamed removes a namespace's name. The namespace goes once nothing
// uses it any more.
func DeleteNamed(name string) error {
	path := filepath.Join(NamedDir, name)
	err := unix.Unmount(path, unix.MNT_DETACH)
	if err != nil && err != unix.EINVAL && err != unix.ENOENT { // EINVAL: not mounted
		return fmt.Errorf("delete network namespace %s: unmount: %w", name, err)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("delete network namespace %s: %w", name, err)
	}
	return nil
}

// NamedWithPrefix lists the named namespaces whose name starts with
// prefix, by inode. A name not bound to a namespace (one being made, or
// left by a process killed between the two steps of making it) is removed
// once it is more than a minute old.
func NamedWithPrefix(prefix string) (map[uint64][]string, error) {
	ents, err := os.ReadDir(NamedDir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("list named network namespaces: %w", err)
	}
	byIno := map[uint64][]string{}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		path := filepath.Join(NamedDir, e.Name())
		var st unix.Stat_t
		var fs unix.Statfs_t
		if unix.Stat(path, &st) != nil || unix.Statfs(path, &fs) != nil {
			continue
		}
		if fs.Type != unix.NSFS_MAGIC {
			if time.Since(time.Unix(st.Mtim.Unix())) > time.Minute {
				os.Remove(path)
			}
			continue
		}
		byIno[st.Ino] = append(byIno[st.Ino], e.Name())
	}
	return byIno, nil
}

// Users finds, for each namespace inode, the processes that use it: a
// process or a thread in it, or a descriptor of it.
func Users(inos []uint64) (map[uint64][]int, error) {
	out := map[uint64][]int{}
	if len(inos) == 0 {
		return out, nil
	}
	want := map[string]uint64{}
	for _, ino := range inos {
		want[fmt.Sprintf("net:[%d]", ino)] = ino
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	for _, p := range procs {
		pid := pidOf(p.Name())
		if pid <= 0 {
			continue
		}
		var links []string
		tasks, _ := filepath.Glob("/proc/" + p.Name() + "/task/*/ns/net")
		fds, _ := filepath.Glob("/proc/" + p.Name() + "/fd/*")
		links = append(links, tasks...)
		links = append(links, fds...)
		for _, l := range links {
			if ino, ok := want[readlink(l)]; ok {
				if !slices.Contains(out[ino], pid) {
					out[ino] = append(out[ino], pid)
				}
			}
		}
	}
	return out, nil
}

// ProcessesIn lists the processes whose network namespace is one of inos,
// except this one (whose threads visit namespaces in passing).
func ProcessesIn(inos ...uint64) []int {
	want := map[string]bool{}
	for _, ino := range inos {
		if ino != 0 { // a namespace not made
			want[fmt.Sprintf("net:[%d]", ino)] = true
		}
	}
	procs, _ := os.ReadDir("/proc")
	var out []int
	for _, p := range procs {
		pid := pidOf(p.Name())
		if pid > 0 && pid != os.Getpid() && want[readlink("/proc/"+p.Name()+"/ns/net")] {
			out = append(out, pid)
		}
	}
	return out
}

// pidOf is the process ID a /proc entry names, 0 for other entries.
func pidOf(name string) int {
	pid := 0
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0
		}
		pid = pid*10 + int(c-'0')
	}
	return pid
}

// readlink is the target of a link, "" when it cannot be read.
func readlink(path string) string {
	s, _ := os.Readlink(path)
	return s
}
