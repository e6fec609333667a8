// Command synprobe tests how a remote TCP stack really behaves: it crafts
// TCP segments by hand, sends them as raw Ethernet frames, captures the
// replies and judges each one against RFC 9293 and its companions.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// Exit codes (DESIGN.md).
const (
	exitOK    = 0
	exitFail  = 1 // some check failed
	exitUsage = 2 // bad usage or bad input (script, capture, address)
	exitEnv   = 3 // the environment prevented the run (privileges, no route, guard)
)

// exitError carries an exit code with the message main prints.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageErr(format string, args ...any) error {
	return &exitError{exitUsage, fmt.Errorf(format, args...)}
}

func envErr(err error) error { return &exitError{exitEnv, err} }

// exitCode is a silent exit with a code (the report already said why).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs synprobe with args and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, args)
	var ec exitCode
	var ee *exitError
	switch {
	case err == nil, errors.Is(err, errChecked):
		return exitOK
	case errors.As(err, &ec):
		return int(ec)
	case errors.As(err, &ee):
		fmt.Fprintf(stderr, "synprobe: %s\n", printableLines(ee.err.Error()))
		return ee.code
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "synprobe: interrupted")
		return 130
	}
	// Anything else comes from flag parsing: bad usage.
	fmt.Fprintf(stderr, "synprobe: %s\n", printable(err.Error()))
	return exitUsage
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "synprobe",
		Usage: "test how a remote TCP stack really behaves",
		Description: `synprobe crafts TCP segments by hand (SYN, ACK, FIN, RST, data, deliberately
broken ones), sends them as raw Ethernet frames on an AF_PACKET socket, captures
the replies and judges each one against RFC 9293 and its companions, step by step.

It needs root (or CAP_NET_RAW and CAP_NET_ADMIN) to probe a real target.
'synprobe lab' runs any command against a disposable target on this machine.

Verdicts: pass; fail (a MUST was broken or an expectation not met); warn (a SHOULD
was not met); info (implementation-defined, reported as observed); skip (cannot be
judged from the wire, e.g. the target application did not act); error (synprobe or
the local host failed, e.g. the local kernel reset the connection).

Exit codes: 0 everything passed; 1 some check failed; 2 bad usage or bad input;
3 the environment prevented the run (privileges, no route, guard failure).`,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		ExitErrHandler:       func(*cli.Context, error) {},
		Commands: []*cli.Command{
			auditCommand(),
			analyzeCommand(),
			handshakeCommand(),
			traceCommand(),
			runCommand(),
			reflectCommand(),
			scenariosCommand(),
			summarizeCommand(),
			labCommand(),
			sweepCommand(),
		},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageErr("%s (see 'synprobe --help')", printable(err.Error()))
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErr("unknown command %q (see 'synprobe --help')", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	for _, cmd := range app.Commands {
		name := cmd.Name
		cmd.HideHelpCommand = true
		// One line naming the problem, not the whole help page.
		cmd.OnUsageError = func(c *cli.Context, err error, _ bool) error {
			return usageErr("%s: %s (see 'synprobe %s --help')", name, printable(err.Error()), name)
		}
	}
	return app
}
