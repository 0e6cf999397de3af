package main

import (
	"strconv"

	"github.com/eipd/eipd/tools/report"
)

// target is one figure of issue 10 with its limit. A ratio target divides
// the metric of Name by the same metric of Base.
type target struct {
	Label  string
	Name   string // benchmark, e.g. "FailoverHAProxyDeath" or "APICost/N=30"
	Unit   string // metric unit as reported, e.g. "p99-s"
	Base   string // for ratios: the benchmark the figure is divided by
	Limit  float64
	Show   string // how the value is written: "s", "MiB", "%", "calls/min", "×"
	NoGoal bool   // a figure shown for context, with no limit
	// Optional: a figure the run may lack (one asked for with
	// E2E_BENCH_N100=1, or a benchmark newer than the run); Ask says how
	// to get it, "" when a full run has it.
	Optional bool
	Ask      string
}

var targets = []target{
	{Label: "HAProxy death → EIP moved, p50", Name: "FailoverHAProxyDeath", Unit: "p50-s", Limit: 1.2, Show: "s"},
	{Label: "HAProxy death → EIP moved, p99", Name: "FailoverHAProxyDeath", Unit: "p99-s", Limit: 1.5, Show: "s"},
	{Label: "HAProxy death, EC2 calls +300 ms, p99", Name: "FailoverHAProxyDeathSlowAPI", Unit: "p99-s", Limit: 2.5, Show: "s"},
	{Label: "HAProxy death on the coordinator holding the EIP → EIP moved, p99", Name: "FailoverHAProxyDeathCoordinator", Unit: "p99-s", Limit: 1.5, Show: "s", Optional: true},
	{Label: "holder instance stopped → EIP moved, p99", Name: "FailoverInstanceStopped", Unit: "p99-s", Limit: 5, Show: "s"},
	{Label: "holder instance terminated → EIP moved, p99", Name: "FailoverInstanceTerminated", Unit: "p99-s", Limit: 5, Show: "s"},
	{Label: "holder instance hung → EIP moved, p99", Name: "FailoverInstanceDeath", Unit: "p99-s", Limit: 12, Show: "s"},
	{Label: "coordinator hung while holding the EIP → EIP moved, p99", Name: "FailoverHungCoordinator", Unit: "p99-s", Show: "s", NoGoal: true, Optional: true},
	{Label: "API cost, 3 members", Name: "APICost/N=3", Unit: "calls/min", Show: "calls/min", NoGoal: true},
	{Label: "API cost, 10 members", Name: "APICost/N=10", Unit: "calls/min", Show: "calls/min", NoGoal: true},
	{Label: "API cost, 30 members", Name: "APICost/N=30", Unit: "calls/min", Show: "calls/min", NoGoal: true},
	{Label: "API cost, 100 members", Name: "APICost/N=100", Unit: "calls/min", Show: "calls/min", NoGoal: true, Optional: true, Ask: "`E2E_BENCH_N100=1`"},
	{Label: "API cost flat in members: 30 vs 3", Name: "APICost/N=30", Base: "APICost/N=3", Unit: "calls/min", Limit: 2, Show: "×"},
	{Label: "API cost flat in members: 100 vs 3", Name: "APICost/N=100", Base: "APICost/N=3", Unit: "calls/min", Limit: 2, Show: "×", Optional: true, Ask: "`E2E_BENCH_N100=1`"},
	{Label: "EC2 calls by members that do not coordinate, 30 members", Name: "APICost/N=30", Unit: "non-coordinator-calls/min", Limit: 0, Show: "calls/min", Optional: true},
	{Label: "API cost, 8 members, 1 EIP", Name: "APICostEIPs/EIPs=1", Unit: "calls/min", Show: "calls/min", NoGoal: true},
	{Label: "API cost, 8 members, 4 EIPs", Name: "APICostEIPs/EIPs=4", Unit: "calls/min", Show: "calls/min", NoGoal: true},
	{Label: "API cost, 8 members, 16 EIPs", Name: "APICostEIPs/EIPs=16", Unit: "calls/min", Show: "calls/min", NoGoal: true},
	{Label: "API cost flat in EIPs: 16 vs 1", Name: "APICostEIPs/EIPs=16", Base: "APICostEIPs/EIPs=1", Unit: "calls/min", Limit: 1.5, Show: "×"},
	{Label: "16 EIPs on 8 members placed within 30 s, nothing refused or moved after (1 = yes)", Name: "APICostEIPs/EIPs=16", Unit: "converged", Show: "", NoGoal: true, Optional: true},
	{Label: "idle RSS, holder", Name: "Idle", Unit: "rss-MiB", Limit: 16, Show: "MiB"},
	{Label: "idle RSS, standby", Name: "Idle", Unit: "standby-rss-MiB", Limit: 16, Show: "MiB"},
	{Label: "`eipd healthcheck` peak RSS (median of 11)", Name: "Idle", Unit: "healthcheck-rss-MiB", Limit: 10, Show: "MiB"},
	{Label: "idle CPU, holder (one core)", Name: "Idle", Unit: "cpu-%", Limit: 0.3, Show: "%"},
	{Label: "idle CPU, standby (one core)", Name: "Idle", Unit: "standby-cpu-%", Limit: 0.3, Show: "%"},
	{Label: "idle RSS, coordinator", Name: "Idle", Unit: "coordinator-rss-MiB", Limit: 16, Show: "MiB", Optional: true},
	{Label: "idle CPU, coordinator (one core)", Name: "Idle", Unit: "coordinator-cpu-%", Limit: 0.3, Show: "%", Optional: true},
}

// value is a target's figure in a run.
func (t target) value(r *runOutput) (float64, bool) {
	v, ok := r.metric(t.Name, t.Unit)
	if !ok || t.Base == "" {
		return v, ok
	}
	base, ok := r.metric(t.Base, t.Unit)
	if !ok || base == 0 {
		return 0, false
	}
	return v / base, true
}

func (t target) format(v float64) string {
	switch t.Show {
	case "s":
		return strconv.FormatFloat(v, 'f', 2, 64) + " s"
	case "MiB":
		return strconv.FormatFloat(v, 'f', 1, 64) + " MiB"
	case "%":
		return strconv.FormatFloat(v, 'f', 2, 64) + " %"
	case "×":
		return strconv.FormatFloat(v, 'f', 2, 64) + " ×"
	default:
		return strconv.FormatFloat(v, 'f', 1, 64) + " " + t.Show
	}
}

// row is one line of the before → after table.
type row struct{ Label, Before, After, Target, Verdict string }

func rows(before, after *runOutput) []row {
	var out []row
	for _, t := range targets {
		r := row{Label: t.Label, Before: "—", After: "not run", Target: "—"}
		if v, ok := t.value(before); ok {
			r.Before = t.format(v)
		}
		v, ran := t.value(after)
		if ran {
			r.After = t.format(v)
		}
		if !ran && t.Optional && t.Ask != "" {
			r.After = "not run (" + t.Ask + ")"
		}
		if !t.NoGoal && !(t.Optional && !ran) {
			r.Target = "≤ " + t.format(t.Limit)
			switch {
			case !ran:
				r.Verdict = "not measured"
			case v <= t.Limit:
				r.Verdict = "met"
			default:
				r.Verdict = "**not met**"
			}
		}
		out = append(out, r)
	}
	return out
}

func table(rs []row) string {
	cells := make([][]string, len(rs))
	for i, r := range rs {
		cells[i] = []string{r.Label, r.Before, r.After, r.Target, r.Verdict}
	}
	return report.Table([]report.Column{{Name: "figure"}, {Name: "before"}, {Name: "after"}, {Name: "target"}, {Name: ""}}, cells)
}
