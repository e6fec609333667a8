// Package fleet runs one check (an audit, a handshake) over many targets:
// a bounded number at once, new ones started no faster than a global rate,
// and each target's report written as one JSON line as soon as it is done.
//
// Targets come from a stream (internal/targets) and nothing is kept per
// target once its line is written, so a run's memory does not grow with
// the number of targets. When the context ends (Ctrl-C), no new target
// starts; the running ones stop as their context says and their lines are
// written marked "interrupted", so the output stays valid JSON lines and a
// resumed run does them again.
package fleet
