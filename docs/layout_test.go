package docs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/eipd/eipd"

// goList runs `go list` with args in the module's root and returns the
// import paths it prints, relative to the module: "." for the root.
func goList(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-f", "{{.ImportPath}}"}, args...)...)
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	var pkgs []string
	for _, p := range strings.Fields(string(out)) {
		switch {
		case p == module:
			pkgs = append(pkgs, ".")
		case strings.HasPrefix(p, module+"/"):
			pkgs = append(pkgs, strings.TrimPrefix(p, module+"/"))
		}
	}
	slices.Sort(pkgs)
	return pkgs
}

// section is the text of file between <!-- name:begin --> and <!-- name:end -->.
func section(t *testing.T, file, name string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	begin, end := strings.Index(doc, "<!-- "+name+":begin -->"), strings.Index(doc, "<!-- "+name+":end -->")
	if begin < 0 || end < begin {
		t.Fatalf("%s has no <!-- %s:begin --> … <!-- %s:end --> section", file, name, name)
	}
	return doc[begin:end]
}

// pkgName is a package as the docs name it: `main.go` is the root,
// `daemon/` the package in daemon.
func pkgName(s string) string {
	if s == "main.go" {
		return "."
	}
	return strings.TrimSuffix(s, "/")
}

// layoutItem is one entry of README's Layout: "- `daemon/`: its job".
var layoutItem = regexp.MustCompile("(?m)^- `([^`]+)`[:,]")

// TestREADMELayoutListsEveryPackage: README's Layout names every package
// of the module once (`go list ./...`), and no package that is gone.
func TestREADMELayoutListsEveryPackage(t *testing.T) {
	var listed []string
	for _, m := range layoutItem.FindAllStringSubmatch(section(t, filepath.Join("..", "README.md"), "layout"), -1) {
		listed = append(listed, pkgName(m[1]))
	}
	if len(listed) == 0 {
		t.Fatal("README's Layout lists no package (want lines like \"- `daemon/`: …\")")
	}
	checkSame(t, "README.md's Layout", listed, goList(t, "./..."))
}

// pieceRow is one row of design.md's pieces: "| 2 | `daemon/` | job |".
var pieceRow = regexp.MustCompile("(?m)^\\| (\\d) \\| `([^`]+)` \\|")

// TestDesignPiecesAreTheBinary: docs/design.md's pieces are exactly the
// module's packages linked into eipd, each on a layer, and every import
// between them goes down the layers or stays on one: nothing imports the
// commands, nothing below the commands imports their support packages.
func TestDesignPiecesAreTheBinary(t *testing.T) {
	layer := map[string]int{}
	var listed []string
	for _, m := range pieceRow.FindAllStringSubmatch(section(t, "design.md", "pieces"), -1) {
		n, _ := strconv.Atoi(m[1])
		p := pkgName(m[2])
		layer[p] = n
		listed = append(listed, p)
	}
	if len(listed) == 0 {
		t.Fatal("design.md's pieces list no package (want rows like \"| 2 | `daemon/` | … |\")")
	}
	checkSame(t, "docs/design.md's pieces", listed, goList(t, "-deps", "."))

	cmd := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, "-deps", ".")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	rel := func(p string) (string, bool) {
		if p == module {
			return ".", true
		}
		r, ok := strings.CutPrefix(p, module+"/")
		return r, ok
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		from, ok := rel(f[0])
		if !ok {
			continue
		}
		for _, imp := range f[1:] {
			to, ok := rel(imp)
			if !ok || layer[from] == 0 || layer[to] == 0 {
				continue // outside the module, or reported above
			}
			if layer[to] < layer[from] {
				t.Errorf("%s (layer %d) imports %s (layer %d): imports go down the layers of docs/design.md's pieces", from, layer[from], to, layer[to])
			}
		}
	}
}

// checkSame reports the packages listed in what but not in want, and the
// other way round.
func checkSame(t *testing.T, what string, listed, want []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, p := range listed {
		if seen[p] {
			t.Errorf("%s lists %s twice", what, p)
		}
		seen[p] = true
		if !slices.Contains(want, p) {
			t.Errorf("%s lists %s, which is not a package of it (go list)", what, p)
		}
	}
	for _, p := range want {
		if !seen[p] {
			t.Errorf("%s does not list package %s: add it with its one job", what, p)
		}
	}
}
