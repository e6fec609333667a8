package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"synprobe/conformance/report"
	"synprobe/scenarios"
)

func scenariosCommand() *cli.Command {
	return &cli.Command{
		Name:  "scenarios",
		Usage: "list the built-in scenarios",
		Description: `Lists the scenarios 'synprobe audit' runs: name, level, RFC section and what
each checks. 'synprobe run --target HOST:PORT NAME' runs any of them alone.

--causes lists instead what a result that did not pass can be caused by: only
the stack's own behaviour earns fail or warn; the application, a premise, the
path or this host make a result skip, info or error, with its cause.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "text", Usage: "text or json"},
			&cli.BoolFlag{Name: "causes", Usage: "list the causes a result's verdict can have, and what each means"},
		},
		Action: listScenarios,
	}
}

func listScenarios(c *cli.Context) error {
	if err := checkFormat(c, "text", "json"); err != nil {
		return err
	}
	w := c.App.Writer
	if c.Bool("causes") {
		return listCauses(w, c.String("format"))
	}
	all, err := scenarios.Suite()
	if err != nil {
		return envErr(err)
	}
	if c.String("format") == "json" {
		type entry struct {
			Name        string   `json:"name"`
			Area        string   `json:"area"`
			Level       string   `json:"level"`
			RFC         string   `json:"rfc"`
			Description string   `json:"description"`
			Needs       []string `json:"needs,omitempty"`
			Kind        string   `json:"kind"`
		}
		var out []entry
		for _, s := range all {
			kind := "script"
			if s.Check != nil {
				kind = "go"
			}
			out = append(out, entry{s.Name, s.Area, s.Level, s.RFC, s.Description, s.Needs, kind})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLEVEL\tRFC\tCHECKS")
	area := ""
	for _, s := range all {
		if s.Area != area {
			if area != "" {
				fmt.Fprintln(tw, "\t\t\t")
			}
			area = s.Area
		}
		needs := ""
		if len(s.Needs) > 0 {
			needs = " [needs " + strings.Join(s.Needs, ", ") + "]"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s%s\n", s.Name, s.Level, s.RFC, s.Description, needs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%d scenarios\n", len(all))
	return nil
}

// listCauses writes the vocabulary of causes.
func listCauses(w io.Writer, format string) error {
	if format == "json" {
		type entry struct {
			Cause   report.Cause `json:"cause"`
			Kind    string       `json:"kind"`
			Meaning string       `json:"meaning"`
		}
		var out []entry
		for _, c := range report.Causes {
			out = append(out, entry{c, c.Kind(), c.Meaning()})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CAUSE\tMEANS")
	for _, c := range report.Causes {
		fmt.Fprintf(tw, "%s\t%s\n", c, c.Meaning())
	}
	return tw.Flush()
}
