// Command eipd keeps AWS Elastic IPs on a healthy instance of a small cluster.
//
// This file only parses the command and hands over: `eipd run` to package
// daemon, the operator's commands (status, handoff, preflight, healthcheck)
// to package ops, `eipd sim` and `eipd demo` to package sandbox. README's
// Layout says what each package does.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"

	"github.com/eipd/eipd/daemon"
	"github.com/eipd/eipd/internal/cli"
	// Before every other initialiser: see the package.
	_ "github.com/eipd/eipd/internal/earlyinit"
	"github.com/eipd/eipd/ops"
	"github.com/eipd/eipd/sandbox"
)

// Set by the linker: -X main.version=… -X main.revision=…. Without them
// (go build, go run) the version is the latest of CHANGELOG.md, as make
// stamps it when no git tag names one.
var (
	version  = "0.1.0"
	revision = "unknown"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(cli.ExitCode(err, os.Stderr))
}

const usageText = `eipd keeps AWS Elastic IPs on a healthy instance of a small cluster.

Usage:
  eipd run          the daemon
  eipd status       the local daemon's view (--json)
  eipd handoff      move held EIPs to a ready member (planned maintenance)
  eipd preflight    check config, IMDS, credentials, the EIPs and IAM permissions
  eipd healthcheck  exit 0 when the local daemon's /healthz answers (container health checks)
  eipd sim          run the EC2 + IMDS emulator on loopback
  eipd demo         a whole group on this machine against the emulator: failures injected, failover shown live
  eipd version      print version, revision and Go version

Run 'eipd COMMAND -h' for the flags of a command.
`

// versionLine names the version and the commit once: a version from git
// describe ("v1.2.0-3-gabc1234") or a bare commit already contains it.
func versionLine(version, revision string) string {
	if revision != "" && revision != "unknown" && strings.Contains(version, revision) {
		return fmt.Sprintf("eipd %s (%s)", version, runtime.Version())
	}
	return fmt.Sprintf("eipd %s (revision %s, %s)", version, revision, runtime.Version())
}

// commands are the subcommands of usageText, by name.
var commands = map[string]cli.Command{
	"run":         daemon.Command,
	"status":      ops.Status,
	"handoff":     ops.Handoff,
	"preflight":   ops.Preflight,
	"healthcheck": ops.Healthcheck,
	"sim":         sandbox.Sim,
	"demo":        sandbox.Demo,
}

// run is main without the process: testable as is.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return cli.ErrUsage
	}
	cmd, rest := args[0], args[1:]
	if c, ok := commands[cmd]; ok {
		return c(ctx, rest, cli.Env{Getenv: getenv, Stdout: stdout, Stderr: stderr, Version: version, Revision: revision})
	}
	switch cmd {
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionLine(version, revision))
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprintf(stderr, "eipd: unknown command %q\n\n%s", cmd, usageText)
	return cli.ErrUsage
}
