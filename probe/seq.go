package probe

// Seq is a TCP sequence (or acknowledgment) number. Arithmetic wraps at 2^32
// and comparisons follow RFC 9293 section 3.4: a is "less than" b when the
// signed distance from a to b is positive.
type Seq uint32

// Add returns s advanced by n bytes of sequence space.
func (s Seq) Add(n uint32) Seq { return s + Seq(n) }

// Sub returns the signed distance from t to s (s - t), correct across a wrap
// as long as the two are less than 2^31 apart.
func (s Seq) Sub(t Seq) int32 { return int32(s - t) }

// LessThan reports whether s comes before t.
func (s Seq) LessThan(t Seq) bool { return int32(s-t) < 0 }

// LessEq reports whether s comes before t or equals it.
func (s Seq) LessEq(t Seq) bool { return int32(s-t) <= 0 }

// InRange reports whether lo <= s < hi in sequence space.
func (s Seq) InRange(lo, hi Seq) bool { return uint32(s-lo) < uint32(hi-lo) }

// InWindow reports whether s lies in the window of size bytes that starts at
// start: start <= s < start+size. An empty window contains nothing.
func (s Seq) InWindow(start Seq, size uint32) bool { return uint32(s-start) < size }
