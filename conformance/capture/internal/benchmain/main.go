// Command benchmain writes and analyses large synthetic captures for
// scripts/bench-analyze.sh, until synprobe analyze exists:
//
//	benchmain gen [-conns N] FILE       write N short connections as a pcap
//	benchmain analyze [-mode M] FILE    judge every connection of FILE
//
// Modes: "only-failures" keeps failing results only (no step of a passing
// connection becomes text); "streamed" turns every result into text and
// hands it to a callback that drops it (what a streaming report writer
// costs, without the writing); "all" keeps every result in the report.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"synprobe/conformance/capture"
	"synprobe/conformance/capture/internal/gen"
	"synprobe/conformance/report"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "gen":
		err = genMain(os.Args[2:])
	case "analyze":
		err = analyzeMain(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchmain:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchmain gen [-conns N] FILE | benchmain analyze [-mode only-failures|streamed|all] FILE")
	os.Exit(2)
}

func genMain(args []string) error {
	fs := flag.NewFlagSet("gen", flag.ExitOnError)
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

func analyzeMain(args []string) error {
	fs := flag.NewFlagSet("analyze", flag.ExitOnError)
	mode := fs.String("mode", "only-failures", "only-failures, streamed or all")
	fs.Parse(args)
	if fs.NArg() != 1 {
		usage()
	}
	var opt capture.Options
	switch *mode {
	case "only-failures":
		opt.OnlyFailures = true
	case "streamed":
		opt.OnResult = func(report.Result) {}
	case "all":
	default:
		usage()
	}
	f, err := os.Open(fs.Arg(0))
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	a := capture.NewAnalyzer(fs.Arg(0), opt)
	err = a.Read(context.Background(), f)
	rep := a.Finish()
	elapsed := time.Since(start)
	st := a.Stats()
	fmt.Printf("%s: %d packets, %d connections (%s) in %.3f s: %.0f packets/s\n",
		*mode, st.Packets, st.Connections, rep.Summary.Counts(), elapsed.Seconds(), float64(st.Packets)/elapsed.Seconds())
	return err
}
