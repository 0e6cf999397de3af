// Command eipd keeps AWS Elastic IPs on a healthy instance of a small cluster.
package main

import (
	"context"
	"errors"
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
	if err != nil {
		if !errors.Is(err, errUsage) || err.Error() != errUsage.Error() {
			fmt.Fprintln(os.Stderr, "eipd:", err)
		}
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

const usageText = `eipd keeps AWS Elastic IPs on a healthy instance of a small cluster.

Usage:
  eipd run        the daemon
  eipd status     the local daemon's view (--json)
  eipd handoff    move held EIPs to a ready peer (planned maintenance)
  eipd preflight  check config, IMDS, credentials, the EIP and IAM permissions
  eipd sim        run the EC2 + IMDS emulator on loopback
  eipd demo       a whole cluster on this machine against the emulator
  eipd version    print version, revision and Go version

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
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "eipd %s (revision %s, %s)\n", version, revision, runtime.Version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	_ = ctx
	_ = rest
	_ = getenv
	fmt.Fprintf(stderr, "eipd: unknown command %q\n\n%s", cmd, usageText)
	return errUsage
}
