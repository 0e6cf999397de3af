// Package harness runs the pieces of an eipd group on this machine, on
// loopback: child processes (the daemons, HAProxy, the emulator as
// `eipd sim`) started with exactly the environment they are given, the
// health targets of the simulated instances, and the ports they listen on.
// `eipd demo` (package demo) and the end-to-end tests, chaos suite and
// benchmarks (package e2e) both run their groups with it, so that what
// they start, and how, is written once.
package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// Proc is a child process, its output (stdout and stderr) appended to a
// log file.
type Proc struct {
	Name    string
	Cmd     *exec.Cmd
	LogPath string
	Started time.Time
	// Err and ExitAt are how and when it exited: valid once Done is closed.
	Err    error
	ExitAt time.Time

	done chan struct{}
	// told: Kill or Term was called; an exit without it is the process's
	// own doing (a crash, a fatal error).
	told atomic.Bool
}

// Start starts bin with exactly env, nothing inherited from this process's
// environment: no AWS profile or credentials can leak into a daemon that is
// meant to talk to the emulator only. Its working directory is dir; a
// header line with the command goes to the log before its output, so that a
// log appended to by several runs tells them apart.
//
// The child gets its own process group, so that a Ctrl-C on the terminal
// reaches the parent alone (which then stops its children itself), and
// where the system allows it the kernel kills the child when the parent
// dies, however it dies: no daemon, HAProxy or emulator outlives a run.
func Start(name, logPath, dir string, env []string, bin string, args ...string) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file of %s: %w", name, err)
	}
	fmt.Fprintf(f, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Env = append([]string{}, env...) // never nil: nil would inherit everything
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = dir
	if err := start(cmd); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Cmd: cmd, LogPath: logPath, Started: time.Now(), done: make(chan struct{})}
	go func() {
		p.Err = cmd.Wait()
		p.ExitAt = time.Now()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Done is closed once the process has exited and been reaped.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Pid is the process's ID.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Signal sends sig unless the process has exited.
func (p *Proc) Signal(sig os.Signal) {
	if !p.Exited() {
		_ = p.Cmd.Process.Signal(sig)
	}
}

// Kill sends SIGKILL: a crash, or a stop that wants no handoff on the way.
func (p *Proc) Kill() {
	p.told.Store(true)
	if !p.Exited() {
		_ = p.Cmd.Process.Kill()
	}
}

// Term asks the process to stop (SIGTERM where there is one).
func (p *Proc) Term() {
	p.told.Store(true)
	p.Signal(terminate)
}

// Told reports whether Kill or Term was called.
func (p *Proc) Told() bool { return p.told.Load() }

// WaitExit waits up to d for the process to exit, and reports whether it
// did.
func (p *Proc) WaitExit(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// KillWait kills the process and waits up to d until it is reaped.
func (p *Proc) KillWait(d time.Duration) error {
	p.Kill()
	if !p.WaitExit(d) {
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.Name, p.Pid())
	}
	return nil
}

// Tail is the last n lines of a log file, for error messages; only the
// last MiB is read.
func Tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > 1<<20 {
		_, _ = f.Seek(-1<<20, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Run runs bin to completion with exactly env, as an operator runs a
// command (`eipd handoff`, `eipd status`), and returns its output, stdout
// and stderr together. An exit status other than 0 is an error that names
// the command, the status and the output's last line (an *exec.ExitError
// underneath). The end of ctx kills it.
func Run(ctx context.Context, dir string, env []string, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append([]string{}, env...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := start(cmd); err != nil {
		return nil, err
	}
	err := cmd.Wait()
	var ee *exec.ExitError
	if errors.As(err, &ee) && ctx.Err() == nil {
		err = fmt.Errorf("%s exited with %d: %s: %w", commandName(bin, args), ee.ExitCode(), lastLine(out.String()), err)
	}
	return out.Bytes(), err
}

// commandName is how a person names the command: "eipd handoff".
func commandName(bin string, args []string) string {
	name := filepath.Base(bin)
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name += " " + args[0]
	}
	return name
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
