package e2e

// Chaos scenarios of issue 20: a two-member group in a public subnet
// whose instances reach the EC2 API through their public IPv4 address
// (egress_needs_public_ip), auto-assigned at launch. An EIP on an
// instance's primary private IP replaces that address; when the EIP
// leaves, AWS gives a new one back only later (public_ip_release, 20 s
// here, "within a few minutes" on AWS): until then the instance cannot
// call the API. The "endpoints" variant is the same group with VPC
// interface endpoints (no public IP needed).

import (
	"time"
)

// publicIPRelease is how long after an EIP left an instance's primary
// private IP its new auto-assigned public IPv4 address comes back.
const publicIPRelease = 20 * time.Second

func publicIPScenarios() []chaosScenario {
	return []chaosScenario{
		{
			name: "public-ip-egress", title: "Public subnet, API through the public IP: handoff, then the new holder terminated (recovery once the old holder's public IP is back)",
			instances: 2, autoAssignPublicIP: true, maxMoves: 2, apiMax: 150,
			// The old holder cannot reach the API until its public IP comes
			// back; the outage is total by nature until then, and the
			// downtime counts from that moment (x.measureFrom). Nothing can
			// associate the EIP before it either: dangling up to the
			// release and the recovery.
			downtime:    chaosBound("public-ip-back"),
			danglingMax: publicIPRelease + chaosBound("public-ip-back") + 5*time.Second,
			setup: func(x *chaosRun) {
				x.c.setFaults(map[string]any{"public_ip_release": publicIPRelease.String()})
				for _, n := range x.c.nodes {
					x.c.setInstanceFaults(n.id(), map[string]any{"egress_needs_public_ip": true})
				}
			},
			fault: func(x *chaosRun) { publicIPHandoffThenTerminate(x, true) },
		},
		{
			name: "public-ip-endpoints", title: "Public subnet with VPC endpoints: handoff, then the new holder terminated",
			instances: 2, autoAssignPublicIP: true, maxMoves: 2, apiMax: 150,
			// The new holder coordinated too: the survivor takes the role
			// over once its lease is stale (the election), then the EIP.
			downtime:    chaosBound("coordinator-gone"),
			danglingMax: chaosBound("coordinator-gone") + 2*time.Second,
			setup: func(x *chaosRun) {
				x.c.setFaults(map[string]any{"public_ip_release": publicIPRelease.String()})
			},
			fault: func(x *chaosRun) { publicIPHandoffThenTerminate(x, false) },
		},
	}
}

// publicIP is an instance's public IPv4 address now, as EC2 has it.
func (c *cluster) publicIP(id string) string {
	c.t.Helper()
	var inst struct {
		PublicIP string `json:"public_ip"`
	}
	c.control("GET", "/instances/"+id, nil, &inst)
	return inst.PublicIP
}

// publicIPHandoffThenTerminate: of two members, A coordinates and B holds
// the EIP. The operator hands B's EIP off (eipd handoff): A takes it on its
// primary private IP, and B is left without a public IP for
// publicIPRelease. Then A's instance is terminated. With egress through
// the public IP (egress), B cannot reach the API until its new address
// comes back: it must say why (aws_unreachable on /status, the
// eipd_aws_reachable gauge, a log line), and take the role and the EIP
// once it is back. With VPC endpoints it takes them over at once, within
// the election's bound.
func publicIPHandoffThenTerminate(x *chaosRun, egress bool) {
	a, b := x.coord, x.holder
	if a == b {
		x.Fatalf("the holder %s coordinates: want one member coordinating, the other holding", a.id())
	}
	if pub := x.c.publicIP(b.id()); pub != x.c.info.EIPs[x.focus].PublicIP {
		x.Fatalf("the holder's public IP is %q, want the EIP %s (it replaced the auto-assigned one)", pub, x.c.info.EIPs[x.focus].PublicIP)
	}
	_, cs := x.c.coordinator(10 * time.Second)
	x.fault()
	x.handoffCLI(b)
	e := x.waitFirstAssoc(b, 10*time.Second)
	x.requireHandoff(b, e, "handoff-manual")
	// The premise: the EIP left B's primary private IP and took its public
	// IP with it, for publicIPRelease.
	if pub := x.c.publicIP(b.id()); pub != "" {
		x.Fatalf("the premise failed: %s still has the public IP %s right after the handoff", b.id(), pub)
	}
	time.Sleep(time.Second)
	// A now holds the EIP and coordinates. It may hand the coordinator role
	// to B at once (a coordinator that holds an EIP hands the role to a
	// member that holds none), though B cannot reach the API: say so.
	if handed := len(linesWith(a.logOf(0), "handing the coordinator role over", "to="+b.id())) > 0; handed {
		x.Logf("note: %s handed the coordinator role to %s, which has no public IP, %s after the handoff", a.id(), b.id(), time.Since(e.Time).Round(time.Millisecond))
	}
	killed := time.Now()
	x.c.instanceOp(a.id(), "terminate")
	a.eipd.killWait(x)
	a.killHAProxy()
	if !egress {
		next, _ := x.newCoordinator(a, cs.Epoch, electionBound+10*time.Second)
		if next != b {
			x.Fatalf("%s coordinates, want the only member left %s", next.id(), b.id())
		}
		to := x.movedAway(a, 30*time.Second)
		if to != b {
			x.Fatalf("the EIP went to %s, want %s", to.id(), b.id())
		}
		x.clientBack(30*time.Second, 25)
		if s, err := b.status(); err != nil || s.AWSUnreachable != nil {
			x.Fatalf("%s says the API does not answer (%+v, %v), with VPC endpoints", b.id(), s.AWSUnreachable, err)
		}
		x.Logf("%s took the EIP over %s after %s was terminated", b.id(), x.firstAssoc(a).Time.Sub(killed).Round(time.Millisecond), a.id())
		return
	}
	// B cannot coordinate: it says why, on /status, in its metrics and log.
	var cause string
	waitFor(x, electionBound+5*time.Second, b.id()+" to report the EC2 API unreachable", func() bool {
		s, err := b.status()
		if err == nil && s.AWSUnreachable != nil && s.AWSUnreachable.Cause != "" {
			cause = s.AWSUnreachable.Cause
			return true
		}
		return false
	})
	x.Logf("%s: aws_unreachable cause %q", b.id(), cause)
	if v := b.metric("eipd_aws_reachable", nil); v != 0 {
		x.Fatalf("eipd_aws_reachable on %s = %v while its /status says the API does not answer, want 0", b.id(), v)
	}
	if len(linesWith(b.logOf(0), "the EC2 API does not answer")) == 0 {
		x.Fatalf("%s did not log that the EC2 API does not answer:\n%s", b.id(), tail(b.eipd.LogPath, 20))
	}
	// Its address comes back publicIPRelease after the handoff; from then
	// on the downtime counts.
	var back time.Time
	waitFor(x, publicIPRelease+10*time.Second, b.id()+"'s public IP to come back", func() bool {
		for _, ev := range x.c.events() {
			if ev.Action == "public-ip-return" && ev.To == b.id() && ev.Time.After(e.Time) {
				back = ev.Time
				return true
			}
		}
		return false
	})
	x.measureFrom()
	if m := assocsIn(x.c.events(), x.alloc(), killed); len(m) > 0 && m[0].Time.Before(back) {
		x.Fatalf("the EIP was associated at %s, before %s could reach the API (%s)", m[0].Time.Format("15:04:05.000"), b.id(), back.Format("15:04:05.000"))
	}
	to := x.movedAway(a, x.sc.downtime+10*time.Second)
	if to != b {
		x.Fatalf("the EIP went to %s, want %s", to.id(), b.id())
	}
	x.clientBack(30*time.Second, 25)
	waitFor(x, 10*time.Second, b.id()+" to report the API reachable again", func() bool {
		s, err := b.status()
		return err == nil && s.AWSUnreachable == nil && b.metric("eipd_aws_reachable", nil) == 1
	})
	x.Logf("%s's public IP came back %s after the handoff; it took the EIP over %s after that (%s after %s was terminated)",
		b.id(), back.Sub(e.Time).Round(time.Millisecond), x.firstAssoc(a).Time.Sub(back).Round(time.Millisecond),
		x.firstAssoc(a).Time.Sub(killed).Round(time.Millisecond), a.id())
}
