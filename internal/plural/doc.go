// Package plural writes a count with its noun in the right number: "1 hop",
// "3 hops", for text output whose counts may be 1.
package plural
