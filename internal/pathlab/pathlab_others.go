//go:build !linux

package pathlab

import (
	"context"
	"fmt"
	"net"
	"runtime"
)

// errNotSupported: a bed needs Linux network namespaces and nftables.
var errNotSupported = fmt.Errorf("pathlab: not supported on %s: a bed needs Linux network namespaces and nftables", runtime.GOOS)

// bedSys is empty: no bed is ever made.
type bedSys struct{}

// Available is false outside Linux.
func Available() (bool, string) { return false, errNotSupported.Error() }

// Start is not supported outside Linux.
func Start(ctx context.Context, cfg Config) (*Bed, error) { return nil, errNotSupported }

// SetBox is not supported outside Linux.
func (b *Bed) SetBox(box Box, at Position) error { return errNotSupported }

// In is not supported outside Linux.
func (b *Bed) In(n Node, fn func() error) error { return errNotSupported }

// InClient is not supported outside Linux.
func (b *Bed) InClient(fn func() error) error { return errNotSupported }

// InServer is not supported outside Linux.
func (b *Bed) InServer(fn func() error) error { return errNotSupported }

// NSFD is 0 outside Linux.
func (b *Bed) NSFD(n Node) int { return 0 }

// Dial is not supported outside Linux.
func (b *Bed) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	return nil, errNotSupported
}

// ListRuleset is not supported outside Linux.
func (b *Bed) ListRuleset(n Node) (string, error) { return "", errNotSupported }

// Close does nothing outside Linux.
func (b *Bed) Close() error { return nil }
