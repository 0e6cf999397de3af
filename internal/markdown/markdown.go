// Package markdown reads what the repository's tests check in its Markdown:
// the anchors GitHub gives headings, and the links a document makes.
package markdown

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// Anchor is the id GitHub gives a heading: lower case, spaces to dashes,
// every character but letters, digits, "-" and "_" dropped.
func Anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

var heading = regexp.MustCompile(`^#{1,6}\s+(.+?)\s*#*\s*$`)

// Anchors lists the anchors of every heading of doc outside fenced code
// blocks; a repeated heading gets -1, -2, … as on GitHub.
func Anchors(doc string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, line := range lines(doc) {
		m := heading.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		a := Anchor(m[1])
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// Link is one [text](target) of a document.
type Link struct {
	Line   int
	Target string // as written, without the #fragment
	Anchor string // the fragment, without '#'
}

var link = regexp.MustCompile(`\]\(([^)\s]*)\)`)

// Links lists the inline links of doc outside fenced code blocks and code
// spans.
func Links(doc string) []Link {
	var out []Link
	inFence := false
	for i, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if inFence {
			continue
		}
		for _, m := range link.FindAllStringSubmatch(stripCode(line), -1) {
			target, anchor, _ := strings.Cut(m[1], "#")
			out = append(out, Link{Line: i + 1, Target: target, Anchor: anchor})
		}
	}
	return out
}

// lines are doc's lines outside fenced code blocks.
func lines(doc string) []string {
	var out []string
	inFence := false
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
			continue
		}
		if !inFence {
			out = append(out, line)
		}
	}
	return out
}

// stripCode blanks `code spans`, where brackets are not links.
func stripCode(line string) string {
	parts := strings.Split(line, "`")
	for i := 1; i < len(parts); i += 2 {
		parts[i] = strings.Repeat(" ", len(parts[i]))
	}
	return strings.Join(parts, "`")
}
