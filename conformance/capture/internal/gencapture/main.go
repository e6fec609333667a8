// Command gencapture writes a large synthetic capture of short TCP
// connections for scripts/bench-analyze.sh:
//
//	gencapture [-conns N] FILE
package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"

	"synprobe/conformance/capture/internal/gen"
)

func main() {
	if err := gen1(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "gencapture:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: gencapture [-conns N] FILE")
	os.Exit(2)
}

func gen1(args []string) error {
	fs := flag.NewFlagSet("gencapture", flag.ExitOnError)
	conns := fs.Int("conns", 100_000, "connections to write")
	fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	f, err := os.Create(fs.Arg(0))
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	n, err := gen.ShortConnections(w, *conns)
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", fs.Arg(0), err)
	}
	fmt.Printf("wrote %d packets in %d connections to %s\n", n, *conns, fs.Arg(0))
	return nil
}
