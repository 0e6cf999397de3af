package report

import (
	"strings"
	"testing"

	"github.com/eipd/eipd/internal/machine"
)

// A page's template sees the partials and the stamp's fields, promoted.
func TestRender(t *testing.T) {
	page := "# P\n\n| | |\n|---|---|\n{{template \"stamp\" .}}\n{{template \"machine\" .}}\n"
	d := struct {
		Stamp
		Extra string
	}{Stamp: Stamp{Commit: "abc1234", Version: "v1.0.0", Date: "2026-01-02 03:04 UTC", Machine: machine.Machine{CPUs: 2, CPU: "X", HAProxy: "HAProxy 3"}}}
	b, err := Render(page, d)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"|---|---|\n| commit | `abc1234` (`v1.0.0`) |\n| written | 2026-01-02 03:04 UTC |\n| CPU | 2 CPUs (`nproc`), X |\n",
		"| HAProxy | HAProxy 3 |\n",
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("page lacks %q:\n%s", want, b)
		}
	}
	d.Version = ""
	if b, _ := Render(page, d); !strings.Contains(string(b), "| commit | `abc1234` |\n") {
		t.Errorf("no version: %s", b)
	}
}

func TestTable(t *testing.T) {
	got := Table([]Column{{Name: "name"}, {Name: "n", Right: true}}, [][]string{{Cell("a |\n b"), "1"}})
	want := "| name | n |\n|---|--:|\n| a \\| b | 1 |\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
