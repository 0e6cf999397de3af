package main

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/leader"
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
