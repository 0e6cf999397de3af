// Package docs_test keeps the documentation true: README.md and docs/ link
// only to what the repository holds, and the package lists of README's
// Layout and of docs/design.md's pieces are the packages there are.
package docs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eipd/eipd/internal/markdown"
)

// TestDocsStandAlone: README.md, the other Markdown files of the root
// (CHANGELOG, CONTRIBUTING, SECURITY) and docs/ are all a reader of this
// repository has. They may not send the reader to files that are not in it
// (the project's working notes), and every relative link must lead to a file
// of the repository and, with a #fragment, to a heading of it.
func TestDocsStandAlone(t *testing.T) {
	files, err := filepath.Glob("*.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"README.md", "CHANGELOG.md", "CONTRIBUTING.md", "SECURITY.md"} {
		files = append(files, filepath.Join("..", f))
	}
	if len(files) < 5 {
		t.Fatalf("found only %v", files)
	}
	anchorsOf := map[string]map[string]bool{}
	anchors := func(path string) map[string]bool {
		if a, ok := anchorsOf[path]; ok {
			return a
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		anchorsOf[path] = markdown.Anchors(string(b))
		return anchorsOf[path]
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc := string(b)
		for _, bad := range []string{"DESIGN.md", "AWS-PROTOCOL.md", "STYLE.md", "../shared", "shared/"} {
			if strings.Contains(doc, bad) {
				t.Errorf("%s mentions %s, which is not part of the repository", f, bad)
			}
		}
		for _, l := range markdown.Links(doc) {
			if strings.Contains(l.Target, "://") || strings.HasPrefix(l.Target, "mailto:") {
				continue
			}
			target := f
			if l.Target != "" {
				target = filepath.Join(filepath.Dir(f), l.Target)
				if _, err := os.Stat(target); err != nil {
					t.Errorf("%s:%d: link to %s: %v", f, l.Line, l.Target, err)
					continue
				}
			}
			if l.Anchor != "" && strings.HasSuffix(target, ".md") && !anchors(target)[l.Anchor] {
				t.Errorf("%s:%d: link to %s#%s: no such heading", f, l.Line, l.Target, l.Anchor)
			}
		}
	}
}
