// Package conformance judges TCP behaviour: the rules, the connection state
// the runner keeps for a probe connection, the built-in handshake, and (in
// subpackages) scripts and reports.
//
// Rules are small named functions over what was sent, what came back and
// the connection state. They return precise problems ("ack: want ISN+1
// (8221823), got 8221822") at the level of the requirement they check; live
// runs and capture analysis use the same rules. Nothing here touches a
// socket: frames go through a probe.Session.
package conformance
