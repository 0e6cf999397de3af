package e2e

// Chaos scenarios of issue 18 §4 and issue 20: instance metadata that
// trails the API by 5 s (imds_lag) under the usual faults; answers of
// EC2 calls that took effect but were lost (lost_answers); writes that
// EC2 applies late (late_writes); reads that mix two moments
// (mixed_reads).

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
)

func metadataScenarios() []chaosScenario {
	return []chaosScenario{
		{
			name: "imds-lag-haproxy-killed", title: "5 s instance metadata lag, then HAProxy killed on the holder",
			instances: 3, downtime: proxyDeathBound, apiMax: 60,
			fault: func(x *chaosRun) {
				x.imdsLag()
				x.fault()
				x.holder.killHAProxy()
				x.unhealthyTakeover(x.holder)
				x.metadataTrails(x.holder)
			},
		},
		{
			name: "imds-lag-sigterm-handoff", title: "5 s instance metadata lag, then SIGTERM on the holder (planned handoff)",
			instances: 3, apiMax: 60, // planned: not one request may fail
			fault: func(x *chaosRun) {
				h := x.holder
				x.imdsLag()
				x.fault()
				h.eipd.Term()
				to := x.movedAway(h, 30*time.Second)
				x.requireHandoff(h, x.onlyMove(h), "handoff-shutdown")
				x.metadataTrails(h)
				if !h.eipd.WaitExit(30*time.Second) || h.eipd.Err != nil {
					x.Fatalf("the old holder's eipd did not exit cleanly within 30 s of SIGTERM: %v", h.eipd.Err)
				}
				x.clientBack(30*time.Second, 25)
				x.failoverReason(to, x.alloc(), "handoff-shutdown")
			},
		},
		{
			name: "imds-lag-holder-hung", title: "5 s instance metadata lag, then the holder hung (SIGSTOP), then thawed",
			instances: 3, downtime: hungBound, apiMax: 60,
			fault: func(x *chaosRun) {
				x.imdsLag()
				holderHung(x, x.metadataTrails)
			},
		},
		{
			name: "imds-lag-restart-all", title: "5 s instance metadata lag, then every daemon restarted at once (EIP stays)",
			instances: 3, maxMoves: -1, apiMax: 80, // the proxies serve throughout: not one request may fail
			fault: imdsLagRestartAll,
		},
		{
			name: "imds-lag-fresh-claim", title: "5 s instance metadata lag while three daemons start on an unassociated EIP",
			instances: 3, cold: true, apiMax: 80,
			downtime: chaosBound("cold-start"), // as five-cold-start: from the start to the first association
			setup:    func(x *chaosRun) { x.c.setFaults(map[string]any{"imds_lag": lagChaos.String()}) },
			fault:    imdsLagFreshClaim,
		},
		{
			name: "lost-answer-takeover", title: "The answer of the takeover's AssociateAddress lost (holder instance stopped)",
			instances: 3, downtime: instanceGoneBound, apiMax: 80,
			fault: lostAnswerTakeover,
		},
		{
			name: "lost-answer-handoff", title: "The answer of the handoff's AssociateAddress lost (SIGTERM on the holder)",
			instances: 3, apiMax: 80, // planned: not one request may fail
			fault: lostAnswerHandoff,
		},
		{
			name: "late-writes-handoff", title: "Writes applied 3 s late (late_writes: the record's CreateTags, the association) around a manual handoff",
			instances: 3, apiMax: 60, // planned: not one request may fail
			fault: lateWritesHandoff,
		},
		{
			name: "mixed-reads-handoff", title: "Mixed reads (each address's association and tags from two moments of a 5 s lag) with a manual handoff",
			instances: 3, apiMax: 60, // planned: not one request may fail
			fault: mixedReadsHandoff,
		},
	}
}

// ---- instance metadata lag ----

// imdsLag makes every instance's metadata show its associations as they
// were lagChaos ago.
func (x *chaosRun) imdsLag() {
	x.Helper()
	x.c.setFaults(map[string]any{"imds_lag": lagChaos.String()})
}

// metadataTrails checks the premise of the metadata lag scenarios: right
// after the EIP left from, from's instance metadata still listed it (its
// daemon would have read a stale ENI). Call it promptly after the move.
func (x *chaosRun) metadataTrails(from *node) {
	x.Helper()
	e := x.firstAssoc(from)
	pub := x.c.info.EIPs[x.focus].PublicIP
	ips, err := imdsPublicIPs(from)
	if err != nil {
		x.Fatalf("read %s's instance metadata: %v", from.id(), err)
	}
	if since := time.Since(e.Time); since < lagChaos && !slices.Contains(ips, pub) {
		x.Fatalf("the premise failed: %s after the EIP left %s its instance metadata no longer lists it (%v): no lag", since.Round(time.Millisecond), from.id(), ips)
	}
}

// imdsPublicIPs reads the public IPs n's instance metadata lists on its
// primary ENI now, as a daemon there would (IMDSv2).
func imdsPublicIPs(n *node) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	do := func(method, path string, hdr map[string]string) (string, int, error) {
		req, err := http.NewRequestWithContext(ctx, method, n.inst.IMDSEndpoint+path, nil)
		if err != nil {
			return "", 0, err
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			return "", 0, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), resp.StatusCode, err
	}
	token, code, err := do("PUT", "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"})
	if err != nil || code != 200 {
		return nil, fmt.Errorf("IMDS token: %d %v", code, err)
	}
	auth := map[string]string{"X-aws-ec2-metadata-token": token}
	mac, code, err := do("GET", "/latest/meta-data/mac", auth)
	if err != nil || code != 200 {
		return nil, fmt.Errorf("IMDS mac: %d %v", code, err)
	}
	body, code, err := do("GET", "/latest/meta-data/network/interfaces/macs/"+strings.TrimSpace(mac)+"/public-ipv4s", auth)
	switch {
	case err != nil:
		return nil, err
	case code == 404:
		return nil, nil
	case code != 200:
		return nil, fmt.Errorf("IMDS public-ipv4s: %d", code)
	}
	return strings.Fields(body), nil
}

// imdsLagRestartAll: with instance metadata 5 s behind, every daemon is
// killed and started again at once. They elect a coordinator again, which
// finds the EIP where it was and names its holder again: nothing moves, no
// request fails, and the record's term is unchanged (a restart is no
// move).
func imdsLagRestartAll(x *chaosRun) {
	h := x.holder
	term := x.term(x.alloc())
	_, cs := x.c.coordinator(10 * time.Second)
	x.imdsLag()
	x.fault()
	for _, n := range x.c.nodes {
		n.eipd.killWait(x)
	}
	for _, n := range x.c.nodes {
		n.startDaemon()
	}
	for _, n := range x.c.nodes {
		n.waitUp()
	}
	// Nobody vouches for the lease any more: a new coordinator, with a
	// higher epoch, once the old lease is stale.
	x.newCoordinator(nil, cs.Epoch, electionBound+10*time.Second)
	waitFor(x, 30*time.Second, h.id()+" to report holder again", func() bool { return h.role(x.alloc()) == "holder" })
	x.c.steady(x.alloc())
	x.stays(h, dRenew, "after every daemon restarted")
	if got := x.term(x.alloc()); got != term {
		x.Fatalf("eipd:term went from %s to %s across a restart of every daemon: a restart is not a move", term, got)
	}
}

// imdsLagFreshClaim: three daemons start on an unassociated EIP while
// instance metadata trails by 5 s: the coordinator associates it once, and
// its target becomes holder on the coordinator's word, though its own
// metadata does not list the EIP yet.
func imdsLagFreshClaim(x *chaosRun) {
	alloc := x.alloc()
	if a := x.c.address(alloc); a.InstanceID != "" || len(x.c.events()) != 0 {
		x.Fatalf("the EIP is not unassociated and untouched before the start: %+v", a)
	}
	x.fault()
	x.c.startAll()
	h := x.c.heldBy(30*time.Second, alloc)[0]
	e, ok := firstAssocAfter(x.c.events(), alloc, "", x.faultAt)
	if !ok {
		x.Fatalf("no association of %s since the start", alloc)
	}
	if ips, err := imdsPublicIPs(h); err != nil || (time.Since(e.Time) < lagChaos && slices.Contains(ips, x.c.info.EIPs[0].PublicIP)) {
		x.Fatalf("the premise failed: %s after the association %s's instance metadata lists %v (%v): no lag", time.Since(e.Time).Round(time.Millisecond), h.id(), ips, err)
	}
	x.clientBack(15*time.Second, 25)
	x.c.steady(alloc)
	ev := x.c.events()
	if len(ev) != 1 || ev[0].To != h.id() || !x.byDaemon(ev[0]) {
		x.Fatalf("want exactly one association (by a daemon, to %s) and nothing else, got:%s", h.id(), eventList(ev))
	}
}

// ---- lost answers ----

// loseNextAssociate makes EC2 lose the answer of the next AssociateAddress
// that takes effect (the connection is reset once it is applied).
func (x *chaosRun) loseNextAssociate() {
	x.Helper()
	x.c.setFaults(map[string]any{"lost_answers": map[string]any{"action": "AssociateAddress", "count": 1}})
}

// answerLost checks the premise: the lost_answers rule was used up.
func (x *chaosRun) answerLost() {
	x.Helper()
	var f struct {
		LostAnswers *struct {
			Count *int `json:"count"`
		} `json:"lost_answers"`
	}
	x.c.control("GET", "/faults", nil, &f)
	if f.LostAnswers == nil || f.LostAnswers.Count == nil || *f.LostAnswers.Count != 0 {
		x.Fatalf("the premise failed: no AssociateAddress answer was lost (faults: %+v)", f.LostAnswers)
	}
}

// lostAnswerTakeover: the holder's instance stops; the coordinator takes
// the EIP over, and EC2 applies its AssociateAddress but the answer never
// comes. The coordinator must neither leave the EIP dangling nor move it
// twice: it asks again (refused: already associated) and a read settles
// it; one association, and the record names the new holder.
func lostAnswerTakeover(x *chaosRun) {
	h := x.holder
	x.loseNextAssociate()
	x.fault()
	x.c.instanceOp(h.id(), "stop")
	h.eipd.killWait(x)
	h.killHAProxy()
	to := x.movedAway(h, 30*time.Second)
	x.answerLost()
	x.requireFenced(h, x.firstAssoc(h))
	x.clientBack(30*time.Second, 25)
	waitFor(x, 2*dAddressPoll, "the record to name the new holder", func() bool {
		return x.c.address(x.alloc()).Tags["eipd:holder"] == to.id()
	})
	x.failoverReason(to, x.alloc(), "takeover-stale")
}

// lostAnswerHandoff: the holder gets SIGTERM; the coordinator hands the
// EIP off and EC2 applies the AssociateAddress but its answer is lost. A
// planned move: not one request fails, one move, the record names the
// new holder, and the old holder exits cleanly once it holds nothing.
func lostAnswerHandoff(x *chaosRun) {
	h := x.holder
	x.loseNextAssociate()
	x.fault()
	h.eipd.Term()
	to := x.movedAway(h, 30*time.Second)
	x.answerLost()
	x.requireHandoff(h, x.onlyMove(h), "handoff-shutdown")
	if !h.eipd.WaitExit(30*time.Second) || h.eipd.Err != nil {
		x.Fatalf("the old holder's eipd did not exit cleanly within 30 s of SIGTERM: %v", h.eipd.Err)
	}
	waitFor(x, 2*dAddressPoll, "the record to name the new holder", func() bool {
		return x.c.address(x.alloc()).Tags["eipd:holder"] == to.id()
	})
	x.clientBack(30*time.Second, 25)
}

// ---- late writes and mixed reads ----

// lateWritesHandoff: EC2 applies every write 3 s after it answered it (the
// association of a handoff, the record's CreateTags, the renewals); the
// operator runs `eipd handoff` on the holder. One move, no failed request
// (the old holder serves until the association lands), the old holder
// never reports holder again, and a term a late write lowered is raised
// again (checkInvariants).
func lateWritesHandoff(x *chaosRun) {
	h := x.holder
	x.c.setFaults(map[string]any{"late_writes": "3s"})
	x.fault()
	x.handoffCLI(h)
	e := x.waitFirstAssoc(h, 20*time.Second)
	x.requireHandoff(h, e, "handoff-manual")
	x.movedAway(h, 30*time.Second)
	// The premise: the move and the record landed late.
	if !e.Late {
		x.Fatalf("the premise failed: the handoff's association was not applied late: %s", e)
	}
	late := false
	for _, w := range x.c.tagHistory(x.alloc()) {
		late = late || (w.Late && !w.Time.Before(x.faultAt) && w.Tags["eipd:holder"] != "")
	}
	if !late {
		x.Fatalf("the premise failed: no record write of the EIP landed late after the fault")
	}
	x.notBackOnOld(h, e)
}

// mixedReadsHandoff: reads lag 5 s, and each address of a
// DescribeAddresses takes its association and its tags from two different
// moments of that window; the operator runs `eipd handoff` on the holder:
// one move, no failed request, and no read that shows the old association
// with a newer record (or the reverse) moves it back.
func mixedReadsHandoff(x *chaosRun) {
	h := x.holder
	x.fault()
	x.c.setFaults(map[string]any{"describe_lag": lagChaos.String(), "mixed_reads": true})
	x.requireLag()
	x.handoffCLI(h)
	e := x.waitFirstAssoc(h, 10*time.Second)
	x.requireHandoff(h, e, "handoff-manual")
	x.movedAway(h, 30*time.Second)
	x.notBackOnOld(h, e)
}
