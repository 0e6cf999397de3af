package e2e

// Chaos scenarios: failures of the holder's proxy and planned stops.

import (
	"time"
)

func init() {
	addChaos(
		chaosScenario{
			name: "haproxy-killed", title: "HAProxy killed on the holder",
			instances: 3, downtime: 5 * time.Second,
			fault: func(x *chaosRun) {
				x.fault()
				x.holder.killHAProxy()
				x.movedAway(x.holder, 30*time.Second)
				x.clientBack(30*time.Second, 25)
				x.quiet(2 * dRenew)
			},
		},
		chaosScenario{
			name: "backend-down", title: "Backend down while HAProxy runs (runtime-API check)",
			instances: 3, runtimeCheck: true, downtime: 5 * time.Second,
			fault: func(x *chaosRun) {
				x.fault()
				x.holder.stopBackend()
				x.movedAway(x.holder, 30*time.Second)
				x.clientBack(30*time.Second, 25)
				x.quiet(2 * dRenew)
			},
		},
		chaosScenario{
			name: "sigterm-handoff", title: "SIGTERM on the holder (planned handoff)",
			instances: 3,
			fault: func(x *chaosRun) {
				x.fault()
				x.holder.eipd.term()
				to := x.movedAway(x.holder, 30*time.Second)
				if !x.holder.eipd.waitExit(30 * time.Second) {
					x.Fatalf("the old holder's eipd did not exit within 30 s of SIGTERM")
				}
				x.clientBack(30*time.Second, 25)
				x.stays(to, 2*dRenew, "after the handoff")
			},
		},
	)
}
