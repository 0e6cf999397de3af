package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/internal/harness"
)

// `eipd demo` and `eipd status --watch`: the binary as a user runs it.

// demoEnv is the environment of a demo: nothing inherited, and TMPDIR in
// the test's directory so that every path the demo creates (control
// sockets) contains dir, which lets leftoverProcs find its children.
func demoEnv(dir string, extra ...string) []string {
	return harness.Env(dir, append([]string{"TMPDIR=" + dir}, extra...)...)
}

// leftoverProcs lists the processes whose command line mentions dir.
func leftoverProcs(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatalf("read /proc: %v", err)
	}
	var out []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		// A zombie has an empty command line; a live process mentioning
		// dir is one the demo (or this test) left behind.
		if cmd := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(cmd, dir) {
			out = append(out, fmt.Sprintf("pid %d: %s", pid, cmd))
		}
	}
	return out
}

// addrsIn finds the loopback listeners a demo announced (EC2 API, EIP
// forwarder, proxies, status listeners).
var announced = regexp.MustCompile(`(?:http://|through )(127\.0\.0\.\d+:\d+)`)

// assertGone checks that nothing of the demo is left: no process, no
// listener, no temporary directory.
func assertGone(t *testing.T, dir, output string) {
	t.Helper()
	if left := leftoverProcs(t, dir); len(left) > 0 {
		t.Errorf("processes left after the demo:\n%s", strings.Join(left, "\n"))
	}
	addrs := map[string]bool{}
	for _, m := range announced.FindAllStringSubmatch(output, -1) {
		addrs[m[1]] = true
	}
	if len(addrs) < 3 {
		t.Errorf("found only %d announced addresses in the output", len(addrs))
	}
	for a := range addrs {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the demo", a)
		} else if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("dial %s: %v (want connection refused)", a, err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "eipd-demo-*")); len(m) > 0 {
		t.Errorf("temporary directories left: %v", m)
	}
}

var (
	movesHeader = regexp.MustCompile(`(?m)^time\s+phase\s+reason\s+from → to\s+term\s+decided → associated\s+fault → associated$`)
	moveLine    = regexp.MustCompile(`^(\d\d:\d\d:\d\d\.\d{3})\s+(\S+)\s+(\S+)\s+(\S+) → (i-[0-9a-f]+)\s+(\d+\.\d+|-)\s+(\S+)\s+(\S+)$`)
	phaseLine   = regexp.MustCompile(`(?m)^(steady|proxy-killed|spot-interruption|planned-handoff|terminate|recovery)\s+([\d.]+)s\s+(\d+)\s+(\d+)\s+`)
	durationRE  = regexp.MustCompile(`^\d+(\.\d+)?(ms|s)$`)
)

type summaryMove struct {
	time, phase, reason, from, to, term, decided, sinceFault string
}

// parseSummary reads the moves and the failed requests per phase from
// the demo's summary.
func parseSummary(t *testing.T, out string) ([]summaryMove, map[string]int) {
	t.Helper()
	_, sum, ok := strings.Cut(out, "== summary ==")
	if !ok {
		t.Fatalf("no summary in the output:\n%s", out)
	}
	failed := map[string]int{}
	for _, m := range phaseLine.FindAllStringSubmatch(sum, -1) {
		n, _ := strconv.Atoi(m[4])
		failed[m[1]] = n
	}
	loc := movesHeader.FindStringIndex(sum)
	if loc == nil {
		t.Fatalf("no moves table in the summary:\n%s", sum)
	}
	var moves []summaryMove
	for _, line := range strings.Split(sum[loc[1]:], "\n")[1:] {
		if strings.TrimSpace(line) == "" {
			break
		}
		m := moveLine.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("move line %q does not parse", line)
		}
		moves = append(moves, summaryMove{m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]})
	}
	return moves, failed
}

// TestDemoSummary runs the whole demo as a user would (not a terminal)
// and checks its summary against the emulator's own history.
func TestDemoSummary(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	p := startProc(t, dir, "demo", demoEnv(dir), eipdBin, "demo", "--duration", "40s", "--keep-logs", logs)
	if !p.WaitExit(4 * time.Minute) {
		t.Fatalf("eipd demo --duration 40s still running after 4 minutes:\n%s", tail(p.LogPath, 40))
	}
	b, err := os.ReadFile(p.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	out := string(b)
	if p.Err != nil {
		t.Fatalf("eipd demo: %v\n%s", p.Err, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Error("output to a file holds escape sequences")
	}
	for _, want := range []string{
		"ok     one holder:", "ok     terms only grow:", "ok     never dangling:",
		"ok     planned handoff without loss: 0 failed requests in the planned-handoff phase", "\nevery invariant held\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	moves, failed := parseSummary(t, out)
	if n, ok := failed["planned-handoff"]; !ok || n != 0 {
		t.Errorf("planned-handoff phase: %d failed requests (found %v), want 0", n, ok)
	}
	if failed["proxy-killed"] == 0 || failed["terminate"] == 0 {
		t.Errorf("no failed request while the holder's proxy was dead or its instance gone: %v (the client is not measuring)", failed)
	}

	// Every kind of move, in its phase, with its durations.
	wantKind := map[string]func(reason string) bool{
		"proxy-killed":      func(r string) bool { return r == "handoff-unhealthy" },
		"spot-interruption": func(r string) bool { return r == "handoff-draining" },
		"planned-handoff":   func(r string) bool { return r == "handoff-manual" },
		"terminate":         func(r string) bool { return strings.HasPrefix(r, "takeover-") },
	}
	for _, m := range moves {
		check, ok := wantKind[m.phase]
		if !ok {
			continue
		}
		if !check(m.reason) {
			t.Errorf("move in phase %s has reason %s", m.phase, m.reason)
		}
		if !durationRE.MatchString(m.decided) || !durationRE.MatchString(m.sinceFault) {
			t.Errorf("move in phase %s lacks durations: decided → associated %q, fault → associated %q", m.phase, m.decided, m.sinceFault)
		}
		delete(wantKind, m.phase)
	}
	for phase := range wantKind {
		t.Errorf("no move in phase %s; moves: %+v", phase, moves)
	}

	// From → to and times are the emulator's association history.
	var events []ec2sim.Event
	if b, err := os.ReadFile(filepath.Join(logs, "ec2sim-events.json")); err != nil {
		t.Fatalf("association history not kept: %v", err)
	} else if err := json.Unmarshal(b, &events); err != nil {
		t.Fatalf("association history: %v", err)
	}
	type assoc struct{ time, from, to string }
	var want []assoc
	for _, a := range ec2sim.Associations(events, "") { // the demo has one EIP
		from := a.From
		if from == "" {
			from = "-"
		}
		want = append(want, assoc{a.Time.Local().Format("15:04:05.000"), from, a.To})
	}
	var got []assoc
	for i, m := range moves {
		got = append(got, assoc{m.time, m.from, m.to})
		if i > 0 && m.from != moves[i-1].to {
			t.Errorf("move %d starts from %s but the one before ended on %s", i, m.from, moves[i-1].to)
		}
		if i > 0 && m.term != "-" && moves[i-1].term != "-" {
			a, okA := eip.ParseTerm(moves[i-1].term)
			b, okB := eip.ParseTerm(m.term)
			if !okA || !okB || !a.Less(b) {
				t.Errorf("move %d has term %s after %s", i, m.term, moves[i-1].term)
			}
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("summary moves %v\ndiffer from the emulator's history %v", got, want)
	}
	for _, f := range []string{"ec2sim.log", "ec2sim-stats.json", "handoff.log"} {
		if _, err := os.Stat(filepath.Join(logs, f)); err != nil {
			t.Errorf("--keep-logs: %v", err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(logs, "eipd-i-*.log")); len(m) != 3 {
		t.Errorf("--keep-logs: %d daemon logs, want 3: %v", len(m), m)
	}
	assertGone(t, dir, out)
}

// TestDemoStopsCleanly interrupts the demo during start-up (SIGTERM) and
// in the middle of the timeline with real HAProxy (SIGINT, as Ctrl-C):
// every process and listener it started must be gone.
func TestDemoStopsCleanly(t *testing.T) {
	needHAProxy(t)
	for _, c := range []struct {
		name  string
		sig   syscall.Signal
		after string // the output line to wait for
		args  []string
	}{
		{"SIGTERM during start-up", syscall.SIGTERM, "start-up: waiting for the election", nil},
		{"SIGINT in the proxy-killed phase with haproxy", syscall.SIGINT, "the proxy of", []string{"--haproxy"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			args := append([]string{"demo", "--duration", "40s", "--keep-logs", filepath.Join(dir, "logs")}, c.args...)
			p := startProc(t, dir, "demo", demoEnv(dir), eipdBin, args...)
			waitFor(t, 90*time.Second, "the demo to print "+c.after, func() bool {
				if p.Exited() {
					t.Fatalf("demo exited early: %v\n%s", p.Err, tail(p.LogPath, 30))
				}
				b, _ := os.ReadFile(p.LogPath)
				return bytes.Contains(b, []byte(c.after))
			})
			p.Signal(c.sig)
			if !p.WaitExit(20 * time.Second) {
				t.Fatalf("demo still running 20s after %s", c.sig)
			}
			var ee *exec.ExitError
			if !errors.As(p.Err, &ee) || ee.ExitCode() != 1 {
				t.Errorf("exit after %s: %v, want exit status 1 (interrupted)", c.sig, p.Err)
			}
			b, _ := os.ReadFile(p.LogPath)
			out := string(b)
			if !strings.Contains(out, "interrupted") {
				t.Errorf("the demo does not say it was interrupted:\n%s", out)
			}
			if m, _ := filepath.Glob(filepath.Join(dir, "logs", "eipd-i-*.log")); len(m) != 3 {
				t.Errorf("--keep-logs: %d daemon logs kept, want 3", len(m))
			}
			assertGone(t, dir, out)
		})
	}
}

// needTmux fails under CI and skips elsewhere when tmux is missing.
func needTmux(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tmux is required under CI: %v", err)
		}
		t.Skipf("tmux not installed: %v", err)
	}
	return path
}

// tmuxServer is a private tmux server (its own socket in the test's
// directory), killed at the end of the test.
type tmuxServer struct {
	t    *testing.T
	bin  string
	sock string
}

func newTmux(t *testing.T, dir string) *tmuxServer {
	s := &tmuxServer{t: t, bin: needTmux(t), sock: filepath.Join(dir, "tmux.sock")}
	t.Cleanup(func() { _, _ = s.run("kill-server") })
	return s
}

func (s *tmuxServer) run(args ...string) (string, error) {
	cmd := exec.Command(s.bin, append([]string{"-S", s.sock}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + filepath.Dir(s.sock), "TERM=xterm-256color"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tmux %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *tmuxServer) must(args ...string) string {
	s.t.Helper()
	out, err := s.run(args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}

// screen is what the pane shows now, wrapped lines joined.
func (s *tmuxServer) screen(target string) string {
	out, err := s.run("capture-pane", "-p", "-J", "-t", target)
	if err != nil {
		return ""
	}
	return out
}

// shellLine is a command line for tmux's shell: the command, then its exit
// status, then a pause so the pane stays to be read.
func shellLine(env []string, args ...string) string {
	q := func(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }
	var b strings.Builder
	b.WriteString("env -i")
	for _, e := range env {
		b.WriteString(" " + q(e))
	}
	for _, a := range args {
		b.WriteString(" " + q(a))
	}
	b.WriteString("; echo EXIT=$?; sleep 600")
	return b.String()
}

// holderRow is the EIP row of the group table: the holder column.
var holderRow = regexp.MustCompile(`(?m)^198\.51\.100\.\d+\s+eipalloc-[0-9a-f]+\s+(i-[0-9a-f]+|none|SPLIT: \S+)\s+(\d+)`)

// roleOf finds the ROLE cell of an instance's row.
func roleOf(screen, id string) string {
	m := regexp.MustCompile(`(?m)^` + id + `\s+us-east-1[a-c]\s+127\.0\.0\.\d+\s+(\S+)`).FindStringSubmatch(screen)
	if m == nil {
		return ""
	}
	return m[1]
}

var watchHint = regexp.MustCompile(`watch it from another terminal: AWS_ENDPOINT_URL_EC2=(\S+) AWS_REGION=\S+ AWS_ACCESS_KEY_ID=\S+ AWS_SECRET_ACCESS_KEY=\S+ \S+ status --watch --group (\S+) --status-port (\d+)`)

// TestDemoLiveViewTmux runs `eipd demo` in a real terminal (tmux) and
// `eipd status --watch` against it in another window, reads both screens
// and checks that each table shows the EIP change holder, with the
// holder's row saying so. Then Ctrl-C stops the demo cleanly.
func TestDemoLiveViewTmux(t *testing.T) {
	dir := t.TempDir()
	tm := newTmux(t, dir)
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + dir}
	tm.must("new-session", "-d", "-s", "demo", "-x", "250", "-y", "50",
		shellLine(env, eipdBin, "demo", "--duration", "60s", "--keep-logs", filepath.Join(dir, "logs")))

	holders := map[string][]string{} // window → holders in the order seen
	see := func(win, screen string) {
		m := holderRow.FindStringSubmatch(screen)
		if m == nil || !strings.HasPrefix(m[1], "i-") {
			return
		}
		if role := roleOf(screen, m[1]); role != "holder" {
			t.Errorf("%s: the EIP row names %s as holder, its own row says %q:\n%s", win, m[1], role, screen)
		}
		if h := holders[win]; len(h) == 0 || h[len(h)-1] != m[1] {
			holders[win] = append(h, m[1])
		}
	}
	var hint []string
	watching := false
	waitFor(t, 120*time.Second, "both screens to show a change of holder", func() bool {
		demoScreen := tm.screen("demo:0")
		if strings.Contains(demoScreen, "EXIT=") {
			t.Fatalf("the demo ended early:\n%s", demoScreen)
		}
		if strings.Contains(demoScreen, "== summary") {
			t.Fatalf("the timeline ended before both screens showed a move")
		}
		see("demo", demoScreen)
		if hint == nil {
			hint = watchHint.FindStringSubmatch(demoScreen)
		}
		if hint != nil && !watching {
			watchEnv := append(append([]string(nil), env...), "AWS_ENDPOINT_URL_EC2="+hint[1], "AWS_REGION=us-east-1",
				"AWS_ACCESS_KEY_ID=watch", "AWS_SECRET_ACCESS_KEY=watch", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
			tm.must("new-window", "-d", "-t", "demo:1", shellLine(watchEnv, eipdBin, "status", "--watch", "--group", hint[2], "--status-port", hint[3]))
			watching = true
		}
		if watching {
			ws := tm.screen("demo:1")
			if strings.Contains(ws, "EXIT=") {
				t.Fatalf("eipd status --watch ended:\n%s", ws)
			}
			see("watch", ws)
		}
		return len(holders["demo"]) >= 2 && len(holders["watch"]) >= 2
	})
	demoScreen := tm.screen("demo:0")
	if strings.Contains(demoScreen, "\x1b") || !strings.Contains(demoScreen, "INSTANCE") || !strings.Contains(demoScreen, "CLIENT 127.0.0.1:") {
		t.Errorf("demo screen:\n%s", demoScreen)
	}
	t.Logf("holders seen: demo %v, watch %v", holders["demo"], holders["watch"])

	// Ctrl-C in the terminal.
	tm.must("send-keys", "-t", "demo:0", "C-c")
	waitFor(t, 30*time.Second, "the demo to exit after Ctrl-C", func() bool {
		return strings.Contains(tm.screen("demo:0"), "EXIT=")
	})
	after := tm.screen("demo:0")
	if !strings.Contains(after, "interrupted") || !strings.Contains(after, "EXIT=1") {
		t.Errorf("after Ctrl-C:\n%s", after)
	}
	tm.must("send-keys", "-t", "demo:1", "C-c")
	waitFor(t, 15*time.Second, "eipd status --watch to exit after Ctrl-C", func() bool {
		return strings.Contains(tm.screen("demo:1"), "EXIT=0")
	})
	_, _ = tm.run("kill-server")
	// The panes' shells (their command lines name dir) end with the server.
	var left []string
	deadline := time.Now().Add(10 * time.Second)
	for left = leftoverProcs(t, dir); len(left) > 0 && time.Now().Before(deadline); left = leftoverProcs(t, dir) {
		time.Sleep(100 * time.Millisecond)
	}
	if len(left) > 0 {
		t.Errorf("processes left:\n%s", strings.Join(left, "\n"))
	}
	if hint != nil {
		ec2 := strings.TrimPrefix(hint[1], "http://")
		if c, err := net.DialTimeout("tcp", ec2, time.Second); err == nil {
			c.Close()
			t.Errorf("the emulator at %s still accepts connections", ec2)
		}
	}
}
