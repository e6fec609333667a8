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

// Offload names a segmentation offload.
type Offload uint32

const (
	TSO    Offload = 0x1f
	GSO    Offload = 0x24
	GRO    Offload = 0x2c
	TXCSUM Offload = 0x17
	RXCSUM Offload = 0x15
)

// SetOffload is not supported outside Linux.
func SetOffload(ns int, ifName string, o Offload, on bool) error {
	return fmt.Errorf("set offload on %s: not supported on %s", ifName, runtime.GOOS)
}
