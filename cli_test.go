package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/eipd/eipd/internal/cli"
)

// runCLI runs eipd with args and returns what the process would print on
// stdout and stderr (exitCode's line included) and its exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, envOf(env), &out, &errb)
	code = cli.ExitCode(err, &errb)
	return out.String(), errb.String(), code
}

// TestBadFlagIsOneLine: a bad flag value gives the one error and where
// to look, not the whole usage.
func TestBadFlagIsOneLine(t *testing.T) {
	for _, args := range [][]string{
		{"run", "--health-interval", "abc"},
		{"run", "--group", "g", "--no-such-flag"},
		{"status", "--json=maybe"},
		{"handoff", "--bogus"},
		{"healthcheck", "--nope"},
		{"sim", "--instances", "many"},
		{"preflight", "--renew-interval", "soon"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			_, stderr, code := runCLI(t, nil, args...)
			if code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			lines := strings.Split(strings.TrimSpace(stderr), "\n")
			if len(lines) != 1 {
				t.Fatalf("want one line on stderr, got %d:\n%s", len(lines), stderr)
			}
			if !strings.Contains(lines[0], "(see 'eipd "+args[0]+" -h')") {
				t.Errorf("no hint to -h: %q", lines[0])
			}
			if strings.Contains(lines[0], "usage:") {
				t.Errorf("internal prefix in %q", lines[0])
			}
		})
	}
	_, stderr, _ := runCLI(t, nil, "run", "--health-interval", "abc")
	if want := `eipd: invalid value "abc" for flag -health-interval: not a duration (use e.g. 500ms, 3s, 1m) (see 'eipd run -h')`; strings.TrimSpace(stderr) != want {
		t.Errorf("got  %q\nwant %q", strings.TrimSpace(stderr), want)
	}
}

func TestInvalidConfigHasNoInternalPrefix(t *testing.T) {
	_, stderr, code := runCLI(t, map[string]string{"EIPD_HEALTH_FALL": "x"}, "run")
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if !strings.HasPrefix(stderr, "eipd: invalid configuration:\n  ") || strings.Contains(stderr, "usage") {
		t.Errorf("stderr %q", stderr)
	}
	for _, want := range []string{"--group (EIPD_GROUP) is required", `EIPD_HEALTH_FALL="x": not an integer`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
}

// TestHelpStillPrintsUsage: -h prints the usage and exits 0.
func TestHelpStillPrintsUsage(t *testing.T) {
	for cmd, want := range map[string]string{
		"run": "--health-interval (EIPD_HEALTH_INTERVAL", "status": "-json", "handoff": "-to",
		"healthcheck": "-listen", "sim": "docs/ec2sim.md",
	} {
		var out, errb bytes.Buffer
		err := run(context.Background(), []string{cmd, "-h"}, envOf(nil), &out, &errb)
		if !errors.Is(err, flag.ErrHelp) || cli.ExitCode(err, &errb) != 0 {
			t.Errorf("%s -h: %v", cmd, err)
		}
		if !strings.Contains(errb.String(), want) {
			t.Errorf("%s -h does not mention %q:\n%s", cmd, want, errb.String())
		}
	}
}

// TestNoDaemonHint: status and handoff without a daemon say how to fix it.
func TestNoDaemonHint(t *testing.T) {
	sock := "unix:" + filepath.Join(t.TempDir(), "none.sock")
	for _, args := range [][]string{{"status", "--control", sock}, {"handoff", "--control", sock}, {"status", "--control", "127.0.0.1:1"}} {
		_, stderr, code := runCLI(t, nil, args...)
		if code != 1 || !strings.Contains(stderr, "is eipd running?") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	// EIPD_CONTROL is the client's default too.
	_, stderr, _ := runCLI(t, map[string]string{"EIPD_CONTROL": sock}, "handoff")
	if !strings.Contains(stderr, sock) {
		t.Errorf("handoff ignored EIPD_CONTROL: %q", stderr)
	}
}

func TestSimRefusesZeroEIPs(t *testing.T) {
	_, stderr, code := runCLI(t, nil, "sim", "--eips", "0")
	if code != 2 || !strings.Contains(stderr, "--eips 0: must be between 1 and 100") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestVersionNamesCommitOnce(t *testing.T) {
	gv := runtime.Version()
	for _, c := range []struct{ version, revision, want string }{
		{"v1.2.0", "abc1234", "eipd v1.2.0 (revision abc1234, " + gv + ")"},
		{"v1.2.0-3-gabc1234", "abc1234", "eipd v1.2.0-3-gabc1234 (" + gv + ")"},
		{"abc1234-dirty", "abc1234", "eipd abc1234-dirty (" + gv + ")"},
		{"dev", "unknown", "eipd dev (revision unknown, " + gv + ")"},
	} {
		if got := versionLine(c.version, c.revision); got != c.want {
			t.Errorf("versionLine(%q, %q) = %q, want %q", c.version, c.revision, got, c.want)
		}
		if n := strings.Count(versionLine(c.version, c.revision), c.revision); c.revision != "unknown" && n != 1 {
			t.Errorf("%q names the commit %d times", versionLine(c.version, c.revision), n)
		}
	}
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
func TestRunSubcommands(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"version"}, envOf(nil), &out, &errb); err != nil || !strings.Contains(out.String(), "eipd dev (revision unknown, go") {
		t.Errorf("version: %q %v", out.String(), err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, envOf(nil), &out, &errb); cli.ExitCode(err, &errb) != 2 {
		t.Errorf("unknown command should exit 2, got %v", err)
	}
	// Bad config exits 2 before touching AWS.
	if err := run(context.Background(), []string{"run"}, envOf(nil), &out, &errb); cli.ExitCode(err, &errb) != 2 {
		t.Errorf("run without --group should exit 2, got %v", err)
	}
	if err := run(context.Background(), []string{"run", "-h"}, envOf(nil), &out, &errb); !errors.Is(err, flag.ErrHelp) || cli.ExitCode(err, &errb) != 0 {
		t.Errorf("run -h: %v", err)
	}
}
