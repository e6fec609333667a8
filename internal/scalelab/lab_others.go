//go:build !linux

package scalelab

import (
	"context"
	"errors"
)

type labSys struct{}

// ErrNotSupported: the scale lab needs Linux.
var ErrNotSupported = errors.New("scale lab: not supported on this platform (needs Linux namespaces)")

// Start is not supported outside Linux.
func Start(ctx context.Context, plan Plan) (*Lab, error) { return nil, ErrNotSupported }

// ProbeFD is not supported outside Linux.
func (l *Lab) ProbeFD() int { return 0 }

// Close is a no-op outside Linux.
func (l *Lab) Close() error { return nil }
