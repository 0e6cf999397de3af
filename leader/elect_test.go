package leader

import (
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/eipd/eipd/eip"
)

// unitTiming is the daemon's default timing (eipd run -h), for the unit
// tests of the pure decisions: trust window 9s, stale after 11s, a
// renewal takes at most 6.25s to show, an idle troubled coordinator is
// stale after 4s.
var unitTiming = Timing{
	RenewInterval: 3 * time.Second,
	LeaseDuration: 10 * time.Second,
	MaxClockSkew:  time.Second,
	AddressPoll:   5 * time.Second,
	MemberPoll:    time.Minute,
	ProbeInterval: time.Second,
	ProbeFall:     3,
	RankStep:      200 * time.Millisecond,
}

var (
	// unitNow is a monotonic reading, unitWall this member's wall clock
	// at that moment: the unit tests never mix them.
	unitNow  = time.Date(2026, 3, 1, 0, 10, 0, 0, time.UTC)
	unitWall = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// electBase is a member that follows i-a, whose lease it saw renewed a
// second ago, with a read a second old and the member list known.
func electBase() ElectObservation {
	return ElectObservation{
		Now: unitNow, Wall: unitWall, Self: "i-b",
		Lease: LeaseSeen{Lease: eip.GroupLease{Coordinator: "i-a", Epoch: 3, Renewed: unitWall.Add(-time.Second)},
			SeenAt: unitNow.Add(-time.Second)},
		ReadAt: unitNow.Add(-time.Second), ReadTriedAt: unitNow.Add(-time.Second),
		MembersKnown: true,
	}
}

// staleBase is electBase with a lease whose stamp has not changed for
// longer than lease + skew, an eligible member past its rank delay, and a
// read made after it.
func staleBase() ElectObservation {
	o := electBase()
	o.Lease.SeenAt = unitNow.Add(-unitTiming.staleAfter() - time.Millisecond)
	o.RankSince, o.Rank = unitNow.Add(-time.Second), 500*time.Millisecond
	o.ReadAt, o.ReadTriedAt = unitNow.Add(-100*time.Millisecond), unitNow.Add(-100*time.Millisecond)
	return o
}

func TestElect(t *testing.T) {
	ms := time.Millisecond
	cases := []struct {
		name     string
		o        func(o *ElectObservation)
		base     func() ElectObservation
		want     Election
		eligible bool
		why      string // a part of Why
	}{
		{name: "the coordinator confirms: wait, however stale the lease", base: staleBase,
			o:    func(o *ElectObservation) { o.CoordinatorUntil = unitNow.Add(ms); o.ReadAt = time.Time{} },
			want: ElectWait, why: "confirms"},
		{name: "a confirmation that ends now confirms nothing", base: staleBase,
			o:    func(o *ElectObservation) { o.CoordinatorUntil = unitNow },
			want: ElectClaim, eligible: true},
		{name: "a claim failed after the last read: read before claiming again", base: staleBase,
			o:    func(o *ElectObservation) { o.ClaimFailedAt = unitNow.Add(-50 * ms) },
			want: ElectRead, eligible: true, why: "reading again"},
		{name: "a read started after the failed claim: claim again", base: staleBase,
			o:    func(o *ElectObservation) { o.ClaimFailedAt = unitNow.Add(-200 * ms) },
			want: ElectClaim, eligible: true},
		{name: "the lease names this member, its claim failed after the last read: read", base: electBase,
			o: func(o *ElectObservation) {
				o.Lease.Lease.Coordinator, o.ClaimFailedAt = "i-b", unitNow.Add(-50*ms)
			},
			want: ElectRead, eligible: true, why: "failed claim"},
		{name: "first read", base: electBase,
			o:    func(o *ElectObservation) { o.ReadAt, o.ReadTriedAt = time.Time{}, time.Time{} },
			want: ElectRead, why: "first read"},
		{name: "first read failed a moment ago: wait a renew interval", base: electBase,
			o:    func(o *ElectObservation) { o.ReadAt, o.ReadTriedAt, o.ReadError = time.Time{}, unitNow.Add(-ms), true },
			want: ElectWait, why: "first read"},
		{name: "first read failed a renew interval ago: read again", base: electBase,
			o: func(o *ElectObservation) {
				o.ReadAt, o.ReadTriedAt, o.ReadError = time.Time{}, unitNow.Add(-unitTiming.RenewInterval), true
			},
			want: ElectRead, why: "first read"},
		{name: "members unknown: wait, even with a stale lease", base: staleBase,
			o:    func(o *ElectObservation) { o.MembersKnown = false },
			want: ElectWait, why: "member list"},
		{name: "fresh lease, read lately: wait", base: electBase,
			want: ElectWait, why: "watching its lease"},
		{name: "fresh lease, read a renew interval ago: read", base: electBase,
			o: func(o *ElectObservation) {
				o.ReadAt, o.ReadTriedAt = unitNow.Add(-3*time.Second), unitNow.Add(-3*time.Second)
			},
			want: ElectRead, why: "watching its lease"},
		{name: "fresh lease, a read tried lately failed: wait", base: electBase,
			o: func(o *ElectObservation) {
				o.ReadAt, o.ReadTriedAt, o.ReadError = unitNow.Add(-10*time.Second), unitNow.Add(-ms), true
			},
			want: ElectWait},
		{name: "no coordinator recorded: stale, rank delay not started", base: electBase,
			o:    func(o *ElectObservation) { o.Lease = LeaseSeen{} },
			want: ElectWait, eligible: true, why: "no coordinator recorded"},
		{name: "stamp unchanged for lease + skew, even one in the future", base: staleBase,
			o:    func(o *ElectObservation) { o.Lease.Lease.Renewed = unitWall.Add(time.Hour) },
			want: ElectClaim, eligible: true, why: "not renewed"},
		{name: "stamp unchanged for exactly lease + skew: not stale", base: staleBase,
			o:    func(o *ElectObservation) { o.Lease.SeenAt = unitNow.Add(-unitTiming.staleAfter()) },
			want: ElectWait, why: "watching"},
		{name: "wall-old stamp unchanged longer than a renewal takes: stale", base: staleBase,
			o: func(o *ElectObservation) {
				o.Lease.SeenAt = unitNow.Add(-unitTiming.renewalGap() - ms)
				o.Lease.Lease.Renewed = unitWall.Add(-unitTiming.staleAfter() - ms)
			},
			want: ElectClaim, eligible: true, why: "expired"},
		{name: "wall-old stamp seen changing lately: not stale", base: staleBase,
			o: func(o *ElectObservation) {
				o.Lease.SeenAt = unitNow.Add(-unitTiming.renewalGap())
				o.Lease.Lease.Renewed = unitWall.Add(-time.Hour)
			},
			want: ElectWait, why: "watching"},
		{name: "fresh lease naming this member: claim at once", base: electBase,
			o:    func(o *ElectObservation) { o.Lease.Lease.Coordinator = "i-b" },
			want: ElectClaim, eligible: true, why: "names this member"},
		{name: "fresh lease naming this member, troubled: watch", base: electBase,
			o:    func(o *ElectObservation) { o.Lease.Lease.Coordinator, o.Troubled = "i-b", true },
			want: ElectWait, why: "watching"},
		{name: "fresh lease naming this member, unfit: watch", base: electBase,
			o:    func(o *ElectObservation) { o.Lease.Lease.Coordinator, o.Unfit = "i-b", "own health is down" },
			want: ElectWait, why: "watching"},
		{name: "stale lease naming this member: rank delay like anyone", base: staleBase,
			o:    func(o *ElectObservation) { o.Lease.Lease.Coordinator, o.RankSince = "i-b", time.Time{} },
			want: ElectWait, eligible: true, why: "rank delay"},
		{name: "idle coordinator past lease + skew: stale", base: staleBase,
			o: func(o *ElectObservation) {
				o.Lease.SeenAt = unitNow.Add(-time.Second)
				o.IdleSince = unitNow.Add(-unitTiming.staleAfter() - ms)
			},
			want: ElectClaim, eligible: true, why: "has not acted"},
		{name: "idle coordinator within lease + skew: not stale", base: staleBase,
			o: func(o *ElectObservation) {
				o.Lease.SeenAt = unitNow.Add(-time.Second)
				o.IdleSince = unitNow.Add(-unitTiming.staleAfter())
			},
			want: ElectWait, why: "watching"},
		{name: "idle troubled coordinator past a renew and a probe interval: stale", base: staleBase,
			o: func(o *ElectObservation) {
				o.Lease.SeenAt = unitNow.Add(-time.Second)
				o.IdleSince, o.IdleTroubled = unitNow.Add(-unitTiming.RenewInterval-unitTiming.ProbeInterval-ms), true
			},
			want: ElectClaim, eligible: true, why: "has not acted for 4s"},
		{name: "idle troubled coordinator within a renew and a probe interval: not stale", base: staleBase,
			o: func(o *ElectObservation) {
				o.Lease.SeenAt = unitNow.Add(-time.Second)
				o.IdleSince, o.IdleTroubled = unitNow.Add(-unitTiming.RenewInterval-unitTiming.ProbeInterval), true
			},
			want: ElectWait, why: "watching"},
		{name: "stale but unfit: watch, read lately", base: staleBase,
			o:    func(o *ElectObservation) { o.Unfit = "draining" },
			want: ElectWait, why: "may not coordinate: draining"},
		{name: "stale but unfit: watch, read due", base: staleBase,
			o: func(o *ElectObservation) {
				o.Unfit = "draining"
				o.ReadAt, o.ReadTriedAt = unitNow.Add(-3*time.Second), unitNow.Add(-3*time.Second)
			},
			want: ElectRead, why: "may not coordinate"},
		{name: "stale, eligible, rank delay not started", base: staleBase,
			o:    func(o *ElectObservation) { o.RankSince = time.Time{} },
			want: ElectWait, eligible: true, why: "waiting for the rank delay"},
		{name: "stale, rank delay under way", base: staleBase,
			o:    func(o *ElectObservation) { o.RankSince = unitNow.Add(-o.Rank + ms) },
			want: ElectWait, eligible: true, why: "waiting for the rank delay"},
		{name: "rank delay over, last read before it ended: read", base: staleBase,
			o:    func(o *ElectObservation) { o.ReadAt = o.RankSince.Add(o.Rank - ms) },
			want: ElectRead, eligible: true, why: "reading again before claiming"},
		{name: "rank delay over, last read started as it ended: read", base: staleBase,
			o:    func(o *ElectObservation) { o.ReadAt = o.RankSince.Add(o.Rank) },
			want: ElectRead, eligible: true, why: "reading again before claiming"},
		{name: "rank delay over, the read after it failed a moment ago: wait", base: staleBase,
			o: func(o *ElectObservation) {
				o.ReadAt, o.ReadTriedAt, o.ReadError = o.RankSince.Add(-ms), unitNow.Add(-ms), true
			},
			want: ElectWait, eligible: true, why: "reading again before claiming"},
		{name: "rank delay over, the read after it failed a renew interval ago: read", base: staleBase,
			o: func(o *ElectObservation) {
				o.RankSince = unitNow.Add(-5 * time.Second)
				o.ReadAt, o.ReadTriedAt, o.ReadError = o.RankSince.Add(-ms), unitNow.Add(-3*time.Second), true
			},
			want: ElectRead, eligible: true},
		{name: "rank delay over, read after it: claim", base: staleBase,
			o:    func(o *ElectObservation) { o.ReadAt = o.RankSince.Add(o.Rank + ms) },
			want: ElectClaim, eligible: true, why: "no coordinator"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.base()
			if tc.o != nil {
				tc.o(&o)
			}
			got := Elect(unitTiming, o)
			if got.Do != tc.want || got.Eligible != tc.eligible || !strings.Contains(got.Why, tc.why) {
				t.Fatalf("Elect = %v eligible %v (%q), want %v eligible %v (why containing %q)",
					got.Do, got.Eligible, got.Why, tc.want, tc.eligible, tc.why)
			}
		})
	}
}

// Whatever it observes, a member claims only when no coordinator confirms,
// AWS state and the member list are known, it is fit, and either the
// lease is stale and its rank delay passed before a read started, or the
// lease names it and it is untroubled. It never reads while a
// coordinator confirms, nor waits past a renew interval without reading
// while it watches.
func TestElectProperties(t *testing.T) {
	reached := map[string]int{}
	observations := rapid.Custom(genElectObservation)
	// A few observations a run, so that claims (about one in nine) show
	// up some thirty times; as many with -short, which makes a fifth of
	// the runs.
	perRun, n := 3, 0
	if testing.Short() {
		perRun = 15
	}
	rapid.Check(t, func(t *rapid.T) {
		for range perRun {
			n++
			checkElect(t, observations.Draw(t, "observation"), reached)
		}
	})
	t.Logf("%d observations: %v", n, reached)
	if n < 300 {
		t.Logf("too few observations (-rapid.checks) to judge what the generator reaches")
		return
	}
	for _, do := range []Election{ElectWait, ElectRead, ElectClaim} {
		if reached[do.String()] == 0 {
			t.Errorf("no observation led to %v (reached: %v): the generator does not cover it", do, reached)
		}
	}
}

// checkElect checks one decision and counts it.
func checkElect(t *rapid.T, o ElectObservation, reached map[string]int) {
	d := Elect(unitTiming, o)
	reached[d.Do.String()]++
	stale, _ := Stale(unitTiming, o.Lease, o.Wall, o.Now)
	idle := !o.IdleSince.IsZero() && o.Now.Sub(o.IdleSince) > unitTiming.idleAfter(o.IdleTroubled)
	confirms := o.Now.Before(o.CoordinatorUntil)
	if confirms && d.Do != ElectWait {
		t.Fatalf("a coordinator confirms until %v, yet %v (%s)", o.CoordinatorUntil, d.Do, d.Why)
	}
	if d.Do != ElectClaim {
		return
	}
	switch {
	case o.ReadAt.IsZero() || !o.MembersKnown:
		t.Fatalf("claims with AWS state or members unknown (%s)", d.Why)
	case o.Unfit != "":
		t.Fatalf("claims while unfit (%s): %s", o.Unfit, d.Why)
	case !stale && !idle:
		if o.Lease.Lease.Coordinator != o.Self || o.Troubled {
			t.Fatalf("claims a lease that is not stale and names %s (troubled %v): %s",
				o.Lease.Lease.Coordinator, o.Troubled, d.Why)
		}
	case o.RankSince.IsZero() || o.Now.Sub(o.RankSince) < o.Rank || !o.ReadAt.After(o.RankSince.Add(o.Rank)):
		t.Fatalf("claims without a read after its rank delay (since %v, rank %v, read %v): %s",
			o.RankSince, o.Rank, o.ReadAt, d.Why)
	}
	if !d.Eligible {
		t.Fatalf("claims but is not eligible: %s", d.Why)
	}
}

func genElectObservation(t *rapid.T) ElectObservation {
	sec := func(label string, lo, hi int) time.Duration {
		return time.Duration(rapid.IntRange(lo, hi).Draw(t, label)) * 100 * time.Millisecond
	}
	ago := func(label string) time.Time {
		if rapid.IntRange(0, 4).Draw(t, label+"Zero") == 0 {
			return time.Time{}
		}
		return unitNow.Add(-sec(label, 0, 200))
	}
	o := ElectObservation{Now: unitNow, Wall: unitWall, Self: "i-b",
		MembersKnown: rapid.IntRange(0, 4).Draw(t, "membersKnown") > 0,
		Troubled:     rapid.IntRange(0, 3).Draw(t, "troubled") == 0,
		IdleTroubled: rapid.Bool().Draw(t, "idleTroubled"),
		ReadError:    rapid.Bool().Draw(t, "readError"),
		Rank:         sec("rank", 0, 30),
	}
	if rapid.IntRange(0, 3).Draw(t, "unfit") == 0 {
		o.Unfit = "own health is down"
	}
	if rapid.IntRange(0, 3).Draw(t, "confirms") == 0 {
		o.CoordinatorUntil = unitNow.Add(sec("until", -50, 50))
	}
	if c := rapid.SampledFrom([]string{"", "i-a", "i-b"}).Draw(t, "coordinator"); c != "" {
		o.Lease = LeaseSeen{Lease: eip.GroupLease{Coordinator: c, Epoch: 3, Renewed: unitWall.Add(-sec("stampAge", -100, 200))},
			SeenAt: unitNow.Add(-sec("seen", 0, 200))}
	}
	o.ReadAt, o.ReadTriedAt, o.IdleSince, o.RankSince = ago("read"), ago("tried"), ago("idle"), ago("rankSince")
	return o
}

func TestRankDelay(t *testing.T) {
	step := unitTiming.RankStep
	best := RankDelay(unitTiming, Rank{Self: "i-a", Priority: 2, BestPriority: 2, Epoch: 7})
	if best < 0 || best >= step {
		t.Fatalf("the best-placed member waits %v, want a fraction of a step (%v)", best, step)
	}
	worst := RankDelay(unitTiming, Rank{Self: "i-a", Priority: -100, BestPriority: 100, Holds: 3, DownRecently: true,
		Troubled: true, Epoch: 7})
	if want := 13 * step; !nearDuration(worst-best, want) {
		t.Fatalf("the worst-placed member waits %v more than the best, want %v (five priority levels at most, 2+3+3 steps)",
			worst-best, want)
	}
	// The fraction of a step differs between members and between epochs,
	// so that equals do not claim in the same order every time.
	a := RankDelay(unitTiming, Rank{Self: "i-a", Epoch: 7})
	b := RankDelay(unitTiming, Rank{Self: "i-b", Epoch: 7})
	a8 := RankDelay(unitTiming, Rank{Self: "i-a", Epoch: 8})
	if a == b || a == a8 {
		t.Fatalf("no jitter between members or epochs: i-a/7 %v, i-b/7 %v, i-a/8 %v", a, b, a8)
	}
}

// Holding an EIP, having been down lately, troubled AWS calls and each
// priority level below the best (up to five) each add their steps to the
// delay; the same member in the same epoch always waits the same.
func TestRankDelayOrder(t *testing.T) {
	step := unitTiming.RankStep
	rapid.Check(t, func(t *rapid.T) {
		r := Rank{
			Self:         rapid.SampledFrom([]string{"i-a", "i-b", "i-0123456789abcdef0"}).Draw(t, "self"),
			BestPriority: rapid.IntRange(-3, 10).Draw(t, "best"),
			Holds:        rapid.IntRange(0, 3).Draw(t, "holds"),
			DownRecently: rapid.Bool().Draw(t, "down"),
			Troubled:     rapid.IntRange(0, 3).Draw(t, "troubled") == 0,
			Epoch:        rapid.Int64Range(0, 1000).Draw(t, "epoch"),
		}
		r.Priority = r.BestPriority - rapid.IntRange(0, 8).Draw(t, "below")
		d := RankDelay(unitTiming, r)
		if d < 0 || d >= 14*step {
			t.Fatalf("delay %v out of [0, 14 steps)", d)
		}
		if again := RankDelay(unitTiming, r); again != d {
			t.Fatalf("delay %v then %v for the same rank", d, again)
		}
		adds := func(what string, worse Rank, steps int) {
			if got := RankDelay(unitTiming, worse) - d; !nearDuration(got, time.Duration(steps)*step) {
				t.Fatalf("%s adds %v, want %d steps", what, got, steps)
			}
		}
		if r.Holds == 0 {
			w := r
			w.Holds = 1 + rapid.IntRange(0, 3).Draw(t, "more")
			adds("holding an EIP", w, 2)
		}
		if !r.DownRecently {
			w := r
			w.DownRecently = true
			adds("down recently", w, 3)
		}
		if !r.Troubled {
			w := r
			w.Troubled = true
			adds("troubled", w, 3)
		}
		w := r
		w.Priority--
		if r.BestPriority-r.Priority < 5 {
			adds("a priority level lower", w, 1)
		} else {
			adds("a priority level lower, beyond five", w, 0)
		}
	})
}

// nearDuration: equal but for the nanosecond RankDelay's float steps may
// round away.
func nearDuration(got, want time.Duration) bool { return got-want <= 1 && want-got <= 1 }
