package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"synprobe/scenarios"
)

func scenariosCommand() *cli.Command {
	return &cli.Command{
		Name:  "scenarios",
		Usage: "list the built-in scenarios",
		Description: `Lists the scenarios 'synprobe audit' runs: name, level, RFC section and what
each checks. 'synprobe run --target HOST:PORT NAME' runs any of them alone.`,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "format", Aliases: []string{"f"}, Value: "text", Usage: "text or json"},
		},
		Action: listScenarios,
	}
}

func listScenarios(c *cli.Context) error {
	if err := checkFormat(c, "text", "json"); err != nil {
		return err
	}
	all, err := scenarios.Suite()
	if err != nil {
		return envErr(err)
	}
	w := c.App.Writer
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
