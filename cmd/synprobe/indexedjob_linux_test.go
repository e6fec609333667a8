package main

import (
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
	"synprobe/internal/veth/vethtest"
)

// jobBedPrefix names the namespaces of jobBed; no other bed's cleanup
// matches it.
const jobBedPrefix = "spk8s-"

// jobBedTargets are jobBed's targets: six addresses, each with port 80
// open (reads to the end, then closes), 81 closed and 82 open behind a
// filter that drops the FINs sent to it: a handshake there fails (no ACK
// of synprobe's FIN).
func jobBedTargets() []string {
	var out []string
	for i := 2; i <= 7; i++ {
		for _, port := range []int{80, 81, 82} {
			out = append(out, fmt.Sprintf("10.92.0.%d:%d", i, port))
		}
	}
	return out
}

// jobBed is a stock Linux kernel answering for 10.92.0.2-7 in a named
// namespace, reached from a named probe namespace whose name it returns:
// processes of their own reach the targets with --netns NAME, as pods on
// one node share its network. Both names go when the test ends; names a
// killed test left with nothing in them go before.
func jobBed(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates named network namespaces and a veth pair")
	}
	removeStaleJobBeds(t)
	probeName := fmt.Sprintf("%s%d-probe", jobBedPrefix, os.Getpid())
	targetName := fmt.Sprintf("%s%d-target", jobBedPrefix, os.Getpid())
	var fds []int
	for _, name := range []string{probeName, targetName} {
		fd, _, err := netns.NewNamed(name)
		if err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		t.Cleanup(func() {
			if err := netns.DeleteNamed(name); err != nil {
				t.Error(err)
			}
			netns.Close(fd)
		})
	}
	var targets []netip.Prefix
	for i := 2; i <= 7; i++ {
		targets = append(targets, netip.MustParsePrefix(fmt.Sprintf("10.92.0.%d/24", i)))
	}
	pair := vethtest.New(t, veth.Config{
		Probe:  veth.End{Name: "spk8s-probe", NS: fds[0], Addrs: []netip.Prefix{netip.MustParsePrefix("10.92.0.1/24")}},
		Target: veth.End{Name: "spk8s-target", NS: fds[1], Addrs: targets},
	})
	// The filter lives in the target namespace and goes with it.
	nft := exec.Command("ip", "netns", "exec", targetName, "nft", "-f", "-")
	nft.Stdin = strings.NewReader("table inet spk8s {\n chain in {\n  type filter hook input priority 0;\n  tcp dport 82 tcp flags & fin == fin drop\n }\n}\n")
	if out, err := nft.CombinedOutput(); err != nil {
		t.Fatalf("load the FIN filter in %s: %v\n%s", targetName, err, out)
	}
	var open, finless net.Listener
	if err := netns.Do(pair.Target.NS, func() (err error) {
		if open, err = net.Listen("tcp4", "0.0.0.0:80"); err != nil {
			return err
		}
		finless, err = net.Listen("tcp4", "0.0.0.0:82")
		return err
	}); err != nil {
		t.Fatalf("listen in the target namespace: %v", err)
	}
	// The port whose FINs never arrive is read until the test ends: its
	// connections are closed before the listeners' cleanups wait for them.
	done := make(chan struct{})
	serve(t, open, readToEnd(30*time.Second))
	serve(t, finless, func(c net.Conn) {
		go func() { <-done; c.Close() }()
		readToEnd(30 * time.Second)(c)
	})
	t.Cleanup(func() { close(done) })
	return probeName
}

// removeStaleJobBeds removes the names of jobBed namespaces that nothing
// uses any more (a test killed before its cleanup).
func removeStaleJobBeds(t *testing.T) {
	byIno, err := netns.NamedWithPrefix(jobBedPrefix)
	if err != nil {
		t.Fatal(err)
	}
	used, err := netns.Users(slices.Collect(maps.Keys(byIno)))
	if err != nil {
		t.Fatal(err)
	}
	for ino, names := range byIno {
		if len(used[ino]) > 0 {
			continue
		}
		for _, name := range names {
			if err := netns.DeleteNamed(name); err != nil {
				t.Logf("remove stale namespace: %v", err)
			}
		}
	}
}

// jobEnv is this process's environment without a batch system's shard
// variables, with extra added.
func jobEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "SLURM_") || name == "JOB_COMPLETION_INDEX" || name == "SYNPROBE_SHARDS" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, extra...)
}

// runJobIndex runs synprobe as a process of its own, as the pod of one
// index of an Indexed Job runs it: the shard from JOB_COMPLETION_INDEX
// and SYNPROBE_SHARDS, the index's own file as --resume and --output.
func runJobIndex(t *testing.T, index, shards int, out string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append(args, "--resume", out, "--output", out)...)
	cmd.Env = jobEnv(subprocessEnv+"=1", fmt.Sprintf("JOB_COMPLETION_INDEX=%d", index), fmt.Sprintf("SYNPROBE_SHARDS=%d", shards))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Signal(unix.SIGINT) })
	defer timer.Stop()
	if err := cmd.Run(); err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			// Not t.Fatal: the indexes run on goroutines of their own.
			t.Errorf("index %d: %v", index, err)
			return -1, ""
		}
	}
	if stdout.Len() > 0 {
		t.Errorf("index %d wrote to stdout with --output: %q", index, stdout.String())
	}
	return cmd.ProcessState.ExitCode(), stderr.String()
}

// TestIndexedJobMerge: three synprobe processes, each with its own
// JOB_COMPLETION_INDEX and SYNPROBE_SHARDS=3 as the pods of an Indexed Job
// have them, run at once from one named namespace (pods on one node share
// its network) and write one file each; merged, the files hold every
// target exactly once with the verdicts of one unsharded run, and
// summarize gives the same tables. With --fail-exit-code 0 they exit 0
// where the unsharded run, which has a target that fails, exits 1.
func TestIndexedJobMerge(t *testing.T) {
	ns := jobBed(t)
	dir := t.TempDir()
	list := filepath.Join(dir, "targets.txt")
	targets := jobBedTargets()
	os.WriteFile(list, []byte(strings.Join(targets, "\n")+"\n"), 0o644)
	const shards = 3
	base := []string{"handshake", "--netns", ns, "--targets", list, "--timeout", "1s"}

	all := filepath.Join(dir, "all.jsonl")
	code, errOut := fleetRunJudged(t, all, append(base, "--shard", "0/1")...)
	if code != exitFail {
		t.Fatalf("unsharded: exit %d, want %d (the handshakes on port 82 fail)\n%s", code, exitFail, errOut)
	}
	whole := verdictsOf(t, all)
	if len(whole) != len(targets) {
		t.Fatalf("unsharded run wrote %d targets, want %d: %v", len(whole), len(targets), whole)
	}
	for target, want := range map[string]string{"10.92.0.2:80": "pass", "10.92.0.2:81": "skip", "10.92.0.2:82": "fail"} {
		if got := whole[target]["handshake"]; got != want {
			t.Errorf("unsharded: %s handshake %s, want %s", target, got, want)
		}
	}

	files := make([]string, shards)
	codes := make([]int, shards)
	errOuts := make([]string, shards)
	var wg sync.WaitGroup
	for i := range shards {
		files[i] = filepath.Join(dir, fmt.Sprintf("audit-%d.jsonl", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i], errOuts[i] = runJobIndex(t, i, shards, files[i], append(base, "--fail-exit-code", "0")...)
		}()
	}
	wg.Wait()
	failing := 0 // indexes with a target that failed, which exit 0
	for i := range shards {
		// A run in which this host failed a target (exit 3, a loaded
		// machine) is run again, alone, from an empty file.
		for attempt := 2; codes[i] == exitEnv && attempt <= 3; attempt++ {
			t.Logf("index %d, attempt %d: this host failed a target (run again):\n%s", i, attempt-1, errOuts[i])
			os.Remove(files[i])
			codes[i], errOuts[i] = runJobIndex(t, i, shards, files[i], append(base, "--fail-exit-code", "0")...)
		}
		if codes[i] != exitOK {
			t.Errorf("index %d: exit %d, want 0 (--fail-exit-code 0)\n%s", i, codes[i], errOuts[i])
		}
		if want := fmt.Sprintf("shard %d/%d, from Kubernetes job index", i, shards); !strings.Contains(errOuts[i], want) {
			t.Errorf("index %d: stderr lacks %q:\n%s", i, want, errOuts[i])
		}
		got := verdictsOf(t, files[i])
		n := len(got)
		if slices.ContainsFunc(sorted(got), func(s string) bool { return strings.HasSuffix(s, " fail") }) {
			failing++
		}
		if n == 0 {
			t.Errorf("index %d wrote no target: the test shows nothing for it", i)
		}
		t.Logf("index %d: %d targets", i, n)
	}
	if failing == 0 {
		t.Error("no index has a target that failed: --fail-exit-code 0 is not shown to act")
	}
	merged := verdictsOf(t, files...)
	if fmt.Sprint(sorted(merged)) != fmt.Sprint(sorted(whole)) {
		t.Errorf("indexes merged:\n%v\nunsharded:\n%v", sorted(merged), sorted(whole))
	}
	if a, b := summarizeJSON(t, files...), summarizeJSON(t, all); a != b {
		t.Errorf("summarize of the indexes:\n%s\nof the unsharded run:\n%s", a, b)
	}
}
