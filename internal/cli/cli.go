// Package cli holds what every eipd command shares: what a command gets
// from the process (Env), the errors that set the exit code (a usage error
// exits 2, an error the command's logger already wrote is not printed
// again), flags parsed into one-line errors with -h printing the usage, and
// whether output goes to a terminal.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mattn/go-isatty"
)

// Env is what a command gets from the process besides its arguments.
type Env struct {
	// Getenv is os.Getenv outside tests.
	Getenv         func(string) string
	Stdout, Stderr io.Writer
	// Version and Revision are the build's, set by the linker in package
	// main (-X main.version=… -X main.revision=…).
	Version, Revision string
}

// Command is one eipd subcommand; args are those after its name.
type Command func(ctx context.Context, args []string, env Env) error

// ErrUsage marks errors caused by bad flags or config: exit code 2.
var ErrUsage = errors.New("usage")

// usageError is a bad flag or configuration: errors.Is(err, ErrUsage)
// holds, and its message is the problem alone, without a prefix.
type usageError struct{ err error }

func (e usageError) Error() string        { return e.err.Error() }
func (e usageError) Unwrap() error        { return e.err }
func (e usageError) Is(target error) bool { return target == ErrUsage }

// Usage marks err as a usage error, its message unchanged.
func Usage(err error) error { return usageError{err} }

// Usagef is fmt.Errorf marked as a usage error.
func Usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// loggedError is an error the daemon's logger already wrote (in the
// configured format); ExitCode only maps it to the exit code.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

// Logged marks err as already written by the command's logger.
func Logged(err error) error { return loggedError{err} }

// ExitCode prints err (unless the logger already did) and maps it to the
// process exit code: 0 ok, 2 bad usage or configuration, 1 anything else.
func ExitCode(err error, stderr io.Writer) int {
	code := 1
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		code = 2
		if err == ErrUsage { // the usage text was printed instead
			return code
		}
	}
	if !errors.As(err, new(loggedError)) {
		fmt.Fprintln(stderr, "eipd:", err)
	}
	return code
}

// ParseFlags parses args into fs. -h prints usage (which may call
// fs.PrintDefaults) and returns flag.ErrHelp; a bad flag is one line that
// says what is wrong and where the flags are listed, not the whole usage.
func ParseFlags(fs *flag.FlagSet, args []string, stderr io.Writer, usage func(w io.Writer)) error {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stderr)
		usage(stderr)
		return err
	case err != nil:
		return Usagef("%v (see '%s -h')", err, fs.Name())
	}
	return nil
}

// FlagUsage prints a one-line synopsis and the flags of fs.
func FlagUsage(fs *flag.FlagSet, synopsis string) func(io.Writer) {
	return func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s\n\n", synopsis)
		fs.PrintDefaults()
	}
}

// Terminal reports whether w is a terminal: the live views redraw in place
// only there.
func Terminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}
