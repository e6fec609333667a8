package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"synprobe/internal/netns"
	targetsrc "synprobe/internal/targets"
	"synprobe/internal/veth"
)

// slurmPrefix names what TestSlurmArray makes: its named namespaces and
// its temporary directory (spslurm-ID-...), so that a later run removes
// what a killed one left, and nothing of another bed's.
const slurmPrefix = "spslurm-"

// slurmTasks is the size of the test's job array.
const slurmTasks = 3

// slurmTargets are the lab's targets as the --targets file lists them
// (--port 80 for the lines without one); each of the 3 shards holds at
// least one (checked by the test).
var slurmTargets = []string{"10.91.0.2:80", "10.91.0.3", "10.91.0.4:80", "10.91.0.5:80", "10.91.0.6:81", "10.91.0.7:80"}

// TestSlurmArray runs deploy/slurm/synprobe.sbatch as a job array of 3
// tasks on a real one-node Slurm cluster (munged, slurmctld and slurmd of
// the test's own, as root) against lab targets in a named namespace, which
// the tasks reach with --netns, and checks that the tasks' JSONL files,
// merged, hold every target exactly once with the verdicts and summarize
// tables of one unsharded run.
func TestSlurmArray(t *testing.T) {
	start := time.Now()
	if testing.Short() {
		t.Skip("-short: starts a Slurm cluster and runs two job arrays (about 25 s)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: runs slurmctld and slurmd as root and makes network namespaces")
	}
	progs := slurmPrograms(t)
	if err := removeStaleSlurm(); err != nil {
		t.Fatal(err)
	}
	id := slurmRandomID(t)
	// The namespaces before the directory, which goes first: a stale
	// removal running beside this test sees the namespaces in use of a
	// directory it finds.
	probeNS := slurmLab(t, id)
	dir, err := os.MkdirTemp("", slurmPrefix+id+"-")
	if err != nil {
		t.Fatal(err)
	}
	// munged wants every directory above its socket searchable by all.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("remove %s: %v", dir, err)
		}
	})
	bin := buildSynprobe(t, dir)
	list := filepath.Join(dir, "targets.txt")
	if err := os.WriteFile(list, []byte(strings.Join(slurmTargets, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	perShard := make([]int, slurmTasks)
	for _, s := range slurmTargets {
		if !strings.Contains(s, ":") {
			s += ":80"
		}
		want[s] = true
		perShard[targetsrc.ShardOf(netip.MustParseAddrPort(s), slurmTasks)]++
	}
	if slices.Contains(perShard, 0) {
		t.Fatalf("targets per shard %v: a task with no target shows nothing; change slurmTargets", perShard)
	}

	c := startSlurm(t, progs, dir)
	t.Logf("cluster up (munged, slurmctld, slurmd; node %s idle) %.1fs after the test started", c.node, time.Since(start).Seconds())

	script, err := filepath.Abs("../../deploy/slurm/synprobe.sbatch")
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range [][]string{
		{"audit", "--only", "listen-*", "--only", "closed-*", "--closed-port", "81"},
		{"handshake", "--timeout", "1s"},
	} {
		t.Run(cmd[0], func(t *testing.T) {
			results := filepath.Join(dir, "results-"+cmd[0])
			args := append([]string{"--netns", probeNS, "--port", "80"}, cmd[1:]...)
			env := []string{
				"TARGETS=" + list,
				"RESULTS=" + results,
				"SYNPROBE=" + bin,
				"SYNPROBE_COMMAND=" + cmd[0],
				"SYNPROBE_ARGS=" + strings.Join(args, " "),
			}
			submitted := time.Now()
			c.runArray(t, script, env, results, cmd[0])
			t.Logf("%s: %d tasks done %.1fs after the submission", cmd[0], slurmTasks, time.Since(submitted).Seconds())

			var shards []string
			for i := range slurmTasks {
				f := filepath.Join(results, fmt.Sprintf("%s-%d.jsonl", cmd[0], i))
				for target := range verdictsOf(t, f) {
					if ap, err := netip.ParseAddrPort(target); err != nil || targetsrc.ShardOf(ap, slurmTasks) != i {
						t.Errorf("%s holds %s, of shard %d/%d (%v): the task's shard did not come from the array", f, target, targetsrc.ShardOf(ap, slurmTasks), slurmTasks, err)
					}
				}
				shards = append(shards, f)
			}
			merged := verdictsOf(t, shards...) // reports a target in two files
			all := filepath.Join(dir, cmd[0]+"-unsharded.jsonl")
			slurmUnsharded(t, bin, all, append([]string{cmd[0], "--targets", list, "--shard", "0/1"}, args...))
			whole := verdictsOf(t, all)
			if got := slices.Sorted(maps.Keys(merged)); !slices.Equal(got, slices.Sorted(maps.Keys(want))) {
				t.Errorf("targets of the merged tasks: %v; want each of %v once", got, slices.Sorted(maps.Keys(want)))
			}
			if fmt.Sprint(sorted(merged)) != fmt.Sprint(sorted(whole)) {
				t.Errorf("tasks merged:\n%v\nunsharded:\n%v", sorted(merged), sorted(whole))
			}
			a, text := slurmSummarize(t, bin, shards...)
			if b, _ := slurmSummarize(t, bin, all); a != b {
				t.Errorf("summarize of the tasks' files:\n%s\nof the unsharded run:\n%s", a, b)
			}
			t.Logf("synprobe summarize %s/%s-*.jsonl:\n%s", results, cmd[0], text)
		})
	}
	t.Logf("whole test before cleanup: %.1fs", time.Since(start).Seconds())
}

// slurmPrograms finds the programs of the cluster, on PATH or in the sbin
// directories a non-login PATH may lack, and skips the test without them.
func slurmPrograms(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	var missing []string
	for _, p := range []string{"munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "scancel", "squeue"} {
		path, err := exec.LookPath(p)
		for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin"} {
			if err == nil {
				break
			}
			path, err = exec.LookPath(filepath.Join(d, p))
		}
		if err != nil {
			missing = append(missing, p)
			continue
		}
		out[p] = path
	}
	if len(missing) > 0 {
		t.Skipf("needs Slurm and munge (Debian: slurm-wlm, munge): no %s", strings.Join(missing, ", "))
	}
	return out
}

func slurmRandomID(t *testing.T) string {
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(r[:])
}

// buildSynprobe builds the synprobe binary into dir/bin: the job's tasks
// run it as users would.
func buildSynprobe(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin", "synprobe")
	// go test puts its GOROOT/bin first on PATH.
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build synprobe: %v\n%s", err, out)
	}
	return bin
}

// slurmLab makes the targets: 10.91.0.2-7 on one stock Linux kernel in
// the named namespace spslurm-ID-t (port 80 open, read to the end of the
// stream; 81 closed), reached over a veth pair from 10.91.0.1 in
// spslurm-ID-p, whose name it returns for --netns. The namespaces have
// names because the job's processes, which the test did not start, must
// find them.
func slurmLab(t *testing.T, id string) string {
	t.Helper()
	names := [2]string{slurmPrefix + id + "-p", slurmPrefix + id + "-t"}
	var fds [2]int
	var inos [2]uint64
	for i, name := range names {
		fd, ino, err := netns.NewNamed(name)
		if err != nil {
			t.Fatal(err)
		}
		fds[i], inos[i] = fd, ino
		t.Cleanup(func() {
			if err := errors.Join(netns.DeleteNamed(name), netns.Close(fd)); err != nil {
				t.Error(err)
			}
		})
	}
	var addrs []netip.Prefix
	for i := 2; i <= 7; i++ {
		addrs = append(addrs, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 91, 0, byte(i)}), 24))
	}
	pair, err := veth.New(context.Background(), veth.Config{
		Probe:  veth.End{Name: "spslurm-p", NS: fds[0], Addrs: []netip.Prefix{netip.MustParsePrefix("10.91.0.1/24")}},
		Target: veth.End{Name: "spslurm-t", NS: fds[1], Addrs: addrs},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pair.Close(); err != nil {
			t.Errorf("close veth pair: %v", err)
		}
	})
	var ln net.Listener
	if err := netns.Do(fds[1], func() (err error) {
		ln, err = net.Listen("tcp4", "0.0.0.0:80")
		return err
	}); err != nil {
		t.Fatalf("listen in the target namespace: %v", err)
	}
	serve(t, ln, readToEnd(30*time.Second))
	// Runs after the cluster stopped (cleanups run last first): a task's
	// synprobe left in the probe namespace would outlive the test.
	t.Cleanup(func() {
		for _, pid := range netns.ProcessesIn(inos[:]...) {
			t.Errorf("process %d still runs in a namespace of the lab: killed", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	return names[0]
}

// removeStaleSlurm removes what a killed TestSlurmArray left: namespaces
// named spslurm-* that no process uses, and the temporary directories of
// runs whose namespaces are gone. The daemons die with the test process
// (Pdeathsig).
func removeStaleSlurm() error {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), slurmPrefix+"*"))
	byIno, err := netns.NamedWithPrefix(slurmPrefix)
	if err != nil {
		return fmt.Errorf("remove stale Slurm beds: %w", err)
	}
	used, err := netns.Users(slices.Collect(maps.Keys(byIno)))
	if err != nil {
		return fmt.Errorf("remove stale Slurm beds: %w", err)
	}
	live := map[string]bool{} // IDs
	var errs []error
	for ino, names := range byIno {
		for _, name := range names {
			if len(used[ino]) > 0 {
				live[slurmBedID(name)] = true
				continue
			}
			errs = append(errs, netns.DeleteNamed(name))
		}
	}
	for _, d := range dirs {
		if id := slurmBedID(filepath.Base(d)); id != "" && !live[id] {
			errs = append(errs, os.RemoveAll(d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove stale Slurm beds: %w", err)
	}
	return nil
}

// slurmBedID is the ID in a name of TestSlurmArray's (8 hexadecimal
// digits after the prefix), "" for other names.
func slurmBedID(name string) string {
	rest, ok := strings.CutPrefix(name, slurmPrefix)
	if !ok {
		return ""
	}
	id, _, _ := strings.Cut(rest, "-")
	if _, err := hex.DecodeString(id); err != nil || len(id) != 8 {
		return ""
	}
	return id
}

// slurmCluster is a running one-node cluster: its configuration, for the
// clients (SLURM_CONF), and its node.
type slurmCluster struct {
	progs map[string]string
	dir   string
	conf  string
	node  string
}

// startSlurm starts munged with a key of its own, slurmctld and slurmd
// (as root, in the foreground, each in a process group of its own) with a
// configuration in dir, and waits until the node is idle. Every daemon is
// stopped when the test ends, and every job cancelled before.
func startSlurm(t *testing.T, progs map[string]string, dir string) *slurmCluster {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ = strings.Cut(host, ".")
	c := &slurmCluster{progs: progs, dir: dir, conf: filepath.Join(dir, "slurm.conf"), node: host}
	// Runs after every daemon stopped (cleanups run last first).
	t.Cleanup(func() { c.checkGone(t) })
	for _, d := range []string{"state", "spool", "logs"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// munged refuses a key that others may read, or that another user owns.
	key := make([]byte, 1024)
	rand.Read(key)
	if err := os.WriteFile(filepath.Join(dir, "munge.key"), key, 0o400); err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "munge.socket")
	c.daemon(t, "munged", "-F", "--key-file="+filepath.Join(dir, "munge.key"), "--socket="+socket,
		"--pid-file="+filepath.Join(dir, "munged.pid"), "--log-file="+filepath.Join(dir, "logs", "munged.log"),
		"--seed-file="+filepath.Join(dir, "munged.seed"))
	if err := waitFor(10*time.Second, func() bool { _, err := os.Stat(socket); return err == nil }); err != nil {
		t.Fatalf("munged made no socket %s: %v\n%s", socket, err, c.logs())
	}
	ports := freePorts(t, 2)
	conf := fmt.Sprintf(`# A one-node cluster of synprobe's TestSlurmArray: no cgroups, no
# accounting, every file in %[1]s.
ClusterName=spslurm
SlurmctldHost=%[2]s(127.0.0.1)
SlurmctldPort=%[3]d
SlurmdPort=%[4]d
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=%[5]s
MpiDefault=none
SwitchType=switch/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
ReturnToService=2
MailProg=/bin/true
StateSaveLocation=%[1]s/state
SlurmdSpoolDir=%[1]s/spool
SlurmctldPidFile=%[1]s/slurmctld.pid
SlurmdPidFile=%[1]s/slurmd.pid
SlurmctldLogFile=%[1]s/logs/slurmctld.log
SlurmdLogFile=%[1]s/logs/slurmd.log
NodeName=%[2]s NodeAddr=127.0.0.1 CPUs=%[6]d RealMemory=%[7]d State=UNKNOWN
PartitionName=spslurm Nodes=%[2]s Default=YES MaxTime=INFINITE State=UP
`, dir, host, ports[0], ports[1], socket, runtime.NumCPU(), memoryMB(t)/2)
	if err := os.WriteFile(c.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c.daemon(t, "slurmctld", "-D", "-f", c.conf)
	c.daemon(t, "slurmd", "-D", "-f", c.conf, "-N", host)
	// Cleanups run last first: every job ends before the daemons stop.
	t.Cleanup(c.cancelJobs)
	var state string
	if err := waitFor(30*time.Second, func() bool {
		out, _ := c.client("sinfo", "-h", "-n", host, "-o", "%T").Output()
		state = strings.TrimSpace(string(out))
		return state == "idle"
	}); err != nil {
		t.Fatalf("node %s is %q, not idle: %v\n%s", host, state, err, c.logs())
	}
	return c
}

// daemon starts a daemon that stays in the foreground, in a process group
// of its own, and stops the group when the test ends. The daemon is
// started from a thread kept locked until it exits, so that Pdeathsig
// kills it when the test process dies, not when the Go runtime retires a
// thread.
func (c *slurmCluster) daemon(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(c.progs[name], args...)
	cmd.Dir = c.dir
	cmd.Env = append(slurmFreeEnv(), "SLURM_CONF="+c.conf)
	logf, err := os.Create(filepath.Join(c.dir, "logs", name+".stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started, exited := make(chan error, 1), make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		cmd.Wait()
		close(exited)
	}()
	if err := <-started; err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		defer logf.Close()
		pgid := cmd.Process.Pid
		syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("%s (process group %d) did not stop within 10s of SIGTERM: killed", name, pgid)
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-exited
		}
		// What the daemon started in its group (a slurmd's slurmstepd)
		// goes with it.
		syscall.Kill(-pgid, syscall.SIGKILL)
	})
}

// checkGone waits until no process of the cluster is left (a
// slurmstepd ends a moment after its job, and outlives slurmd), and kills
// those that are after 5 s. They are known by their environment: the
// daemons', and so their children's and the jobs', has SLURM_CONF naming
// this cluster's configuration.
func (c *slurmCluster) checkGone(t *testing.T) {
	mark := []byte("SLURM_CONF=" + c.conf + "\x00")
	left := func() []int {
		var pids []int
		envs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, f := range envs {
			b, err := os.ReadFile(f)
			if err == nil && (bytes.HasPrefix(b, mark) || bytes.Contains(b, append([]byte{0}, mark...))) {
				pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
				pids = append(pids, pid)
			}
		}
		return pids
	}
	if waitFor(5*time.Second, func() bool { return len(left()) == 0 }) == nil {
		return
	}
	for _, pid := range left() {
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		t.Errorf("process %d (%s) of the cluster still runs 5s after its daemons stopped: killed", pid, bytes.TrimSpace(comm))
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// client is a Slurm command of the cluster.
func (c *slurmCluster) client(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(c.progs[name], args...)
	cmd.Dir = c.dir
	cmd.Env = append(slurmFreeEnv(), "SLURM_CONF="+c.conf)
	return cmd
}

// cancelJobs cancels every job of the cluster and waits until none runs:
// no task of a failed test outlives it.
func (c *slurmCluster) cancelJobs() {
	c.client("scancel", "--full", "--user=root").Run()
	waitFor(15*time.Second, func() bool {
		out, err := c.client("squeue", "-h", "-o", "%i").Output()
		return err == nil && len(bytes.TrimSpace(out)) == 0
	})
}

// logs are the tails of the daemons' logs, for a failure's message.
func (c *slurmCluster) logs() string {
	var b strings.Builder
	files, _ := filepath.Glob(filepath.Join(c.dir, "logs", "*"))
	for _, f := range files {
		data, _ := os.ReadFile(f)
		if len(data) > 3000 {
			data = data[len(data)-3000:]
		}
		fmt.Fprintf(&b, "== %s\n%s\n", filepath.Base(f), data)
	}
	return b.String()
}

// slurmTask is an array task's end: its state and exit code.
type slurmTask struct {
	state string
	exit  int
}

// runArray submits the script as an array of slurmTasks tasks with env
// and waits until every task ended. A task that ended with synprobe's exit
// 3 (a target this loaded host failed) is submitted again alone, up to
// twice, after logging what failed: its file is removed and SHARDS keeps
// its shard that of the whole array. Any other failure fails the test.
func (c *slurmCluster) runArray(t *testing.T, script string, env []string, results, command string) {
	t.Helper()
	ends := c.submit(t, script, env, command, fmt.Sprintf("0-%d", slurmTasks-1))
	for task := range slurmTasks {
		for attempt := 1; ; attempt++ {
			end, ok := ends[task]
			if !ok {
				t.Fatalf("task %d of the array never ended: %v\n%s", task, ends, c.logs())
			}
			if end.state == "COMPLETED" && end.exit == 0 {
				break
			}
			log := c.taskLog(command, task)
			if end.exit != exitEnv || attempt == 3 {
				t.Fatalf("task %d: %s with exit %d; its log:\n%s", task, end.state, end.exit, log)
			}
			out := filepath.Join(results, fmt.Sprintf("%s-%d.jsonl", command, task))
			b, _ := os.ReadFile(out)
			for _, l := range strings.Split(string(b), "\n") {
				if strings.Contains(l, `"error"`) {
					t.Logf("task %d, attempt %d: a target had an error (submitted again): %.600s", task, attempt, l)
				}
			}
			t.Logf("task %d, attempt %d: exit %d; its log:\n%s", task, attempt, end.exit, log)
			os.Remove(out)
			again := c.submit(t, script, append(env, fmt.Sprintf("SHARDS=%d", slurmTasks)), command, strconv.Itoa(task))
			ends[task] = again[task]
		}
	}
}

// submit submits the array (sbatch --array=spec) and waits until each of
// its tasks ended; it returns them by task ID. The tasks' logs are
// logs/COMMAND-TASKID.log, appended to by a task submitted again.
func (c *slurmCluster) submit(t *testing.T, script string, env []string, command, spec string) map[int]slurmTask {
	t.Helper()
	cmd := c.client("sbatch", "--parsable", "--array="+spec, "--cpus-per-task=1", "--chdir="+c.dir,
		"--job-name="+command, "--output="+filepath.Join(c.dir, "logs", "%x-%a.log"), "--open-mode=append", script)
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sbatch: %v\n%s", err, out)
	}
	job, _, _ := strings.Cut(strings.TrimSpace(string(out)), ";")
	var ends map[int]slurmTask
	var last string
	if err := waitFor(45*time.Second, func() bool {
		b, err := c.client("scontrol", "-o", "show", "job", job).Output()
		if err != nil {
			return false
		}
		last = string(b)
		ends = map[int]slurmTask{}
		for _, l := range strings.Split(strings.TrimSpace(last), "\n") {
			f := scontrolFields(l)
			task, err := strconv.Atoi(f["ArrayTaskId"])
			if err != nil { // the array's pending rest, such as 1-2
				return false
			}
			if !slurmEnded[f["JobState"]] {
				return false
			}
			exit, _, _ := strings.Cut(f["ExitCode"], ":")
			code, _ := strconv.Atoi(exit)
			ends[task] = slurmTask{f["JobState"], code}
		}
		return true
	}); err != nil {
		t.Fatalf("job %s (array %s) did not end: %v\n%s\n%s", job, spec, err, last, c.logs())
	}
	return ends
}

// slurmEnded are the states of a job that has ended.
var slurmEnded = map[string]bool{"COMPLETED": true, "FAILED": true, "CANCELLED": true, "TIMEOUT": true,
	"NODE_FAIL": true, "OUT_OF_MEMORY": true, "BOOT_FAIL": true, "DEADLINE": true, "PREEMPTED": true}

// scontrolFields splits a line of scontrol -o into its Key=Value fields.
func scontrolFields(line string) map[string]string {
	f := map[string]string{}
	for _, kv := range strings.Fields(line) {
		if k, v, ok := strings.Cut(kv, "="); ok {
			f[k] = v
		}
	}
	return f
}

func (c *slurmCluster) taskLog(command string, task int) string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "logs", fmt.Sprintf("%s-%d.log", command, task)))
	return string(b)
}

// slurmUnsharded runs synprobe as a process with args and -o out, again
// (up to twice) when this host failed a target (exit 3), as
// fleetRunJudged does.
func slurmUnsharded(t *testing.T, bin, out string, args []string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		os.Remove(out)
		cmd := exec.Command(bin, append(args, "-o", out)...)
		cmd.Env = slurmFreeEnv()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		err := cmd.Run()
		code := cmd.ProcessState.ExitCode()
		if code == exitOK || code == exitFail {
			return
		}
		if code != exitEnv || attempt == 3 {
			t.Fatalf("unsharded %v: %v\n%s", args, err, stderr.String())
		}
		t.Logf("unsharded, attempt %d: exit 3 (run again):\n%s", attempt, stderr.String())
	}
}

// slurmSummarize runs synprobe summarize over files and returns its JSON
// tables without the counts of files and lines, and its text tables.
func slurmSummarize(t *testing.T, bin string, files ...string) (string, string) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"summarize", "--format", "json"}, files...)...).Output()
	if err != nil {
		t.Fatalf("synprobe summarize %v: %v", files, err)
	}
	var tables map[string]any
	if err := json.Unmarshal(out, &tables); err != nil {
		t.Fatalf("synprobe summarize --format json: %v\n%s", err, out)
	}
	delete(tables, "files")
	delete(tables, "lines")
	b, _ := json.MarshalIndent(tables, "", "  ")
	text, err := exec.Command(bin, append([]string{"summarize"}, files...)...).Output()
	if err != nil {
		t.Fatalf("synprobe summarize %v: %v", files, err)
	}
	return string(b), string(text)
}

// slurmFreeEnv is this process's environment without Slurm's variables:
// a test run inside a Slurm job must not pass its own job on.
func slurmFreeEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLURM_") && !strings.HasPrefix(kv, "SHARDS=") && !strings.HasPrefix(kv, subprocessEnv+"=") {
			env = append(env, kv)
		}
	}
	return env
}

// freePorts finds n TCP ports free on this host now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// memoryMB is this host's memory in MiB, from /proc/meminfo.
func memoryMB(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err == nil {
				return kb / 1024
			}
		}
	}
	t.Fatal("no MemTotal in /proc/meminfo")
	return 0
}

// waitFor polls cond every 100 ms until it holds or d has passed.
func waitFor(d time.Duration, cond func() bool) error {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("still not after %v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
