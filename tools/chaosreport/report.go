package main

import (
	"slices"
	"strconv"
	"strings"

	"github.com/eipd/eipd/tools/report"
)

// scenario is every run of one scenario, in input order.
type scenario struct {
	Name, Title string
	Runs        []result
}

// group gathers the runs by scenario, the scenarios in the order they first
// appear in the input, so the same input always gives the same page. The
// title is the first non-empty one seen.
func group(rs []result) []*scenario {
	var out []*scenario
	byName := map[string]*scenario{}
	for _, r := range rs {
		s := byName[r.Scenario]
		if s == nil {
			s = &scenario{Name: r.Scenario}
			byName[r.Scenario] = s
			out = append(out, s)
		}
		if s.Title == "" || s.Title == s.Name {
			s.Title = r.Title
		}
		s.Runs = append(s.Runs, r)
	}
	return out
}

// median is the middle value, or the mean of the two middle values of an
// even count; ok is false for no values.
func median(vs []float64) (float64, bool) {
	if len(vs) == 0 {
		return 0, false
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m], true
	}
	return (s[m-1] + s[m]) / 2, true
}

// row is one line of the table, already formatted.
type row struct {
	Title, Check, Runs, Passed       string
	DowntimeP50, DowntimeMax, Bound  string
	FailedTotal, FailedMax, MovesMax string
	APICallsMedian, APICallsMax      string
	APICeiling                       string
}

const none = "—"

// summarize computes the row of a scenario. Downtime, requests, moves and
// API calls are taken over the measured runs only (see result.measured).
func summarize(s *scenario) row {
	r := row{Title: s.Title, Runs: strconv.Itoa(len(s.Runs)), Check: none,
		DowntimeP50: none, DowntimeMax: none, Bound: none, FailedTotal: none, FailedMax: none, MovesMax: none, APICallsMedian: none,
		APICallsMax: none, APICeiling: none}
	var down, calls []float64
	var checks []string
	passed, failedTotal, failedMax, movesMax := 0, 0, 0, 0
	ceiling := 0
	for _, run := range s.Runs {
		if run.Passed {
			passed++
		}
		ceiling = max(ceiling, run.APICallsBound)
		if run.Check != "" && !slices.Contains(checks, run.Check) {
			checks = append(checks, run.Check)
		}
		if !run.measured() {
			continue
		}
		down = append(down, run.Downtime)
		calls = append(calls, float64(run.APICalls))
		failedTotal += run.FailedRequests
		failedMax = max(failedMax, run.FailedRequests)
		movesMax = max(movesMax, run.Moves)
	}
	r.Passed = strconv.Itoa(passed)
	if passed < len(s.Runs) {
		r.Passed = "**" + r.Passed + "**"
	}
	if len(checks) > 0 {
		r.Check = strings.Join(checks, ", ")
	}
	if b := s.bound(); b != nil {
		r.Bound = seconds(*b)
		if *b == 0 { // the harness's zero bound: a planned move
			r.Bound = "0 failed"
		}
	}
	if p50, ok := median(down); ok {
		r.DowntimeP50 = seconds(p50)
		r.DowntimeMax = seconds(slices.Max(down))
		r.FailedTotal = strconv.Itoa(failedTotal)
		r.FailedMax = strconv.Itoa(failedMax)
		r.MovesMax = strconv.Itoa(movesMax)
		m, _ := median(calls)
		r.APICallsMedian = strconv.FormatFloat(m, 'f', -1, 64)
		r.APICallsMax = strconv.FormatFloat(slices.Max(calls), 'f', -1, 64)
	}
	if ceiling > 0 {
		r.APICeiling = strconv.Itoa(ceiling)
	}
	return r
}

func seconds(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }

// columns are the table's columns, figures right-aligned.
var columns = []report.Column{
	{Name: "scenario"}, {Name: "check"}, {Name: "runs", Right: true}, {Name: "passed", Right: true},
	{Name: "downtime p50 (s)", Right: true}, {Name: "downtime max (s)", Right: true}, {Name: "bound (s)", Right: true},
	{Name: "failed requests, total", Right: true}, {Name: "failed requests, max a run", Right: true}, {Name: "moves, max a run", Right: true},
	{Name: "API calls after the fault, median", Right: true}, {Name: "API calls, max a run", Right: true}, {Name: "API ceiling", Right: true},
}

// table is the Markdown table of the scenarios.
func table(ss []*scenario) string {
	var rows [][]string
	for _, s := range ss {
		r := summarize(s)
		rows = append(rows, []string{report.Cell(r.Title), r.Check, r.Runs, r.Passed,
			r.DowntimeP50, r.DowntimeMax, r.Bound, r.FailedTotal, r.FailedMax, r.MovesMax, r.APICallsMedian, r.APICallsMax, r.APICeiling})
	}
	return report.Table(columns, rows)
}

// failure is one failed run, for the list under the table.
type failure struct {
	Title  string
	Run    int
	Source string
	Error  string // as a Markdown code span
}

func failures(ss []*scenario) []failure {
	var out []failure
	for _, s := range ss {
		for _, r := range s.Runs {
			if r.Passed {
				continue
			}
			msg := report.OneLine(r.Error)
			if msg == "" {
				msg = "(no error message recorded)"
			}
			out = append(out, failure{Title: report.OneLine(s.Title), Run: r.Run, Source: r.Source, Error: codeSpan(msg)})
		}
	}
	return out
}

// codeSpan quotes text as a Markdown code span, whatever backticks it holds.
func codeSpan(s string) string {
	longest, n := 0, 0
	for _, c := range s {
		if c == '`' {
			n++
			longest = max(longest, n)
		} else {
			n = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if longest > 0 || strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		return fence + " " + s + " " + fence
	}
	return fence + s + fence
}
