package health

import (
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestHysteresisTable(t *testing.T) {
	tests := []struct {
		name       string
		rise, fall int
		results    string // '+' success, '-' failure
		want       string // status after each result: U up, D down, ? unknown
	}{
		{"starts unknown, rises after rise", 2, 3, "++", "?U"},
		{"falls after fall", 2, 3, "++---", "?UUUD"},
		{"interrupted fall does not fall", 2, 3, "++--+--+", "?UUUUUUU"},
		{"interrupted rise does not rise", 3, 2, "++-++-", "??????"},
		{"unknown to down", 2, 2, "--", "?D"},
		{"down to up", 2, 2, "--++", "?DDU"},
		{"rise 1 fall 1 flips each time", 1, 1, "+-+-", "UDUD"},
		{"zero treated as 1", 0, 0, "-+", "DU"},
		{"long run stays", 1, 1, "+++++", "UUUUU"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := NewHysteresis(tt.rise, tt.fall)
			if h.Status() != Unknown {
				t.Fatalf("initial status %v, want unknown", h.Status())
			}
			prev := Unknown
			var got strings.Builder
			for _, r := range tt.results {
				s, changed := h.Observe(r == '+')
				if changed != (s != prev) {
					t.Errorf("changed=%v but status %v -> %v", changed, prev, s)
				}
				if h.Status() != s {
					t.Errorf("Status() %v != returned %v", h.Status(), s)
				}
				prev = s
				got.WriteByte(map[Status]byte{Unknown: '?', Up: 'U', Down: 'D'}[s])
			}
			if got.String() != tt.want {
				t.Errorf("results %s: statuses %s, want %s", tt.results, got.String(), tt.want)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{Unknown: "unknown", Up: "up", Down: "down"} {
		if s.String() != want {
			t.Errorf("%d.String() = %q, want %q", s, s.String(), want)
		}
	}
}

// Status changes only after exactly rise (fall) consecutive successes
// (failures), and always after them.
func TestHysteresisProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		rise := rapid.IntRange(1, 6).Draw(t, "rise")
		fall := rapid.IntRange(1, 6).Draw(t, "fall")
		results := rapid.SliceOfN(rapid.Bool(), 0, 60).Draw(t, "results")
		h := NewHysteresis(rise, fall)
		prev := Unknown
		okRun, failRun := 0, 0
		for i, ok := range results {
			if ok {
				okRun, failRun = okRun+1, 0
			} else {
				okRun, failRun = 0, failRun+1
			}
			s, changed := h.Observe(ok)
			if changed != (s != prev) {
				t.Fatalf("step %d: changed=%v but %v -> %v", i, changed, prev, s)
			}
			switch {
			case okRun >= rise:
				if s != Up {
					t.Fatalf("step %d: %d successes in a row (rise %d) but %v", i, okRun, rise, s)
				}
			case failRun >= fall:
				if s != Down {
					t.Fatalf("step %d: %d failures in a row (fall %d) but %v", i, failRun, fall, s)
				}
			default:
				if changed {
					t.Fatalf("step %d: changed %v -> %v after only %d ok / %d failed in a row (rise %d, fall %d)",
						i, prev, s, okRun, failRun, rise, fall)
				}
			}
			if changed && s == Up && okRun != rise {
				t.Fatalf("step %d: became up after %d successes, want exactly %d", i, okRun, rise)
			}
			if changed && s == Down && failRun != fall {
				t.Fatalf("step %d: became down after %d failures, want exactly %d", i, failRun, fall)
			}
			prev = s
		}
	})
}

// Settling is true exactly while a failure streak has not reached fall.
func TestHysteresisSettling(t *testing.T) {
	h := NewHysteresis(2, 3)
	for i, step := range []struct {
		ok   bool
		want bool
	}{
		{false, true}, {false, true}, {false, false}, // unknown → down: settled at fall
		{false, false}, {true, false}, {true, false}, // down stays settled; rise at the normal pace
		{false, true}, {true, false}, {false, true}, {false, true}, {false, false},
	} {
		h.Observe(step.ok)
		if got := h.Settling(); got != step.want {
			t.Errorf("step %d (ok=%v, %v): Settling() = %v, want %v", i, step.ok, h.Status(), got, step.want)
		}
	}
}
