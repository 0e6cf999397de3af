package eip_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/eipd/eipd/ec2sim"
	. "github.com/eipd/eipd/eip"
	"github.com/hashicorp/go-hclog"
)

// End to end: the real SDK over HTTP against the emulator. An external test
// package, so that eip itself never depends on other eipd code and ec2sim
// may one day import eip without a cycle.

// simObserver records what the client reports.
type simObserver struct {
	mu  sync.Mutex
	ec2 []string
}

func (o *simObserver) ObserveEC2(op, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ec2 = append(o.ec2, op+" "+outcome)
}

func (o *simObserver) ObserveIMDS(string) {}

func (o *simObserver) calls() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ec2...)
}

type simNode struct {
	info   ec2sim.InstanceInfo
	client *Client
	md     *Metadata
}

func startSim(t *testing.T, opts ec2sim.Options) (*ec2sim.Sim, []simNode) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	sim, err := ec2sim.Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := sim.Close(); err != nil {
			t.Errorf("close sim: %v", err)
		}
	})
	info := sim.Info()
	var nodes []simNode
	for _, in := range info.Instances {
		nodes = append(nodes, simNode{
			info:   in,
			client: New(Config{Group: info.Group, Rate: 100, Burst: 100}, simEC2(t, sim, info, in.InstanceID, 3), hclog.NewNullLogger(), nil),
			md:     NewMetadata(imds.New(imds.Options{Endpoint: in.IMDSEndpoint, EnableFallback: aws.FalseTernary}), hclog.NewNullLogger(), nil),
		})
	}
	return sim, nodes
}

// simEC2 is a real *ec2.Client signing with the instance's own credentials,
// so the emulator knows who calls.
func simEC2(t *testing.T, sim *ec2sim.Sim, info ec2sim.Info, instanceID string, attempts int) *ec2.Client {
	t.Helper()
	creds, ok := sim.Credentials(instanceID)
	if !ok {
		t.Fatalf("no credentials for %s", instanceID)
	}
	return ec2.New(ec2.Options{
		Region:       info.Region,
		BaseEndpoint: aws.String(info.EC2Endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: creds.AccessKeyID, SecretAccessKey: creds.SecretAccessKey,
				SessionToken: creds.Token, Source: "ec2sim"}, nil
		}),
		Retryer: retry.AddWithMaxBackoffDelay(retry.AddWithMaxAttempts(retry.NewStandard(), attempts), 10*time.Millisecond),
	}, GuardRequestBody)
}

// TestSimGuardRequestBody: with GuardRequestBody (as eipd builds its
// client) and no retries to hide a failure, large responses never fail with
// "use of closed network connection" (aws-sdk-go-v2#2737). Without the
// guard this loop failed 15 times in 200 here.
func TestSimGuardRequestBody(t *testing.T) {
	sim, _ := startSim(t, ec2sim.Options{Instances: 12, EIPs: 1, Group: "web", ENIsPerInstance: 2})
	info := sim.Info()
	api := simEC2(t, sim, info, info.Instances[0].InstanceID, 1)
	ctx := simCtx(t)
	for i := 0; i < 200; i++ {
		out, err := api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if n := len(out.Reservations); n == 0 {
			t.Fatalf("call %d: no reservations", i)
		}
	}
}

func simCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSimIdentityAndMembers(t *testing.T) {
	sim, nodes := startSim(t, ec2sim.Options{Instances: 3, EIPs: 1, Group: "web", ENIsPerInstance: 2})
	ctx := simCtx(t)
	info := sim.Info()
	for _, n := range nodes {
		id, err := n.md.Identity(ctx)
		if err != nil {
			t.Fatalf("identity of %s: %v", n.info.InstanceID, err)
		}
		want := Identity{InstanceID: n.info.InstanceID, Region: info.Region, AvailabilityZone: n.info.AZ,
			NetworkInterfaceID: n.info.ENIID, PrivateIP: n.info.PrivateIP}
		if id != want {
			t.Errorf("identity %+v, want %+v", id, want)
		}
	}
	members, err := nodes[0].client.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Fatalf("members %+v", members)
	}
	byID := map[string]Instance{}
	for _, m := range members {
		byID[m.InstanceID] = m
	}
	for _, n := range nodes {
		m := byID[n.info.InstanceID]
		if !m.Running() || m.NetworkInterfaceID != n.info.ENIID || m.PrivateIP != n.info.PrivateIP || m.AvailabilityZone != n.info.AZ {
			t.Errorf("member %+v vs %+v", m, n.info)
		}
	}

	if err := nodes[1].client.SetState(ctx, nodes[1].info.InstanceID, StateDraining); err != nil {
		t.Fatal(err)
	}
	members, err = nodes[0].client.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		want := ""
		if m.InstanceID == nodes[1].info.InstanceID {
			want = StateDraining
		}
		if m.EIPDState != want {
			t.Errorf("%s state %q, want %q", m.InstanceID, m.EIPDState, want)
		}
	}

	// A stopped instance is no longer a member.
	if err := sim.StopInstance(nodes[2].info.InstanceID); err != nil {
		t.Fatal(err)
	}
	members, err = nodes[0].client.Members(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if m.InstanceID == nodes[2].info.InstanceID {
			t.Errorf("stopped instance listed: %+v", m)
		}
	}
}

func TestSimClaimRaceAndHandoff(t *testing.T) {
	sim, nodes := startSim(t, ec2sim.Options{Instances: 3, EIPs: 1, Group: "web"})
	ctx := simCtx(t)
	alloc := sim.Info().EIPs[0].AllocationID
	a, b, c := nodes[0], nodes[1], nodes[2]

	addrs, err := a.client.GroupAddresses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(addrs) != 1 || addrs[0].AllocationID != alloc || addrs[0].Associated() || addrs[0].Group != "web" {
		t.Fatalf("group addresses %+v", addrs)
	}
	self := func(n simNode) Identity {
		id, err := n.md.Identity(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	now := time.Now().UTC().Truncate(time.Millisecond)

	// A claims the unassociated address.
	assocA, err := a.client.Claim(ctx, addrs[0], self(a), "", Lease{Holder: a.info.InstanceID, Term: 1, Renewed: now})
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.client.Addresses(ctx, []string{alloc})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].AssociationID != assocA || got[0].NetworkInterfaceID != a.info.ENIID ||
		got[0].PrivateIP != a.info.PrivateIP || got[0].Lease.Holder != a.info.InstanceID || got[0].Lease.Term != 1 ||
		got[0].Lease.Renewed.Before(now) {
		t.Fatalf("after A's claim: %+v", got)
	}
	observed := got[0]

	// B and C both saw A's association and race to take over.
	ids := []Identity{self(b), self(c)}
	var wg sync.WaitGroup
	results := make([]error, 2)
	assocs := make([]string, 2)
	for i, n := range []simNode{b, c} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assocs[i], results[i] = n.client.Claim(ctx, observed, ids[i], "",
				Lease{Holder: n.info.InstanceID, Term: 2, Renewed: time.Now()})
		}()
	}
	wg.Wait()
	winner, loser := -1, -1
	for i, err := range results {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("two winners: %v %v", assocs, results)
			}
			winner = i
		case errors.Is(err, ErrAlreadyAssociated) || errors.Is(err, ErrStaleAssociation):
			loser = i
		default:
			t.Fatalf("claim %d: unexpected error %v", i, err)
		}
	}
	if winner < 0 || loser < 0 {
		t.Fatalf("want one winner and one loser: %v", results)
	}
	w := []simNode{b, c}[winner]
	view, _ := sim.Address(alloc)
	if view.NetworkInterfaceID != w.info.ENIID || view.AssociationID != assocs[winner] || view.Tags[TagHolder] != w.info.InstanceID {
		t.Fatalf("after race: %+v (winner %s)", view, w.info.InstanceID)
	}

	// The winner hands off to A (planned move).
	got, err = w.client.Addresses(ctx, []string{alloc})
	if err != nil {
		t.Fatal(err)
	}
	target := Instance{InstanceID: a.info.InstanceID, State: "running", NetworkInterfaceID: a.info.ENIID, PrivateIP: a.info.PrivateIP}
	assoc, err := w.client.Handoff(ctx, got[0], target, "", Lease{Holder: a.info.InstanceID, Term: 3, Renewed: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	view, _ = sim.Address(alloc)
	if view.NetworkInterfaceID != a.info.ENIID || view.AssociationID != assoc || view.Tags[TagHolder] != a.info.InstanceID || view.Tags[TagTerm] != "3" {
		t.Fatalf("after handoff: %+v", view)
	}

	// A stale fence: the loser retries with what it saw before: refused.
	_, err = []simNode{b, c}[loser].client.Claim(ctx, observed, ids[loser], "", Lease{Holder: "x", Term: 2, Renewed: time.Now()})
	if !errors.Is(err, ErrStaleAssociation) {
		t.Fatalf("stale fence: %v", err)
	}
}

func TestSimDryRunAndDenied(t *testing.T) {
	sim, nodes := startSim(t, ec2sim.Options{Instances: 2, EIPs: 1, Group: "web"})
	ctx := simCtx(t)
	info := sim.Info()
	alloc := info.EIPs[0].AllocationID
	n := nodes[0]
	id, err := n.md.Identity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dry := New(Config{Group: "web", DryRun: true, Rate: 100, Burst: 100}, simEC2(t, sim, info, n.info.InstanceID, 3), hclog.NewNullLogger(), nil)
	addrs, err := dry.Addresses(ctx, []string{alloc})
	if err != nil {
		t.Fatal(err)
	}
	assoc, err := dry.Claim(ctx, addrs[0], id, "", Lease{Holder: id.InstanceID, Term: 1, Renewed: time.Now()})
	if err != nil || assoc != "" {
		t.Fatalf("dry-run claim: %q %v", assoc, err)
	}
	if view, _ := sim.Address(alloc); view.AssociationID != "" || view.Tags[TagHolder] != "" {
		t.Fatalf("dry-run changed state: %+v", view)
	}

	sim.SetFaults(ec2sim.Faults{Deny: []string{"AssociateAddress"}})
	for _, c := range []*Client{dry, n.client} {
		_, err = c.Claim(ctx, addrs[0], id, "", Lease{Holder: id.InstanceID, Term: 1, Renewed: time.Now()})
		if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "ec2:AssociateAddress") || !strings.Contains(err.Error(), PolicyPath) {
			t.Fatalf("denied claim: %v", err)
		}
	}
}

func TestSimThrottled(t *testing.T) {
	sim, nodes := startSim(t, ec2sim.Options{Instances: 1, EIPs: 1, Group: "web"})
	ctx := simCtx(t)
	sim.SetFaults(ec2sim.Faults{ThrottleRatio: 1})
	info := sim.Info()
	obs := &simObserver{}
	c := New(Config{Group: "web", Rate: 100, Burst: 100}, simEC2(t, sim, info, nodes[0].info.InstanceID, 2), hclog.NewNullLogger(), obs)
	_, err := c.GroupAddresses(ctx)
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("want ErrThrottled, got %v", err)
	}
	if got := obs.calls(); len(got) != 1 || got[0] != "DescribeAddresses throttled" {
		t.Errorf("observed %v", got)
	}
	// After the SDK's retries, still one call as the Observer sees it.
	if n := sim.Stats().ByAction["DescribeAddresses"]; n != 2 {
		t.Errorf("EC2 saw %d DescribeAddresses attempts, want 2 (one call, one SDK retry)", n)
	}
}

func TestSimNotices(t *testing.T) {
	sim, nodes := startSim(t, ec2sim.Options{Instances: 1, EIPs: 1, Group: "web"})
	ctx := simCtx(t)
	n := nodes[0]
	notices, err := n.md.Notices(ctx)
	if err != nil || len(notices) != 0 {
		t.Fatalf("before: %+v %v", notices, err)
	}
	if err := sim.SpotInterruption(n.info.InstanceID, "terminate"); err != nil {
		t.Fatal(err)
	}
	if err := sim.SetLifecycleState(n.info.InstanceID, "Terminated"); err != nil {
		t.Fatal(err)
	}
	notices, err = n.md.Notices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[NoticeKind]string{}
	for _, x := range notices {
		kinds[x.Kind] = x.Detail
	}
	if kinds[NoticeSpotInterruption] != "terminate" || kinds[NoticeASGTerminating] != "Terminated" {
		t.Fatalf("notices %+v", notices)
	}
}
