package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/eipd/eipd/internal/cli"
)

// runCLI runs eipd with args and returns what the process would print on
// stdout and stderr (cli.ExitCode's line included) and its exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), args, envOf(env), &out, &errb)
	code = cli.ExitCode(err, &errb)
	return out.String(), errb.String(), code
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

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

// TestVersionIsTheChangelogs: an unstamped build names the latest version
// of CHANGELOG.md, the one make stamps when no git tag names one.
func TestVersionIsTheChangelogs(t *testing.T) {
	b, err := os.ReadFile("CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^## \[([0-9]+\.[0-9]+\.[0-9]+[^\]]*)\]`).FindSubmatch(b)
	if m == nil {
		t.Fatal("CHANGELOG.md has no version heading (## [x.y.z] - date)")
	}
	if string(m[1]) != version {
		t.Errorf("main.version defaults to %q, CHANGELOG.md's latest version is %q", version, m[1])
	}
}

func TestRunSubcommands(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"version"}, envOf(nil), &out, &errb); err != nil || !strings.Contains(out.String(), "eipd "+version+" (revision unknown, go") {
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

// Package earlyinit turns heap-profile sampling off for the whole binary,
// this test binary too; the tests keep the runtime's default, so that
// `go test -memprofile` works here as in every other package.
func init() { runtime.MemProfileRate = 512 * 1024 } // the runtime's default

// TestEarlyInitRunsFirst: package earlyinit only helps if its init runs
// before the initialisers that do the work (see the package). This test
// binary links the same packages as eipd; the runtime lists the order of
// the package initialisers that do anything with GODEBUG=inittrace=1.
func TestEarlyInitRunsFirst(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -test.run=^$: %v\n%s", os.Args[0], err, out)
	}
	const early = "github.com/eipd/eipd/internal/earlyinit"
	// The initialisers that allocate the most (inittrace) or read the
	// most of the binary: these must come after.
	later := []string{
		"runtime/metrics",
		"net/http",
		"github.com/aws/aws-sdk-go-v2/service/ec2/internal/endpoints",
		"github.com/aws/aws-sdk-go-v2/service/autoscaling/internal/endpoints",
		"github.com/prometheus/procfs",
		"github.com/prometheus/client_golang/prometheus",
		"google.golang.org/protobuf/types/known/timestamppb",
		"expvar",
	}
	pos := map[string]int{}
	for i, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "init" {
			pos[f[1]] = i + 1
		}
	}
	if pos[early] == 0 {
		t.Fatalf("no initialiser of %s in the GODEBUG=inittrace=1 output:\n%s", early, out)
	}
	for _, p := range later {
		switch {
		case pos[p] == 0:
			t.Errorf("no initialiser of %s in the GODEBUG=inittrace=1 output (renamed? update this list)", p)
		case pos[p] < pos[early]:
			t.Errorf("%s is initialised before %s (line %d < %d): did earlyinit gain an import?", p, early, pos[p], pos[early])
		}
	}
}

func TestStatusWatchAndDemoUsage(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"status", "--watch"}, "--watch needs --group"},
		{[]string{"status", "--watch", "--group", "g", "--json"}, "cannot be combined with --json"},
		{[]string{"status", "--watch", "--group", "g", "--status-port", "0"}, "not a TCP port"},
		{[]string{"demo", "--duration", "20s"}, "--duration 20s is too short: the timeline needs at least 40s"},
		{[]string{"demo", "--instances", "2"}, "--instances 2: want 3 to 9"},
		{[]string{"demo", "extra"}, "unexpected arguments"},
	}
	for _, c := range cases {
		var out, errb bytes.Buffer
		err := run(context.Background(), c.args, envOf(nil), &out, &errb)
		if cli.ExitCode(err, &errb) != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("eipd %s: exit %v, stderr %q; want exit 2 and %q", strings.Join(c.args, " "), err, errb.String(), c.want)
		}
	}
}
