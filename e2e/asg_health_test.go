package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// setInstanceHealthCalls is how many SetInstanceHealth calls of instance id
// the emulator answered, all outcomes.
func (c *cluster) setInstanceHealthCalls(id string) int64 {
	return c.stats().ByCaller[id]["SetInstanceHealth"]
}

// TestASGHealthReplacesAStandbyWhoseProxyStaysDown: with --asg-health, the
// holder whose proxy dies hands its EIP off at once, and once its check has
// been down for --asg-health-after (and a member serves), marks itself
// Unhealthy in its Auto Scaling group; the emulator takes it out of service
// as Auto Scaling does, and the daemon completes its termination lifecycle
// hook. Then, with every remaining proxy down, nobody reports: the holder
// keeps its EIP (no ready target) and the standby sees no member serving.
func TestASGHealthReplacesAStandbyWhoseProxyStaysDown(t *testing.T) {
	const after = 2 * time.Second
	c := newCluster(t, clusterOpts{instances: 3, tcpTarget: true, asg: "e2e-asg", hook: "eipd-drain"})
	alloc := c.alloc(0)
	for _, n := range c.nodes {
		n.startDaemon("--asg-health", "--asg-health-after", after.String(), "--lifecycle-hook", "eipd-drain")
	}
	for _, n := range c.nodes {
		n.waitUp()
	}
	h := c.steady(alloc)
	for _, n := range c.nodes {
		if got := c.setInstanceHealthCalls(n.id()); got != 0 {
			t.Fatalf("%s called SetInstanceHealth %d times while healthy", n.id(), got)
		}
	}

	mark := c.mark()
	downAt := time.Now()
	h.killHAProxy()
	var moved simEvent
	waitFor(t, 10*time.Second, "the holder to hand its EIP off", func() bool {
		m := c.assocsSince(mark, alloc)
		if len(m) > 0 {
			moved = m[0]
		}
		return len(m) > 0
	})
	if moved.From != h.id() {
		t.Fatalf("the EIP moved from %s, want from the holder %s:%s", moved.From, h.id(), c.eventsSince(mark))
	}
	waitFor(t, 20*time.Second, "the former holder to mark itself unhealthy", func() bool { return c.setInstanceHealthCalls(h.id()) > 0 })
	if d := time.Since(downAt); d < after {
		t.Errorf("marked unhealthy %s after its proxy died, before --asg-health-after %s", d.Round(time.Millisecond), after)
	}
	if ok := c.stats().ByCallerOutcome[h.id()]["ok"]; ok == 0 {
		t.Errorf("the emulator answered none of %s's calls with ok: %+v", h.id(), c.stats().ByCallerOutcome[h.id()])
	}
	// Auto Scaling takes it out of service: the lifecycle hook runs, and
	// the daemon, holding nothing, completes it.
	var act *lifecycleAction
	waitFor(t, 20*time.Second, "the replaced instance's lifecycle action to be completed", func() bool {
		act = c.completedFor(h.id())
		return act != nil
	})
	if act.Result != "CONTINUE" || act.Caller != h.id() {
		t.Errorf("lifecycle action %+v", act)
	}
	b, _ := os.ReadFile(h.eipd.logPath)
	for _, want := range []string{"own health check down: this instance asks its Auto Scaling group to replace it",
		"marked this instance Unhealthy in its Auto Scaling group"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s's log lacks %q:\n%s", h.id(), want, tail(h.eipd.logPath, 30))
		}
	}
	if m := c.assocsSince(mark, alloc); len(m) != 1 {
		t.Errorf("want exactly the one handoff, got:%s", c.eventsSince(mark))
	}
	newHolder := c.node(moved.To)
	for _, n := range c.nodes {
		if n != h {
			if got := c.setInstanceHealthCalls(n.id()); got != 0 {
				t.Errorf("%s, whose proxy serves, called SetInstanceHealth %d times", n.id(), got)
			}
		}
	}

	// Every remaining proxy down: the holder keeps the EIP (no ready
	// member) and must not have itself replaced; the standby sees nobody
	// serving and must not either.
	var standby *node
	for _, n := range c.nodes {
		if n != h && n != newHolder {
			standby = n
		}
	}
	mark = c.mark()
	standby.killHAProxy()
	newHolder.killHAProxy()
	waitFor(t, 10*time.Second, "both to report their health down", func() bool {
		a, errA := standby.status()
		b, errB := newHolder.status()
		return errA == nil && errB == nil && a.Health == "down" && b.Health == "down"
	})
	during(t, 3*after, "nobody asks to be replaced while every proxy is down", func() error {
		for _, n := range []*node{standby, newHolder} {
			if got := c.setInstanceHealthCalls(n.id()); got != 0 {
				return fmt.Errorf("%s called SetInstanceHealth %d times", n.id(), got)
			}
		}
		return nil
	})
	if got := c.holder(alloc); got != newHolder.id() {
		t.Errorf("the EIP is on %q, want it kept by %s", got, newHolder.id())
	}
	for n, why := range map[*node]string{newHolder: "it holds an EIP", standby: "no other member serves"} {
		b, _ := os.ReadFile(n.eipd.logPath)
		if !strings.Contains(string(b), why) {
			t.Errorf("%s does not say why it is not replaced (%q):\n%s", n.id(), why, tail(n.eipd.logPath, 30))
		}
	}
}
