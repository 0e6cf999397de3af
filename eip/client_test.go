package eip

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/go-hclog"
)

var (
	self = Identity{InstanceID: "i-self", Region: "us-east-1", AvailabilityZone: "us-east-1a",
		NetworkInterfaceID: "eni-self", PrivateIP: "10.0.0.5"}
	renewedAt = time.Date(2026, 11, 22, 2, 31, 41, 123_000_000, time.UTC)
)

func newTestClient(api EC2API, cfg Config) (*Client, *fakeObserver) {
	obs := &fakeObserver{}
	if cfg.Group == "" {
		cfg.Group = "g1"
	}
	// A large budget: these tests are about calls, not the limiter.
	if cfg.Rate == 0 {
		cfg.Rate, cfg.Burst = 1000, 1000
	}
	return New(cfg, api, hclog.NewNullLogger(), obs), obs
}

func TestClaimFenceOrder(t *testing.T) {
	f := &fakeEC2{}
	c, obs := newTestClient(f, Config{})
	observed := Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.1", AssociationID: "eipassoc-old", InstanceID: "i-dead"}
	lease := Lease{Holder: "i-self", Term: 8, Renewed: renewedAt, Reason: "takeover-stale", Decided: renewedAt}

	start := time.Now()
	assoc, err := c.Claim(context.Background(), observed, self, "", lease)
	if err != nil {
		t.Fatal(err)
	}
	if assoc != "eipassoc-new" {
		t.Fatalf("association %q", assoc)
	}
	if got, want := f.ops(), []string{OpDisassociateAddress, OpAssociateAddress, OpCreateTags}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	dis := f.call(0).(*ec2.DisassociateAddressInput)
	if aws.ToString(dis.AssociationId) != "eipassoc-old" || dis.PublicIp != nil || dis.DryRun != nil {
		t.Errorf("disassociate input %+v", dis)
	}
	as := f.call(1).(*ec2.AssociateAddressInput)
	if aws.ToString(as.AllocationId) != "eipalloc-1" ||
		aws.ToString(as.NetworkInterfaceId) != "eni-self" ||
		aws.ToString(as.PrivateIpAddress) != "10.0.0.5" ||
		as.AllowReassociation == nil || *as.AllowReassociation ||
		as.InstanceId != nil || as.PublicIp != nil || as.DryRun != nil {
		t.Errorf("associate input %+v", as)
	}
	checkMoveTags(t, f.call(2).(*ec2.CreateTagsInput), "eipalloc-1", lease, start)
	want := []string{"DisassociateAddress success", "AssociateAddress success", "CreateTags success"}
	if got := obs.ec2Calls(); !reflect.DeepEqual(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
}

func TestClaimUnassociatedSkipsDisassociate(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	_, err := c.Claim(context.Background(), Address{AllocationID: "eipalloc-1"}, self, "", Lease{Holder: "i-self", Term: 1, Renewed: renewedAt})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.ops(), []string{OpAssociateAddress, OpCreateTags}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
}

func TestClaimLosesRace(t *testing.T) {
	observed := Address{AllocationID: "eipalloc-1", AssociationID: "eipassoc-old"}
	lease := Lease{Holder: "i-self", Term: 2, Renewed: renewedAt}
	t.Run("stale association", func(t *testing.T) {
		f := &fakeEC2{disassociateAddress: func(*ec2.DisassociateAddressInput) (*ec2.DisassociateAddressOutput, error) {
			return nil, apiErr("InvalidAssociationID.NotFound")
		}}
		c, obs := newTestClient(f, Config{})
		assoc, err := c.Claim(context.Background(), observed, self, "", lease)
		assertKind(t, err, ErrStaleAssociation)
		if assoc != "" || !strings.Contains(err.Error(), "eipassoc-old") || !strings.Contains(err.Error(), "eipalloc-1") {
			t.Errorf("assoc %q err %q", assoc, err)
		}
		if got := f.ops(); !reflect.DeepEqual(got, []string{OpDisassociateAddress}) {
			t.Errorf("calls after losing: %v", got)
		}
		if got := obs.ec2Calls(); !reflect.DeepEqual(got, []string{"DisassociateAddress conflict"}) {
			t.Errorf("observed %v", got)
		}
	})
	t.Run("already associated", func(t *testing.T) {
		f := &fakeEC2{associateAddress: func(*ec2.AssociateAddressInput) (*ec2.AssociateAddressOutput, error) {
			return nil, apiErr("Resource.AlreadyAssociated")
		}}
		c, _ := newTestClient(f, Config{})
		_, err := c.Claim(context.Background(), observed, self, "", lease)
		assertKind(t, err, ErrAlreadyAssociated)
		if got := f.ops(); !reflect.DeepEqual(got, []string{OpDisassociateAddress, OpAssociateAddress}) {
			t.Errorf("calls after losing: %v", got)
		}
	})
	t.Run("renew fails after association", func(t *testing.T) {
		f := &fakeEC2{createTags: func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
			return nil, apiErr("InternalError")
		}}
		c, _ := newTestClient(f, Config{})
		assoc, err := c.Claim(context.Background(), observed, self, "", lease)
		assertKind(t, err, ErrUnavailable)
		if assoc != "eipassoc-new" {
			t.Errorf("association %q: should report the association made", assoc)
		}
	})
}

func TestClaimRefusesWithoutENI(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	noENI := self
	noENI.NetworkInterfaceID = ""
	_, err := c.Claim(context.Background(), Address{AllocationID: "eipalloc-1"}, noENI, "", Lease{Term: 1})
	assertKind(t, err, ErrInvalidRequest)
	_, err = c.Claim(context.Background(), Address{AllocationID: "eipalloc-1"}, self, "", Lease{Term: -1})
	assertKind(t, err, ErrInvalidRequest)
	if len(f.ops()) != 0 {
		t.Fatalf("calls sent: %v", f.ops())
	}
}

func TestHandoff(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	addr := Address{AllocationID: "eipalloc-1", AssociationID: "eipassoc-mine", PublicIP: "203.0.113.1"}
	target := Instance{InstanceID: "i-target", State: "running", NetworkInterfaceID: "eni-target", PrivateIP: "10.0.1.7"}
	lease := Lease{Holder: "i-target", Term: 4, Renewed: renewedAt, Reason: "handoff-unhealthy", Decided: renewedAt}
	start := time.Now()
	assoc, err := c.Handoff(context.Background(), addr, target, "", lease)
	if err != nil || assoc != "eipassoc-new" {
		t.Fatalf("assoc %q err %v", assoc, err)
	}
	if got, want := f.ops(), []string{OpAssociateAddress, OpCreateTags}; !reflect.DeepEqual(got, want) {
		t.Fatalf("calls %v, want %v", got, want)
	}
	as := f.call(0).(*ec2.AssociateAddressInput)
	if aws.ToString(as.AllocationId) != "eipalloc-1" || aws.ToString(as.NetworkInterfaceId) != "eni-target" ||
		aws.ToString(as.PrivateIpAddress) != "10.0.1.7" || !aws.ToBool(as.AllowReassociation) || as.InstanceId != nil {
		t.Errorf("associate input %+v", as)
	}
	checkMoveTags(t, f.call(1).(*ec2.CreateTagsInput), "eipalloc-1", lease, start)

	// The lease must name the target.
	f2 := &fakeEC2{}
	c2, _ := newTestClient(f2, Config{})
	_, err = c2.Handoff(context.Background(), addr, target, "", Lease{Holder: "i-other", Term: 4})
	assertKind(t, err, ErrInvalidRequest)
	_, err = c2.Handoff(context.Background(), addr, Instance{InstanceID: "i-noeni"}, "", lease)
	assertKind(t, err, ErrInvalidRequest)
	if len(f2.ops()) != 0 {
		t.Fatalf("calls sent for invalid handoffs: %v", f2.ops())
	}
}

// checkMoveTags checks the lease written by Claim or Handoff: renewed is
// when the association was confirmed (not before the call started), so the
// new holder can measure the move; reason and decided are carried over.
func checkMoveTags(t *testing.T, in *ec2.CreateTagsInput, alloc string, lease Lease, start time.Time) {
	t.Helper()
	got := tagMap(in.Tags)
	renewed, err := time.Parse(time.RFC3339Nano, got[TagRenewed])
	if err != nil || renewed.Before(start.Truncate(time.Millisecond)) {
		t.Errorf("renewed %q: want the confirmation time, not before %s (err %v)", got[TagRenewed], start, err)
	}
	lease.Renewed = renewed
	checkLeaseTags(t, in, alloc, lease)
}

func checkLeaseTags(t *testing.T, in *ec2.CreateTagsInput, alloc string, lease Lease) {
	t.Helper()
	if !reflect.DeepEqual(in.Resources, []string{alloc}) {
		t.Errorf("CreateTags resources %v", in.Resources)
	}
	got := tagMap(in.Tags)
	want := map[string]string{
		TagHolder:  lease.Holder,
		TagTerm:    fmt.Sprint(lease.Term),
		TagRenewed: lease.Renewed.UTC().Format(RenewedLayout),
	}
	if lease.Reason != "" {
		want[TagReason] = lease.Reason
	}
	if !lease.Decided.IsZero() {
		want[TagDecided] = lease.Decided.UTC().Format(RenewedLayout)
	}
	if lease.Reason != "" {
		want[TagFrom] = lease.From // written with every move, even empty
	}
	if len(in.Tags) != len(want) || !reflect.DeepEqual(got, want) {
		t.Errorf("CreateTags tags %v, want %v", got, want)
	}
}

func TestWriteLeaseOneCall(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	local := time.FixedZone("X", 3600)
	lease := Lease{Holder: "i-self", Term: 12, Renewed: renewedAt.In(local)}
	if err := c.WriteLease(context.Background(), "eipalloc-9", lease); err != nil {
		t.Fatal(err)
	}
	if len(f.ops()) != 1 {
		t.Fatalf("calls %v", f.ops())
	}
	in := f.call(0).(*ec2.CreateTagsInput)
	checkLeaseTags(t, in, "eipalloc-9", lease)
	if v := tagMap(in.Tags)[TagRenewed]; v != "2026-11-22T02:31:41.123Z" {
		t.Errorf("renewed written as %q", v)
	}
}

// TestRenewBatch: one CreateTags renews every EIP held, and never writes
// the term, so a late renewal cannot roll a term back.
func TestRenewBatch(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	ids := []string{"eipalloc-1", "eipalloc-2", "eipalloc-3"}
	if err := c.Renew(context.Background(), ids, "i-self", renewedAt); err != nil {
		t.Fatal(err)
	}
	if len(f.ops()) != 1 {
		t.Fatalf("calls %v, want one CreateTags", f.ops())
	}
	in := f.call(0).(*ec2.CreateTagsInput)
	if !reflect.DeepEqual(in.Resources, ids) {
		t.Errorf("resources %v", in.Resources)
	}
	want := map[string]string{TagHolder: "i-self", TagRenewed: "2026-11-22T02:31:41.123Z"}
	if got := tagMap(in.Tags); !reflect.DeepEqual(got, want) {
		t.Errorf("tags %v, want %v (no term)", got, want)
	}
	if err := c.Renew(context.Background(), nil, "i-self", renewedAt); err != nil || len(f.ops()) != 1 {
		t.Errorf("nothing to renew: %v, calls %v", err, f.ops())
	}
	if err := c.Renew(context.Background(), ids, "", renewedAt); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("no holder: %v", err)
	}
}

func TestAddresses(t *testing.T) {
	f := &fakeEC2{describeAddresses: func(in *ec2.DescribeAddressesInput) (*ec2.DescribeAddressesOutput, error) {
		return &ec2.DescribeAddressesOutput{Addresses: []types.Address{
			{AllocationId: strp("eipalloc-1"), PublicIp: strp("203.0.113.1"), AssociationId: strp("eipassoc-1"),
				InstanceId: strp("i-1"), NetworkInterfaceId: strp("eni-1"), PrivateIpAddress: strp("10.0.0.1"),
				Tags: []types.Tag{
					{Key: strp(TagGroup), Value: strp("g1")}, {Key: strp(TagHolder), Value: strp("i-1")},
					{Key: strp(TagTerm), Value: strp("3")}, {Key: strp(TagRenewed), Value: strp("2026-11-22T02:31:41.123Z")},
				}},
			{AllocationId: strp("eipalloc-2"), PublicIp: strp("203.0.113.2"),
				Tags: []types.Tag{{Key: strp(TagTerm), Value: strp("x")}}},
		}}, nil
	}}
	c, _ := newTestClient(f, Config{})
	got, err := c.Addresses(context.Background(), []string{"eipalloc-1", "eipalloc-2"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Address{
		{AllocationID: "eipalloc-1", PublicIP: "203.0.113.1", AssociationID: "eipassoc-1", InstanceID: "i-1",
			NetworkInterfaceID: "eni-1", PrivateIP: "10.0.0.1", Group: "g1",
			Lease: Lease{Holder: "i-1", Term: 3, Renewed: renewedAt}},
		{AllocationID: "eipalloc-2", PublicIP: "203.0.113.2", Lease: Lease{Invalid: []string{TagTerm}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	in := f.call(0).(*ec2.DescribeAddressesInput)
	// A filter, not AllocationIds: one released EIP must not fail the
	// read of the others (InvalidAllocationID.NotFound fails the call).
	if len(in.AllocationIds) != 0 || len(in.Filters) != 1 || aws.ToString(in.Filters[0].Name) != "allocation-id" ||
		!reflect.DeepEqual(in.Filters[0].Values, []string{"eipalloc-1", "eipalloc-2"}) {
		t.Errorf("input %+v", in)
	}
	if got[0].Associated() != true || got[1].Associated() {
		t.Error("Associated()")
	}

	// No IDs: no call (an empty list would describe the whole account).
	if a, err := c.Addresses(context.Background(), nil); err != nil || a != nil || len(f.ops()) != 1 {
		t.Errorf("empty: %v %v %v", a, err, f.ops())
	}

	if _, err := c.GroupAddresses(context.Background()); err != nil {
		t.Fatal(err)
	}
	gin := f.call(1).(*ec2.DescribeAddressesInput)
	if len(gin.AllocationIds) != 0 || len(gin.Filters) != 1 || aws.ToString(gin.Filters[0].Name) != "tag:eipd:group" ||
		!reflect.DeepEqual(gin.Filters[0].Values, []string{"g1"}) {
		t.Errorf("group input %+v", gin)
	}
}

func instanceFixture(id string, tags map[string]string) types.Instance {
	var ts []types.Tag
	for k, v := range tags {
		ts = append(ts, types.Tag{Key: strp(k), Value: strp(v)})
	}
	return types.Instance{
		InstanceId: strp(id),
		State:      &types.InstanceState{Name: types.InstanceStateNameRunning, Code: aws.Int32(16)},
		Placement:  &types.Placement{AvailabilityZone: strp("us-east-1b")},
		LaunchTime: aws.Time(renewedAt),
		NetworkInterfaces: []types.InstanceNetworkInterface{
			{NetworkInterfaceId: strp("eni-trunk-" + id), PrivateIpAddress: strp("10.9.9.9"),
				Attachment: &types.InstanceNetworkInterfaceAttachment{DeviceIndex: aws.Int32(1), NetworkCardIndex: aws.Int32(0)}},
			{NetworkInterfaceId: strp("eni-" + id), PrivateIpAddress: strp("10.0.0.9"),
				Attachment: &types.InstanceNetworkInterfaceAttachment{DeviceIndex: aws.Int32(0), NetworkCardIndex: aws.Int32(0)},
				PrivateIpAddresses: []types.InstancePrivateIpAddress{
					{PrivateIpAddress: strp("10.0.0.99"), Primary: aws.Bool(false)},
					{PrivateIpAddress: strp("10.0.0.9"), Primary: aws.Bool(true)},
				}},
		},
		Tags: ts,
	}
}

func TestMembersPaging(t *testing.T) {
	pages := map[string]*ec2.DescribeInstancesOutput{
		"": {Reservations: []types.Reservation{{Instances: []types.Instance{
			instanceFixture("i-1", map[string]string{TagGroup: "g1", TagState: "ready", TagPriority: "10"}),
		}}}, NextToken: strp("p2")},
		"p2": {Reservations: []types.Reservation{
			{Instances: []types.Instance{instanceFixture("i-2", map[string]string{TagGroup: "g1", TagState: "bogus", TagPriority: "high"})}},
			{Instances: []types.Instance{instanceFixture("i-3", map[string]string{TagGroup: "g1", TagState: "draining"})}},
		}, NextToken: strp("p3")},
		"p3": {Reservations: []types.Reservation{{Instances: []types.Instance{
			instanceFixture("i-4", map[string]string{TagGroup: "g1", TagState: "unhealthy", TagPriority: "-2"}),
		}}}},
	}
	f := &fakeEC2{describeInstances: func(in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
		return pages[aws.ToString(in.NextToken)], nil
	}}
	c, obs := newTestClient(f, Config{})
	got, err := c.Members(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range got {
		ids = append(ids, fmt.Sprintf("%s/%s/%d/%s/%s", m.InstanceID, m.EIPDState, m.Priority, m.NetworkInterfaceID, m.PrivateIP))
	}
	want := []string{"i-1/ready/10/eni-i-1/10.0.0.9", "i-2//0/eni-i-2/10.0.0.9", "i-3/draining/0/eni-i-3/10.0.0.9", "i-4/unhealthy/-2/eni-i-4/10.0.0.9"}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("members %v, want %v", ids, want)
	}
	if !got[0].Running() || got[0].AvailabilityZone != "us-east-1b" || !got[0].LaunchTime.Equal(renewedAt) {
		t.Errorf("member fields %+v", got[0])
	}
	if n := len(f.ops()); n != 3 {
		t.Fatalf("%d calls, want 3", n)
	}
	for i, tok := range []string{"", "p2", "p3"} {
		in := f.call(i).(*ec2.DescribeInstancesInput)
		if aws.ToString(in.NextToken) != tok || aws.ToInt32(in.MaxResults) != 1000 || len(in.InstanceIds) != 0 {
			t.Errorf("page %d input %+v", i, in)
		}
		filters := map[string][]string{}
		for _, fl := range in.Filters {
			filters[aws.ToString(fl.Name)] = fl.Values
		}
		if !reflect.DeepEqual(filters, map[string][]string{"tag:eipd:group": {"g1"}, "instance-state-name": {"running"}}) {
			t.Errorf("page %d filters %v", i, filters)
		}
	}
	if n := len(obs.ec2Calls()); n != 3 {
		t.Errorf("observed %d calls", n)
	}
}

func TestMembersRepeatedTokenStops(t *testing.T) {
	f := &fakeEC2{describeInstances: func(in *ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
		return &ec2.DescribeInstancesOutput{NextToken: strp("same")}, nil
	}}
	c, _ := newTestClient(f, Config{})
	_, err := c.Members(context.Background())
	assertKind(t, err, ErrUnavailable)
	if n := len(f.ops()); n != 2 {
		t.Errorf("%d calls", n)
	}
}

// captureLogger returns a Debug-level logger writing into a buffer.
func captureLogger() (hclog.Logger, *strings.Builder) {
	var b strings.Builder
	return hclog.New(&hclog.LoggerOptions{Output: &safeWriter{b: &b}, Level: hclog.Debug}), &b
}

type safeWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *safeWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func TestInvalidTagsWarnOnce(t *testing.T) {
	f := &fakeEC2{
		describeAddresses: func(*ec2.DescribeAddressesInput) (*ec2.DescribeAddressesOutput, error) {
			return &ec2.DescribeAddressesOutput{Addresses: []types.Address{{AllocationId: strp("eipalloc-1"),
				Tags: []types.Tag{{Key: strp(TagRenewed), Value: strp("yesterday")}}}}}, nil
		},
		describeInstances: func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
			return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: []types.Instance{
				instanceFixture("i-1", map[string]string{TagPriority: "high"})}}}}, nil
		},
	}
	log, buf := captureLogger()
	c := New(Config{Group: "g1", Rate: 1000, Burst: 1000}, f, log, nil)
	for range 3 {
		if _, err := c.GroupAddresses(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Members(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	if n := strings.Count(out, "yesterday"); n != 1 {
		t.Errorf("bad renewed value logged %d times:\n%s", n, out)
	}
	if n := strings.Count(out, "high"); n != 1 {
		t.Errorf("bad priority value logged %d times:\n%s", n, out)
	}
}

func TestSetState(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	if err := c.SetState(context.Background(), "i-self", StateDraining); err != nil {
		t.Fatal(err)
	}
	in := f.call(0).(*ec2.CreateTagsInput)
	if !reflect.DeepEqual(in.Resources, []string{"i-self"}) || !reflect.DeepEqual(tagMap(in.Tags), map[string]string{TagState: "draining"}) {
		t.Errorf("input %+v", in)
	}
	assertKind(t, c.SetState(context.Background(), "i-self", "sleepy"), ErrInvalidRequest)
	if len(f.ops()) != 1 {
		t.Errorf("calls %v", f.ops())
	}
}

func TestDryRun(t *testing.T) {
	dry := func(b *bool) (bool, error) {
		if !aws.ToBool(b) {
			return false, errors.New("DryRun flag not set")
		}
		return true, apiErr("DryRunOperation")
	}
	f := &fakeEC2{
		associateAddress: func(in *ec2.AssociateAddressInput) (*ec2.AssociateAddressOutput, error) {
			_, err := dry(in.DryRun)
			return nil, err
		},
		disassociateAddress: func(in *ec2.DisassociateAddressInput) (*ec2.DisassociateAddressOutput, error) {
			_, err := dry(in.DryRun)
			return nil, err
		},
		createTags: func(in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
			_, err := dry(in.DryRun)
			return nil, err
		},
	}
	log, buf := captureLogger()
	obs := &fakeObserver{}
	c := New(Config{Group: "g1", DryRun: true, Rate: 1000, Burst: 1000}, f, log, obs)
	ctx := context.Background()
	lease := Lease{Holder: "i-self", Term: 1, Renewed: renewedAt}
	assoc, err := c.Claim(ctx, Address{AllocationID: "eipalloc-1", AssociationID: "eipassoc-old"}, self, "", lease)
	if err != nil || assoc != "" {
		t.Fatalf("claim: %q %v", assoc, err)
	}
	target := Instance{InstanceID: "i-t", NetworkInterfaceID: "eni-t", PrivateIP: "10.0.0.7"}
	assoc, err = c.Handoff(ctx, Address{AllocationID: "eipalloc-1"}, target, "", Lease{Holder: "i-t", Term: 2, Renewed: renewedAt})
	if err != nil || assoc != "" {
		t.Fatalf("handoff: %q %v", assoc, err)
	}
	if err := c.Renew(ctx, []string{"eipalloc-1"}, "i-self", renewedAt); err != nil {
		t.Fatal(err)
	}
	if err := c.SetState(ctx, "i-self", StateReady); err != nil {
		t.Fatal(err)
	}
	for _, o := range obs.ec2Calls() {
		if !strings.HasSuffix(o, " dry_run") {
			t.Errorf("observed %q, want dry_run", o)
		}
	}
	if len(obs.ec2Calls()) != 7 {
		t.Errorf("observed %v", obs.ec2Calls())
	}
	for _, want := range []string{"dry-run: would disassociate", "dry-run: would associate", "dry-run: would hand off", "dry-run: would set state"} {
		if !strings.Contains(buf.String(), "[INFO]  "+want) {
			t.Errorf("log lacks Info %q:\n%s", want, buf.String())
		}
	}

	// A permission problem still fails in dry-run: that is what it is for.
	f.createTags = func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
		return nil, apiErr("UnauthorizedOperation")
	}
	err = c.Renew(ctx, []string{"eipalloc-1"}, "i-self", renewedAt)
	assertKind(t, err, ErrUnauthorized)
	if !strings.Contains(err.Error(), "ec2:CreateTags") {
		t.Errorf("error %q does not name the action", err)
	}
}

func TestNonDryRunSendsNoDryRunFlag(t *testing.T) {
	// Without DryRun, a DryRunOperation answer is not success.
	f := &fakeEC2{createTags: func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
		return nil, apiErr("DryRunOperation")
	}}
	c, _ := newTestClient(f, Config{})
	assertKind(t, c.WriteLease(context.Background(), "eipalloc-1", Lease{Term: 1, Renewed: renewedAt}), ErrDryRun)
}

func TestThrottlePausesAllCalls(t *testing.T) {
	throttle := true
	f := &fakeEC2{describeAddresses: func(*ec2.DescribeAddressesInput) (*ec2.DescribeAddressesOutput, error) {
		if throttle {
			return nil, apiErr("RequestLimitExceeded")
		}
		return &ec2.DescribeAddressesOutput{}, nil
	}}
	c, obs := newTestClient(f, Config{})
	c.limiter.jitter = func() float64 { return 0.9 }
	_, err := c.GroupAddresses(context.Background())
	assertKind(t, err, ErrThrottled)

	// Paused for about 0.9s: a call that must finish sooner is refused
	// without being sent, for any operation.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = c.SetState(ctx, "i-1", StateReady)
	assertKind(t, err, ErrThrottled)
	if got := f.ops(); len(got) != 1 {
		t.Fatalf("calls sent during the pause: %v", got)
	}
	if got := obs.ec2Calls(); !reflect.DeepEqual(got, []string{"DescribeAddresses throttled", "CreateTags throttled"}) {
		t.Errorf("observed %v", got)
	}

	// After the pause calls go through, and success resets the backoff.
	throttle = false
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := c.GroupAddresses(ctx2); err != nil {
		t.Fatal(err)
	}
	if c.limiter.failures != 0 {
		t.Errorf("backoff not reset: %d", c.limiter.failures)
	}
}

func TestEveryOperationListed(t *testing.T) {
	// Each method of EC2API must be in Operations (metrics labels, IAM test).
	typ := reflect.TypeOf((*EC2API)(nil)).Elem()
	listed := map[string]bool{}
	for _, op := range Operations {
		listed[op] = true
	}
	for i := range typ.NumMethod() {
		if name := typ.Method(i).Name; !listed[name] {
			t.Errorf("EC2API method %s not in Operations", name)
		}
	}
	if len(Operations) != typ.NumMethod() {
		t.Errorf("Operations %v vs %d methods", Operations, typ.NumMethod())
	}
}
