package groupview

import (
	"strings"
	"testing"
)

func TestDisplayPlain(t *testing.T) {
	var b strings.Builder
	d := &Display{W: &b, Color: true} // colour is ignored when not live
	v := sampleView()
	d.Event(t0, "started %d daemons", 3)
	d.Show(v, t0)
	mark := b.Len()
	d.Show(v, t0) // nothing changed: nothing printed
	if b.Len() != mark {
		t.Errorf("unchanged view printed %q", b.String()[mark:])
	}
	v2 := sampleView()
	v2.Members[0].Health = "up"
	d.Show(v2, t0)
	d.Close()
	d.Printf("summary\n")
	out := b.String()
	for _, want := range []string{"12:00:00.000 started 3 daemons\n", "12:00:00.000 i-aaa: member (us-east-1a, 127.0.0.11)\n",
		"12:00:00.000 i-aaa: health up\n", "summary\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("plain output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") || strings.Count(out, "i-aaa: health up") != 1 {
		t.Errorf("plain output has escapes or repeats:\n%q", out)
	}
}

func TestDisplayLive(t *testing.T) {
	var b strings.Builder
	d := &Display{W: &b, Live: true}
	d.Event(t0, "killed the proxy of %s", "i-aaa")
	d.Show(sampleView(), t0)
	first := b.String()
	if !strings.HasPrefix(first, ansiHideCursor+ansiClearAll+ansiHome) || !strings.HasSuffix(first, ansiClearBelow) {
		t.Errorf("first frame does not clear the screen and draw from home: %q", first)
	}
	if !strings.Contains(first, "12:00:00.000 killed the proxy of i-aaa"+ansiClearLine+"\n") ||
		!strings.Contains(first, "i-bbb     us-east-1b  127.0.0.12  holder") {
		t.Errorf("frame lacks the event or the table:\n%s", first)
	}
	b.Reset()
	d.Show(sampleView(), t0)
	if again := b.String(); !strings.HasPrefix(again, ansiHome) || strings.Contains(again, ansiClearAll) {
		t.Errorf("second frame should redraw in place: %q", again)
	}
	b.Reset()
	d.Close()
	d.Show(sampleView(), t0)
	d.Event(t0, "after")
	if got := b.String(); got != ansiShowCursor+"\n"+"12:00:00.000 after\n" {
		t.Errorf("after Close: %q", got)
	}
}
