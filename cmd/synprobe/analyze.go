package main

import (
	"fmt"
	"io"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"synprobe/conformance/capture"
	"synprobe/conformance/report"
	"synprobe/internal/progress"
)

func analyzeCommand() *cli.Command {
	return &cli.Command{
		Name:      "analyze",
		Usage:     "judge every TCP connection in a pcap or pcapng capture",
		ArgsUsage: "FILE|-",
		Description: `Reads a capture (pcap, microsecond or nanosecond, either byte order; or
pcapng, several interfaces and link types) as a stream, and judges every TCP
connection in it with the same rules the live checks use: the handshake (ack =
ISN+1, options only if offered, timestamp echo), the close (FIN accounting, the
ACK of each FIN), resets (which side, in which state, acceptable or not) and
what goes on between (acks of data never sent, window scale and timestamps as
negotiated, checksums). No privileges are needed. '-' reads standard input:

  tcpdump -i eth0 -w - 'tcp port 80' | synprobe analyze -

A connection whose start or end is not in the capture is reported as such, not
as a failure. Checksums that are wrong only from one host usually mean the
capture was taken on that host with checksum offload: reported as info.
A damaged file is reported up to the damage, with its byte offset (exit 2).

Memory stays bounded whatever the capture holds: at most --max-open
connections are followed at once (past it, those quiet longest are judged
before their end, and the report says how many), and a result lists at most
--max-steps steps (the others are counted).

Examples:
  synprobe analyze trace.pcapng
  synprobe analyze --only-failures --format json big.pcap`,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "only-failures", Usage: "list only connections that did not pass (counts still cover all); keeps memory low on big captures"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "show every step of every connection"},
			&cli.IntFlag{Name: "max-open", Value: defaultMaxOpen, Usage: "follow at most `N` connections at once (about 3 KiB each); past it, those quiet longest are judged early"},
			&cli.IntFlag{Name: "max-steps", Value: defaultMaxSteps, Usage: "list at most `N` steps per connection; the others are counted"},
		}, outputFlags("text", "json", "junit")...),
		Action: runAnalyze,
	}
}

func runAnalyze(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErr("analyze needs one capture file (or - for standard input), got %d arguments", c.NArg())
	}
	if err := checkFormat(c, "text", "json", "junit"); err != nil {
		return err
	}
	if err := checkLimit(c, "max-open", maxMaxOpen); err != nil {
		return err
	}
	if err := checkLimit(c, "max-steps", maxMaxSteps); err != nil {
		return err
	}
	if err := stopIfCheckOnly(c); err != nil {
		return err
	}
	name := c.Args().First()
	var in io.Reader = os.Stdin
	if name != "-" {
		f, err := openFile("capture", name)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	} else {
		name = "standard input"
	}
	// The report streams: each connection is written when it ends, so
	// memory stays bounded by the open connections, whatever the file size.
	out, err := openOutput(c)
	if err != nil {
		return err
	}
	if f, ok := in.(*os.File); ok && out.file != nil && sameFile(f, out.file) {
		out.discard()
		return usageErr("--output %q is the capture itself: writing the report would destroy it", c.String("output"))
	}
	if err := out.begin(); err != nil {
		out.discard()
		return envErr(fmt.Errorf("write report: %w", err))
	}
	head := &report.Report{Command: "analyze", Target: report.Target{Address: name}, Started: time.Now()}
	prog := progress.Start(c.App.ErrWriter, progress.Options{Name: "analyze", Bytes: true, Total: fileSize(in)})
	st := report.NewStream(prog.Above(out.w), c.String("format"), head, report.TextOptions{Steps: c.Bool("verbose"), Color: out.color})
	rep, aerr := capture.Analyze(c.Context, progressReader{in, prog}, name, capture.Options{
		OnlyFailures: c.Bool("only-failures"),
		OnResult:     func(r report.Result) { st.Result(r) },
		MaxOpen:      c.Int("max-open"),
		MaxSteps:     c.Int("max-steps"),
	})
	if rep == nil {
		prog.Stop()
		out.discard()
		return usageErr("%s: %v", name, aerr)
	}
	prog.Stop()
	werr := st.Finish(rep)
	if cerr := out.close(); werr == nil {
		werr = cerr
	}
	switch {
	case aerr != nil && c.Context.Err() != nil:
		return aerr
	case aerr != nil:
		// The report holds what was read before the damage.
		return usageErr("%s: %v", name, aerr)
	case werr != nil:
		return envErr(fmt.Errorf("write report: %w", werr))
	}
	return exitFor(rep)
}

// sameFile reports whether a and b are one file.
func sameFile(a, b *os.File) bool {
	sa, erra := a.Stat()
	sb, errb := b.Stat()
	return erra == nil && errb == nil && os.SameFile(sa, sb)
}

// fileSize is the size of a capture read from a regular file (a pipe's
// is not known: 0).
func fileSize(r io.Reader) int64 {
	f, ok := r.(*os.File)
	if !ok {
		return 0
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		return 0
	}
	return st.Size()
}

// progressReader counts the bytes of the capture read so far.
type progressReader struct {
	r    io.Reader
	line *progress.Line
}

func (p progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.line.Add(int64(n))
	return n, err
}
