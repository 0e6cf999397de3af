// Command benchreport writes docs/BENCHMARKS.md and the failover plot from
// the output of the e2e benchmarks (`make bench` runs it). The "before"
// column is the run in before.txt: the figures the page gave before
// issue 10.
//
// The plot is drawn with gonum.org/v1/plot, used by this command only (it is
// not linked into eipd).
package main

import (
	"bytes"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/template"
	"time"

	"github.com/eipd/eipd/internal/machine"
)

//go:embed before.txt
var beforeText string

//go:embed report.md.tmpl
var reportTemplate string

func main() {
	if err := benchreport(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func benchreport(args []string) error {
	fs := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	afterPath := fs.String("after", "", "output of `go test -bench` of this run (required)")
	out := fs.String("out", "docs/BENCHMARKS.md", "the page to write")
	plotPath := fs.String("plot", "docs/benchmarks-failover.png", "the failover plot to write (PNG); the page links it by its base name")
	commit := fs.String("commit", "unknown", "commit the run measured")
	version := fs.String("version", "", "git describe of that commit (says -dirty for uncommitted changes)")
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
	page, err := render(pageData{
		Commit: *commit, Version: *version, Note: strings.TrimSpace(*note), Date: time.Now().UTC().Format("2006-01-02 15:04 MST"),
		Machine: machine.Describe(), Table: table(rows(before, after)), Plot: filepath.Base(*plotPath),
		After: strings.TrimSpace(after.Raw), Before: strings.TrimSpace(before.Raw),
	})
	if err != nil {
		return err
	}
	return os.WriteFile(*out, page, 0o644)
}

// pageData fills report.md.tmpl.
type pageData struct {
	Commit, Version, Date string
	Note                  string
	Machine               machine.Machine
	Table, Plot           string
	After, Before         string
}

func render(d pageData) ([]byte, error) {
	t, err := template.New("report").Parse(reportTemplate)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
