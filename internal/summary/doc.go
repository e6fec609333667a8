// Package summary merges the JSON lines of many-target runs (synprobe
// audit, handshake and trace --format jsonl, their shards, and synprobe
// sweep) into the tables a measurement prints: per scenario, how many
// targets passed, failed, warned or skipped and why (the results'
// causes); the clusters of stack fingerprints (option layout, initial
// TTL, window, ISN and timestamp clocks) with counts; path findings by
// kind, from the path object of --path-check and trace lines alike; and
// the states of swept ports. A trace's verdict is the path's: it has its
// row ("trace") and its findings, never a place among the targets' worst
// verdicts.
//
// A target seen in more than one line counts once: its first finished
// line (a line marked interrupted counts only when no finished one comes).
// The set of targets seen is held (about 60 bytes a target); everything
// else is counts.
package summary
