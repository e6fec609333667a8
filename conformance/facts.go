package conformance

import (
	"fmt"
	"sync"

	"synprobe/conformance/report"
	"synprobe/probe"
)

// Facts are what a run knows of the target beyond its address, learned
// before the checks (the application profile, the closed port) or while
// they run (the listener stopped accepting), that premises and attribution
// rest on. One Facts is shared by every check of a run; it is safe for
// concurrent use.
type Facts struct {
	// App is the application profile, nil when none was taken (synprobe
	// run): then nothing is assumed of the application.
	App *Application
	// Request is what checks send where they need the application to
	// answer (--request); nil: DefaultRequest.
	Request []byte

	// SYNCookies says whether SYN cookies answer the target's SYNs (the
	// listener keeps no state for half-open connections), when
	// SYNCookiesKnown.
	SYNCookies, SYNCookiesKnown bool

	mu sync.Mutex
	// notAccepting is set once the listener stopped answering SYNs.
	notAccepting string
}

// Need is a premise a script or a check names with @needs: what the target
// must offer for the check to mean anything.
type Need string

// The premises a check can name. Those known per connection are judged
// when the SYN-ACK comes; the others before the check runs.
const (
	NeedClosedPort Need = "closed-port" // a port of the target with no listener, answering RSTs
	NeedIPv4       Need = "ipv4"
	NeedIPv6       Need = "ipv6"
	NeedTimestamps Need = "timestamps" // the SYN-ACK accepted timestamps
	NeedSACK       Need = "sack"       // the SYN-ACK accepted SACK
	NeedWScale     Need = "wscale"     // the SYN-ACK accepted window scaling
	NeedECN        Need = "ecn"        // the SYN-ACK accepted ECN (ECE, RFC 3168)
	NeedSYNState   Need = "syn-state"  // the listener keeps state for half-open connections (no SYN cookies)
)

// premiseAtSYNACK says whether a per-connection premise holds on the
// connection once the SYN-ACK to syn came, and if not, its cause and why.
// ok is true for premises not judged at the SYN-ACK.
func premiseAtSYNACK(n Need, syn, synack *probe.TCP) (ok bool, c report.Cause, why string) {
	switch n {
	case NeedTimestamps:
		_, offered := syn.Option(probe.OptionTimestamps)
		_, answered := synack.Option(probe.OptionTimestamps)
		if offered && !answered {
			return false, report.CausePremiseTimestamps, "timestamps not negotiated: the SYN-ACK carries no TS option (net.ipv4.tcp_timestamps=0?)"
		}
	case NeedSACK:
		if syn.SACKPermitted() && !synack.SACKPermitted() {
			return false, report.CausePremiseSACK, "SACK not negotiated: the SYN-ACK carries no SACK-permitted option (net.ipv4.tcp_sack=0, or SYN cookies without timestamps)"
		}
	case NeedWScale:
		_, offered := syn.WScale()
		_, answered := synack.WScale()
		if offered && !answered {
			return false, report.CausePremiseWScale, "window scaling not negotiated: the SYN-ACK carries no window scale option"
		}
	case NeedECN:
		if syn.Flags.Has(probe.ECE|probe.CWR) && synack.Flags&probe.ECE == 0 {
			return false, report.CausePremiseECN, "ECN not negotiated: the SYN-ACK carries no ECE (net.ipv4.tcp_ecn?)"
		}
	}
	return true, "", ""
}

// RequestBytes is the request checks send to make the application answer:
// --request, or "GET /n HTTP/1.0" when none was given.
func (f *Facts) RequestBytes(n int) []byte {
	if f != nil && f.Request != nil {
		return f.Request
	}
	return DefaultRequest(n)
}

// FillerBytes is the data a check sends where only the stack matters (see
// Application.FillerBytes): zeros without a profile, as packetdrill sends.
func (f *Facts) FillerBytes(off, n int) []byte {
	if f == nil || f.App == nil {
		return make([]byte, n)
	}
	return f.App.filler.bytes(off, n)
}

// DropsConnectionOnData reports whether the application closes or resets
// the connection when it gets the checks' data (the profile saw it): a RST
// that follows synprobe's data is then the application's doing.
func (f *Facts) DropsConnectionOnData() bool {
	return f != nil && f.App != nil && (f.App.FillerReaction.Then == ThenClosed || f.App.FillerReaction.Then == ThenReset)
}

// ClosesAfterGreeting reports whether the application closes (or resets)
// every connection right after the greeting it sends first (daytime).
func (f *Facts) ClosesAfterGreeting() bool {
	return f != nil && f.App != nil && f.App.SpeaksFirst && f.App.Greeting.Then != ThenOpen
}

// NotAccepting returns why the listener is known not to accept
// connections, or "".
func (f *Facts) NotAccepting() string {
	if f == nil {
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notAccepting != "" {
		return f.notAccepting
	}
	if f.App != nil && !f.App.Accepts {
		return f.App.AcceptsWhy
	}
	return ""
}

// Refuses returns why the profile found that the listener completes no
// connection, or "": then nothing that needs one is tried. (That it
// stopped accepting later, NotAccepting, is only known to the checks that
// tried.)
func (f *Facts) Refuses() string {
	if f == nil || f.App == nil || f.App.Accepts {
		return ""
	}
	return f.App.AcceptsWhy
}

// NothingListens returns why nothing listens on the target's port (a RST
// answered the profile's SYNs), or "": then no scenario of a listener can
// be judged there.
func (f *Facts) NothingListens() string {
	if f == nil || f.App == nil || !f.App.Closed {
		return ""
	}
	return f.App.AcceptsWhy
}

// SetNotAccepting records that the listener stopped answering SYNs.
func (f *Facts) SetNotAccepting(why string) {
	if f == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.notAccepting == "" {
		f.notAccepting = why
	}
}

func quote(b []byte) string {
	const max = 24
	if len(b) > max {
		return fmt.Sprintf("%q...", b[:max])
	}
	return fmt.Sprintf("%q", b)
}
