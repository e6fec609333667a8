package validate

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// indexAnnotation is where the Job controller puts a pod's completion index.
const indexAnnotation = "metadata.annotations['batch.kubernetes.io/job-completion-index']"

// decodeStrict decodes YAML into v as the API server reads JSON: field
// names match case-sensitively, and a field the type does not have (a
// typo, a field of another version) is an error, as is a field twice.
func decodeStrict(b []byte, v any) error {
	j, err := yaml.YAMLToJSONStrict(b)
	if err != nil {
		return err
	}
	strict, err := kjson.UnmarshalStrict(j, v)
	if err != nil {
		return err
	}
	if len(strict) > 0 {
		var msgs []string
		for _, e := range strict {
			msgs = append(msgs, e.Error())
		}
		return fmt.Errorf("%s", strings.Join(msgs, "; "))
	}
	return nil
}

// loadJob decodes job.yaml strictly.
func loadJob(t *testing.T) *batchv1.Job {
	t.Helper()
	b, err := os.ReadFile("../job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var job batchv1.Job
	if err := decodeStrict(b, &job); err != nil {
		t.Fatalf("deploy/kubernetes/job.yaml is not a batch/v1 Job: %v", err)
	}
	if job.APIVersion != "batch/v1" || job.Kind != "Job" {
		t.Fatalf("deploy/kubernetes/job.yaml is %s %s, want batch/v1 Job", job.APIVersion, job.Kind)
	}
	return &job
}

// container is the Job's one container, synprobe.
func container(t *testing.T, job *batchv1.Job) *corev1.Container {
	t.Helper()
	cs := job.Spec.Template.Spec.Containers
	if len(cs) != 1 || cs[0].Name != "synprobe" {
		t.Fatalf("the Job has containers %v, want one named synprobe", cs)
	}
	return &cs[0]
}

func envValue(c *corev1.Container, name string) (corev1.EnvVar, bool) {
	for _, e := range c.Env {
		if e.Name == name {
			return e, true
		}
	}
	return corev1.EnvVar{}, false
}

// TestDecodeStrict: the decoding of loadJob refuses what the API server
// would.
func TestDecodeStrict(t *testing.T) {
	const head = "apiVersion: batch/v1\nkind: Job\nspec:\n"
	tests := []struct{ yaml, want string }{
		{head + "  completionmode: Indexed\n", `unknown field "spec.completionmode"`},
		{head + "  completions: 2\n  template:\n    spec:\n      hostNetwrok: true\n", `unknown field "spec.template.spec.hostNetwrok"`},
		{head + "  completions: 2\n  completions: 3\n", `"completions"`},
		{head + "  completions: two\n", "completions"},
	}
	for _, tt := range tests {
		var job batchv1.Job
		if err := decodeStrict([]byte(tt.yaml), &job); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("decode %q: error %v; want one containing %s", tt.yaml, err, tt.want)
		}
	}
	var job batchv1.Job
	if err := decodeStrict([]byte(head+"  completions: 2\n"), &job); err != nil || *job.Spec.Completions != 2 {
		t.Errorf("a good Job: %v, completions %v", err, job.Spec.Completions)
	}
}

// TestJobManifest checks the Job against what synprobe needs of it.
func TestJobManifest(t *testing.T) {
	job := loadJob(t)
	spec := job.Spec
	pod := spec.Template.Spec
	c := container(t, job)

	if spec.CompletionMode == nil || *spec.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("completionMode %v, want Indexed: each pod needs its own index, its shard", spec.CompletionMode)
	}
	if spec.Completions == nil || *spec.Completions < 1 {
		t.Fatalf("completions %v, want the number of shards", spec.Completions)
	}
	n := *spec.Completions
	if spec.Parallelism == nil || *spec.Parallelism != n {
		t.Errorf("parallelism %v, want %d (= completions: every shard at once)", spec.Parallelism, n)
	}
	if spec.BackoffLimitPerIndex == nil || *spec.BackoffLimitPerIndex < 1 {
		t.Errorf("backoffLimitPerIndex %v, want at least 1: a failed index is run again, resuming", spec.BackoffLimitPerIndex)
	}
	failsIndexOnUsage := false
	if p := spec.PodFailurePolicy; p != nil {
		for _, r := range p.Rules {
			e := r.OnExitCodes
			if r.Action == batchv1.PodFailurePolicyActionFailIndex && e != nil && e.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn &&
				slices.Contains(e.Values, 2) && (e.ContainerName == nil || *e.ContainerName == c.Name) {
				failsIndexOnUsage = true
			}
		}
	}
	if !failsIndexOnUsage {
		t.Errorf("podFailurePolicy %+v: want a FailIndex rule for exit code 2 (bad input fails every rerun alike)", spec.PodFailurePolicy)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy %q, want Never (podFailurePolicy needs it)", pod.RestartPolicy)
	}
	if !pod.HostNetwork {
		t.Error("hostNetwork is false: the probes must leave from the node's own network")
	}
	if pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q, want ClusterFirstWithHostNet (the cluster's DNS with hostNetwork)", pod.DNSPolicy)
	}

	// Shards: N from SYNPROBE_SHARDS, I from the index.
	if e, ok := envValue(c, "SYNPROBE_SHARDS"); !ok || e.Value != strconv.Itoa(int(n)) {
		t.Errorf("env SYNPROBE_SHARDS %+v, want %q (= completions)", e, strconv.Itoa(int(n)))
	}
	if e, ok := envValue(c, "JOB_COMPLETION_INDEX"); ok && (e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != indexAnnotation) {
		t.Errorf("env JOB_COMPLETION_INDEX %+v, want the field %s", e, indexAnnotation)
	}
	if !slices.Contains(c.Args, "--fail-exit-code") || c.Args[slices.Index(c.Args, "--fail-exit-code")+1] != "0" {
		t.Errorf("args %q lack --fail-exit-code 0: a target that failed a check would fail the pod", c.Args)
	}

	// Privileges: root with NET_RAW and NET_ADMIN, nothing else.
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatal("the container has no securityContext.capabilities: synprobe needs NET_RAW and NET_ADMIN")
	}
	add := slices.Sorted(slices.Values(sc.Capabilities.Add))
	if !slices.Equal(add, []corev1.Capability{"NET_ADMIN", "NET_RAW"}) {
		t.Errorf("capabilities add %v, want NET_ADMIN and NET_RAW", add)
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities drop %v, want ALL", sc.Capabilities.Drop)
	}
	if sc.RunAsUser == nil || *sc.RunAsUser != 0 {
		t.Errorf("runAsUser %v, want 0: added capabilities are effective for root only", sc.RunAsUser)
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Error("privileged: true; two capabilities are all synprobe needs")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation %v, want false", sc.AllowPrivilegeEscalation)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("readOnlyRootFilesystem %v, want true: synprobe writes only its output", sc.ReadOnlyRootFilesystem)
	}

	// The image: its entry point, with no shell.
	df := readDockerfile(t)
	if !slices.Equal(c.Command, df.entrypoint) {
		t.Errorf("command %q, want the image's entry point %q", c.Command, df.entrypoint)
	}

	// Volumes: every mount is a volume, targets a ConfigMap, results a
	// claim; every path in args lies on a mount, the output on a
	// writable one.
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for _, m := range c.VolumeMounts {
		if _, ok := vols[m.Name]; !ok {
			t.Errorf("volumeMount %s at %s names no volume", m.Name, m.MountPath)
		}
	}
	env := podEnv(t, c, 0)
	args := expandAll(c.Args, env)
	for i, a := range args {
		if !strings.HasPrefix(a, "/") {
			continue
		}
		m := mountOf(c, a)
		if m == nil {
			t.Errorf("args[%d] %s is on no volumeMount: the image's root has only the binary", i, a)
			continue
		}
		flag := ""
		if i > 0 {
			flag = args[i-1]
		}
		switch flag {
		case "--output", "-o", "--resume":
			if m.ReadOnly {
				t.Errorf("%s %s is on the read-only mount %s", flag, a, m.Name)
			}
			if v := vols[m.Name]; v.PersistentVolumeClaim == nil {
				t.Errorf("%s %s is on volume %s, not a PersistentVolumeClaim: a rerun would not find it", flag, a, m.Name)
			}
		case "--targets":
			if v := vols[m.Name]; v.ConfigMap == nil {
				t.Errorf("--targets %s is on volume %s, not a ConfigMap", a, m.Name)
			}
		}
	}
	if out, resume := flagValue(args, "--output"), flagValue(args, "--resume"); out == "" || out != resume {
		t.Errorf("--output %q and --resume %q: want the same file, so that a rerun resumes", out, resume)
	}
	out0, out1 := flagValue(args, "--output"), flagValue(expandAll(c.Args, podEnv(t, c, 1)), "--output")
	if n > 1 && out0 == out1 {
		t.Errorf("indexes 0 and 1 both write %s: want one file per index", out0)
	}
}

func flagValue(args []string, name string) string {
	for i, a := range args {
		if a == name && i+1 < len(args) {
			return args[i+1]
		}
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	return ""
}

// mountOf returns the container's mount that holds path.
func mountOf(c *corev1.Container, path string) *corev1.VolumeMount {
	for i, m := range c.VolumeMounts {
		if rel, err := filepath.Rel(m.MountPath, path); err == nil && !strings.HasPrefix(rel, "..") {
			return &c.VolumeMounts[i]
		}
	}
	return nil
}

// podEnv is the container's environment as the kubelet would make it in
// the pod of index: values with $(VAR) expanded in order, the completion
// index from its annotation, and JOB_COMPLETION_INDEX, which the Job
// controller adds when the container does not name it. Any other source
// is not simulated and fails the test.
func podEnv(t *testing.T, c *corev1.Container, index int) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = expand(e.Value, env)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == indexAnnotation:
			env[e.Name] = strconv.Itoa(index)
		default:
			t.Fatalf("env %s: a source this test does not simulate: %+v", e.Name, e.ValueFrom)
		}
	}
	if _, ok := env["JOB_COMPLETION_INDEX"]; !ok {
		env["JOB_COMPLETION_INDEX"] = strconv.Itoa(index)
	}
	return env
}

// expand does what the kubelet does to command, args and env values:
// $(VAR) becomes VAR's value when VAR is defined and stays as it is
// otherwise; $$ is a $.
func expand(s string, env map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
			continue
		case '(':
			if end := strings.IndexByte(s[i+2:], ')'); end >= 0 {
				name := s[i+2 : i+2+end]
				if v, ok := env[name]; ok {
					b.WriteString(v)
				} else {
					b.WriteString(s[i : i+3+end])
				}
				i += 2 + end
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func expandAll(args []string, env map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, env)
	}
	return out
}

func TestExpand(t *testing.T) {
	env := map[string]string{"I": "3", "N": "8"}
	tests := []struct{ in, want string }{
		{"/results/audit-$(I).jsonl", "/results/audit-3.jsonl"},
		{"$(I)/$(N)", "3/8"},
		{"$(UNSET)", "$(UNSET)"},
		{"$$(I)", "$(I)"},
		{"a$", "a$"},
		{"$(I", "$(I"},
		{"$x", "$x"},
	}
	for _, tt := range tests {
		if got := expand(tt.in, env); got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestJobVariablesDefined: every $(VAR) in command and args is defined in
// the container's env; one that is not would stay in the file name as it
// is.
func TestJobVariablesDefined(t *testing.T) {
	c := container(t, loadJob(t))
	defined := map[string]bool{}
	for _, e := range c.Env {
		defined[e.Name] = true
	}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		for rest := a; ; {
			i := strings.Index(rest, "$(")
			if i < 0 {
				break
			}
			end := strings.IndexByte(rest[i:], ')')
			if end < 0 {
				break
			}
			if name := rest[i+2 : i+end]; !defined[name] {
				t.Errorf("%q names $(%s), which the container's env does not define", a, name)
			}
			rest = rest[i+end:]
		}
	}
}

// TestJobArgsRun runs the image's binary with the Job's command line in
// the pods of the first and the last index, the volumes being
// directories of the test's and the target list holding no target
// (nothing is sent): the CLI must take every flag, find its shard in the
// environment and write the index's file; an index past SYNPROBE_SHARDS
// is refused, which shows that the count comes from there.
func TestJobArgsRun(t *testing.T) {
	job := loadJob(t)
	c := container(t, job)
	bin := staticBinary(t)
	n := int(*job.Spec.Completions)
	root := t.TempDir()
	dirOf := map[string]string{} // mount path -> directory
	for _, m := range c.VolumeMounts {
		dirOf[m.MountPath] = filepath.Join(root, m.Name)
		if err := os.MkdirAll(dirOf[m.MountPath], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	local := func(path string) string {
		m := mountOf(c, path)
		if m == nil {
			return path
		}
		rel, _ := filepath.Rel(m.MountPath, path)
		return filepath.Join(dirOf[m.MountPath], rel)
	}
	run := func(index int) (code int, stderr string, args []string) {
		env := podEnv(t, c, index)
		args = expandAll(c.Args, env)
		for i, a := range args {
			if strings.HasPrefix(a, "/") {
				args[i] = local(a)
			}
		}
		if tl := flagValue(args, "--targets"); tl != "" {
			// A ConfigMap of no target: nothing is sent.
			if err := os.WriteFile(tl, []byte("# no targets: this run sends nothing\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(bin, args...)
		cmd.Env = nil
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if _, ok := err.(*exec.ExitError); err != nil && !ok {
			t.Fatalf("run %s: %v", bin, err)
		}
		if out.Len() > 0 {
			t.Errorf("index %d wrote to stdout: %q", index, out.String())
		}
		return cmd.ProcessState.ExitCode(), errb.String(), args
	}
	for _, index := range []int{0, n - 1} {
		code, stderr, args := run(index)
		if code != 0 || !strings.Contains(stderr, "0 targets checked") {
			t.Errorf("index %d: synprobe %q exited %d, stderr:\n%s\nwant exit 0, 0 targets checked", index, args, code, stderr)
		}
		want := local(strings.ReplaceAll(flagValue(c.Args, "--output"), "$(JOB_COMPLETION_INDEX)", strconv.Itoa(index)))
		if _, err := os.Stat(want); err != nil {
			t.Errorf("index %d: no output file: %v", index, err)
		}
	}
	code, stderr, _ := run(n)
	wantErr := fmt.Sprintf("shard %d: want 0 to %d", n, n-1)
	if code != 2 || !strings.Contains(stderr, "job completion index") || !strings.Contains(stderr, wantErr) {
		t.Errorf("index %d of %d shards: exit %d, stderr:\n%s\nwant exit 2 and %q", n, n, code, stderr, wantErr)
	}
}
