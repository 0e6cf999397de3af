package demo

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/eipd/eipd/groupview"
)

// clock is the time format of plain lines and of the summary.
const clock = "15:04:05.000"

// ANSI sequences of the live view: home, clear to end of line and of
// screen, hide and show the cursor.
const (
	ansiHome       = "\x1b[H"
	ansiClearLine  = "\x1b[K"
	ansiClearBelow = "\x1b[J"
	ansiClearAll   = "\x1b[2J"
	ansiHideCursor = "\x1b[?25l"
	ansiShowCursor = "\x1b[?25h"
)

// recentEvents is how many of the demo's own events the live view keeps.
const recentEvents = 6

// printer writes everything the demo says. Live: the group view redrawn
// in place, with the latest events in its notes. Plain: one timestamped
// line per event and per change of the group, no escape sequences.
type printer struct {
	w     io.Writer
	live  bool
	color bool

	mu     sync.Mutex
	recent []string
	prev   groupview.View
	drawn  bool
}

// event reports something the demo did or saw.
func (p *printer) event(format string, args ...any) {
	line := time.Now().Format(clock) + " " + fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live {
		p.recent = append(p.recent, line)
		if len(p.recent) > recentEvents {
			p.recent = p.recent[len(p.recent)-recentEvents:]
		}
		return
	}
	fmt.Fprintln(p.w, line)
}

// show draws the view (live) or prints what changed since the last one
// (plain).
func (p *printer) show(v groupview.View) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.live {
		for _, c := range groupview.Changes(p.prev, v, now) {
			fmt.Fprintln(p.w, now.Format(clock)+" "+c)
		}
		p.prev = v
		return
	}
	v.Notes = append(v.Notes, p.recent...)
	frame := groupview.Table(v, now, groupview.Style{Color: p.color})
	var b strings.Builder
	if !p.drawn {
		b.WriteString(ansiHideCursor + ansiClearAll)
		p.drawn = true
	}
	b.WriteString(ansiHome)
	for _, line := range strings.SplitAfter(frame, "\n") {
		if line == "" {
			continue
		}
		b.WriteString(strings.TrimSuffix(line, "\n") + ansiClearLine + "\n")
	}
	b.WriteString(ansiClearBelow)
	_, _ = io.WriteString(p.w, b.String())
}

// done ends the live view: the last frame stays, the cursor comes back,
// and what follows is printed below it.
func (p *printer) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.live && p.drawn {
		_, _ = io.WriteString(p.w, ansiShowCursor+"\n")
	}
	p.live = false
}

// printf writes text as is (the summary).
func (p *printer) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, format, args...)
}
