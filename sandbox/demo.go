package sandbox

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/eipd/eipd/demo"
	"github.com/eipd/eipd/internal/cli"
)

const demoUsage = `Usage: eipd demo [--instances N] [--duration D] [--haproxy] [--keep-logs DIR]

Runs a whole eipd group on this machine: the EC2 + IMDS emulator, a health
target per instance (a built-in HTTP server, or HAProxy with --haproxy), one
eipd per instance and a client of the EIP every 50 ms. It kills the holder's
proxy, posts a spot interruption, runs eipd handoff and terminates the
holder's instance, shows the group live (plain lines when stdout is not a
terminal or NO_COLOR is set) and ends with a summary. Exit status 0 only if
every safety invariant held. Nothing leaves loopback; no AWS account needed.

`

// Demo is `eipd demo`: it runs a whole group on this machine against the emulator, injects
// failures and shows them (package demo). Exit 0 only when every safety
// invariant held.
func Demo(ctx context.Context, args []string, env cli.Env) error {
	getenv, stdout, stderr := env.Getenv, env.Stdout, env.Stderr
	fs := flag.NewFlagSet("eipd demo", flag.ContinueOnError)
	instances := fs.Int("instances", 3, fmt.Sprintf("number of simulated instances (%d to %d)", demo.MinInstances, demo.MaxInstances))
	duration := fs.Duration("duration", 60*demo.MinDuration/40, fmt.Sprintf("length of the timeline after the election (at least %s)", demo.MinDuration))
	useHAProxy := fs.Bool("haproxy", false, "use real HAProxy (must be installed) as each instance's health target instead of the built-in HTTP server")
	keepLogs := fs.String("keep-logs", "", "write the daemons' and the emulator's logs and the association history to this directory and keep them")
	usage := func(w io.Writer) {
		fmt.Fprint(w, demoUsage)
		fs.PrintDefaults()
	}
	if err := cli.ParseFlags(fs, args, stderr, usage); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected arguments %v (see 'eipd demo -h')", fs.Args())
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find the eipd executable to run the daemons from: %w", err)
	}
	live := cli.Terminal(stdout) && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
	o := demo.Options{Exe: exe, Instances: *instances, Duration: *duration, HAProxy: *useHAProxy, KeepLogs: *keepLogs,
		Live: live, Color: live, Out: stdout}
	if err := o.Validate(); err != nil {
		return cli.Usage(err)
	}
	err = demo.Run(ctx, o)
	if errors.Is(err, demo.ErrInvariant) || errors.Is(err, demo.ErrInterrupted) {
		// The summary has said it; one line on stderr for scripts.
		return err
	}
	return err
}
