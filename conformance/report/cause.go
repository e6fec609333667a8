package report

import (
	"strconv"
	"strings"
)

// Cause says what decided a result that did not pass, so that reports,
// filters and summaries can count why. Four things shape what comes back
// on the wire: the target's TCP stack, its application, the path and the
// local host. Only the stack earns fail or warn; a result decided by
// anything else, or whose premise did not hold, is skip, info or error
// with one of the causes below. A script that could not be read or parsed
// is an error of the input, decided before anything was sent.
//
// A cause is written "kind" or "kind:what", from a short fixed vocabulary
// (Causes lists it, Meaning says what each means, and `synprobe scenarios
// --causes` prints them).
type Cause string

// The causes.
const (
	// CauseStack: the target's TCP stack did it (every fail and warn, and
	// info: implementation-defined behaviour, reported as observed).
	CauseStack Cause = "stack"

	// CauseAppNotAccepting: the listener does not accept connections (its
	// accept queue is full, or it stopped answering SYNs): nothing past the
	// SYN can be judged.
	CauseAppNotAccepting Cause = "application:not-accepting"
	// CauseAppClosed: the application closed the connection (its FIN)
	// before the check was done; what the stack does with data after that
	// (a RST, RFC 9293 3.10.7.4 and RFC 1122 4.2.2.13) is not the check.
	CauseAppClosed Cause = "application:closed"
	// CauseAppReset: the application aborted the connection (a RST, as a
	// close with unread data sends, RFC 1122 4.2.2.13), as it does on such
	// input when synprobe asks it alone.
	CauseAppReset Cause = "application:reset"
	// CauseAppNoData: the check needs data from the application and got
	// too little (--request chooses what is asked).
	CauseAppNoData Cause = "application:no-data"
	// CauseAppDidNotAct: a script says the application acts (write, close,
	// ...) and it did not: synprobe cannot make a remote application act.
	CauseAppDidNotAct Cause = "application:did-not-act"

	// CausePremiseTimestamps: timestamps were not negotiated.
	CausePremiseTimestamps Cause = "premise:timestamps"
	// CausePremiseSACK: SACK was not negotiated.
	CausePremiseSACK Cause = "premise:sack"
	// CausePremiseWScale: window scaling was not negotiated.
	CausePremiseWScale Cause = "premise:window-scaling"
	// CausePremiseECN: ECN was not negotiated.
	CausePremiseECN Cause = "premise:ecn"
	// CausePremiseSYNCookies: SYN cookies answer the SYNs: the listener
	// keeps no state for half-open connections, so what depends on that
	// state cannot be judged.
	CausePremiseSYNCookies Cause = "premise:syn-cookies"
	// CausePremiseClosedPort: no closed port is known, or the one named
	// is filtered (a SYN to it got no RST).
	CausePremiseClosedPort Cause = "premise:closed-port"
	// CausePremiseFamily: the check needs the other address family.
	CausePremiseFamily Cause = "premise:address-family"
	// CausePremiseNothing: nothing in the check could be judged (a script
	// without expectations).
	CausePremiseNothing Cause = "premise:nothing-to-judge"
	// CausePremiseBlackBox: the script is valid packetdrill but needs what
	// a remote black box cannot do: encapsulation, UDP, ports of its
	// choosing (it is not run), or what packetdrill does on the target's
	// own host: its application connects or sets a socket option that
	// changes its TCP, or a shell command sets its sysctls or routes (the
	// script ends at that line).
	CausePremiseBlackBox Cause = "premise:black-box"

	// CausePathICMP: a box on the path (or a firewall) answered with an
	// ICMP error instead of the stack.
	CausePathICMP Cause = "path:icmp"
	// The path causes of the path check (--path-check): a finding of
	// synprobe trace's explains the result ("path:" and the finding's
	// kind, TRACE.md).
	CausePathTSStripped      Cause = "path:option-stripped(ts)"
	CausePathSACKStripped    Cause = "path:option-stripped(sack)"
	CausePathWSStripped      Cause = "path:option-stripped(ws)"
	CausePathUnknownStripped Cause = "path:option-stripped(unknown)"
	CausePathTFOStripped     Cause = "path:option-stripped(tfo)"
	CausePathMSSClamp        Cause = "path:mss-clamp"
	CausePathECNCleared      Cause = "path:ecn-flags-cleared"
	CausePathECNBleached     Cause = "path:ecn-bleached"
	CausePathDropSYNData     Cause = "path:drop(syndata)"
	CausePathDropExotic      Cause = "path:drop(exotic)"
	CausePathDropBadSum      Cause = "path:drop(badsum)"
	CausePathDropOutOfWindow Cause = "path:drop(out-of-window)"
	CausePathDropNoConn      Cause = "path:drop(no-connection)"
	CausePathNAT             Cause = "path:nat"
	CausePathNATLeak         Cause = "path:nat-leak"
	CausePathProxy           Cause = "path:terminating-proxy"
	CausePathSYNProxy        Cause = "path:syn-proxy"
	// CausePathUnobserved: the target's answer lacks what it took up (TS
	// on data after the handshake negotiated it) and no router quoted a
	// change: a box after the last router, or the target itself; only a
	// reflector on the target host tells them apart.
	CausePathUnobserved Cause = "path:unobserved"

	// CauseLocalDrops: this host's socket dropped frames while the check
	// ran: silence or a missing reply cannot be told from local loss.
	CauseLocalDrops Cause = "local-host:drops"
	// CauseLocalKernelRST: this host's kernel answered on synprobe's port
	// (no RST guard).
	CauseLocalKernelRST Cause = "local-host:kernel-rst"
	// CauseLocalInterrupted: the run was interrupted.
	CauseLocalInterrupted Cause = "local-host:interrupted"
	// CauseLocalFailure: synprobe itself failed (a send, a port).
	CauseLocalFailure Cause = "local-host:failure"
	// CauseLocalBusy: this host sent a segment late (its CPU was busy):
	// the target's timers ran meanwhile.
	CauseLocalBusy Cause = "local-host:busy"

	// CauseInputScript: the script could not be read or parsed (the
	// reason gives file:line:col); nothing was sent for it.
	CauseInputScript Cause = "input:script"
)

// Causes is the whole vocabulary, in the order summaries list it.
var Causes = []Cause{
	CauseStack,
	CauseAppNotAccepting, CauseAppClosed, CauseAppReset, CauseAppNoData, CauseAppDidNotAct,
	CausePremiseTimestamps, CausePremiseSACK, CausePremiseWScale, CausePremiseECN, CausePremiseSYNCookies,
	CausePremiseClosedPort, CausePremiseFamily, CausePremiseNothing, CausePremiseBlackBox,
	CausePathICMP,
	CausePathTSStripped, CausePathSACKStripped, CausePathWSStripped, CausePathUnknownStripped, CausePathTFOStripped,
	CausePathMSSClamp, CausePathECNCleared, CausePathECNBleached,
	CausePathDropSYNData, CausePathDropExotic, CausePathDropBadSum, CausePathDropOutOfWindow, CausePathDropNoConn,
	CausePathNAT, CausePathNATLeak, CausePathProxy, CausePathSYNProxy, CausePathUnobserved,
	CauseLocalDrops, CauseLocalKernelRST, CauseLocalInterrupted, CauseLocalFailure, CauseLocalBusy,
	CauseInputScript,
}

// meanings say in a line what each cause means, for people.
var meanings = map[Cause]string{
	CauseStack:               "the target's TCP stack did it",
	CauseAppNotAccepting:     "the listener completes no connection: its accept queue is full (the application does not accept), nothing listens, or nothing answers the SYN",
	CauseAppClosed:           "the application closed the connection (its FIN) before the check was done, or closes every connection after its greeting",
	CauseAppReset:            "the application resets connections on what the check sent (the profile saw it do so)",
	CauseAppNoData:           "the check needs data from the application and got too little (--request chooses what is asked)",
	CauseAppDidNotAct:        "a script says the application writes or closes, and it did not",
	CausePremiseTimestamps:   "the SYN-ACK did not accept timestamps",
	CausePremiseSACK:         "the SYN-ACK did not accept SACK",
	CausePremiseWScale:       "the SYN-ACK did not accept window scaling",
	CausePremiseECN:          "the SYN-ACK did not accept ECN",
	CausePremiseSYNCookies:   "SYN cookies answer the SYNs: the listener keeps no state for half-open connections",
	CausePremiseClosedPort:   "no closed port is known, or the one named is filtered",
	CausePremiseFamily:       "the check needs the other address family",
	CausePremiseNothing:      "nothing in the check could be judged",
	CausePremiseBlackBox:     "the script needs what a remote black box cannot do: encapsulation, UDP, ports of its choosing, or making the target connect, set a socket option or change its sysctls or routes",
	CausePathICMP:            "a router or a firewall answered with an ICMP error instead of the stack",
	CausePathTSStripped:      "a box on the path strips the timestamps option (from SYNs, or from the data of a connection that negotiated it)",
	CausePathSACKStripped:    "a box on the path strips the SACK-permitted option",
	CausePathWSStripped:      "a box on the path strips the window scale option",
	CausePathUnknownStripped: "a box on the path strips options it does not know",
	CausePathTFOStripped:     "a box on the path strips the TCP Fast Open option",
	CausePathMSSClamp:        "a box on the path lowers the MSS option (MSS clamping)",
	CausePathECNCleared:      "a box on the path clears ECE and CWR in SYNs: ECN cannot be negotiated",
	CausePathECNBleached:     "a box on the path clears the IP ECN field",
	CausePathDropSYNData:     "a box on the path drops SYNs that carry data",
	CausePathDropExotic:      "a box on the path drops SYNs with options it does not know",
	CausePathDropBadSum:      "a box on the path drops segments with a bad TCP checksum",
	CausePathDropOutOfWindow: "a box on the path drops segments outside the connection's window",
	CausePathDropNoConn:      "a box on the path drops segments of no connection it knows (a stateful firewall)",
	CausePathNAT:             "a box on the path translates addresses or ports (NAT)",
	CausePathNATLeak:         "an out-of-state segment passed a NAT untranslated and the host's answer came from its real address",
	CausePathProxy:           "a box on the path terminates the connection: what answered is the box's TCP, not the target's",
	CausePathSYNProxy:        "a SYN proxy on the path answers the SYNs: the handshake is the box's, not the target's",
	CausePathUnobserved:      "what the target's answers lack (TS on data after it was negotiated) may be a box after the last router that quotes, or the target: synprobe reflect on the target host tells them apart",
	CauseLocalDrops:          "this host's socket dropped frames while the check ran",
	CauseLocalKernelRST:      "this host's kernel answered on synprobe's port (no RST guard)",
	CauseLocalInterrupted:    "the run was interrupted",
	CauseLocalFailure:        "synprobe itself failed (a send, a port)",
	CauseLocalBusy:           "this host sent a segment late (its CPU was busy): the target's timers ran meanwhile, so what did not pass cannot be blamed on it",
	CauseInputScript:         "the script could not be read or parsed: nothing was sent for it",
}

// Meaning says in a line what the cause means.
func (c Cause) Meaning() string { return meanings[c] }

// Kind is the part of the cause before the colon: "stack", "application",
// "premise", "path", "local-host" or "input".
func (c Cause) Kind() string {
	k, _, _ := strings.Cut(string(c), ":")
	return k
}

// Valid reports whether c is in the vocabulary.
func (c Cause) Valid() bool {
	for _, v := range Causes {
		if c == v {
			return true
		}
	}
	return false
}

// Blames says whether the cause may carry a fail or a warn: only the
// stack's own behaviour can.
func (c Cause) Blames() bool { return c == CauseStack }

// CauseCounts counts the results that did not pass by cause.
type CauseCounts map[Cause]int

// Causes counts rep's results that did not pass, by cause.
func (rep *Report) Causes() CauseCounts {
	n := CauseCounts{}
	for _, r := range rep.Results {
		if r.Verdict != Pass {
			n[r.Cause]++
		}
	}
	return n
}

// String formats the counts as "3 stack, 2 premise:timestamps", in
// vocabulary order.
func (n CauseCounts) String() string {
	var parts []string
	for _, c := range Causes {
		if n[c] > 0 {
			parts = append(parts, strconv.Itoa(n[c])+" "+string(c))
		}
	}
	for c, k := range n {
		if !c.Valid() && k > 0 {
			parts = append(parts, strconv.Itoa(k)+" "+string(c))
		}
	}
	return strings.Join(parts, ", ")
}
