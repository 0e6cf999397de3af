package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/eipd/eipd/internal/harness"
)

// phaseSpec is one step of the timeline. weight is its length when the
// timeline lasts MinDuration; longer timelines stretch every phase alike.
type phaseSpec struct {
	name   string
	weight time.Duration
	fault  bool // it starts with a fault (or a planned move) that moves the EIP
	about  string
}

var phases = []phaseSpec{
	{"steady", 5 * time.Second, false, "one holder, the others standby, the client served"},
	{"proxy-killed", 9 * time.Second, true, "the holder's proxy dies: its health check falls and it hands the EIP off; then the proxy comes back"},
	{"spot-interruption", 9 * time.Second, true, "a spot interruption notice on the new holder: it drains and hands off before the instance goes"},
	{"planned-handoff", 5 * time.Second, true, "`eipd handoff` on the holder: a planned move, make before break, no failed request"},
	{"terminate", 8 * time.Second, true, "the holder's instance is terminated: the EIP is disassociated and a standby takes it over"},
	{"recovery", 4 * time.Second, false, "the survivors serve; nobody moves the EIP back"},
}

// Bounds of the waits inside the timeline: generous, since a slow machine
// must not fail the demo, yet short enough that a stuck group is reported.
const (
	electionTimeout = 60 * time.Second
	moveTimeout     = 30 * time.Second
)

// lengths are the planned phase lengths for the asked duration.
func (d *demo) lengths() []time.Duration {
	var total time.Duration
	for _, p := range phases {
		total += p.weight
	}
	out := make([]time.Duration, len(phases))
	for i, p := range phases {
		out[i] = time.Duration(float64(p.weight) * float64(d.o.Duration) / float64(total))
	}
	return out
}

// timeline runs the phases. Each phase lasts its planned length, or until
// the move it causes is done and the new holder says so, whichever is
// later.
func (d *demo) timeline(ctx context.Context, startClient func()) error {
	lengths := d.lengths()
	d.out.event("start-up: waiting for the election")
	h0, err := d.waitSteady(ctx)
	if err != nil {
		return err
	}
	startClient()

	// steady
	start := d.beginPhase(ctx, 0, lengths[0])
	d.out.event("%s holds the EIP; the client sends GET / to %s every %s", h0.id(), d.eip.ForwardAddr, clientInterval)
	if err := sleepUntil(ctx, start.Add(lengths[0])); err != nil {
		return err
	}

	// proxy-killed → failover, then the proxy comes back
	start = d.beginPhase(ctx, 1, lengths[1])
	if err := h0.proxy.Stop(); err != nil {
		return fmt.Errorf("kill the proxy of %s: %w", h0.id(), err)
	}
	d.out.event("killed the proxy of holder %s", h0.id())
	h1, err := d.waitMoveFrom(ctx, h0, start)
	if err != nil {
		return err
	}
	if err := h0.proxy.Start(); err != nil {
		return err
	}
	d.out.event("the proxy of %s is back; no preemption: %s keeps the EIP", h0.id(), h1.id())
	if err := sleepUntil(ctx, start.Add(lengths[1])); err != nil {
		return err
	}

	// spot interruption on the new holder
	if err := d.waitCandidate(ctx, h1); err != nil {
		return err
	}
	start = d.beginPhase(ctx, 2, lengths[2])
	if err := d.sim.SpotInterruption(h1.id(), "terminate"); err != nil {
		return fmt.Errorf("spot interruption on %s: %w", h1.id(), err)
	}
	d.out.event("spot interruption notice for %s (terminate in 2 minutes) in its instance metadata", h1.id())
	h2, err := d.waitMoveFrom(ctx, h1, start)
	if err != nil {
		return err
	}
	if err := sleepUntil(ctx, start.Add(lengths[2])); err != nil {
		return err
	}

	// planned handoff
	if err := d.waitCandidate(ctx, h1, h2); err != nil {
		return err
	}
	start = d.beginPhase(ctx, 3, lengths[3])
	d.out.event("running: %s handoff --control %s (on %s)", d.o.Exe, h2.control, h2.id())
	out, err := handoff(ctx, d.o.Exe, d.dir, d.logDir, h2.control)
	if err != nil {
		return fmt.Errorf("planned handoff on %s: %w", h2.id(), err)
	}
	d.out.event("eipd handoff on %s: %s", h2.id(), firstLine(out))
	h3, err := d.waitMoveFrom(ctx, h2, start)
	if err != nil {
		return err
	}
	if err := sleepUntil(ctx, start.Add(lengths[3])); err != nil {
		return err
	}

	// terminate the holder's instance
	if err := d.waitCandidate(ctx, h1, h3); err != nil {
		return err
	}
	start = d.beginPhase(ctx, 4, lengths[4])
	h3.mu.Lock()
	h3.gone = true
	h3.mu.Unlock()
	// The instance vanishes: its processes with it, then EC2 disassociates
	// the EIP (its ENI is deleted).
	if err := h3.daemon.KillWait(10 * time.Second); err != nil {
		return err
	}
	if err := h3.proxy.Stop(); err != nil {
		return err
	}
	if err := d.sim.TerminateInstance(h3.id()); err != nil {
		return fmt.Errorf("terminate %s: %w", h3.id(), err)
	}
	d.out.event("terminated %s, the holder: its eipd and proxy are gone, the EIP is disassociated", h3.id())
	h4, err := d.waitMoveFrom(ctx, h3, start)
	if err != nil {
		return err
	}
	if err := sleepUntil(ctx, start.Add(lengths[4])); err != nil {
		return err
	}

	// recovery
	start = d.beginPhase(ctx, 5, lengths[5])
	d.out.event("%s holds the EIP; watching the client and the group", h4.id())
	if err := sleepUntil(ctx, start.Add(lengths[5])); err != nil {
		return err
	}
	d.endPhases()
	return nil
}

// beginPhase starts phase i: later requests count for it, and it starts
// only once the requests of the phase before are answered, so a fault is
// never blamed on the phase before.
func (d *demo) beginPhase(ctx context.Context, i int, length time.Duration) time.Time {
	d.client.setPhase(i)
	d.client.settle(ctx, i)
	now := time.Now()
	d.mu.Lock()
	d.phase = i
	d.phaseAt = append(d.phaseAt, now)
	d.phaseEnd = now.Add(length)
	d.mu.Unlock()
	d.out.event("phase %d/%d %s: %s", i+1, len(phases), phases[i].name, phases[i].about)
	return now
}

// endPhases closes the last phase.
func (d *demo) endPhases() {
	d.mu.Lock()
	d.phaseAt = append(d.phaseAt, time.Now())
	d.phase = len(phases)
	d.mu.Unlock()
	d.out.event("timeline done")
}

func (d *demo) phaseIndex() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.phase
}

// phaseStarts are the start times of the phases begun so far, plus the
// end of the last one once the timeline is done.
func (d *demo) phaseStarts() []time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]time.Time(nil), d.phaseAt...)
}

// phaseLine is the first note of the live view.
func (d *demo) phaseLine(now time.Time) string {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.phase < 0:
		return fmt.Sprintf("start-up: waiting for the election (%.0fs)", now.Sub(d.started).Seconds())
	case d.phase >= len(phases):
		return "timeline done"
	}
	left := d.phaseEnd.Sub(now).Round(time.Second)
	wait := fmt.Sprintf("%s left", left)
	if left <= 0 {
		wait = "waiting for the move to finish"
	}
	return fmt.Sprintf("phase %d/%d %s (%s, timeline %s of %s): %s", d.phase+1, len(phases), phases[d.phase].name, wait,
		now.Sub(d.phaseAt[0]).Round(time.Second), d.o.Duration, phases[d.phase].about)
}

// waitSteady waits for the election: the EIP associated, the instance it
// points at reporting holder and every other daemon answering with its
// health up.
func (d *demo) waitSteady(ctx context.Context) (*node, error) {
	var h *node
	err := d.waitFor(ctx, electionTimeout, "the election (one holder, every other daemon up)", func() bool {
		a, _ := d.sim.Address(d.alloc)
		h = d.node(a.InstanceID)
		if h == nil || d.obs.role(h.id()) != "holder" {
			return false
		}
		for _, n := range d.nodes {
			if n != h && !d.obs.isReady(n.id()) {
				return false
			}
		}
		return true
	})
	return h, err
}

// waitMoveFrom waits until the EIP has been associated, since the given
// time, with an instance other than from, is associated with it now, and
// that instance's daemon reports holder.
func (d *demo) waitMoveFrom(ctx context.Context, from *node, since time.Time) (*node, error) {
	var to *node
	err := d.waitFor(ctx, moveTimeout, "the EIP to leave "+from.id(), func() bool {
		moved := false
		for _, e := range d.sim.Events() {
			if e.AllocationID == d.alloc && e.To != "" && e.To != from.id() && !e.Time.Before(since) {
				moved = true
			}
		}
		a, _ := d.sim.Address(d.alloc)
		to = d.node(a.InstanceID)
		return moved && to != nil && to != from && d.obs.role(to.id()) == "holder"
	})
	return to, err
}

// waitCandidate waits until a member other than the excluded ones is
// ready to receive the EIP, so the next fault has somewhere to go.
func (d *demo) waitCandidate(ctx context.Context, exclude ...*node) error {
	return d.waitFor(ctx, moveTimeout, "a ready member other than "+nodeIDs(exclude), func() bool {
	next:
		for _, n := range d.nodes {
			for _, x := range exclude {
				if n == x {
					continue next
				}
			}
			if !n.isGone() && d.obs.isReady(n.id()) {
				return true
			}
		}
		return false
	})
}

func (d *demo) waitFor(ctx context.Context, timeout time.Duration, what string, cond func() bool) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		if err := d.daemonsAlive(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s", timeout, what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// daemonsAlive fails when a daemon the demo did not stop has exited: the
// timeline cannot go on, and its log says why.
func (d *demo) daemonsAlive() error {
	for _, n := range d.nodes {
		if !n.isGone() && n.daemon != nil && n.daemon.Exited() {
			return fmt.Errorf("eipd of %s exited (%v); the end of %s:\n%s", n.id(), n.daemon.Err, n.logPath, harness.Tail(n.logPath, 15))
		}
	}
	return nil
}

func (d *demo) node(id string) *node {
	for _, n := range d.nodes {
		if n.id() == id {
			return n
		}
	}
	return nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}
