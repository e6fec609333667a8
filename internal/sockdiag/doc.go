// Package sockdiag lists the TCP sockets of a network namespace as
// `ss -tan` shows them, through sock_diag: typed states and addresses, no
// ss output to parse, no process to start.
//
// Test beds use it to check that synprobe left nothing at a target: a
// probe run that cleans up after itself leaves no connection of its own
// in any state but TIME-WAIT (Leftovers).
package sockdiag
