// Command benchreport writes docs/BENCHMARKS.md and the failover plot from
// the output of the e2e benchmarks (`make bench` runs it). The "before"
// column is the run in before.txt: the figures the page gave before
// issue 10.
//
// The plot is drawn with gonum.org/v1/plot, used by the report commands
// only (it is not linked into eipd).
package main

import (
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/eipd/eipd/tools/report"
)

//go:embed before.txt
var beforeText string

//go:embed report.md.tmpl
var reportTemplate string

func main() { report.Main("benchreport", benchreport) }

func benchreport(args []string) error {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	afterPath := fs.String("after", "", "output of `go test -bench` of this run (required)")
	out := fs.String("out", "docs/BENCHMARKS.md", "the page to write")
	plotPath := fs.String("plot", "docs/benchmarks-failover.png", "the failover plot to write (PNG); the page links it by its base name")
	stamp := report.StampFlags(fs)
	note := fs.String("note", "", "a paragraph under the commit, for a run pieced together from several (which benchmarks were re-run, at which commit)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *afterPath == "" {
		return errors.New("-after is required: the saved output of the benchmarks")
	}
	f, err := os.Open(*afterPath)
	if err != nil {
		return err
	}
	after, err := parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *afterPath, err)
	}
	if len(after.Results) == 0 {
		return fmt.Errorf("%s: no benchmark results", *afterPath)
	}
	before, err := parse(strings.NewReader(beforeText))
	if err != nil {
		return fmt.Errorf("before.txt: %w", err)
	}
	if err := plotFailover(before, after, *plotPath); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return report.Write(*out, reportTemplate, pageData{
		Stamp: stamp(), Note: strings.TrimSpace(*note),
		Table: table(rows(before, after)), Plot: filepath.Base(*plotPath),
		After: strings.TrimSpace(after.Raw), Before: strings.TrimSpace(before.Raw),
	})
}

// pageData fills report.md.tmpl.
type pageData struct {
	report.Stamp
	Note          string
	Table, Plot   string
	After, Before string
}
