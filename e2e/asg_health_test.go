package e2e

import (
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
// hook.
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
	waitFor(t, 10*time.Second, "the holder to hand its EIP off", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
	if err := c.oneMoveFrom(mark, alloc, h.id()); err != nil {
		t.Fatal(err)
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
	b, _ := os.ReadFile(h.eipd.LogPath)
	for _, want := range []string{"own health check down: this instance asks its Auto Scaling group to replace it",
		"marked this instance Unhealthy in its Auto Scaling group"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s's log lacks %q:\n%s", h.id(), want, tail(h.eipd.LogPath, 30))
		}
	}
	if m := c.assocsSince(mark, alloc); len(m) != 1 {
		t.Errorf("want exactly the one handoff, got:%s", c.eventsSince(mark))
	}
	for _, n := range c.nodes {
		if n != h {
			if got := c.setInstanceHealthCalls(n.id()); got != 0 {
				t.Errorf("%s, whose proxy serves, called SetInstanceHealth %d times", n.id(), got)
			}
		}
	}
}
