package groupview

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Clock is the time format of plain lines.
const Clock = "15:04:05.000"

// ANSI sequences of the live display: home, clear to the end of the line
// and of the screen, clear all, hide and show the cursor.
const (
	ansiHome       = "\x1b[H"
	ansiClearLine  = "\x1b[K"
	ansiClearBelow = "\x1b[J"
	ansiClearAll   = "\x1b[2J"
	ansiHideCursor = "\x1b[?25l"
	ansiShowCursor = "\x1b[?25h"
)

// recentEvents is how many events a live display keeps in its notes.
const recentEvents = 6

// Display shows a group over time on W. Live (a terminal): each view is
// redrawn in place, with the latest events under the title. Plain (a pipe,
// a file, NO_COLOR): one timestamped line per event and per change between
// views, never an escape sequence. Safe for concurrent use.
type Display struct {
	W     io.Writer
	Live  bool
	Color bool // with Live only

	mu     sync.Mutex
	recent []string
	prev   View
	drawn  bool
	closed bool
}

// Event reports something that happened (what the caller did or saw).
func (d *Display) Event(now time.Time, format string, args ...any) {
	line := now.Format(Clock) + " " + fmt.Sprintf(format, args...)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Live && !d.closed {
		d.recent = append(d.recent, line)
		if len(d.recent) > recentEvents {
			d.recent = d.recent[len(d.recent)-recentEvents:]
		}
		return
	}
	fmt.Fprintln(d.W, line)
}

// Show draws v (live) or prints what changed since the last view (plain).
func (d *Display) Show(v View, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if !d.Live {
		for _, c := range Changes(d.prev, v, now) {
			fmt.Fprintln(d.W, now.Format(Clock)+" "+c)
		}
		d.prev = v
		return
	}
	v.Notes = append(append([]string(nil), v.Notes...), d.recent...)
	var b strings.Builder
	if !d.drawn {
		b.WriteString(ansiHideCursor + ansiClearAll)
		d.drawn = true
	}
	b.WriteString(ansiHome)
	for _, line := range strings.SplitAfter(Table(v, now, Style{Color: d.Color}), "\n") {
		if line != "" {
			b.WriteString(strings.TrimSuffix(line, "\n") + ansiClearLine + "\n")
		}
	}
	b.WriteString(ansiClearBelow)
	_, _ = io.WriteString(d.W, b.String())
}

// Close ends the display: a live one leaves its last frame and brings the
// cursor back. Later views are dropped; later events and Printf are
// printed as plain text below.
func (d *Display) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.Live && d.drawn && !d.closed {
		_, _ = io.WriteString(d.W, ansiShowCursor+"\n")
	}
	d.closed = true
}

// Printf writes text as is, between frames.
func (d *Display) Printf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.W, format, args...)
}
