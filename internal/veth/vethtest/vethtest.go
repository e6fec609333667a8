// Package vethtest gives tests network namespaces and veth pairs that
// vanish when the test ends, and skips tests that cannot have them.
package vethtest

import (
	"context"
	"os"
	"testing"

	"synprobe/internal/netns"
	"synprobe/internal/veth"
)

// New makes the veth pair cfg describes (see veth.New), closed when the
// test ends. It skips the test unless the process is root.
func New(t testing.TB, cfg veth.Config) *veth.Pair {
	t.Helper()
	skipUnlessRoot(t, "network namespaces and a veth pair")
	p, err := veth.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Errorf("close veth pair: %v", err)
		}
	})
	return p
}

// Namespace makes an anonymous network namespace, closed when the test
// ends, and returns its descriptor. It skips the test unless the process is
// root.
func Namespace(t testing.TB) int {
	t.Helper()
	skipUnlessRoot(t, "network namespaces")
	ns, err := netns.New()
	if err != nil {
		t.Fatalf("create network namespace: %v", err)
	}
	t.Cleanup(func() {
		if err := netns.Close(ns); err != nil {
			t.Errorf("close network namespace: %v", err)
		}
	})
	return ns
}

func skipUnlessRoot(t testing.TB, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates " + what)
	}
}
