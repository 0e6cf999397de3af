package daemon

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/leader"
	"github.com/eipd/eipd/ops"
)

// fakeProgress stands in for the leader loop: LastReconcile advances with
// the clock until the loop is wedged, then stays put.
type fakeProgress struct {
	mu       sync.Mutex
	wedgedAt time.Time
}

func (f *fakeProgress) LastReconcile() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.wedgedAt.IsZero() {
		return f.wedgedAt
	}
	return time.Now()
}

func (f *fakeProgress) Status() leader.Status {
	return leader.Status{Health: "up", EIPs: []leader.EIPStatus{{AllocationID: "eipalloc-0a", Role: leader.RoleHolder}}}
}

func (f *fakeProgress) wedge(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		f.wedgedAt = time.Now()
	} else {
		f.wedgedAt = time.Time{}
	}
}

// TestWatchdogStopsWhenLoopWedged runs feedSystemd against a fake
// NOTIFY_SOCKET: READY=1 and STATUS= come once the loop has reconciled,
// WATCHDOG=1 keeps coming while the loop advances, stops once it is wedged
// (so systemd's WatchdogSec restarts the daemon), and resumes if it
// recovers.
func TestWatchdogStopsWhenLoopWedged(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, _ := fakeSystemd(t, sock)
	// WATCHDOG_USEC 200ms: pings every 100ms; a loop silent for twice that
	// is wedged.
	n := newNotifier(notifyEnv(map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "200000"}))
	loop := &fakeProgress{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- feedSystemd(ctx, n, loop, hclog.NewNullLogger()) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	// read collects datagrams for d.
	read := func(d time.Duration) []string {
		var got []string
		deadline := time.Now().Add(d)
		buf := make([]byte, 4096)
		for {
			if err := conn.SetReadDeadline(deadline); err != nil {
				t.Fatal(err)
			}
			k, err := conn.Read(buf)
			if err != nil {
				return got
			}
			got = append(got, string(buf[:k]))
		}
	}
	count := func(msgs []string, want string) int {
		c := 0
		for _, m := range msgs {
			if m == want {
				c++
			}
		}
		return c
	}

	first := read(1500 * time.Millisecond)
	if count(first, "READY=1") != 1 {
		t.Fatalf("want exactly one READY=1 after the first reconcile, got %q", first)
	}
	status := false
	for _, m := range first {
		status = status || strings.HasPrefix(m, "STATUS=holder of eipalloc-0a")
	}
	if !status {
		t.Errorf("no STATUS= naming the held EIP in %q", first)
	}
	if count(first, "WATCHDOG=1") < 3 {
		t.Fatalf("want regular WATCHDOG=1 while the loop advances, got %q", first)
	}

	loop.wedge(true)
	_ = read(600 * time.Millisecond) // pings may continue for up to 2×interval
	if wedged := read(1500 * time.Millisecond); count(wedged, "WATCHDOG=1") != 0 {
		t.Fatalf("WATCHDOG=1 sent while the loop is wedged: %q", wedged)
	}

	loop.wedge(false)
	if again := read(1500 * time.Millisecond); count(again, "WATCHDOG=1") == 0 {
		t.Fatalf("no WATCHDOG=1 after the loop recovered")
	}
}

// runCLI runs eipd with args as the process would (eipd run here, eipd
// status and eipd handoff from package ops) and returns what it prints on
// stdout and stderr (cli.ExitCode's line included) and its exit code.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := map[string]cli.Command{"run": Command, "status": ops.Status, "handoff": ops.Handoff}[args[0]]
	if cmd == nil {
		t.Fatalf("runCLI: eipd %s is not run from these tests", args[0])
	}
	var out, errb bytes.Buffer
	err := cmd(context.Background(), args[1:], cli.Env{Getenv: envOf(env), Stdout: &out, Stderr: &errb, Version: "dev", Revision: "unknown"})
	code = cli.ExitCode(err, &errb)
	return out.String(), errb.String(), code
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

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
