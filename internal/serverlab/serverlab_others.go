//go:build !linux

package serverlab

import (
	"context"
	"fmt"
	"net"
	"runtime"
)

// errNotSupported: a bed needs Linux network namespaces.
var errNotSupported = fmt.Errorf("serverlab: not supported on %s: a bed needs Linux network namespaces", runtime.GOOS)

// bedSys is empty: no bed is ever made.
type bedSys struct{}

// Start is not supported outside Linux.
func Start(ctx context.Context, cfg Config) (*Bed, error) { return nil, errNotSupported }

// Close does nothing outside Linux.
func (b *Bed) Close() error { return nil }

// Processes is empty outside Linux.
func (b *Bed) Processes() []int { return nil }

// InProbe is not supported outside Linux.
func (b *Bed) InProbe(fn func() error) error { return errNotSupported }

// InTarget is not supported outside Linux.
func (b *Bed) InTarget(fn func() error) error { return errNotSupported }

// Dial is not supported outside Linux.
func (b *Bed) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, errNotSupported
}

// Sysctl is not supported outside Linux.
func (b *Bed) Sysctl(name string) (string, error) { return "", errNotSupported }

// SetOffloads is not supported outside Linux.
func (b *Bed) SetOffloads(s Side, o Offloads) error { return errNotSupported }

// Offloads is not supported outside Linux.
func (b *Bed) Offloads(s Side) (Offloads, error) { return Offloads{}, errNotSupported }

// Leftovers is not supported outside Linux.
func (b *Bed) Leftovers() ([]Conn, error) { return nil, errNotSupported }

// Listening is not supported outside Linux.
func (b *Bed) Listening() ([]Conn, error) { return nil, errNotSupported }
