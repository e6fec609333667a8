//go:build !linux

package probe

import (
	"fmt"
	"runtime"
)

var errPacketLinkNotSupported = fmt.Errorf("AF_PACKET links are not supported on %s", runtime.GOOS)

// PacketLink is a Link on an AF_PACKET socket; it exists only on Linux.
type PacketLink struct{}

// OpenPacketLink is not supported outside Linux.
func OpenPacketLink(cfg PacketLinkConfig) (*PacketLink, error) {
	return nil, fmt.Errorf("open packet link on %s: %w", cfg.Interface, errPacketLinkNotSupported)
}

// SetFilter is not supported outside Linux.
func (l *PacketLink) SetFilter(f FlowFilter) error { return errPacketLinkNotSupported }

// WriteFrame is not supported outside Linux.
func (l *PacketLink) WriteFrame(frame []byte) error { return errPacketLinkNotSupported }

// ReadFrame is not supported outside Linux.
func (l *PacketLink) ReadFrame() (Capture, error) { return Capture{}, errPacketLinkNotSupported }

// Stats is not supported outside Linux.
func (l *PacketLink) Stats() (LinkStats, error) { return LinkStats{}, errPacketLinkNotSupported }

// HardwareAddr is the zero MAC outside Linux.
func (l *PacketLink) HardwareAddr() MAC { return MAC{} }

// MTU is 0 outside Linux.
func (l *PacketLink) MTU() int { return 0 }

// Name is empty outside Linux.
func (l *PacketLink) Name() string { return "" }

// Notes are empty outside Linux.
func (l *PacketLink) Notes() []string { return nil }

// Close does nothing outside Linux.
func (l *PacketLink) Close() error { return nil }
