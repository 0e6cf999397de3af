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
	"strings"
	"syscall"

	// Before every other initialiser: see the package.
	_ "github.com/eipd/eipd/internal/earlyinit"
)

// Set by the linker: -X main.version=… -X main.revision=….
var (
	version  = "dev"
	revision = "unknown"
)

// errUsage marks errors caused by bad flags or config: exit code 2.
var errUsage = errors.New("usage")

// usageError is a bad flag or configuration: errors.Is(err, errUsage)
// holds, and its message is the problem alone, without a prefix.
type usageError struct{ err error }

func (e usageError) Error() string        { return e.err.Error() }
func (e usageError) Unwrap() error        { return e.err }
func (e usageError) Is(target error) bool { return target == errUsage }

// usagef is fmt.Errorf marked as a usage error.
func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// loggedError is an error the daemon's logger already wrote (in the
// configured format); exitCode only maps it to the exit code.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitCode prints err (unless the logger already did) and maps it to the
// process exit code: 0 ok, 2 bad usage or configuration, 1 anything else.
func exitCode(err error, stderr io.Writer) int {
	code := 1
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		code = 2
		if err == errUsage { // the usage text was printed instead
			return code
		}
	}
	if !errors.As(err, new(loggedError)) {
		fmt.Fprintln(stderr, "eipd:", err)
	}
	return code
}

// parseFlags parses args into fs. -h prints usage (which may call
// fs.PrintDefaults) and returns flag.ErrHelp; a bad flag is one line that
// says what is wrong and where the flags are listed, not the whole usage.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage func(w io.Writer)) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stderr)
		usage(stderr)
		return err
	case err != nil:
		return usagef("%v (see '%s -h')", err, fs.Name())
	}
	return nil
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
		return cmdHealthcheck(ctx, rest, getenv, stderr)
	case "sim":
		return cmdSim(ctx, rest, stdout, stderr)
	case "demo":
		return cmdDemo(ctx, rest, getenv, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionLine(version, revision))
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	}
	fmt.Fprintf(stderr, "eipd: unknown command %q\n\n%s", cmd, usageText)
	return errUsage
}
