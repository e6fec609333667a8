package validate

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// repoRoot is synprobe's repository, from this directory.
const repoRoot = "../../.."

var (
	buildOnce sync.Once
	buildDir  string
	builtBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// staticBinary builds synprobe as the image's build stage does (`make
// static`, into a directory of the test's) once, and returns its path.
func staticBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "synprobe-validate-")
		if buildErr != nil {
			return
		}
		builtBin = filepath.Join(buildDir, "synprobe-static")
		cmd := exec.Command("make", "--no-print-directory", "-C", repoRoot, "static", "STATIC="+builtBin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("make static: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatalf("build the image's binary: %v", buildErr)
	}
	return builtBin
}

// checkStatic returns an error naming what makes the ELF file at path
// depend on anything at run time: a program interpreter (PT_INTERP, the
// dynamic loader) or a shared library (DT_NEEDED). An image FROM scratch
// has neither.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("read %s as ELF: %w", path, err)
	}
	defer f.Close()
	var problems []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(p.Open())
			problems = append(problems, fmt.Sprintf("it has a program interpreter (PT_INTERP %q)", strings.TrimRight(string(interp), "\x00")))
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return fmt.Errorf("read the dynamic section of %s: %w", path, err)
	}
	if len(libs) > 0 {
		problems = append(problems, fmt.Sprintf("it needs shared libraries (DT_NEEDED %s)", strings.Join(libs, ", ")))
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s is not static: %s; an image FROM scratch has no loader nor libc to run it (build with CGO_ENABLED=0, as `make static` does)", path, strings.Join(problems, "; "))
	}
	return nil
}

// TestStaticBinary: the binary `make static` builds, the one the image
// holds, links nothing at run time.
func TestStaticBinary(t *testing.T) {
	if err := checkStatic(staticBinary(t)); err != nil {
		t.Error(err)
	}
}

// TestCheckStaticSeesDynamic: checkStatic refuses a dynamically linked
// program (the host's shell, where it is one).
func TestCheckStaticSeesDynamic(t *testing.T) {
	f, err := elf.Open("/bin/sh")
	if err != nil {
		t.Skipf("no ELF /bin/sh to try: %v", err)
	}
	dynamic := false
	for _, p := range f.Progs {
		dynamic = dynamic || p.Type == elf.PT_INTERP
	}
	f.Close()
	if !dynamic {
		t.Skip("/bin/sh is static here: no dynamic program to try")
	}
	err = checkStatic("/bin/sh")
	if err == nil || !strings.Contains(err.Error(), "PT_INTERP") || !strings.Contains(err.Error(), "is not static") {
		t.Errorf("checkStatic(/bin/sh) = %v; want an error naming PT_INTERP", err)
	}
}

// TestDockerfile: the image is the binary of `make static` alone, FROM
// scratch, run as its entry point.
func TestDockerfile(t *testing.T) {
	df := readDockerfile(t)
	if !strings.Contains(df.buildStage, "RUN make static") {
		t.Errorf("deploy/Dockerfile's build stage does not run `make static`:\n%s", df.buildStage)
	}
	if df.from != "scratch" {
		t.Errorf("deploy/Dockerfile's last stage is FROM %s, want scratch", df.from)
	}
	if df.copySrc != "/src/bin/synprobe-static" {
		t.Errorf("deploy/Dockerfile copies %q, want /src/bin/synprobe-static (what `make static` builds)", df.copySrc)
	}
	if len(df.entrypoint) != 1 || df.entrypoint[0] != df.copyDst {
		t.Errorf("deploy/Dockerfile's ENTRYPOINT is %q, want [%q] (the binary it copies, exec form: there is no shell)", df.entrypoint, df.copyDst)
	}
}

// dockerfile is what the tests read of deploy/Dockerfile.
type dockerfile struct {
	buildStage       string   // the text before the last FROM
	from             string   // the last stage's base
	copySrc, copyDst string   // the last stage's one COPY --from
	entrypoint       []string // exec form
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	last := strings.LastIndex(text, "\nFROM ")
	if last < 0 {
		t.Fatal("deploy/Dockerfile has no FROM line after the first")
	}
	df := dockerfile{buildStage: text[:last]}
	copies := 0
	for i, line := range strings.Split(text[last+1:], "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "FROM":
			df.from = fields[1]
		case "COPY":
			copies++
			if len(fields) != 4 || !strings.HasPrefix(fields[1], "--from=") {
				t.Errorf("deploy/Dockerfile, last stage, line %d: %q; want COPY --from=build SRC DST", i+1, line)
				continue
			}
			df.copySrc, df.copyDst = fields[2], fields[3]
		case "ENTRYPOINT":
			list := strings.TrimSpace(strings.TrimPrefix(line, "ENTRYPOINT"))
			if !strings.HasPrefix(list, "[") || !strings.HasSuffix(list, "]") {
				t.Errorf("deploy/Dockerfile: ENTRYPOINT %s is not the exec form; the image has no shell", list)
				continue
			}
			for _, a := range strings.Split(strings.Trim(list, "[]"), ",") {
				df.entrypoint = append(df.entrypoint, strings.Trim(strings.TrimSpace(a), `"`))
			}
		default:
			t.Errorf("deploy/Dockerfile, last stage: unexpected %q; the image is the binary alone", line)
		}
	}
	if copies != 1 {
		t.Errorf("deploy/Dockerfile's last stage has %d COPY lines, want 1 (the binary)", copies)
	}
	return df
}
