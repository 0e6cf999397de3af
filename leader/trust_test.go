package leader

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/eipd/eipd/eip"
)

func TestTrust(t *testing.T) {
	s := unitNow
	window := 9 * time.Second // max(renew 3s, lease 10s − skew 1s)
	cases := []struct {
		name     string
		timing   Timing
		evidence []time.Time
		want     time.Time
	}{
		{name: "no evidence vouches for nothing", timing: unitTiming},
		{name: "zero evidence vouches for nothing", timing: unitTiming, evidence: []time.Time{{}}},
		{name: "one piece: a trust window from it", timing: unitTiming, evidence: []time.Time{s}, want: s.Add(window)},
		{name: "the oldest piece bounds the whole", timing: unitTiming,
			evidence: []time.Time{s, s.Add(-2 * time.Second), s.Add(time.Second)}, want: s.Add(window - 2*time.Second)},
		{name: "one zero piece among others vouches for nothing", timing: unitTiming,
			evidence: []time.Time{s, {}, s.Add(time.Second)}},
		{name: "the window is lease − skew (configuration keeps it ≥ a renew interval)", timing: Timing{RenewInterval: 3 * time.Second,
			LeaseDuration: 10 * time.Second, MaxClockSkew: time.Second}, evidence: []time.Time{s}, want: s.Add(9 * time.Second)},
		{name: "no skew: the whole lease", timing: Timing{RenewInterval: time.Second, LeaseDuration: 4 * time.Second},
			evidence: []time.Time{s}, want: s.Add(4 * time.Second)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Trust(tc.timing, tc.evidence...); !got.Equal(tc.want) {
				t.Fatalf("Trust(%v) = %v, want %v", tc.evidence, got, tc.want)
			}
		})
	}
}

// genTiming draws a timing eipd run accepts (config.go Validate): every
// duration positive, the lease at least twice the renew interval, the
// address poll shorter than lease − skew. wide allows a skew above
// lease − renew interval, which Validate accepts too.
func genTiming(t *rapid.T, wide bool) Timing {
	ms := func(label string, lo, hi int) time.Duration {
		return time.Duration(rapid.IntRange(lo, hi).Draw(t, label)) * time.Millisecond
	}
	tm := Timing{RenewInterval: ms("renew", 100, 10000), ProbeInterval: ms("probe", 100, 5000), RankStep: 200 * time.Millisecond}
	tm.LeaseDuration = 2*tm.RenewInterval + ms("leaseExtra", 0, 20000)
	maxSkew := tm.LeaseDuration - tm.RenewInterval
	if wide {
		maxSkew = tm.LeaseDuration - 2*time.Millisecond // room for a positive address poll
	}
	tm.MaxClockSkew = ms("skew", 0, int(maxSkew/time.Millisecond))
	tm.AddressPoll = ms("addressPoll", 1, int((tm.LeaseDuration-tm.MaxClockSkew)/time.Millisecond)-1)
	return tm
}

// Trust(start of a renewal) ends no later than lease − skew after that
// start, and the oldest of several pieces of evidence bounds the whole
// (§6), for timings whose skew leaves a renew interval of the lease.
func TestTrustProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tm := genTiming(t, false)
		start := unitNow.Add(time.Duration(rapid.IntRange(0, 1e6).Draw(t, "startMs")) * time.Millisecond)
		until := Trust(tm, start)
		if bound := start.Add(tm.LeaseDuration - tm.MaxClockSkew); until.After(bound) {
			t.Fatalf("%+v: Trust(start) = start + %v, after start + lease − skew (%v)", tm, until.Sub(start),
				tm.LeaseDuration-tm.MaxClockSkew)
		}
		if !until.After(start) {
			t.Fatalf("%+v: Trust(start) = start + %v vouches for nothing", tm, until.Sub(start))
		}
		later := start.Add(time.Duration(rapid.IntRange(0, 1e5).Draw(t, "laterMs")) * time.Millisecond)
		if got := Trust(tm, later, start); !got.Equal(until) {
			t.Fatalf("Trust(later, start) = %v, want Trust(start) = %v", got, until)
		}
	})
}

func TestLeaseSeen(t *testing.T) {
	w := unitWall
	lease := func(co string, epoch int64, renewed time.Time) eip.GroupLease {
		return eip.GroupLease{Coordinator: co, Epoch: epoch, Renewed: renewed}
	}
	type sight struct {
		l  eip.GroupLease
		at time.Duration // after unitNow
	}
	cases := []struct {
		name      string
		sights    []sight
		want      eip.GroupLease
		wantSeen  time.Duration
		wantEmpty bool
	}{
		{name: "an empty lease is not taken in", sights: []sight{{lease("", 0, w), 0}}, wantEmpty: true},
		{name: "the first copy", sights: []sight{{lease("i-a", 3, w), time.Second}}, want: lease("i-a", 3, w), wantSeen: time.Second},
		{name: "the same copy again: unchanged since first seen",
			sights: []sight{{lease("i-a", 3, w), 0}, {lease("i-a", 3, w), 5 * time.Second}}, want: lease("i-a", 3, w)},
		{name: "a renewal restarts the clock",
			sights: []sight{{lease("i-a", 3, w), 0}, {lease("i-a", 3, w.Add(3*time.Second)), 4 * time.Second}},
			want:   lease("i-a", 3, w.Add(3*time.Second)), wantSeen: 4 * time.Second},
		{name: "a stamp older by the wall clock, not seen lately, is a renewal (clock set back)",
			sights: []sight{{lease("i-a", 3, w), 0}, {lease("i-a", 3, w.Add(-time.Hour)), 4 * time.Second}},
			want:   lease("i-a", 3, w.Add(-time.Hour)), wantSeen: 4 * time.Second},
		{name: "a lagging read showing a stamp seen lately says nothing new",
			sights: []sight{{lease("i-a", 3, w), 0}, {lease("i-a", 3, w.Add(3*time.Second)), 3 * time.Second},
				{lease("i-a", 3, w), 5 * time.Second}},
			want: lease("i-a", 3, w.Add(3*time.Second)), wantSeen: 3 * time.Second},
		{name: "only the last four stamps count as seen lately",
			sights: []sight{{lease("i-a", 3, w), 0}, {lease("i-a", 3, w.Add(1*time.Second)), 1 * time.Second},
				{lease("i-a", 3, w.Add(2*time.Second)), 2 * time.Second}, {lease("i-a", 3, w.Add(3*time.Second)), 3 * time.Second},
				{lease("i-a", 3, w.Add(4*time.Second)), 4 * time.Second}, {lease("i-a", 3, w), 5 * time.Second}},
			want: lease("i-a", 3, w), wantSeen: 5 * time.Second},
		{name: "a higher epoch replaces it",
			sights: []sight{{lease("i-a", 3, w), 0}, {lease("i-b", 4, w.Add(-time.Hour)), 2 * time.Second}},
			want:   lease("i-b", 4, w.Add(-time.Hour)), wantSeen: 2 * time.Second},
		{name: "a lower epoch is ignored",
			sights: []sight{{lease("i-b", 4, w), 0}, {lease("i-a", 3, w.Add(time.Hour)), 2 * time.Second}},
			want:   lease("i-b", 4, w)},
		{name: "another coordinator at the same epoch, renewed later, replaces it",
			sights: []sight{{lease("i-a", 3, w), 0}, {lease("i-b", 3, w.Add(time.Second)), 2 * time.Second}},
			want:   lease("i-b", 3, w.Add(time.Second)), wantSeen: 2 * time.Second},
		{name: "another coordinator at the same epoch, renewed earlier, is ignored",
			sights: []sight{{lease("i-a", 3, w), 0}, {lease("i-b", 3, w.Add(-time.Second)), 2 * time.Second}},
			want:   lease("i-a", 3, w)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var s LeaseSeen
			for _, x := range tc.sights {
				s.see(x.l, unitNow.Add(x.at))
			}
			if tc.wantEmpty {
				if !s.SeenAt.IsZero() || s.Lease.Coordinator != "" {
					t.Fatalf("took in %+v at %v", s.Lease, s.SeenAt)
				}
				return
			}
			if s.Lease.Coordinator != tc.want.Coordinator || s.Lease.Epoch != tc.want.Epoch || !s.Lease.Renewed.Equal(tc.want.Renewed) {
				t.Fatalf("lease %+v, want %+v", s.Lease, tc.want)
			}
			if want := unitNow.Add(tc.wantSeen); !s.SeenAt.Equal(want) {
				t.Fatalf("seen at +%v, want +%v", s.SeenAt.Sub(unitNow), tc.wantSeen)
			}
		})
	}
}

func TestStale(t *testing.T) {
	tm := unitTiming // stale after 11s; a renewal shows within 6.25s
	ms := time.Millisecond
	seen := func(renewed time.Time, ago time.Duration) LeaseSeen {
		return LeaseSeen{Lease: eip.GroupLease{Coordinator: "i-a", Epoch: 2, Renewed: renewed}, SeenAt: unitNow.Add(-ago)}
	}
	cases := []struct {
		name  string
		s     LeaseSeen
		stale bool
		why   string
	}{
		{name: "no lease", s: LeaseSeen{}, stale: true, why: "no coordinator recorded"},
		{name: "tags that do not parse", s: LeaseSeen{Lease: eip.GroupLease{Coordinator: "i-a", Renewed: unitWall,
			Invalid: []string{eip.TagEpoch}}, SeenAt: unitNow}, stale: true, why: "do not parse"},
		{name: "no renewal recorded", s: seen(time.Time{}, 0), stale: true, why: "no renewal recorded"},
		{name: "fresh", s: seen(unitWall.Add(-time.Second), time.Second)},
		{name: "unchanged for lease + skew exactly", s: seen(unitWall, tm.staleAfter())},
		{name: "unchanged for longer than lease + skew", s: seen(unitWall, tm.staleAfter()+ms), stale: true,
			why: "not renewed for 11s"},
		{name: "a stamp in the future does not extend it", s: seen(unitWall.Add(time.Hour), tm.staleAfter()+ms), stale: true,
			why: "not renewed"},
		{name: "wall-old, unchanged longer than a renewal takes", s: seen(unitWall.Add(-tm.staleAfter()-ms), tm.renewalGap()+ms),
			stale: true, why: "expired"},
		{name: "wall-old exactly lease + skew", s: seen(unitWall.Add(-tm.staleAfter()), tm.renewalGap()+ms)},
		{name: "wall-old but seen changing within a renewal", s: seen(unitWall.Add(-time.Hour), tm.renewalGap())},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stale, why := Stale(tm, tc.s, unitWall, unitNow)
			if stale != tc.stale || !strings.Contains(why, tc.why) {
				t.Fatalf("Stale = %v (%q), want %v (%q)", stale, why, tc.stale, tc.why)
			}
		})
	}
}

// The clock rules of Stale (§7), for any accepted timing:
//   - a renewal written at true time w, by a clock within the skew of
//     this member's, and seen at or after w, is not stale until lease
//     after w (true time) — so no member judges stale a lease that still
//     protects its coordinator (Trust ends before);
//   - whatever the wall clocks say, a stamp seen changing within a
//     renewal's span is not stale;
//   - whatever the stamp says (one in the future), a stamp unchanged for
//     more than lease + skew by the monotonic clock is.
func TestStaleProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		tm := genTiming(t, true)
		ms := func(label string, lo, hi time.Duration) time.Duration {
			return time.Duration(rapid.Int64Range(int64(lo/time.Millisecond), int64(hi/time.Millisecond)).Draw(t, label)) * time.Millisecond
		}
		// True time is unitNow-based; the member's monotonic clock reads
		// true time, its wall clock true time + own, the coordinator's
		// true time + theirs.
		own := ms("own", -tm.MaxClockSkew/2, tm.MaxClockSkew/2)
		theirs := own + ms("diff", -tm.MaxClockSkew, tm.MaxClockSkew)
		w := unitNow
		seenAt := w.Add(ms("seenAfter", 0, tm.LeaseDuration))
		now := seenAt.Add(ms("nowAfter", 0, w.Add(tm.LeaseDuration).Sub(seenAt)))
		s := LeaseSeen{Lease: eip.GroupLease{Coordinator: "i-a", Epoch: 1, Renewed: w.Add(theirs)}, SeenAt: seenAt}
		if stale, why := Stale(tm, s, now.Add(own), now); stale {
			t.Fatalf("%+v: a stamp written at 0 by a clock %v off, seen at %v, stale at %v by a clock %v off: %s",
				tm, theirs, seenAt.Sub(w), now.Sub(w), own, why)
		}

		anyWall := unitWall.Add(ms("wallOff", -time.Hour, time.Hour))
		anyStamp := unitWall.Add(ms("stampOff", -time.Hour, time.Hour))
		s = LeaseSeen{Lease: eip.GroupLease{Coordinator: "i-a", Epoch: 1, Renewed: anyStamp}}
		s.SeenAt = unitNow.Add(-ms("unchanged", 0, min(tm.renewalGap(), tm.staleAfter())))
		if stale, why := Stale(tm, s, anyWall, unitNow); stale {
			t.Fatalf("%+v: stamp seen changing %v ago is stale: %s", tm, unitNow.Sub(s.SeenAt), why)
		}
		s.SeenAt = unitNow.Add(-tm.staleAfter() - ms("beyond", time.Millisecond, time.Hour))
		if stale, _ := Stale(tm, s, anyWall, unitNow); !stale {
			t.Fatalf("%+v: stamp %v unchanged for %v is not stale", tm, anyStamp.Sub(anyWall), unitNow.Sub(s.SeenAt))
		}
	})
}
