package ops

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/control"
	"github.com/eipd/eipd/leader"
)

// runCLI runs one of the operator's commands as the process would and
// returns what it prints on stdout and stderr (cli.ExitCode's line
// included) and its exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := map[string]cli.Command{"status": Status, "handoff": Handoff, "healthcheck": Healthcheck, "preflight": Preflight}[args[0]]
	if cmd == nil {
		t.Fatalf("runCLI: eipd %s is not in package ops", args[0])
	}
	var out, errb bytes.Buffer
	err := cmd(context.Background(), args[1:], cli.Env{Getenv: envOf(env), Stdout: &out, Stderr: &errb, Version: "dev", Revision: "unknown"})
	code = cli.ExitCode(err, &errb)
	return out.String(), errb.String(), code
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

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

// TestClientDefaultsToDaemonSocket: status and handoff look for the daemon
// where eipd run listens by default.
func TestClientDefaultsToDaemonSocket(t *testing.T) {
	fs, addr := controlFlags("status", envOf(nil))
	if err := fs.Parse(nil); err != nil || *addr != "unix:/run/eipd/eipd.sock" {
		t.Errorf("default --control %q %v", *addr, err)
	}
	fs, addr = controlFlags("status", envOf(map[string]string{"EIPD_CONTROL": "127.0.0.1:9381"}))
	if err := fs.Parse(nil); err != nil || *addr != "127.0.0.1:9381" {
		t.Errorf("EIPD_CONTROL not followed: %q %v", *addr, err)
	}
}

// TestPrintStatus: eipd status names the coordinator this member follows
// (or that it coordinates, or that it knows none), then one row per EIP
// with the term as epoch.seq and the instance the coordinator says the EIP
// is associated to, then the last move of each.
func TestPrintStatus(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	member := control.StatusDoc{Status: leader.Status{InstanceID: "i-self", AvailabilityZone: "us-east-1a", PrivateIP: "10.0.0.5", Health: "up",
		AWSStateKnown: true, Coordinator: "i-co", Epoch: 3,
		EIPs: []leader.EIPStatus{
			{AllocationID: "eipalloc-1", PublicIP: "198.51.100.10", Role: leader.RoleHolder, Holder: "i-self", Term: "3.2", AssociatedTo: "i-self",
				Why:          "the coordinator confirms the EIP is on this instance",
				LastFailover: &leader.FailoverRecord{Time: at, Reason: "handoff-unhealthy", From: "i-old", To: "i-self", DurationSeconds: 0.214}},
			{AllocationID: "eipalloc-2", Role: leader.RoleStandby, Why: "standby; coordinator: no member is ready", HandoffBlocked: true},
		}}}
	var b strings.Builder
	PrintStatus(&b, member)
	want := `instance i-self (us-east-1a, 10.0.0.5)  health up
coordinator i-co (epoch 3)
ALLOCATION  PUBLIC IP      ROLE     HOLDER  TERM  ASSOCIATED TO  WHY
eipalloc-1  198.51.100.10  holder   i-self  3.2   i-self         the coordinator confirms the EIP is on this instance
eipalloc-2                 standby  -       -     -              HANDOFF BLOCKED: standby; coordinator: no member is ready
last move of eipalloc-1: handoff-unhealthy i-old → i-self at 2026-03-01T12:00:00Z (0.21s)
`
	if b.String() != want {
		t.Errorf("status:\n%s\nwant:\n%s", b.String(), want)
	}

	for _, c := range []struct {
		name   string
		edit   func(s *leader.Status)
		header string
	}{
		{"coordinator", func(s *leader.Status) { s.Coordinator, s.IsCoordinator, s.Epoch = "i-self", true, 4 },
			"instance i-self (us-east-1a, 10.0.0.5)  health up\ncoordinates the group (epoch 4)\n"},
		{"no coordinator", func(s *leader.Status) { s.Coordinator, s.Epoch, s.AWSStateKnown = "", 0, false },
			"instance i-self (us-east-1a, 10.0.0.5)  health up  AWS state unknown\nno coordinator known\n"},
		{"draining", func(s *leader.Status) { s.Health, s.Draining = "down", leader.ReasonHandoffDraining },
			"instance i-self (us-east-1a, 10.0.0.5)  health down  draining (handoff-draining)\ncoordinator i-co (epoch 3)\n"},
	} {
		s := member
		s.EIPs = nil
		c.edit(&s.Status)
		var b strings.Builder
		PrintStatus(&b, s)
		if !strings.HasPrefix(b.String(), c.header+"ALLOCATION") {
			t.Errorf("%s:\n%s\nwant it to start with:\n%s", c.name, b.String(), c.header)
		}
	}

	var w strings.Builder
	PrintStatus(&w, control.StatusDoc{Status: leader.Status{Health: "unknown"}, Waiting: control.WaitingForIMDS, WaitingAttempts: 2, WaitingError: "connection refused"})
	if got := w.String(); got != "waiting for instance metadata  health unknown  (2 attempt(s) failed; last: connection refused)\n" {
		t.Errorf("waiting: %q", got)
	}
}
