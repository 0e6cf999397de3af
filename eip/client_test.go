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

var renewedAt = time.Date(2026, 11, 22, 2, 31, 41, 123_000_000, time.UTC)

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

// TestAssociate: one AssociateAddress, always by ENI and private IP (never
// by instance), with AllowReassociation as asked: false is a takeover's
// fence, true a handoff's make-before-break move.
func TestAssociate(t *testing.T) {
	for _, reassociate := range []bool{false, true} {
		t.Run(fmt.Sprint("reassociate=", reassociate), func(t *testing.T) {
			f := &fakeEC2{}
			c, obs := newTestClient(f, Config{})
			assoc, err := c.Associate(context.Background(), "eipalloc-1", "eni-target", "10.0.1.7", reassociate)
			if err != nil || assoc != "eipassoc-new" {
				t.Fatalf("assoc %q err %v", assoc, err)
			}
			if got := f.ops(); !reflect.DeepEqual(got, []string{OpAssociateAddress}) {
				t.Fatalf("calls %v, want one AssociateAddress", got)
			}
			as := f.call(0).(*ec2.AssociateAddressInput)
			if aws.ToString(as.AllocationId) != "eipalloc-1" || aws.ToString(as.NetworkInterfaceId) != "eni-target" ||
				aws.ToString(as.PrivateIpAddress) != "10.0.1.7" || as.AllowReassociation == nil || *as.AllowReassociation != reassociate ||
				as.InstanceId != nil || as.PublicIp != nil || as.DryRun != nil {
				t.Errorf("associate input %+v", as)
			}
			if got := obs.ec2Calls(); !reflect.DeepEqual(got, []string{"AssociateAddress success"}) {
				t.Errorf("observed %v", got)
			}
		})
	}
}

// TestAssociateFenced: with AllowReassociation=false, an EIP associated
// elsewhere fails the call (someone else moved it first): a conflict.
func TestAssociateFenced(t *testing.T) {
	f := &fakeEC2{associateAddress: func(in *ec2.AssociateAddressInput) (*ec2.AssociateAddressOutput, error) {
		return nil, apiErr("Resource.AlreadyAssociated")
	}}
	c, obs := newTestClient(f, Config{})
	assoc, err := c.Associate(context.Background(), "eipalloc-1", "eni-self", "10.0.0.5", false)
	assertKind(t, err, ErrAlreadyAssociated)
	assertNoAnswer(t, err, false)
	if assoc != "" || !strings.Contains(err.Error(), "eipalloc-1") || !strings.Contains(err.Error(), "eni-self") {
		t.Errorf("assoc %q err %q: want no association and an error naming the EIP and the ENI", assoc, err)
	}
	if got := obs.ec2Calls(); !reflect.DeepEqual(got, []string{"AssociateAddress conflict"}) {
		t.Errorf("observed %v", got)
	}
}

// TestAssociateNoAnswer: a call that got no answer may have moved the EIP:
// the caller learns it (ErrNoAnswer), not just that it failed.
func TestAssociateNoAnswer(t *testing.T) {
	f := &fakeEC2{associateAddress: func(*ec2.AssociateAddressInput) (*ec2.AssociateAddressOutput, error) {
		return nil, context.DeadlineExceeded
	}}
	c, _ := newTestClient(f, Config{})
	_, err := c.Associate(context.Background(), "eipalloc-1", "eni-self", "10.0.0.5", false)
	assertKind(t, err, ErrUnavailable)
	assertNoAnswer(t, err, true)

	f.associateAddress = func(*ec2.AssociateAddressInput) (*ec2.AssociateAddressOutput, error) {
		return nil, apiErr("InternalError")
	}
	_, err = c.Associate(context.Background(), "eipalloc-1", "eni-self", "10.0.0.5", false)
	assertKind(t, err, ErrUnavailable)
	assertNoAnswer(t, err, false)
}

func TestAssociateRefusesWithoutENIOrPrivateIP(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	_, err := c.Associate(context.Background(), "eipalloc-1", "", "10.0.0.5", false)
	assertKind(t, err, ErrInvalidRequest)
	_, err = c.Associate(context.Background(), "eipalloc-1", "eni-self", "", true)
	assertKind(t, err, ErrInvalidRequest)
	if len(f.ops()) != 0 {
		t.Fatalf("calls sent: %v", f.ops())
	}
}

// TestDisassociate: a takeover's fence is the association ID it read; one
// that no longer exists fails the call (someone moved the EIP since).
func TestDisassociate(t *testing.T) {
	f := &fakeEC2{}
	c, obs := newTestClient(f, Config{})
	if err := c.Disassociate(context.Background(), "eipassoc-old"); err != nil {
		t.Fatal(err)
	}
	dis := f.call(0).(*ec2.DisassociateAddressInput)
	if aws.ToString(dis.AssociationId) != "eipassoc-old" || dis.PublicIp != nil || dis.DryRun != nil {
		t.Errorf("disassociate input %+v", dis)
	}

	f.disassociateAddress = func(*ec2.DisassociateAddressInput) (*ec2.DisassociateAddressOutput, error) {
		return nil, apiErr("InvalidAssociationID.NotFound")
	}
	err := c.Disassociate(context.Background(), "eipassoc-old")
	assertKind(t, err, ErrStaleAssociation)
	if !strings.Contains(err.Error(), "eipassoc-old") {
		t.Errorf("error %q does not name the association", err)
	}
	if got := obs.ec2Calls(); !reflect.DeepEqual(got, []string{"DisassociateAddress success", "DisassociateAddress conflict"}) {
		t.Errorf("observed %v", got)
	}
}

// TestWriteLease: one CreateTags writes the group lease on every EIP given,
// and only the lease: a renewal never touches the record of a move.
func TestWriteLease(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	ids := []string{"eipalloc-1", "eipalloc-2", "eipalloc-3"}
	local := time.FixedZone("X", 3600)
	lease := GroupLease{Coordinator: "i-self", Epoch: 12, Renewed: renewedAt.In(local)}
	if err := c.WriteLease(context.Background(), ids, lease); err != nil {
		t.Fatal(err)
	}
	if got := f.ops(); !reflect.DeepEqual(got, []string{OpCreateTags}) {
		t.Fatalf("calls %v, want one CreateTags", got)
	}
	in := f.call(0).(*ec2.CreateTagsInput)
	if !reflect.DeepEqual(in.Resources, ids) || in.DryRun != nil {
		t.Errorf("CreateTags input %+v", in)
	}
	want := map[string]string{TagCoordinator: "i-self", TagEpoch: "12", TagRenewed: "2026-11-22T02:31:41.123Z"}
	if got := tagMap(in.Tags); len(in.Tags) != len(want) || !reflect.DeepEqual(got, want) {
		t.Errorf("tags %v, want %v", got, want)
	}
}

func TestWriteLeaseRefusesIncompleteLease(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	ctx := context.Background()
	good := GroupLease{Coordinator: "i-self", Epoch: 1, Renewed: renewedAt}
	for name, err := range map[string]error{
		"no EIP":         c.WriteLease(ctx, nil, good),
		"no coordinator": c.WriteLease(ctx, []string{"eipalloc-1"}, GroupLease{Epoch: 1, Renewed: renewedAt}),
		"epoch 0":        c.WriteLease(ctx, []string{"eipalloc-1"}, GroupLease{Coordinator: "i-self", Renewed: renewedAt}),
		"negative epoch": c.WriteLease(ctx, []string{"eipalloc-1"}, GroupLease{Coordinator: "i-self", Epoch: -1, Renewed: renewedAt}),
	} {
		if !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: %v, want ErrInvalidRequest", name, err)
		}
	}
	if len(f.ops()) != 0 {
		t.Fatalf("calls sent: %v", f.ops())
	}
}

// TestWriteLeaseReleasedEIP: one EIP of the batch no longer exists: the
// whole call fails with ErrNotFound (the caller reads and renews without
// it).
func TestWriteLeaseReleasedEIP(t *testing.T) {
	f := &fakeEC2{createTags: func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
		return nil, apiErr("InvalidAllocationID.NotFound")
	}}
	c, obs := newTestClient(f, Config{})
	err := c.WriteLease(context.Background(), []string{"eipalloc-1", "eipalloc-gone"}, GroupLease{Coordinator: "i-self", Epoch: 3, Renewed: renewedAt})
	assertKind(t, err, ErrNotFound)
	if !strings.Contains(err.Error(), "eipalloc-gone") || !strings.Contains(err.Error(), "epoch 3") {
		t.Errorf("error %q: want the EIPs and the epoch named", err)
	}
	if got := obs.ec2Calls(); !reflect.DeepEqual(got, []string{"CreateTags not_found"}) {
		t.Errorf("observed %v", got)
	}
}

// TestWriteRecord: one CreateTags on the EIP with every key of the record,
// empty when unknown, so that nothing of an older move survives a newer
// one; the term as "epoch.seq".
func TestWriteRecord(t *testing.T) {
	moved := renewedAt.Add(210 * time.Millisecond)
	for _, c := range []struct {
		name string
		rec  Record
		want map[string]string
	}{
		{"move", Record{Holder: "i-target", Term: Term{4, 2}, Reason: "handoff-unhealthy", Decided: renewedAt, Moved: moved, From: "i-old"},
			map[string]string{TagHolder: "i-target", TagTerm: "4.2", TagReason: "handoff-unhealthy",
				TagDecided: "2026-11-22T02:31:41.123Z", TagMoved: "2026-11-22T02:31:41.333Z", TagFrom: "i-old"}},
		{"takeover of an unassociated EIP", Record{Holder: "i-target", Term: Term{5, 1}, Reason: "takeover-unassociated", Decided: renewedAt, Moved: moved},
			map[string]string{TagHolder: "i-target", TagTerm: "5.1", TagReason: "takeover-unassociated",
				TagDecided: "2026-11-22T02:31:41.123Z", TagMoved: "2026-11-22T02:31:41.333Z", TagFrom: ""}},
		{"matching an association made by hand", Record{Holder: "i-x", Term: Term{5, 2}},
			map[string]string{TagHolder: "i-x", TagTerm: "5.2", TagReason: "", TagDecided: "", TagMoved: "", TagFrom: ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeEC2{}
			cl, _ := newTestClient(f, Config{})
			if err := cl.WriteRecord(context.Background(), "eipalloc-9", c.rec); err != nil {
				t.Fatal(err)
			}
			if got := f.ops(); !reflect.DeepEqual(got, []string{OpCreateTags}) {
				t.Fatalf("calls %v, want one CreateTags", got)
			}
			in := f.call(0).(*ec2.CreateTagsInput)
			if !reflect.DeepEqual(in.Resources, []string{"eipalloc-9"}) {
				t.Errorf("resources %v", in.Resources)
			}
			if got := tagMap(in.Tags); len(in.Tags) != len(c.want) || !reflect.DeepEqual(got, c.want) {
				t.Errorf("tags %v, want %v", got, c.want)
			}
		})
	}
	// A term without an epoch would read back as no term at all.
	f := &fakeEC2{}
	cl, _ := newTestClient(f, Config{})
	assertKind(t, cl.WriteRecord(context.Background(), "eipalloc-9", Record{Holder: "i-x", Term: Term{0, 3}}), ErrInvalidRequest)
	if len(f.ops()) != 0 {
		t.Fatalf("calls sent: %v", f.ops())
	}
}

// TestHeartbeat: eipd:heartbeat on the member's own instance, and nothing
// else.
func TestHeartbeat(t *testing.T) {
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	if err := c.Heartbeat(context.Background(), "i-self", renewedAt.In(time.FixedZone("X", -7200))); err != nil {
		t.Fatal(err)
	}
	in := f.call(0).(*ec2.CreateTagsInput)
	if !reflect.DeepEqual(in.Resources, []string{"i-self"}) ||
		!reflect.DeepEqual(tagMap(in.Tags), map[string]string{TagHeartbeat: "2026-11-22T02:31:41.123Z"}) || len(in.Tags) != 1 {
		t.Errorf("input %+v", in)
	}
	f.createTags = func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) { return nil, apiErr("UnauthorizedOperation") }
	err := c.Heartbeat(context.Background(), "i-self", renewedAt)
	assertKind(t, err, ErrUnauthorized)
	if !strings.Contains(err.Error(), "i-self") || !strings.Contains(err.Error(), "ec2:CreateTags") {
		t.Errorf("error %q: want the instance and the action to grant", err)
	}
}

func TestAddresses(t *testing.T) {
	f := &fakeEC2{describeAddresses: func(in *ec2.DescribeAddressesInput) (*ec2.DescribeAddressesOutput, error) {
		return &ec2.DescribeAddressesOutput{Addresses: []types.Address{
			{AllocationId: strp("eipalloc-1"), PublicIp: strp("203.0.113.1"), AssociationId: strp("eipassoc-1"),
				InstanceId: strp("i-1"), NetworkInterfaceId: strp("eni-1"), PrivateIpAddress: strp("10.0.0.1"),
				Tags: []types.Tag{
					{Key: strp(TagGroup), Value: strp("g1")},
					{Key: strp(TagCoordinator), Value: strp("i-2")}, {Key: strp(TagEpoch), Value: strp("3")},
					{Key: strp(TagRenewed), Value: strp("2026-11-22T02:31:41.123Z")},
					{Key: strp(TagHolder), Value: strp("i-1")}, {Key: strp(TagTerm), Value: strp("3.4")},
					{Key: strp(TagReason), Value: strp("takeover-stale")}, {Key: strp(TagDecided), Value: strp("2026-11-22T02:31:41.123Z")},
					{Key: strp(TagMoved), Value: strp("2026-11-22T02:31:41.323Z")}, {Key: strp(TagFrom), Value: strp("i-0")},
				}},
			{AllocationId: strp("eipalloc-2"), PublicIp: strp("203.0.113.2"),
				Tags: []types.Tag{{Key: strp(TagTerm), Value: strp("7")}, {Key: strp(TagEpoch), Value: strp("x")}}},
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
			Lease: GroupLease{Coordinator: "i-2", Epoch: 3, Renewed: renewedAt},
			Record: Record{Holder: "i-1", Term: Term{3, 4}, Reason: "takeover-stale", Decided: renewedAt,
				Moved: renewedAt.Add(200 * time.Millisecond), From: "i-0"}},
		{AllocationID: "eipalloc-2", PublicIP: "203.0.113.2", Lease: GroupLease{Invalid: []string{TagEpoch}},
			Record: Record{Invalid: []string{TagTerm}}},
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

	// No IDs: every EIP tagged with the group, in one call.
	if _, err := c.Addresses(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	gin := f.call(1).(*ec2.DescribeAddressesInput)
	if len(gin.AllocationIds) != 0 || len(gin.Filters) != 1 || aws.ToString(gin.Filters[0].Name) != "tag:eipd:group" ||
		!reflect.DeepEqual(gin.Filters[0].Values, []string{"g1"}) {
		t.Errorf("group input %+v", gin)
	}
	if n := len(f.ops()); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}

	f.describeAddresses = func(*ec2.DescribeAddressesInput) (*ec2.DescribeAddressesOutput, error) {
		return nil, apiErr("RequestLimitExceeded")
	}
	_, err = c.Addresses(context.Background(), nil)
	assertKind(t, err, ErrThrottled)
	if !strings.Contains(err.Error(), `group "g1"`) {
		t.Errorf("error %q does not name the group", err)
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
					{PrivateIpAddress: strp("10.0.0.99"), Primary: aws.Bool(false),
						Association: &types.InstanceNetworkInterfaceAssociation{PublicIp: strp("203.0.113.5"), IpOwnerId: strp("123456789012")}},
					{PrivateIpAddress: strp("10.0.0.9"), Primary: aws.Bool(true),
						Association: &types.InstanceNetworkInterfaceAssociation{PublicIp: strp("3.3.3.3"), IpOwnerId: strp("amazon")}},
				}},
		},
		Tags: ts,
	}
}

func TestMembersPaging(t *testing.T) {
	pages := map[string]*ec2.DescribeInstancesOutput{
		"": {Reservations: []types.Reservation{{Instances: []types.Instance{
			instanceFixture("i-1", map[string]string{TagGroup: "g1", TagHeartbeat: "2026-11-22T03:31:41.123+01:00", TagPriority: "10"}),
		}}}, NextToken: strp("p2")},
		"p2": {Reservations: []types.Reservation{
			{Instances: []types.Instance{instanceFixture("i-2", map[string]string{TagGroup: "g1", TagHeartbeat: "yesterday", TagPriority: "high"})}},
			{Instances: []types.Instance{instanceFixture("i-3", map[string]string{TagGroup: "g1"})}},
		}, NextToken: strp("p3")},
		"p3": {Reservations: []types.Reservation{{Instances: []types.Instance{
			instanceFixture("i-4", map[string]string{TagGroup: "g1", TagPriority: "-2"}),
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
		hb := "-"
		if !m.Heartbeat.IsZero() {
			hb = m.Heartbeat.Format(time.RFC3339Nano)
		}
		ids = append(ids, fmt.Sprintf("%s/%s/%d/%s/%s", m.InstanceID, hb, m.Priority, m.NetworkInterfaceID, m.PrivateIP))
	}
	want := []string{"i-1/2026-11-22T02:31:41.123Z/10/eni-i-1/10.0.0.9", "i-2/-/0/eni-i-2/10.0.0.9", "i-3/-/0/eni-i-3/10.0.0.9", "i-4/-/-2/eni-i-4/10.0.0.9"}
	if !reflect.DeepEqual(ids, want) {
		t.Fatalf("members %v, want %v", ids, want)
	}
	if !got[0].Running() || got[0].AvailabilityZone != "us-east-1b" || !got[0].LaunchTime.Equal(renewedAt) {
		t.Errorf("member fields %+v", got[0])
	}
	// The primary private IP first; an EIP on a private IP is its public
	// IP, an auto-assigned one (owner amazon) only its AutoPublicIP.
	wantIPs := []PrivateIP{{Address: "10.0.0.9", Primary: true, AutoPublicIP: "3.3.3.3"}, {Address: "10.0.0.99", PublicIP: "203.0.113.5"}}
	if !reflect.DeepEqual(got[0].PrivateIPs, wantIPs) || !reflect.DeepEqual(got[0].Slots(), wantIPs) {
		t.Errorf("private IPs %+v, want %+v", got[0].PrivateIPs, wantIPs)
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
		if !reflect.DeepEqual(filters, map[string][]string{"tag:eipd:group": {"g1"}, "instance-state-name": {"pending", "running", "shutting-down", "stopping", "stopped"}}) {
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
				Tags: []types.Tag{{Key: strp(TagRenewed), Value: strp("yesterday")}, {Key: strp(TagTerm), Value: strp("forty-two")}}}}}, nil
		},
		describeInstances: func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error) {
			return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: []types.Instance{
				instanceFixture("i-1", map[string]string{TagPriority: "high", TagHeartbeat: "noonish"})}}}}, nil
		},
	}
	log, buf := captureLogger()
	c := New(Config{Group: "g1", Rate: 1000, Burst: 1000}, f, log, nil)
	for range 3 {
		if _, err := c.Addresses(context.Background(), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Members(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	out := buf.String()
	for _, v := range []string{"yesterday", "forty-two", "high", "noonish"} {
		if n := strings.Count(out, v); n != 1 {
			t.Errorf("bad value %q logged %d times:\n%s", v, n, out)
		}
	}
}

func TestDryRun(t *testing.T) {
	dry := func(b *bool) error {
		if !aws.ToBool(b) {
			return errors.New("DryRun flag not set")
		}
		return apiErr("DryRunOperation")
	}
	f := &fakeEC2{
		associateAddress: func(in *ec2.AssociateAddressInput) (*ec2.AssociateAddressOutput, error) {
			return nil, dry(in.DryRun)
		},
		disassociateAddress: func(in *ec2.DisassociateAddressInput) (*ec2.DisassociateAddressOutput, error) {
			return nil, dry(in.DryRun)
		},
		createTags: func(in *ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
			return nil, dry(in.DryRun)
		},
	}
	log, buf := captureLogger()
	obs := &fakeObserver{}
	c := New(Config{Group: "g1", DryRun: true, Rate: 1000, Burst: 1000}, f, log, obs)
	ctx := context.Background()
	if err := c.Disassociate(ctx, "eipassoc-old"); err != nil {
		t.Fatalf("disassociate: %v", err)
	}
	if assoc, err := c.Associate(ctx, "eipalloc-1", "eni-self", "10.0.0.5", false); err != nil || assoc != "" {
		t.Fatalf("associate: %q %v", assoc, err)
	}
	if err := c.WriteLease(ctx, []string{"eipalloc-1"}, GroupLease{Coordinator: "i-self", Epoch: 1, Renewed: renewedAt}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteRecord(ctx, "eipalloc-1", Record{Holder: "i-self", Term: Term{1, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Heartbeat(ctx, "i-self", renewedAt); err != nil {
		t.Fatal(err)
	}
	for _, o := range obs.ec2Calls() {
		if !strings.HasSuffix(o, " dry_run") {
			t.Errorf("observed %q, want dry_run", o)
		}
	}
	if len(obs.ec2Calls()) != 5 {
		t.Errorf("observed %v", obs.ec2Calls())
	}
	for _, want := range []string{"dry-run: would disassociate", "dry-run: would associate"} {
		if !strings.Contains(buf.String(), "[INFO]  "+want) {
			t.Errorf("log lacks Info %q:\n%s", want, buf.String())
		}
	}

	// A permission problem still fails in dry-run: that is what it is for.
	f.createTags = func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error) {
		return nil, apiErr("UnauthorizedOperation")
	}
	err := c.WriteLease(ctx, []string{"eipalloc-1"}, GroupLease{Coordinator: "i-self", Epoch: 1, Renewed: renewedAt})
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
	assertKind(t, c.WriteLease(context.Background(), []string{"eipalloc-1"}, GroupLease{Coordinator: "i-self", Epoch: 1, Renewed: renewedAt}), ErrDryRun)
	assertKind(t, c.WriteRecord(context.Background(), "eipalloc-1", Record{Term: Term{1, 1}}), ErrDryRun)
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
	_, err := c.Addresses(context.Background(), nil)
	assertKind(t, err, ErrThrottled)

	// Paused for about 0.9s: a call that must finish sooner is refused
	// without being sent, for any operation.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = c.WriteLease(ctx, []string{"eipalloc-1"}, GroupLease{Coordinator: "i-1", Epoch: 1, Renewed: renewedAt})
	assertKind(t, err, ErrThrottled)
	assertNoAnswer(t, err, false) // never sent
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
	if _, err := c.Addresses(ctx2, nil); err != nil {
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
