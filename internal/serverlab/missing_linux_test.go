package serverlab

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMissingProgram: a server whose program is not installed is named
// with its package, by Missing and by Start, which then makes nothing.
func TestMissingProgram(t *testing.T) {
	saved := binaries["xinetd"]
	binaries["xinetd"] = []binary{{"serverlab-no-such-xinetd", "xinetd"}}
	t.Cleanup(func() { binaries["xinetd"] = saved })
	const want = "missing: serverlab-no-such-xinetd (install xinetd)"

	err := Missing("echo", "daytime", "never-accepts")
	var me *MissingError
	if !errors.As(err, &me) || err.Error() != want {
		t.Errorf("Missing: %v, want %q", err, want)
	}
	if err := Missing("never-accepts"); err != nil {
		t.Errorf("Missing(never-accepts): %v, want nil", err)
	}
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), NamePrefix+"*"))
	b, err := Start(context.Background(), Config{Apps: []string{"echo"}})
	if err == nil {
		b.Close()
		t.Fatalf("Start: a bed, want %q", want)
	}
	if !errors.As(err, &me) || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("Start: %v, want an error ending %q", err, want)
	}
	if after, _ := filepath.Glob(filepath.Join(os.TempDir(), NamePrefix+"*")); len(after) > len(before) {
		t.Errorf("Start made %v", after)
	}
}
