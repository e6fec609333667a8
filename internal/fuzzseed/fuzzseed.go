// Package fuzzseed keeps a fuzz target's seed corpus on disk in step with
// the seeds a test builds, so that a plain `go test -fuzz` starts from them.
package fuzzseed

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Sync checks that dir holds every seed (file name -> data) in Go's corpus
// format, or, with update, writes them there.
func Sync(t testing.TB, dir string, seeds map[string][]byte, update bool) {
	t.Helper()
	for name, data := range seeds {
		path := filepath.Join(dir, name)
		content := fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", data)
		if update {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, content, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, content) {
			t.Errorf("seed %q is missing or stale in %s (run go test -run TestFuzzSeedCorpus -update-seeds)", name, path)
		}
	}
}
