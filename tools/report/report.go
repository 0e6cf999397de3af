// Package report is what the commands that write docs pages from measured
// runs (tools/chaosreport for docs/CHAOS.md, tools/benchreport for
// docs/BENCHMARKS.md) share: the stamp that says which commit and machine a
// page measured, the flags that set it, the rendering of a page from its
// template, Markdown tables and the pieces of their plots. Each command keeps
// only what its own page says.
//
// It lives under tools/, apart from eipd's packages: nothing in the product
// imports it, and gonum.org/v1/plot, which it uses, is not linked into eipd.
package report

import (
	"bytes"
	_ "embed"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/template"
	"time"

	"github.com/eipd/eipd/internal/machine"
)

// partials are the templates every page uses: "stamp" (the commit and the
// date) and "machine" (what the runs ran on), rows of the page's
// "Machine and commit" table.
//
//go:embed partials.md.tmpl
var partials string

// Stamp says what a page measured: the commit, when the page was written
// and on what machine. A page's data embeds it, so that its template reads
// {{.Commit}}, {{.Machine.CPUs}} and so on.
type Stamp struct {
	Commit, Version, Date string
	Machine               machine.Machine
}

// StampFlags registers -commit and -version on fs. The function it returns,
// called after fs.Parse, gives the stamp of a page written now on this
// machine.
func StampFlags(fs *flag.FlagSet) func() Stamp {
	commit := fs.String("commit", "unknown", "commit the runs measured")
	version := fs.String("version", "", "git describe of that commit (says -dirty for uncommitted changes)")
	return func() Stamp {
		return Stamp{Commit: *commit, Version: *version, Date: time.Now().UTC().Format("2006-01-02 15:04 MST"), Machine: machine.Describe()}
	}
}

// Main runs a report command's body on the command line's arguments and
// exits 1 with the error, prefixed with the command's name, if it fails.
func Main(name string, run func(args []string) error) {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

// Render executes a page's template, which may use the partials, on data.
func Render(page string, data any) ([]byte, error) {
	t, err := template.New("partials").Parse(partials)
	if err != nil {
		return nil, err
	}
	if t, err = t.New("page").Parse(page); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Write renders a page and writes it to path.
func Write(path, page string, data any) error {
	b, err := Render(page, data)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// Column is one column of a Markdown table.
type Column struct {
	Name  string
	Right bool // right-aligned, for figures
}

// Table is a Markdown table of rows, one cell per column. The cells are
// written as they are: Cell makes free text safe in one.
func Table(cols []Column, rows [][]string) string {
	var b strings.Builder
	names := make([]string, len(cols))
	rules := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.Name
		rules[i] = "---"
		if c.Right {
			rules[i] = "--:"
		}
	}
	b.WriteString("| " + strings.Join(names, " | ") + " |\n")
	b.WriteString("|" + strings.Join(rules, "|") + "|\n")
	for _, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// OneLine collapses every run of white space, newlines included, into one
// space.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Cell makes text safe inside a table cell: one line, pipes escaped.
func Cell(s string) string { return strings.ReplaceAll(OneLine(s), "|", `\|`) }
