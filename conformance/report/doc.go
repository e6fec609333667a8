// Package report is synprobe's one report model, used by every command, and
// its writers: text for people, JSON for programs, JUnit XML for CI.
//
// A Report holds one Result per check (a scenario, a script, a connection
// in a capture); a Result holds the Steps that led to its verdict, each
// with what was sent or expected, what arrived, and the precise problems.
package report
