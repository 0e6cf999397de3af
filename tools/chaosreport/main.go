// Command chaosreport writes docs/CHAOS.md and its two plots from the
// results of the chaos suite: the JSON lines `make chaos` writes, one per
// scenario run (`make chaos-report` runs it). The same input gives the same
// page and plots, except for the date on the page.
//
// The plots are drawn with gonum.org/v1/plot, used by the report commands
// only (it is not linked into eipd).
package main

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/eipd/eipd/tools/report"
)

//go:embed report.md.tmpl
var reportTemplate string

// howToRun is what to do when there are no results to report.
const howToRun = "run the suite first: make chaos RUNS=5 REPORT=1"

func main() { report.Main("chaosreport", chaosreport) }

func chaosreport(args []string) error {
	fset := flag.NewFlagSet("chaosreport", flag.ContinueOnError)
	var inputs []string
	fset.Func("in", "results file, JSON lines from `make chaos` (repeatable, or a comma-separated list; default chaos-results.jsonl)", func(v string) error {
		for _, p := range strings.Split(v, ",") {
			if p = strings.TrimSpace(p); p != "" {
				inputs = append(inputs, p)
			}
		}
		return nil
	})
	out := fset.String("out", "docs/CHAOS.md", "the page to write")
	plots := fset.String("plots", "", "directory for the plots chaos-downtime.png and chaos-timeline.png (default: the directory of -out)")
	downtimePath := fset.String("downtime-plot", "", "path of the downtime plot, .png or .svg (overrides -plots)")
	timelinePath := fset.String("timeline-plot", "", "path of the timeline plot, .png or .svg (overrides -plots)")
	stamp := report.StampFlags(fset)
	if err := fset.Parse(args); err != nil {
		return err
	}
	if fset.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: results files are given with -in", fset.Args())
	}
	if len(inputs) == 0 {
		inputs = []string{"chaos-results.jsonl"}
	}
	dir := *plots
	if dir == "" {
		dir = filepath.Dir(*out)
	}
	if *downtimePath == "" {
		*downtimePath = filepath.Join(dir, "chaos-downtime.png")
	}
	if *timelinePath == "" {
		*timelinePath = filepath.Join(dir, "chaos-timeline.png")
	}
	for _, p := range []string{*downtimePath, *timelinePath} {
		if _, err := report.Format(p); err != nil {
			return err
		}
	}

	results, err := readAll(inputs)
	if err != nil {
		return err
	}
	ss := group(results)
	if err := plotDowntime(ss, *downtimePath); err != nil {
		return fmt.Errorf("downtime plot: %w", err)
	}
	d := pageData{Stamp: stamp(), Inputs: inputs}
	d.fill(ss)
	if d.DowntimePlot, err = link(*out, *downtimePath); err != nil {
		return err
	}
	if r := timelineRun(ss); r != nil {
		if err := plotTimeline(r, *timelinePath); err != nil {
			return fmt.Errorf("timeline plot of %s: %w", r.Source, err)
		}
		if d.TimelinePlot, err = link(*out, *timelinePath); err != nil {
			return err
		}
		d.Timeline = describeTimelineRun(r)
	} else if err := os.Remove(*timelinePath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		// No run to draw: a timeline from an earlier report must not
		// stay beside a page that does not describe it.
		return err
	}
	return report.Write(*out, reportTemplate, d)
}

// readAll reads every results file; a missing or empty input is an error
// that says how to produce one.
func readAll(paths []string) ([]result, error) {
	var all []result
	for _, p := range paths {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s does not exist: %s", p, howToRun)
		}
		if err != nil {
			return nil, err
		}
		rs, err := parse(f, p)
		f.Close()
		if err != nil {
			return nil, err
		}
		if len(rs) == 0 {
			return nil, fmt.Errorf("%s holds no scenario result: %s", p, howToRun)
		}
		all = append(all, rs...)
	}
	return all, nil
}

// link is the path of a plot as the page links it: relative to the page.
func link(page, plot string) (string, error) {
	pageDir, err := filepath.Abs(filepath.Dir(page))
	if err != nil {
		return "", err
	}
	abs, err := filepath.Abs(plot)
	if err != nil {
		return "", err
	}
	rel, err := filepath.Rel(pageDir, abs)
	if err != nil {
		return "", fmt.Errorf("the page %s cannot link the plot %s: %w", page, plot, err)
	}
	return filepath.ToSlash(rel), nil
}

// pageData fills report.md.tmpl.
type pageData struct {
	report.Stamp
	Inputs                 []string
	Runs, Passed, Failed   int
	Scenarios              int
	Table                  string
	Failures               []failure
	DowntimePlot           string
	TimelinePlot, Timeline string // empty when no run has a timeline to draw
	BoxMin                 int
	TimelineScenario       string
}

func (d *pageData) fill(ss []*scenario) {
	d.Scenarios = len(ss)
	for _, s := range ss {
		for _, r := range s.Runs {
			d.Runs++
			if r.Passed {
				d.Passed++
			} else {
				d.Failed++
			}
		}
	}
	d.Table = table(ss)
	d.Failures = failures(ss)
	d.BoxMin = boxMin
	d.TimelineScenario = timelineScenario
}

// describeTimelineRun says which run the timeline shows and why it was
// chosen, for the page.
func describeTimelineRun(r *result) string {
	why := "the first passed run of `" + timelineScenario + "`"
	switch {
	case r.Scenario == timelineScenario && r.Passed:
	case r.Passed:
		why = "no passed run of `" + timelineScenario + "` had a timeline, so the first passed run with a move"
	default:
		why = "no passed run with a move had a timeline, so the first run with a move (it failed)"
	}
	return fmt.Sprintf("run %d of **%s** (`%s`, %s): %s", r.Run, report.OneLine(r.Title), r.Scenario, r.Source, why)
}
