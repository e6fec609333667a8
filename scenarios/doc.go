// Package scenarios is synprobe's built-in conformance suite: one scenario
// per behaviour of ../shared/CATALOGUE.md, grouped by area (closed port,
// listen, validity, options, established, timers).
//
// Most scenarios are .pkt scripts embedded from this directory, run by the
// conformance runner like any user script. A few need Go (alternatives the
// language cannot express, statistics, data transfer): they live beside the
// scripts as Checks, use the same connection state and rules, and report
// the same way. Audit runs the whole suite concurrently, paced per target,
// with the stack fingerprint beside it.
package scenarios
