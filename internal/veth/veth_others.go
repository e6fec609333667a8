//go:build !linux

package veth

import (
	"context"
	"fmt"
	"runtime"
)

// New is not supported outside Linux.
func New(ctx context.Context, cfg Config) (*Pair, error) {
	return nil, fmt.Errorf("create veth pair: network namespaces are not supported on %s", runtime.GOOS)
}

// Close does nothing outside Linux.
func (p *Pair) Close() error { return nil }
