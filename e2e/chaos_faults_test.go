package e2e

// Chaos scenarios: failures of the holder's proxy and planned stops.

import (
	"time"
)

func faultScenarios() []chaosScenario {
	return []chaosScenario{
		{
			name: "haproxy-killed", title: "HAProxy killed on the holder",
			instances: 3, downtime: proxyDeathBound, apiMax: 60,
			fault: func(x *chaosRun) {
				x.fault()
				x.holder.killHAProxy()
				x.unhealthyTakeover(x.holder)
			},
		},
		{
			name: "backend-down", title: "Backend down while HAProxy runs (runtime-API check)",
			instances: 3, runtimeCheck: true, downtime: proxyDeathBound, apiMax: 60,
			fault: func(x *chaosRun) {
				x.fault()
				x.holder.stopBackend()
				x.unhealthyTakeover(x.holder)
			},
		},
		{
			name: "sigterm-handoff", title: "SIGTERM on the holder (planned handoff)",
			instances: 3, apiMax: 60, // downtime 0: not one request may fail
			fault: func(x *chaosRun) {
				h := x.holder
				x.fault()
				h.eipd.Term()
				to := x.movedAway(h, 30*time.Second)
				x.requireHandoff(h, x.onlyMove(h), "handoff-shutdown")
				if !h.eipd.WaitExit(30 * time.Second) {
					x.Fatalf("the old holder's eipd did not exit within 30 s of SIGTERM")
				}
				if h.eipd.Err != nil {
					x.Fatalf("the old holder's eipd exited with %v after its SIGTERM handoff, want 0", h.eipd.Err)
				}
				x.clientBack(30*time.Second, 25)
				x.failoverReason(to, x.alloc(), "handoff-shutdown")
			},
		},
	}
}

// unhealthyTakeover is the outcome of a holder whose proxy died: its own
// check falls (the premise), and the coordinator takes the EIP over once,
// fenced, to a healthy member; the client is served again.
func (x *chaosRun) unhealthyTakeover(h *node) *node {
	x.Helper()
	x.healthFalls(h, 10*time.Second)
	to := x.movedAway(h, 30*time.Second)
	e := x.firstAssoc(h)
	x.requireFenced(h, e)
	x.clientBack(30*time.Second, 25)
	x.failoverReason(to, x.alloc(), "handoff-unhealthy")
	return to
}

// healthFalls waits until n's daemon reports its own health down: proof
// that the fault reached eipd's check.
func (x *chaosRun) healthFalls(n *node, timeout time.Duration) {
	x.Helper()
	waitFor(x, timeout, n.id()+" to report its health down", func() bool {
		s, err := n.status()
		return err == nil && s.Health == "down"
	})
}
