package e2e

// The chaos suite's judges on made-up histories: a judge that could never
// fail, or that miscounts, shows here.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/internal/harness"
)

func TestChaosJudges(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

	t.Run("outage", func(t *testing.T) {
		// Requests every 0.5 s: ok, then failures from 1.0 to 2.5 (the
		// next success at 3.0), ok, one failure at 4.0, then failures from
		// 5.0 to the end of the window.
		ok := map[float64]bool{0: true, 0.5: true, 1: false, 1.5: false, 2: false, 2.5: false, 3: true, 3.5: true,
			4: false, 4.5: true, 5: false, 5.5: false}
		var rs []clientResult
		for _, s := range []float64{0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5} {
			rs = append(rs, clientResult{at: at(s), ok: ok[s]})
		}
		for _, tc := range []struct {
			from, to      float64
			longest       time.Duration
			failed, total int
		}{
			{0, 5.4, 2 * time.Second, 6, 11},         // 1.0 → 3.0; the run from 5.0 is cut at 5.4
			{0, 8, 3 * time.Second, 7, 12},           // the last run goes to the window's end: 5.0 → 8.0
			{3, 4.6, 500 * time.Millisecond, 1, 4},   // the lone failure: 4.0 → 4.5
			{0, 0.9, 0, 0, 2},                        // no failure
			{1.2, 2.2, 700 * time.Millisecond, 2, 2}, // all failed: from the first (1.5) to the window's end
		} {
			l, f, n := outage(rs, at(tc.from), at(tc.to))
			if l != tc.longest || f != tc.failed || n != tc.total {
				t.Errorf("outage(%v, %v) = %v, %d failed of %d; want %v, %d of %d", tc.from, tc.to, l, f, n, tc.longest, tc.failed, tc.total)
			}
		}
	})

	t.Run("moves per fault", func(t *testing.T) {
		ev := []simEvent{
			{Time: at(1), AllocationID: "a", To: "i-1", Action: "associate"},
			{Time: at(5), AllocationID: "a", From: "i-1", Caller: "i-3", Action: "disassociate"},
			{Time: at(5.1), AllocationID: "a", To: "i-2", Caller: "i-3", Action: "associate"},
			{Time: at(5.5), AllocationID: "a", From: "i-2", Action: "public-ip-release"},
			{Time: at(6), AllocationID: "b", From: "i-2", To: "i-3", Caller: "i-3", Action: "move"},
			{Time: at(9), AllocationID: "a", From: "i-2", To: "i-1", Caller: "i-3", Action: "move"},
		}
		// A fenced takeover (disassociate, associate) is one move; a
		// handoff ("move") is one; another EIP's moves do not count.
		if m := assocsIn(ev, "a", at(4)); len(m) != 2 || m[0].To != "i-2" || m[1].To != "i-1" {
			t.Errorf("assocsIn after the fault = %v, want the takeover to i-2 and the move to i-1", m)
		}
		if m := assocsIn(ev, "a", at(6)); len(m) != 1 {
			t.Errorf("assocsIn from 6 s = %v, want one", m)
		}
		if m := assocsIn(ev, "b", at(0)); len(m) != 1 {
			t.Errorf("assocsIn of b = %v, want one", m)
		}
		// Unassociated between the takeover's two calls only.
		if u := unassociated(ev, "a", at(4), at(10)); u != 100*time.Millisecond {
			t.Errorf("unassociated = %v, want 100ms", u)
		}
		if e, ok := firstAssocAfter(ev, "a", "i-1", at(2)); !ok || e.To != "i-2" {
			t.Errorf("firstAssocAfter = %v %v, want the association to i-2", e, ok)
		}
	})

	t.Run("crashes", func(t *testing.T) {
		dir := t.TempDir()
		write := func(name, body string) {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		write("eipd-0.log", "=== start\n2026-01-01T00:00:00Z [INFO] eipd: starting\n")
		write("haproxy-0.log", "panic: not ours\n")
		if bad := crashIn(dir); bad != "" {
			t.Errorf("crashIn on clean daemon logs = %q", bad)
		}
		write("eipd-1.2.log", "x\n==================\nWARNING: DATA RACE\nWrite at 0x00c0000da400 by goroutine 54:\n")
		if bad := crashIn(dir); !strings.HasPrefix(bad, "eipd-1.2.log: WARNING: DATA RACE") {
			t.Errorf("crashIn = %q, want the data race of eipd-1.2.log", bad)
		}
		write("eipd-1.2.log", "fatal error: concurrent map writes\n")
		if bad := crashIn(dir); !strings.Contains(bad, "concurrent map writes") {
			t.Errorf("crashIn = %q, want the fatal error", bad)
		}
	})

	t.Run("unexpected exit", func(t *testing.T) {
		dir := t.TempDir()
		p := startProc(t, dir, "exits", harness.Env(dir), "/bin/sh", "-c", "exit 3")
		if !p.WaitExit(10 * time.Second) {
			t.Fatal("sh did not exit")
		}
		if why := p.unexpectedExit(); !strings.Contains(why, "exited on its own") {
			t.Errorf("unexpectedExit of a process that exited by itself = %q", why)
		}
		q := startProc(t, dir, "killed", harness.Env(dir), "/bin/sh", "-c", "sleep 60")
		q.killWait(t)
		if why := q.unexpectedExit(); why != "" {
			t.Errorf("unexpectedExit of a process the harness killed = %q, want none", why)
		}
		r := startProc(t, dir, "frozen", harness.Env(dir), "/bin/sh", "-c", "sleep 60")
		time.Sleep(10 * time.Millisecond)
		from := time.Now()
		r.stop()
		r.cont()
		if r.liveThrough(from.Add(-time.Millisecond), time.Now(), 0) {
			t.Errorf("liveThrough spans a SIGSTOP")
		}
		if !r.liveThrough(time.Now(), time.Now().Add(time.Second), 0) {
			t.Errorf("liveThrough after the thaw = false, want true")
		}
		if r.liveThrough(time.Now(), time.Now(), time.Hour) {
			t.Errorf("liveThrough of a process younger than settle = true")
		}
		r.killWait(t)
	})
}
