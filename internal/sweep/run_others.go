//go:build !linux

package sweep

import "context"

// Run is not supported outside Linux.
func Run(ctx context.Context, cfg Config) (Stats, error) { return Stats{}, ErrNotSupported }
