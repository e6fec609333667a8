// Package pathlabtest gives tests a path bed (internal/pathlab) that is
// closed when the test ends, and skips tests that cannot have one.
package pathlabtest

import (
	"context"
	"testing"
	"time"

	"synprobe/internal/pathlab"
)

// Start starts a path bed as cfg says, closed when t ends; without root,
// nft or the kernel's support, t is skipped with the reason.
func Start(t testing.TB, cfg pathlab.Config) *pathlab.Bed {
	t.Helper()
	if ok, why := pathlab.Available(); !ok {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := pathlab.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("start the path bed: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close the path bed: %v", err)
		}
	})
	return b
}
