package main

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/leader"
)

// TestControlSocketMode: the control socket is created with mode 0600 in a
// directory made if missing, whatever the umask.
func TestControlSocketMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "eipd", "eipd.sock")
	ln, err := listenControl("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil || dir.Mode().Perm()&0o007 != 0 {
		t.Errorf("socket directory %v %v: want no access for others", dir.Mode(), err)
	}
	// A second daemon must not take a live socket over.
	if _, err := listenControl("unix:" + path); err == nil || !strings.Contains(err.Error(), "is listening on it") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	ln.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left after Close: %v", err)
	}
}

func TestControlSocketStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eipd.sock")
	// A socket file left by a daemon that died (no unlink on close).
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	ln, err := listenControl("unix:" + path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()

	// Anything that is not a socket is left alone.
	file := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := listenControl("unix:" + file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen over a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("regular file was touched: %q %v", b, err)
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
	member := statusDoc{Status: leader.Status{InstanceID: "i-self", AvailabilityZone: "us-east-1a", PrivateIP: "10.0.0.5", Health: "up",
		AWSStateKnown: true, Coordinator: "i-co", Epoch: 3,
		EIPs: []leader.EIPStatus{
			{AllocationID: "eipalloc-1", PublicIP: "198.51.100.10", Role: leader.RoleHolder, Holder: "i-self", Term: "3.2", AssociatedTo: "i-self",
				Why:          "the coordinator confirms the EIP is on this instance",
				LastFailover: &leader.FailoverRecord{Time: at, Reason: "handoff-unhealthy", From: "i-old", To: "i-self", DurationSeconds: 0.214}},
			{AllocationID: "eipalloc-2", Role: leader.RoleStandby, Why: "standby; coordinator: no member is ready", HandoffBlocked: true},
		}}}
	var b strings.Builder
	printStatus(&b, member)
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
		printStatus(&b, s)
		if !strings.HasPrefix(b.String(), c.header+"ALLOCATION") {
			t.Errorf("%s:\n%s\nwant it to start with:\n%s", c.name, b.String(), c.header)
		}
	}

	var w strings.Builder
	printStatus(&w, statusDoc{Status: leader.Status{Health: "unknown"}, Waiting: waitingForIMDS, WaitingAttempts: 2, WaitingError: "connection refused"})
	if got := w.String(); got != "waiting for instance metadata  health unknown  (2 attempt(s) failed; last: connection refused)\n" {
		t.Errorf("waiting: %q", got)
	}
}
