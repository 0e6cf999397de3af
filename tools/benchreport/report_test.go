package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eipd/eipd/tools/report"
)

func mustParse(t *testing.T, path string) *runOutput {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := parse(f)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestParse(t *testing.T) {
	r := mustParse(t, "testdata/after.txt")
	if v, ok := r.metric("FailoverHAProxyDeath", "p99-s"); !ok || v != 1.311 {
		t.Errorf("FailoverHAProxyDeath p99 = %v, %v", v, ok)
	}
	if v, ok := r.metric("APICostEIPs/EIPs=16", "calls/min"); !ok || v != 40 {
		t.Errorf("EIPs=16 calls/min = %v, %v", v, ok)
	}
	if v, ok := r.metric("Idle", "healthcheck-rss-MiB"); !ok || v != 9.812 {
		t.Errorf("healthcheck RSS = %v, %v", v, ok)
	}
	if got := r.get("FailoverInstanceStopped").trials(); len(got) != 2 || got[0] != 10.17 {
		t.Errorf("stopped trials %v", got)
	}
	if r.get("FailoverHAProxyDeath").trials() == nil || len(r.get("FailoverHAProxyDeath").Logs) != 4 {
		t.Errorf("logs of HAProxyDeath: %q", r.get("FailoverHAProxyDeath").Logs)
	}
	before, err := parse(strings.NewReader(beforeText))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []struct {
		name, unit string
		v          float64
	}{
		{"FailoverHAProxyDeath", "p99-s", 3.064}, {"FailoverInstanceDeath", "p99-s", 11.41},
		{"APICost/N=100", "calls/min", 25}, {"Idle", "rss-MiB", 27.91}, {"Idle", "cpu-%", 0.4330},
	} {
		if v, ok := before.metric(want.name, want.unit); !ok || v != want.v {
			t.Errorf("before %s %s = %v, %v; want %v", want.name, want.unit, v, ok, want.v)
		}
	}
	if _, err := parse(strings.NewReader("BenchmarkX-2 1 12 ns/op 3.1\n")); err == nil {
		t.Error("a benchmark line with an odd field count parsed")
	}
}

func TestRows(t *testing.T) {
	before, _ := parse(strings.NewReader(beforeText))
	after := mustParse(t, "testdata/after.txt")
	got := map[string]row{}
	for _, r := range rows(before, after) {
		got[r.Label] = r
	}
	for label, want := range map[string]row{
		"HAProxy death → EIP moved, p99":             {Before: "3.06 s", After: "1.31 s", Target: "≤ 1.50 s", Verdict: "met"},
		"holder instance stopped → EIP moved, p99":   {Before: "—", After: "10.17 s", Target: "≤ 5.00 s", Verdict: "**not met**"},
		"holder instance hung → EIP moved, p99":      {Before: "11.41 s", After: "not run", Target: "≤ 12.00 s", Verdict: "not measured"},
		"API cost flat in EIPs: 16 vs 1":             {Before: "—", After: "1.60 ×", Target: "≤ 1.50 ×", Verdict: "**not met**"},
		"API cost flat in members: 30 vs 3":          {Before: "1.00 ×", After: "1.08 ×", Target: "≤ 2.00 ×", Verdict: "met"},
		"`eipd healthcheck` peak RSS (median of 11)": {Before: "—", After: "9.8 MiB", Target: "≤ 10.0 MiB", Verdict: "met"},
		"idle RSS, holder":                           {Before: "27.9 MiB", After: "15.3 MiB", Target: "≤ 16.0 MiB", Verdict: "met"},
		"idle CPU, holder (one core)":                {Before: "0.43 %", After: "0.40 %", Target: "≤ 0.30 %", Verdict: "**not met**"},
	} {
		r, ok := got[label]
		want.Label = label
		if !ok || r != want {
			t.Errorf("row %q:\n got %+v\nwant %+v", label, r, want)
		}
	}
	if r := got["API cost flat in members: 100 vs 3"]; r.After != "not run (`E2E_BENCH_N100=1`)" || r.Verdict != "" || r.Before != "1.00 ×" {
		t.Errorf("optional N=100 row: %+v", r)
	}
}

// The whole command: a page with the table, the machine and both raw
// outputs, and a PNG plot it links.
func TestBenchreport(t *testing.T) {
	dir := t.TempDir()
	out, plot := filepath.Join(dir, "BENCHMARKS.md"), filepath.Join(dir, "failover.png")
	if err := benchreport([]string{"-after", "testdata/after.txt", "-out", out, "-plot", plot, "-commit", "abc1234", "-version", "v1.2.3-dirty",
		"-note", "BenchmarkIdle re-run at def5678."}); err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| commit | `abc1234` (`v1.2.3-dirty`) |", "the machine may be shared) |\n\nBenchmarkIdle re-run at def5678.\n\nAll daemons", "CPUs (`nproc`)", "| HAProxy death → EIP moved, p99 | 3.06 s | 1.31 s | ≤ 1.50 s | met |",
		"![Failover time per fault kind, before and after](failover.png)", "BenchmarkIdle-2", "BenchmarkFailoverInstanceDeath-2",
	} {
		if !strings.Contains(string(page), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	w, h, err := report.PNGSize(plot)
	if err != nil {
		t.Fatal(err)
	}
	if w < 500 || h < 200 {
		t.Errorf("plot is %dx%d", w, h)
	}

	if err := benchreport([]string{"-out", out}); err == nil || !strings.Contains(err.Error(), "-after is required") {
		t.Errorf("no -after: %v", err)
	}
	empty := filepath.Join(dir, "empty.txt")
	_ = os.WriteFile(empty, []byte("PASS\n"), 0o644)
	if err := benchreport([]string{"-after", empty, "-out", out, "-plot", plot}); err == nil || !strings.Contains(err.Error(), "no benchmark results") {
		t.Errorf("empty run: %v", err)
	}
}
