package demo

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/groupview"
)

// plannedPhase is the phase that must lose no request.
const plannedPhase = "planned-handoff"

// invariant is one checked property and its outcome.
type invariant struct {
	name   string
	ok     bool
	detail string
}

// summary prints what happened, from the emulator's history and the
// client's record, checks the invariants and returns an error naming
// those that failed (or the timeline's own problems). partial: the demo
// was interrupted; only print.
func (d *demo) summary(partial bool) error {
	now := time.Now()
	starts := d.phaseStarts()
	reqs := d.client.requests()
	runs := failureRuns(reqs)
	events := d.sim.Events()
	d.obs.mu.Lock()
	leases := append([]leaseRecord(nil), d.obs.leases...)
	termDrops := append([]string(nil), d.obs.termDrops...)
	splits := append([]string(nil), d.obs.splits...)
	samples, maxTerm := d.obs.samples, d.obs.maxTerm
	ready := append([]readiness(nil), d.obs.ready...)
	d.obs.mu.Unlock()
	mv := moves(events, leases, d.alloc)

	p := d.out
	p.printf("\n== summary ==\n")
	if len(starts) > 0 {
		end := now
		if len(starts) > len(phases) {
			end = starts[len(phases)]
		}
		p.printf("timeline %s (asked for %s), %d instances, EIP %s (%s)\n\n", end.Sub(starts[0]).Round(100*time.Millisecond),
			d.o.Duration, d.o.Instances, d.eip.PublicIP, d.alloc)
	}

	// Requests per phase.
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "phase\tlength\trequests\tfailed\tlongest failure run")
	failedIn := map[string]int{}
	for i := range phases {
		if i >= len(starts) {
			break
		}
		end := now
		if i+1 < len(starts) {
			end = starts[i+1]
		}
		total, failed := 0, 0
		for _, r := range reqs {
			if r.phase == i {
				total++
				if !r.ok {
					failed++
				}
			}
		}
		failedIn[phases[i].name] = failed
		longest := "-"
		var lr time.Duration
		for _, run := range runs {
			if run.phase == i && run.length() > lr {
				lr = run.length()
				longest = fmt.Sprintf("%.2fs (%d requests, %s)", lr.Seconds(), run.count, run.problem)
			}
		}
		fmt.Fprintf(tw, "%s\t%.1fs\t%d\t%d\t%s\n", phases[i].name, end.Sub(starts[i]).Seconds(), total, failed, longest)
	}
	_ = tw.Flush()
	p.printf("%s\n", b.String())

	// Moves.
	b.Reset()
	tw = tabwriter.NewWriter(&b, 2, 4, 2, ' ', 0)
	p.printf("moves (from → to: the emulator's association history; reason, term and decision time: the eipd:reason,\neipd:term and eipd:decided tags written with the move; fault → associated: from the phase's fault)\n")
	fmt.Fprintln(tw, "time\tphase\treason\tfrom → to\tterm\tdecided → associated\tfault → associated")
	firstIn := map[int]bool{}
	for _, m := range mv {
		term := "-"
		if m.Term != "" {
			term = m.Term
		}
		dur := "?"
		if m.Duration >= 0 {
			dur = groupview.FormatDuration(m.Duration)
		}
		// The first move of a phase that injects a fault answers it.
		sinceFault := "-"
		if i := phaseIndexAt(starts, m.Time); i >= 0 && i < len(phases) && phases[i].fault && !firstIn[i] {
			firstIn[i] = true
			sinceFault = fmt.Sprintf("%.2fs", m.Time.Sub(starts[i]).Seconds())
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s → %s\t%s\t%s\t%s\n", m.Time.Format(groupview.Clock), phaseAt(starts, m.Time), orQ(m.Reason),
			dashed(m.From), m.To, term, dur, sinceFault)
	}
	_ = tw.Flush()
	p.printf("%s\n", b.String())

	// Client and API.
	failed := 0
	for _, r := range reqs {
		if !r.ok {
			failed++
		}
	}
	var worst failureRun
	for _, r := range runs {
		if r.length() > worst.length() {
			worst = r
		}
	}
	if worst.count > 0 {
		p.printf("client-visible downtime: %.2fs, the longest run of failed requests (%d in a row, %s phase); %d of %d requests failed\n",
			worst.length().Seconds(), worst.count, phases[worst.phase].name, failed, len(reqs))
	} else {
		p.printf("client-visible downtime: none; %d requests, all answered\n", len(reqs))
	}
	p.printf("%s\n\n", apiLine(d.sim.Stats(), now.Sub(d.started)))

	if partial {
		return nil
	}

	// Invariants.
	longest, at := dangling(events, ready, d.alloc, d.started, now)
	invs := []invariant{
		{"one holder", len(splits) == 0, fmt.Sprintf("at most one daemon reported role holder in each of %d samples", samples)},
		{"terms only grow", len(termDrops) == 0, fmt.Sprintf("eipd:term rose to %s and never went back", maxTerm)},
		{"never dangling", longest <= leaseDuration, fmt.Sprintf("longest time the EIP was associated with nothing while a coordinator acted and a member was ready: %.2fs (limit %s, the lease duration)", longest.Seconds(), leaseDuration)},
		{"planned handoff without loss", failedIn[plannedPhase] == 0 && len(starts) > 3, fmt.Sprintf("%d failed requests in the %s phase", failedIn[plannedPhase], plannedPhase)},
	}
	if len(splits) > 0 {
		invs[0].detail = fmt.Sprintf("%d of %d samples had more than one holder, first %s", len(splits), samples, splits[0])
	}
	if len(termDrops) > 0 {
		invs[1].detail = "eipd:term went back: " + strings.Join(termDrops, "; ")
	}
	if longest > leaseDuration {
		invs[2].detail += " from " + at.Format(groupview.Clock)
	}
	if len(starts) <= 3 {
		invs[3].detail = "the planned handoff never ran"
	}
	p.printf("invariants\n")
	var failedInv []string
	for _, inv := range invs {
		mark := "ok    "
		if !inv.ok {
			mark = "FAILED"
			failedInv = append(failedInv, inv.name)
		}
		p.printf("  %s %s: %s\n", mark, inv.name, inv.detail)
	}
	d.mu.Lock()
	problems := append([]string(nil), d.problems...)
	d.mu.Unlock()
	for _, pr := range problems {
		p.printf("  PROBLEM %s\n", pr)
	}
	hint := ""
	if d.o.KeepLogs == "" {
		hint = " (run again with --keep-logs DIR to read the daemons' logs)"
	}
	switch {
	case len(failedInv) > 0:
		p.printf("\ninvariant failed: %s%s\n", strings.Join(failedInv, ", "), hint)
		return fmt.Errorf("%w: %s", ErrInvariant, strings.Join(failedInv, ", "))
	case len(problems) > 0:
		p.printf("\nevery invariant held, but the timeline did not run as planned%s\n", hint)
		return fmt.Errorf("timeline: %s", strings.Join(problems, "; "))
	}
	p.printf("\nevery invariant held\n")
	return nil
}

// phaseIndexAt is the index of the phase a time falls in: -1 before the
// first, len(phases) after the last.
func phaseIndexAt(starts []time.Time, t time.Time) int {
	idx := -1
	for i, s := range starts {
		if !t.Before(s) {
			idx = i
		}
	}
	return idx
}

// phaseAt names the phase a time falls in.
func phaseAt(starts []time.Time, t time.Time) string {
	switch i := phaseIndexAt(starts, t); {
	case i < 0:
		return "start-up"
	case i >= len(phases):
		return "after"
	default:
		return phases[i].name
	}
}

// dangling is the longest time the EIP was associated with nothing while
// some member was ready and a coordinator acted (readiness), and when that
// began. Spans come from the
// emulator's history; readiness from the daemons' samples.
func dangling(events []ec2sim.Event, ready []readiness, alloc string, since, now time.Time) (time.Duration, time.Time) {
	type span struct{ from, to time.Time }
	var spans []span
	open, from := true, since // unassociated when the emulator starts
	for _, e := range events {
		if e.AllocationID != alloc {
			continue
		}
		switch {
		case e.To == "" && !open:
			open, from = true, e.Time
		case e.To != "" && open:
			spans = append(spans, span{from, e.Time})
			open = false
		}
	}
	if open {
		spans = append(spans, span{from, now})
	}
	var longest time.Duration
	var at time.Time
	for _, s := range spans {
		// From the first sample within the span that saw a ready member.
		i := sort.Search(len(ready), func(i int) bool { return !ready[i].at.Before(s.from) })
		for ; i < len(ready) && !ready[i].at.After(s.to); i++ {
			if ready[i].ready {
				if l := s.to.Sub(ready[i].at); l > longest {
					longest, at = l, ready[i].at
				}
				break
			}
		}
	}
	return longest, at
}

// apiLine counts the EC2 calls, the daemons' apart from anyone else's
// (such as an `eipd status --watch` pointed at the demo).
func apiLine(s ec2sim.Stats, over time.Duration) string {
	byAction := map[string]int64{}
	var daemons, others int64
	for caller, m := range s.ByCaller {
		for action, n := range m {
			if caller == "" {
				others += n
				continue
			}
			daemons += n
			byAction[action] += n
		}
	}
	var parts []string
	for a, n := range byAction {
		parts = append(parts, fmt.Sprintf("%s %d", a, n))
	}
	sort.Strings(parts)
	return fmt.Sprintf("EC2 calls made by the daemons: %d in %s (%s); by others: %d", daemons, over.Round(time.Second),
		strings.Join(parts, ", "), others)
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func orQ(s string) string {
	if s == "" {
		return "?"
	}
	return s
}

func dashed(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
