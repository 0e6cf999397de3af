package main

import (
	"bytes"
	"flag"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eipd/eipd/internal/machine"
	"github.com/eipd/eipd/internal/markdown"
	"github.com/eipd/eipd/leader"
	"github.com/eipd/eipd/tools/report"
)

var update = flag.Bool("update", false, "rewrite testdata/CHAOS.golden.md from the fixture")

// fixture is synthetic: made up for these tests, not a run of the suite.
const fixture = "testdata/synthetic-results.jsonl"

func mustRead(t *testing.T) []result {
	t.Helper()
	rs, err := readAll([]string{fixture})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestParse(t *testing.T) {
	rs := mustRead(t)
	if len(rs) != 20 {
		t.Fatalf("%d results, want 20", len(rs))
	}
	first := rs[0]
	if first.Scenario != "haproxy-killed" || first.Run != 1 || first.Passed || first.Check != "http" ||
		first.Downtime != 6.2 || first.DowntimeBound == nil || *first.DowntimeBound != 5 ||
		first.Requests != 812 || first.FailedRequests != 131 || first.Moves != 2 || first.APICalls != 71 ||
		first.Source != fixture+":1" || !strings.HasPrefix(first.Error, "client-visible downtime 6.20 s") {
		t.Errorf("first line: %+v", first)
	}
	if got := first.FaultTime.Format("15:04:05.000"); got != "19:40:15.123" {
		t.Errorf("fault time %s", got)
	}
	tl := first.Timeline
	if !tl.has() || tl.BucketMS != 250 || tl.buckets() != 48 || tl.ClientOK[40] != -1 || tl.Holder[0] != "i-0a1b2c3d4e5f60001" || len(tl.Roles) != 3 {
		t.Errorf("timeline: start %v, %d ms, %d buckets", tl.StartTime, tl.BucketMS, tl.buckets())
	}
	if !rs[1].Timeline.has() || rs[2].Timeline.has() {
		t.Error("line 2 has a timeline, line 3 none")
	}
	last := rs[len(rs)-1]
	if last.DowntimeBound != nil || last.Scenario != "operator-released" {
		t.Errorf("a line without a bound: %+v", last)
	}
	hung := rs[17]
	if hung.Scenario != "holder-hung" || hung.Passed || !hung.FaultTime.IsZero() || hung.measured() {
		t.Errorf("a run that failed before its fault counts as measured: %+v", hung)
	}

	for _, bad := range []struct{ line, want string }{
		{`{"scenario":"x","run":1`, "not a scenario result"},
		{`["x"]`, "not a scenario result"},
		{`{"title":"no name","run":1}`, `"scenario" is missing`},
		{`{"scenario":"x","fault_at":"19:40"}`, `"fault_at" is "19:40", not an RFC 3339 time`},
		{`{"scenario":"x","timeline":{"start":"yesterday"}}`, `"timeline.start"`},
		{`{"scenario":"x","downtime_s":-1}`, `"downtime_s" is -1: must be ≥ 0`},
		{`{"scenario":"x","downtime_bound_s":-2}`, `"downtime_bound_s" is -2`},
		{`{"scenario":"x","requests":3,"failed_requests":4}`, `"failed_requests" (4) exceeds "requests" (3)`},
		{`{"scenario":"x","timeline":{"client_ok":[1,1.5]}}`, `"timeline.client_ok"[1] is 1.5`},
		{`{"scenario":"x","moves":"two"}`, "not a scenario result"},
	} {
		_, err := parse(strings.NewReader("\n"+bad.line+"\n"), "in.jsonl")
		if err == nil || !strings.Contains(err.Error(), bad.want) || !strings.HasPrefix(err.Error(), "in.jsonl:2: ") {
			t.Errorf("%s: error %v, want in.jsonl:2: …%s…", bad.line, err, bad.want)
		}
	}
	rs2, err := parse(strings.NewReader(`{"scenario":"bare"}`), "x")
	if err != nil || len(rs2) != 1 || rs2[0].Title != "bare" {
		t.Errorf("a line with only a name: %+v, %v", rs2, err)
	}
}

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{0, 10}, 5},
		{[]float64{7, 7, 1, 9, 7}, 7},
	} {
		in := append([]float64(nil), c.in...)
		if got, ok := median(c.in); !ok || got != c.want {
			t.Errorf("median(%v) = %v, %v; want %v", c.in, got, ok, c.want)
		}
		if !equal(in, c.in) {
			t.Errorf("median reordered its input: %v", c.in)
		}
	}
	if _, ok := median(nil); ok {
		t.Error("median of nothing is ok")
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSummarize(t *testing.T) {
	ss := group(mustRead(t))
	var names []string
	got := map[string]row{}
	for _, s := range ss {
		names = append(names, s.Name)
		got[s.Name] = summarize(s)
	}
	// Input order, not sorted by name.
	if want := "haproxy-killed backend-down eipd-killed sigterm-handoff holder-hung operator-released"; strings.Join(names, " ") != want {
		t.Errorf("scenarios %v, want %s", names, want)
	}
	for name, want := range map[string]row{
		// Odd count: 1.1 1.25 1.3 1.6 6.2, failed run included (it reached its fault).
		"haproxy-killed": {Title: "HAProxy killed on the holder", Check: "http", Runs: "5", Passed: "**4**", DowntimeP50: "1.30", DowntimeMax: "6.20",
			Bound: "5.00", FailedTotal: "240", FailedMax: "131", MovesMax: "2", APICallsMedian: "46",
			APICallsMax: "71", APICeiling: "60"},
		"backend-down": {Title: "Its backend down while HAProxy runs (runtime-API check)", Check: "runtime", Runs: "5", Passed: "5", DowntimeP50: "1.40",
			DowntimeMax: "1.50", Bound: "5.00", FailedTotal: "140", FailedMax: "30", MovesMax: "1", APICallsMedian: "43",
			APICallsMax: "45", APICeiling: none},
		// Even count: API calls 13 12 13 12.
		"eipd-killed": {Title: "Holder's eipd SIGKILLed while HAProxy serves (EIP must stay)", Check: "http", Runs: "4", Passed: "4", DowntimeP50: "0.00",
			DowntimeMax: "0.00", Bound: "0 failed", FailedTotal: "0", FailedMax: "0", MovesMax: "0", APICallsMedian: "12.5",
			APICallsMax: "13", APICeiling: none},
		// The run that failed before its fault is not in the figures.
		"holder-hung": {Title: "Holder hung (SIGSTOP eipd + HAProxy) | lease", Check: "http", Runs: "2", Passed: "**1**", DowntimeP50: "9.80",
			DowntimeMax: "9.80", Bound: "12.00", FailedTotal: "196", FailedMax: "196", MovesMax: "1", APICallsMedian: "38",
			APICallsMax: "38", APICeiling: none},
		"operator-released": {Title: "Operator releases the EIP", Check: "runtime", Runs: "1", Passed: "1", DowntimeP50: "0.00", DowntimeMax: "0.00",
			Bound: none, FailedTotal: "0", FailedMax: "0", MovesMax: "0", APICallsMedian: "9",
			APICallsMax: "9", APICeiling: none},
	} {
		if got[name] != want {
			t.Errorf("%s:\n got %+v\nwant %+v", name, got[name], want)
		}
	}
	// A scenario none of whose runs got to its fault has no figures.
	only := &scenario{Name: "x", Title: "X", Runs: []result{{Scenario: "x", Error: "setup"}}}
	if r := summarize(only); r.DowntimeP50 != none || r.APICallsMedian != none || r.Passed != "**0**" || r.Bound != none {
		t.Errorf("unmeasured scenario: %+v", r)
	}
}

func TestTimelineRun(t *testing.T) {
	ss := group(mustRead(t))
	// Run 1 of haproxy-killed has a timeline but failed; run 2 passed.
	if r := timelineRun(ss); r == nil || r.Scenario != "haproxy-killed" || r.Run != 2 {
		t.Fatalf("picked %+v", r)
	}
	// Without haproxy-killed: the first passed run with a move and a
	// timeline. Only haproxy-killed lines carry timelines in the fixture,
	// so give one to eipd-killed run 1 (no move: skipped although first)
	// and to sigterm-handoff run 2.
	rest := group(mustRead(t))[1:]
	tl := ss[0].Runs[1].Timeline
	rest[1].Runs[0].Timeline, rest[2].Runs[1].Timeline = tl, tl
	if r := timelineRun(rest); r == nil || r.Scenario != "sigterm-handoff" || r.Run != 2 {
		t.Fatalf("fallback picked %+v", r)
	}
	if d := describeTimelineRun(timelineRun(rest)); !strings.Contains(d, "first passed run with a move") {
		t.Errorf("fallback described as %q", d)
	}
	// Only a failed run with a move.
	failedOnly := []*scenario{{Name: "haproxy-killed", Runs: []result{ss[0].Runs[0]}}}
	if r := timelineRun(failedOnly); r == nil || r.Passed || !strings.Contains(describeTimelineRun(r), "(it failed)") {
		t.Errorf("failed-only picked %+v", r)
	}
	// No timeline anywhere.
	if r := timelineRun(group(mustRead(t))[1:]); r != nil {
		t.Errorf("picked %s although no run there has a timeline", r.Source)
	}
}

func TestInstancesAndBands(t *testing.T) {
	tl := timeline{Holder: []string{"", "i-c", "i-c", "i-a"}, Roles: map[string][]string{"i-b": nil, "i-a": nil}}
	if got := strings.Join(tl.instances(), " "); got != "i-c i-a i-b" {
		t.Errorf("instances %s: want the first holder first, then by ID", got)
	}
	got := bands([]string{"h", "h", "", "s", "s", "s"})
	want := []band{{0, 2, "h"}, {2, 3, ""}, {3, 6, "s"}}
	if len(got) != len(want) {
		t.Fatalf("bands %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("band %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCodeSpan(t *testing.T) {
	for in, want := range map[string]string{
		"plain":           "`plain`",
		"a `b` c":         "`` a `b` c ``",
		"x ``y`` z":       "``` x ``y`` z ```",
		"`edge":           "`` `edge ``",
		"pipe | and *em*": "`pipe | and *em*`",
	} {
		if got := codeSpan(in); got != want {
			t.Errorf("codeSpan(%q) = %q, want %q", in, got, want)
		}
	}
}

// testPage is the page of the fixture with the machine and date fixed.
func testPage(t *testing.T) []byte {
	t.Helper()
	ss := group(mustRead(t))
	d := pageData{
		Stamp: report.Stamp{Commit: "abc1234", Version: "v0.9.0-12-gabc1234", Date: "2026-11-30 20:15 UTC",
			Machine: machine.Machine{CPUs: 2, CPU: "Example CPU", RAM: "24 GiB", OS: "Linux 6.1.0 amd64", Go: "go1.26.8",
				HAProxy: "HAProxy version 2.6.12", Load: "1.00 0.90 0.80"}},
		Inputs:       []string{fixture},
		DowntimePlot: "chaos-downtime.png", TimelinePlot: "chaos-timeline.png",
	}
	d.fill(ss)
	d.Timeline = describeTimelineRun(timelineRun(ss))
	page, err := report.Render(reportTemplate, d)
	if err != nil {
		t.Fatal(err)
	}
	return page
}

// The page, table included, against the golden file (go test
// ./tools/chaosreport -update rewrites it; review the diff).
func TestGoldenPage(t *testing.T) {
	page := testPage(t)
	path := filepath.Join("testdata", "CHAOS.golden.md")
	if *update {
		if err := os.WriteFile(path, page, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (go test ./tools/chaosreport -run TestGoldenPage -update writes it): %v", err)
	}
	if !bytes.Equal(page, want) {
		t.Errorf("page differs from %s (run with -update and review the diff):\n%s", path, page)
	}
	// What the golden file must hold, whatever -update wrote.
	for _, s := range []string{
		"| HAProxy killed on the holder | http | 5 | **4** | 1.30 | 6.20 | 5.00 | 240 | 131 | 2 | 46 |",
		"| Holder hung (SIGSTOP eipd + HAProxy) \\| lease | http | 2 | **1** | 9.80 | 9.80 | 12.00 | 196 | 196 | 1 | 38 |",
		"- HAProxy killed on the holder, run 1 (`" + fixture + ":1`): `client-visible downtime 6.20 s exceeds the bound of 5 s (EIP moved twice)`",
		"- Holder hung (SIGSTOP eipd + HAProxy) | lease, run 1 (`" + fixture + ":18`): `steady state not reached in 60s: no daemon reports holder`",
		"run 2 of **HAProxy killed on the holder** (`haproxy-killed`, " + fixture + ":2): the first passed run of `haproxy-killed`",
		"20 runs of 6 scenarios: 18 passed, 2 failed", "`make chaos-report`", "make chaos RUNS=5 REPORT=1", "2 CPUs (`nproc`), Example CPU",
		"| commit | `abc1234` (`v0.9.0-12-gabc1234`) |", "HAProxy version 2.6.12", "Linux 6.1.0", "24 GiB",
		"![Client-visible downtime per scenario](chaos-downtime.png)", "![Timeline of one failover](chaos-timeline.png)",
		"at least 20 requests a second", "new connection", "longest run of", "consecutive",
	} {
		if !bytes.Contains(want, []byte(s)) {
			t.Errorf("golden page lacks %q", s)
		}
	}
	if n := bytes.Count(want, []byte("\n| ")); n != 1+10+1+6 {
		t.Errorf("%d table lines, want two headers, 10 machine rows and 6 scenarios", n)
	}
}

// The page goes to docs/: its links must resolve there (docs_test.go checks
// docs/*.md the same way once the page is written).
func TestPageLinks(t *testing.T) {
	docs := filepath.Join("..", "..", "docs")
	for _, l := range markdown.Links(string(testPage(t))) {
		if strings.Contains(l.Target, "://") || strings.HasPrefix(l.Target, "chaos-") {
			continue // the plots are written with the page
		}
		target := filepath.Join(docs, l.Target)
		b, err := os.ReadFile(target)
		if err != nil {
			t.Errorf("link to %s: %v", l.Target, err)
			continue
		}
		if l.Anchor != "" && !markdown.Anchors(string(b))[l.Anchor] {
			t.Errorf("link to %s#%s: no such heading", l.Target, l.Anchor)
		}
	}
}

func decodePNG(t *testing.T, path string) (w, h int) {
	t.Helper()
	w, h, err := report.PNGSize(path)
	if err != nil {
		t.Fatal(err)
	}
	return w, h
}

// The whole command: page and plots written, the same bytes for the same
// input, and clear errors for missing or empty results.
func TestChaosreport(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "docs", "CHAOS.md")
	if err := os.Mkdir(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	// The fixture given twice, once in a comma list: 40 runs.
	args := []string{"-in", fixture + "," + fixture, "-out", out, "-commit", "abc1234"}
	if err := chaosreport(args); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"40 runs of 6 scenarios: 36 passed, 4 failed", "| HAProxy killed on the holder | http | 10 | **8** | 1.30 | 6.20 |",
		"](chaos-downtime.png)", "](chaos-timeline.png)", "| commit | `abc1234` |"} {
		if !strings.Contains(string(page), s) {
			t.Errorf("page lacks %q", s)
		}
	}
	downtime, timelinePNG := filepath.Join(dir, "docs", "chaos-downtime.png"), filepath.Join(dir, "docs", "chaos-timeline.png")
	if w, h := decodePNG(t, downtime); w < 600 || h < 300 {
		t.Errorf("downtime plot is %dx%d", w, h)
	}
	if w, h := decodePNG(t, timelinePNG); w < 600 || h < 300 {
		t.Errorf("timeline plot is %dx%d", w, h)
	}
	first := map[string][]byte{}
	for _, p := range []string{downtime, timelinePNG} {
		first[p], _ = os.ReadFile(p)
	}
	if err := chaosreport(args); err != nil {
		t.Fatal(err)
	}
	for p, b := range first {
		if again, _ := os.ReadFile(p); !bytes.Equal(b, again) {
			t.Errorf("%s differs between two runs on the same input", p)
		}
	}

	// Plots elsewhere, as SVG: the page links them relative to itself.
	svgDown, svgTime := filepath.Join(dir, "img", "down.svg"), filepath.Join(dir, "img", "time.svg")
	if err := os.Mkdir(filepath.Join(dir, "img"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := chaosreport([]string{"-in", fixture, "-out", out, "-downtime-plot", svgDown, "-timeline-plot", svgTime}); err != nil {
		t.Fatal(err)
	}
	page, _ = os.ReadFile(out)
	for _, p := range []string{svgDown, svgTime} {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(b, []byte("<svg")) || len(b) < 2000 {
			t.Errorf("%s: %d bytes, %v", p, len(b), err)
		}
	}
	if !strings.Contains(string(page), "](../img/down.svg)") || !strings.Contains(string(page), "](../img/time.svg)") {
		t.Errorf("page does not link the SVG plots relative to itself")
	}

	// No run with a timeline: no timeline plot, and an old one removed.
	noTimeline := filepath.Join(dir, "no-timeline.jsonl")
	b, _ := os.ReadFile(fixture)
	var keep []string
	for line := range strings.Lines(string(b)) {
		if !strings.Contains(line, `"timeline"`) {
			keep = append(keep, line)
		}
	}
	_ = os.WriteFile(noTimeline, []byte(strings.Join(keep, "")), 0o644)
	if err := chaosreport([]string{"-in", noTimeline, "-out", out}); err != nil {
		t.Fatal(err)
	}
	page, _ = os.ReadFile(out)
	if strings.Contains(string(page), "chaos-timeline.png") || !strings.Contains(string(page), "there is no timeline plot") {
		t.Error("page without a timeline run still shows one")
	}
	if _, err := os.Stat(timelinePNG); !os.IsNotExist(err) {
		t.Errorf("stale timeline plot left: %v", err)
	}

	empty := filepath.Join(dir, "empty.jsonl")
	_ = os.WriteFile(empty, []byte("\n\n"), 0o644)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-in", filepath.Join(dir, "missing.jsonl"), "-out", out}, "missing.jsonl does not exist: run the suite first: make chaos RUNS=5 REPORT=1"},
		{[]string{"-in", empty, "-out", out}, "empty.jsonl holds no scenario result: run the suite first: make chaos RUNS=5 REPORT=1"},
		{[]string{"-in", fixture, "-out", out, "-downtime-plot", "x.jpg"}, "x.jpg: a plot is written as .png or .svg"},
		{[]string{"-in", fixture, "-out", out, "stray"}, "results files are given with -in"},
	} {
		if err := chaosreport(c.args); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.want)
		}
	}
}

// Every role a daemon reports has its own colour in the timeline.
func TestRoleColors(t *testing.T) {
	seen := map[color.Color]string{otherRoleCol: "other", noRoleColor: "no answer"}
	for _, role := range []string{leader.RoleHolder, leader.RoleUnverified, leader.RoleStandby, leader.RoleDraining, leader.RoleUnhealthy} {
		c := roleColor(role)
		if other, dup := seen[c]; dup {
			t.Errorf("role %s has the colour of %s", role, other)
		}
		seen[c] = role
	}
	if roleColor("something new") != otherRoleCol || roleColor("") != noRoleColor {
		t.Error("unknown role or no answer")
	}
}
