// Package progress draws one line of progress on a terminal while a long
// run goes on: how many items are done of how many, the rate, an
// estimate of the time left, and whatever the run adds (drops, errors).
//
// It draws only when its writer is a terminal: to a pipe or a file it
// writes nothing at all, so logs and redirected output stay clean. The
// line is cleared when the run ends, leaving the terminal to the summary.
// Drawing is github.com/vbauerster/mpb's, which redraws on its own tick, so
// the elapsed time and the estimate move even while one slow item runs.
package progress
