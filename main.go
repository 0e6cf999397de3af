// Command eipd keeps AWS Elastic IPs on a healthy instance of a small cluster.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"syscall"
)

// Set by the linker: -X main.version=… -X main.revision=….
var (
	version  = "dev"
	revision = "unknown"
)

// errUsage marks errors caused by bad flags or config: exit code 2.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err and maps it to the process exit code: 0 ok, 2 bad
// usage or configuration, 1 anything else.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		if err.Error() != errUsage.Error() {
			fmt.Fprintln(stderr, "eipd:", err)
		}
		return 2
	}
	fmt.Fprintln(stderr, "eipd:", err)
	return 1
}

const usageText = `eipd keeps AWS Elastic IPs on a healthy instance of a small cluster.

Usage:
  eipd run          the daemon
  eipd status       the local daemon's view (--json)
  eipd handoff      move held EIPs to a ready member (planned maintenance)
  eipd preflight    check config, IMDS, credentials, the EIPs and IAM permissions
  eipd healthcheck  exit 0 when the local daemon's /healthz answers (container health checks)
  eipd sim          run the EC2 + IMDS emulator on loopback
  eipd version      print version, revision and Go version

Run 'eipd COMMAND -h' for the flags of a command.
`

// run is main without the process: testable as is.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "run":
		return cmdRun(ctx, rest, getenv, stderr)
	case "status":
		return cmdStatus(ctx, rest, getenv, stdout, stderr)
	case "handoff":
		return cmdHandoff(ctx, rest, getenv, stdout, stderr)
	case "preflight":
		return cmdPreflight(ctx, rest, getenv, stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(ctx, rest, stderr)
	case "sim":
		return cmdSim(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "eipd %s (revision %s, %s)\n", version, revision, runtime.Version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprintf(stderr, "eipd: unknown command %q\n\n%s", cmd, usageText)
	return errUsage
}
