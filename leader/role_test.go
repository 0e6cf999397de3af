package leader

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/eipd/eipd/health"
)

// roleBase: a trusted coordinator names i-b holder, on evidence a second
// old, and i-b's instance metadata, read 100ms ago, lists the EIP.
func roleBase() RoleObservation {
	return RoleObservation{Now: unitNow, Self: "i-b", Health: health.Up,
		Word: &EIPStatus{AllocationID: "eipalloc-1", Holder: "i-b"}, WordUntil: unitNow.Add(time.Second),
		WordAt: unitNow.Add(-time.Second), OnENI: true, ENIAt: unitNow.Add(-100 * time.Millisecond)}
}

func TestRole(t *testing.T) {
	ago := func(d time.Duration) time.Time { return unitNow.Add(-d) }
	s := time.Second
	cases := []struct {
		name string
		o    func(o *RoleObservation)
		want string
		why  string
	}{
		{name: "named by a trusted coordinator, metadata lists it", want: RoleHolder, why: "confirms"},
		{name: "named, metadata never listed it (it trails)",
			o:    func(o *RoleObservation) { o.OnENI, o.LeftAt = false, time.Time{} },
			want: RoleHolder},
		{name: "named, draining: still holder until it moves",
			o:    func(o *RoleObservation) { o.Draining = ReasonHandoffShutdown },
			want: RoleHolder},
		{name: "named, metadata listed it and says it left since",
			o:    func(o *RoleObservation) { o.OnENI, o.LeftAt, o.ENIAt, o.WordAt = false, ago(s), ago(s), ago(3*s) },
			want: RoleUnverified, why: "metadata says the EIP left"},
		{name: "named, metadata says it left at the moment of the coordinator's evidence",
			o:    func(o *RoleObservation) { o.OnENI, o.LeftAt, o.ENIAt, o.WordAt = false, ago(s), ago(s/2), ago(s) },
			want: RoleUnverified, why: "metadata says the EIP left"},
		{name: "named, metadata saw it leave, then (trailing) lists it again: the older word does not come back",
			o:    func(o *RoleObservation) { o.OnENI, o.LeftAt, o.ENIAt, o.WordAt = true, ago(2*s), ago(s), ago(3*s) },
			want: RoleUnverified, why: "metadata says the EIP left"},
		{name: "named, metadata says it left, but the coordinator's evidence is newer",
			o:    func(o *RoleObservation) { o.OnENI, o.LeftAt, o.ENIAt, o.WordAt = false, ago(s), ago(s/2), ago(s/2) },
			want: RoleHolder},
		{name: "the word ran out, metadata lists it",
			o:    func(o *RoleObservation) { o.WordUntil = unitNow },
			want: RoleUnverified, why: "no coordinator confirms it now"},
		{name: "no word, metadata lists it",
			o:    func(o *RoleObservation) { o.Word = nil },
			want: RoleUnverified, why: "metadata lists the EIP"},
		{name: "moving, metadata lists it",
			o:    func(o *RoleObservation) { o.Word.Moving = true },
			want: RoleUnverified, why: "metadata lists the EIP"},
		{name: "moving, metadata does not list it",
			o:    func(o *RoleObservation) { o.Word.Moving, o.OnENI = true, false },
			want: RoleUnverified, why: "placed the EIP here but does not confirm"},
		{name: "the word ran out, metadata does not list it",
			o:    func(o *RoleObservation) { o.WordUntil, o.OnENI = unitNow.Add(-s), false },
			want: RoleUnverified, why: "placed the EIP here"},
		{name: "named elsewhere, draining",
			o:    func(o *RoleObservation) { o.Word.Holder, o.OnENI, o.Draining = "i-a", false, ReasonHandoffDraining },
			want: RoleDraining, why: ReasonHandoffDraining},
		{name: "no word, draining and down: draining first",
			o: func(o *RoleObservation) {
				o.Word, o.OnENI, o.Draining, o.Health = nil, false, ReasonHandoffShutdown, health.Down
			},
			want: RoleDraining, why: ReasonHandoffShutdown},
		{name: "a manual handoff is not draining: standby",
			o:    func(o *RoleObservation) { o.Word.Holder, o.OnENI, o.Draining = "i-a", false, ReasonHandoffManual },
			want: RoleStandby},
		{name: "named elsewhere, own check down",
			o:    func(o *RoleObservation) { o.Word.Holder, o.OnENI, o.Health = "i-a", false, health.Down },
			want: RoleUnhealthy, why: "own health is down"},
		{name: "no word, own check not known yet",
			o:    func(o *RoleObservation) { o.Word, o.OnENI, o.Health = nil, false, health.Unknown },
			want: RoleUnhealthy, why: "own health is"},
		{name: "named elsewhere, healthy",
			o:    func(o *RoleObservation) { o.Word.Holder, o.OnENI = "i-a", false },
			want: RoleStandby, why: "standby"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := roleBase()
			w := *o.Word
			o.Word = &w
			if tc.o != nil {
				tc.o(&o)
			}
			role, why := Role(o)
			if role != tc.want || !strings.Contains(why, tc.why) {
				t.Fatalf("Role = %s (%q), want %s (%q)", role, why, tc.want, tc.why)
			}
		})
	}
}

// A member reports holder only while a trusted coordinator names it and is
// not moving the EIP (§1, §6), and never once metadata that listed the EIP
// says it left after the coordinator's evidence.
func TestRoleProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		at := func(label string) time.Time {
			if rapid.IntRange(0, 4).Draw(t, label+"Zero") == 0 {
				return time.Time{}
			}
			return unitNow.Add(time.Duration(rapid.IntRange(-30, 30).Draw(t, label)) * 100 * time.Millisecond)
		}
		o := RoleObservation{Now: unitNow, Self: "i-b",
			Health:   rapid.SampledFrom([]health.Status{health.Up, health.Down, health.Unknown}).Draw(t, "health"),
			Draining: rapid.SampledFrom([]string{"", ReasonHandoffShutdown, ReasonHandoffManual}).Draw(t, "draining"),
			OnENI:    rapid.Bool().Draw(t, "onENI"), ENIAt: at("eniAt"), LeftAt: at("leftAt"),
			WordUntil: at("wordUntil"), WordAt: at("wordAt"),
		}
		if rapid.IntRange(0, 3).Draw(t, "word") > 0 {
			o.Word = &EIPStatus{Holder: rapid.SampledFrom([]string{"", "i-a", "i-b"}).Draw(t, "holder"),
				Moving: rapid.IntRange(0, 3).Draw(t, "moving") == 0}
		}
		role, why := Role(o)
		if role != RoleHolder {
			return
		}
		switch {
		case o.Word == nil || !o.Now.Before(o.WordUntil):
			t.Fatalf("holder with no trusted word (%+v until %v): %s", o.Word, o.WordUntil, why)
		case o.Word.Holder != o.Self || o.Word.Moving:
			t.Fatalf("holder though the word names %q, moving %v", o.Word.Holder, o.Word.Moving)
		case !o.LeftAt.IsZero() && !o.OnENI && !o.WordAt.After(o.LeftAt):
			t.Fatalf("holder though metadata saw the EIP go (%v) after the coordinator's evidence (%v)", o.LeftAt, o.WordAt)
		}
	})
}
