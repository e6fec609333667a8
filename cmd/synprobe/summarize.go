package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"synprobe/internal/summary"
)

func summarizeCommand() *cli.Command {
	return &cli.Command{
		Name:      "summarize",
		Usage:     "merge the JSON lines of many-target runs and sweeps into tables",
		ArgsUsage: "FILE...",
		Description: `Reads the JSON lines of audit, handshake and trace --targets runs (their
shards, in any order; '-' is standard input) and of synprobe sweep, and prints:

  - targets by their worst verdict (audits and handshakes: a trace's verdict
    is the path's, counted in its row "trace" and in the path findings);
  - per scenario, how many targets pass, fail, warn, info, skip and error, and
    why: the count of each cause, with one reason as an example;
  - fingerprint clusters: SYN-ACK option layout (M mss, S SACK permitted,
    T timestamps, N nop, E end, Wn window scale n), initial TTL, window, ISN
    clock (random across ports or not, its rate on one 4-tuple) and
    timestamp clock (its rate, an offset per 4-tuple or one for all), with
    how many targets share each;
  - path findings by kind (lines with a "path" object: --path-check, trace),
    and how many targets' paths were walked and showed nothing;
  - swept ports by state.

A target in several lines counts once (its first finished line); lines of
interrupted targets count only if nothing finished came for them; the last
line of a file cut short by a killed run is skipped.

Examples:
  synprobe summarize shard-*.jsonl
  synprobe summarize --format csv -o tables.csv audit.jsonl paths.jsonl sweep.jsonl`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "text", Usage: "output format: text, json, csv"},
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write the tables to `FILE` instead of standard output"},
		},
		Action: runSummarize,
	}
}

func runSummarize(c *cli.Context) error {
	if err := checkFormat(c, "text", "json", "csv"); err != nil {
		return err
	}
	if c.NArg() == 0 {
		return usageErr("summarize needs at least one FILE of JSON lines ('-' for standard input)")
	}
	if err := stopIfCheckOnly(c); err != nil {
		return err
	}
	s := summary.New()
	for _, name := range c.Args().Slice() {
		f := os.Stdin
		if name != "-" {
			var err error
			if f, err = openFile("summarize", name); err != nil {
				return err
			}
		}
		err := s.Read(f, name)
		if name != "-" {
			f.Close()
		}
		var le *summary.LineError
		if errors.As(err, &le) {
			return usageErr("summarize: %s", printable(err.Error()))
		}
		if err != nil {
			return envErr(fmt.Errorf("summarize: %w", err))
		}
	}
	s.Finish()
	w := c.App.Writer
	if name := c.String("output"); name != "" && name != "-" {
		f, err := os.Create(name)
		if err != nil {
			return fileErr("--output", name, err)
		}
		defer f.Close()
		w = f
	}
	var err error
	switch c.String("format") {
	case "json":
		err = s.WriteJSON(w)
	case "csv":
		err = s.WriteCSV(w)
	default:
		err = s.WriteText(w)
	}
	if err != nil {
		return envErr(fmt.Errorf("summarize: write: %w", err))
	}
	return nil
}
