package e2e

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// lifecycleAction is one entry of the emulator's GET /_sim/lifecycle-actions.
type lifecycleAction struct {
	InstanceID string     `json:"instance_id"`
	Group      string     `json:"auto_scaling_group_name"`
	Hook       string     `json:"lifecycle_hook_name"`
	Started    time.Time  `json:"started"`
	Completed  *time.Time `json:"completed"`
	Result     string     `json:"result"`
	Caller     string     `json:"caller"`
}

func (c *cluster) lifecycleActions() []lifecycleAction {
	var a []lifecycleAction
	if err := doJSON("GET", c.info.ControlEndpoint+"/lifecycle-actions", nil, &a); err != nil {
		c.t.Fatalf("read lifecycle actions: %v", err)
	}
	return a
}

// completedFor is the completed lifecycle action of instance id, if any;
// it fails the test if there is more than one action for it.
func (c *cluster) completedFor(id string) *lifecycleAction {
	var found []lifecycleAction
	for _, a := range c.lifecycleActions() {
		if a.InstanceID == id {
			found = append(found, a)
		}
	}
	if len(found) > 1 {
		c.t.Fatalf("%d lifecycle actions for %s: %+v", len(found), id, found)
	}
	if len(found) == 1 && found[0].Completed != nil {
		return &found[0]
	}
	return nil
}

// TestLifecycleHookCompletedAfterHandoff: Auto Scaling scales in the
// holder; eipd hands the EIP to a ready member first, then completes the
// termination lifecycle hook with CONTINUE, once. A standby scaled in
// completes at once and nothing moves.
func TestLifecycleHookCompletedAfterHandoff(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3, tcpTarget: true, asg: "e2e-asg", hook: "eipd-drain"})
	alloc := c.alloc(0)
	for _, n := range c.nodes {
		n.startDaemon("--lifecycle-hook", "eipd-drain")
	}
	for _, n := range c.nodes {
		n.waitUp()
	}
	h := c.steady(alloc)
	mark := c.mark()
	if err := doJSON("PUT", c.info.ControlEndpoint+"/instances/"+h.id()+"/lifecycle-state", map[string]string{"state": "Terminated"}, nil); err != nil {
		t.Fatal(err)
	}
	var act *lifecycleAction
	waitFor(t, 30*time.Second, "the holder's lifecycle action to be completed", func() bool {
		act = c.completedFor(h.id())
		return act != nil
	})
	moves := c.assocsSince(mark, alloc)
	if len(moves) != 1 || moves[0].From != h.id() {
		t.Fatalf("want one handoff away from the holder before the completion, got:%s", c.eventsSince(mark))
	}
	if !act.Completed.After(moves[0].Time) {
		t.Errorf("completed at %s, before the handoff at %s", act.Completed.Format(time.StampMilli), moves[0].Time.Format(time.StampMilli))
	}
	if act.Result != "CONTINUE" || act.Caller != h.id() || act.Group != "e2e-asg" || act.Hook != "eipd-drain" {
		t.Errorf("lifecycle action %+v", act)
	}
	t.Logf("handoff %s after the notice, completion %s after the handoff",
		moves[0].Time.Sub(act.Started).Round(time.Millisecond), act.Completed.Sub(moves[0].Time).Round(time.Millisecond))
	newHolder := c.node(moves[0].To)
	waitFor(t, 10*time.Second, "the new holder to report itself holder", func() bool { return newHolder.role(alloc) == "holder" })

	// A standby scaled in holds nothing: it completes at once.
	var standby *node
	for _, n := range c.nodes {
		if n != h && n != newHolder {
			standby = n
		}
	}
	mark = c.mark()
	if err := doJSON("PUT", c.info.ControlEndpoint+"/instances/"+standby.id()+"/lifecycle-state", map[string]string{"state": "Terminated"}, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the standby's lifecycle action to be completed", func() bool { return c.completedFor(standby.id()) != nil })
	if err := c.noMoves(mark, alloc)(); err != nil {
		t.Errorf("scaling in a standby: %v", err)
	}
	// Exactly once each: the daemons stop trying after their completion.
	during(t, 2*time.Second, "no second completion", func() error {
		n := 0
		for _, a := range c.lifecycleActions() {
			if a.Completed != nil {
				n++
			}
		}
		if n != 2 {
			return fmt.Errorf("%d completed actions, want 2", n)
		}
		return nil
	})
	for _, n := range []*node{h, standby} {
		b, _ := os.ReadFile(n.eipd.LogPath)
		if strings.Count(string(b), "completed the lifecycle hook (CONTINUE)") != 1 {
			t.Errorf("%s: want one 'completed the lifecycle hook' log line:\n%s", n.id(), tail(n.eipd.LogPath, 20))
		}
	}
}
