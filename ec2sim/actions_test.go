package ec2sim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestAssociationSemantics(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 3, EIPs: 2})
	info := s.Info()
	alloc, alloc2 := info.EIPs[0].AllocationID, info.EIPs[1].AllocationID
	i1, i2, i3 := info.Instances[0].InstanceID, info.Instances[1].InstanceID, info.Instances[2].InstanceID
	c1 := simInstanceClient(t, s, i1)
	c2 := simInstanceClient(t, s, i2)

	// Associate by instance ID, from instance 1's credentials.
	out, err := c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1), AllowReassociation: aws.Bool(false)})
	simOK(t, err)
	assoc1 := aws.ToString(out.AssociationId)
	if !assocIDRE().MatchString(assoc1) {
		t.Fatalf("association id %q", assoc1)
	}
	a := simAddr(t, c1, alloc)
	if aws.ToString(a.InstanceId) != i1 || aws.ToString(a.AssociationId) != assoc1 ||
		aws.ToString(a.NetworkInterfaceId) != info.Instances[0].ENIID || aws.ToString(a.PrivateIpAddress) != "127.0.0.11" {
		t.Fatalf("after associate: %+v", a)
	}
	di, err := c1.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{i1}})
	simOK(t, err)
	inst := di.Reservations[0].Instances[0]
	if aws.ToString(inst.PublicIpAddress) != info.EIPs[0].PublicIP || inst.NetworkInterfaces[0].Association == nil ||
		aws.ToString(inst.NetworkInterfaces[0].Association.PublicIp) != info.EIPs[0].PublicIP {
		t.Fatalf("instance after associate: %+v", inst)
	}

	// Repeating the same association is not an error and keeps the ID.
	again, err := c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1), AllowReassociation: aws.Bool(false)})
	simOK(t, err)
	if aws.ToString(again.AssociationId) != assoc1 {
		t.Fatalf("repeat changed the association: %s", aws.ToString(again.AssociationId))
	}

	// Instance 2 with AllowReassociation=false loses.
	_, err = c2.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i2), AllowReassociation: aws.Bool(false)})
	simWantCode(t, err, "Resource.AlreadyAssociated")

	// Omitting the flag moves the EIP and invalidates the old association.
	mv, err := c2.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i2)})
	simOK(t, err)
	assoc2 := aws.ToString(mv.AssociationId)
	if assoc2 == assoc1 {
		t.Fatal("move kept the association ID")
	}
	_, err = c1.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(assoc1)})
	simWantCode(t, err, "InvalidAssociationID.NotFound")
	di, err = c1.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{i1}})
	simOK(t, err)
	if inst := di.Reservations[0].Instances[0]; inst.PublicIpAddress != nil || inst.NetworkInterfaces[0].Association != nil {
		t.Fatalf("old instance still shows the EIP: %+v", inst)
	}

	// An ENI that already has an EIP loses it to the newcomer.
	_, err = c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc2), NetworkInterfaceId: aws.String(info.Instances[1].ENIID)})
	simOK(t, err)
	if a := simAddr(t, c1, alloc); a.AssociationId != nil || a.InstanceId != nil {
		t.Fatalf("displaced EIP still associated: %+v", a)
	}
	if a := simAddr(t, c1, alloc2); aws.ToString(a.InstanceId) != i2 {
		t.Fatalf("EIP 2: %+v", a)
	}

	// Stopped instances keep their EIP; terminated ones lose it.
	simOK(t, s.StopInstance(i2))
	if a := simAddr(t, c1, alloc2); aws.ToString(a.InstanceId) != i2 {
		t.Fatalf("stopped instance lost its EIP: %+v", a)
	}
	simOK(t, s.StartInstance(i2))
	simOK(t, s.TerminateInstance(i2))
	if a := simAddr(t, c1, alloc2); a.InstanceId != nil {
		t.Fatalf("terminated instance kept its EIP: %+v", a)
	}
	_, err = c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc2), InstanceId: aws.String(i2)})
	simWantCode(t, err, "InvalidInstanceID")
	_, err = c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc2), NetworkInterfaceId: aws.String(info.Instances[1].ENIID)})
	simWantCode(t, err, "InvalidNetworkInterfaceID.NotFound")

	// Operator move and plain disassociate.
	simOK(t, s.Associate(alloc, i3))
	v, ok := s.Address(alloc)
	if !ok || v.InstanceID != i3 || v.Tags["eipd:group"] != "demo" {
		t.Fatalf("Address = %+v", v)
	}
	_, err = c1.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(v.AssociationID)})
	simOK(t, err)

	got := []string{}
	for _, e := range s.Events() {
		got = append(got, fmt.Sprintf("%s %s>%s by %s", e.Action, short(e.From), short(e.To), short(e.Caller)))
	}
	want := []string{
		"associate ->i1 by i1",
		"move i1>i2 by i2",
		"displaced i2>- by i1",
		"associate ->i2 by i1",
		"terminate i2>- by -",
		"associate ->i3 by -",
		"disassociate i3>- by i1",
	}
	ids := map[string]string{i1: "i1", i2: "i2", i3: "i3"}
	for i := range got {
		for id, n := range ids {
			got[i] = strings.ReplaceAll(got[i], id, n)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	st := s.Stats()
	if st.ByCaller[i2]["AssociateAddress"] != 2 || st.ByOutcome["AssociateAddress"]["Resource.AlreadyAssociated"] != 1 ||
		st.ByAction["DisassociateAddress"] != 2 || st.Total == 0 {
		t.Fatalf("stats = %+v", st)
	}
	// Per caller and outcome: the sums agree with the other views.
	var all int64
	for _, byOutcome := range st.ByCallerOutcome {
		for _, n := range byOutcome {
			all += n
		}
	}
	if all != st.Total || st.ByCallerOutcome[i2]["Resource.AlreadyAssociated"] != 1 {
		t.Fatalf("by caller and outcome = %v (total %d)", st.ByCallerOutcome, st.Total)
	}
}

func short(id string) string {
	if id == "" {
		return "-"
	}
	return id
}

func TestAssociateErrors(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2, ENIsPerInstance: 2, BootDelay: time.Hour})
	info := s.Info()
	alloc, i1, i2 := info.EIPs[0].AllocationID, info.Instances[0].InstanceID, info.Instances[1].InstanceID
	c := simClient(t, s, "AKIDOPERATOR")

	cases := []struct {
		name string
		in   ec2.AssociateAddressInput
		code string
	}{
		{"malformed allocation", ec2.AssociateAddressInput{AllocationId: aws.String("eipalloc-xyz"), InstanceId: aws.String(i1)}, "InvalidAllocationID.Malformed"},
		{"unknown allocation", ec2.AssociateAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0"), InstanceId: aws.String(i1)}, "InvalidAllocationID.NotFound"},
		{"malformed instance", ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String("ma1")}, "InvalidInstanceID.Malformed"},
		{"unknown instance", ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String("i-0123456789abcdef0")}, "InvalidInstanceID.NotFound"},
		{"multi ENI by instance", ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1)}, "InvalidInstanceID"},
		{"both targets", ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1), NetworkInterfaceId: aws.String(info.Instances[0].ENIID)}, "InvalidParameterCombination"},
		{"no target", ec2.AssociateAddressInput{AllocationId: aws.String(alloc)}, "MissingParameter"},
		{"malformed eni", ec2.AssociateAddressInput{AllocationId: aws.String(alloc), NetworkInterfaceId: aws.String("eni-")}, "InvalidNetworkInterfaceID.Malformed"},
		{"foreign private ip", ec2.AssociateAddressInput{AllocationId: aws.String(alloc), NetworkInterfaceId: aws.String(info.Instances[0].ENIID), PrivateIpAddress: aws.String("10.9.9.9")}, "InvalidParameterValue"},
		{"dry run", ec2.AssociateAddressInput{AllocationId: aws.String(alloc), NetworkInterfaceId: aws.String(info.Instances[0].ENIID), DryRun: aws.Bool(true)}, "DryRunOperation"},
		{"dry run validates", ec2.AssociateAddressInput{AllocationId: aws.String("eipalloc-0123456789abcdef0"), NetworkInterfaceId: aws.String(info.Instances[0].ENIID), DryRun: aws.Bool(true)}, "InvalidAllocationID.NotFound"},
		{"by eni", ec2.AssociateAddressInput{AllocationId: aws.String(alloc), NetworkInterfaceId: aws.String(info.Instances[0].ENIID)}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.AssociateAddress(ctx, &tc.in)
			simWantCode(t, err, tc.code)
		})
	}
	// Secondary ENI: its own private IP, and the instance's IMDS lists both.
	di, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{i1}})
	simOK(t, err)
	nis := di.Reservations[0].Instances[0].NetworkInterfaces
	if len(nis) != 2 || aws.ToInt32(nis[1].Attachment.DeviceIndex) != 1 || aws.ToString(nis[1].PrivateIpAddress) != "127.0.0.13" {
		t.Fatalf("ENIs = %+v", nis)
	}
	md, ok := s.metadata(i1)
	if !ok || len(md.Interfaces) != 2 || md.PublicIP != info.EIPs[0].PublicIP || md.Interfaces[0].PublicIPs["127.0.0.11"] != info.EIPs[0].PublicIP {
		t.Fatalf("metadata = %+v", md)
	}

	// A started instance is pending for BootDelay: association by ENI fails
	// with IncorrectInstanceState, by instance with InvalidInstanceID.
	simOK(t, s.StopInstance(i2))
	simOK(t, s.StartInstance(i2))
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), NetworkInterfaceId: aws.String(info.Instances[1].ENIID)})
	simWantCode(t, err, "IncorrectInstanceState")
	if _, ok := s.metadata(i2); ok {
		t.Fatal("pending instance serves metadata")
	}
	_, err = c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String("eipassoc-bad")})
	simWantCode(t, err, "InvalidAssociationID.Malformed")
	_, err = c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{})
	simWantCode(t, err, "MissingParameter")
}

func TestAllocateRelease(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 1, EIPs: 1})
	c := simClient(t, s, "AKIDOPERATOR")
	out, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc, TagSpecifications: []types.TagSpecification{{
		ResourceType: types.ResourceTypeElasticIp, Tags: []types.Tag{{Key: aws.String("eipd:group"), Value: aws.String("other")}}}}})
	simOK(t, err)
	alloc := aws.ToString(out.AllocationId)
	if !allocIDRE().MatchString(alloc) || aws.ToString(out.PublicIp) == "" || out.Domain != types.DomainTypeVpc {
		t.Fatalf("allocate = %+v", out)
	}
	if len(s.Info().EIPs) != 2 || s.Info().EIPs[1].ForwardAddr == "" {
		t.Fatalf("info after allocate = %+v", s.Info().EIPs)
	}
	f, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{{Name: aws.String("tag:eipd:group"), Values: []string{"other"}}}})
	simOK(t, err)
	if len(f.Addresses) != 1 || aws.ToString(f.Addresses[0].AllocationId) != alloc {
		t.Fatalf("filtered = %+v", f.Addresses)
	}
	simOK(t, s.Associate(alloc, s.Info().Instances[0].InstanceID))
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(alloc)})
	simWantCode(t, err, "InvalidIPAddress.InUse")
	v, _ := s.Address(alloc)
	_, err = c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(v.AssociationID)})
	simOK(t, err)
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(alloc), DryRun: aws.Bool(true)})
	simWantCode(t, err, "DryRunOperation")
	_, err = c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(alloc)})
	simOK(t, err)
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{alloc}})
	simWantCode(t, err, "InvalidAllocationID.NotFound")
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{"192.0.2.250"}})
	simWantCode(t, err, "InvalidAddress.NotFound")
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{"300.1.1.1"}})
	simWantCode(t, err, "InvalidParameterValue")
	for i := 0; i < 4; i++ {
		_, err = c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
		simOK(t, err)
	}
	_, err = c.AllocateAddress(ctx, &ec2.AllocateAddressInput{})
	simWantCode(t, err, "AddressLimitExceeded")
}

func TestFiltersAndPaging(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 12, EIPs: 2})
	info := s.Info()
	c := simClient(t, s, "AKIDOPERATOR")
	simOK(t, s.StopInstance(info.Instances[4].InstanceID))
	simOK(t, s.Associate(info.EIPs[0].AllocationID, info.Instances[0].InstanceID))

	count := func(fs ...types.Filter) int {
		t.Helper()
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: fs})
		simOK(t, err)
		return len(out.Reservations)
	}
	f := func(name string, vals ...string) types.Filter {
		return types.Filter{Name: aws.String(name), Values: vals}
	}
	checks := []struct {
		name string
		got  int
		want int
	}{
		{"group tag", count(f("tag:eipd:group", "demo")), 12},
		{"group tag wildcard", count(f("tag:eipd:group", "de*")), 12},
		{"other group", count(f("tag:eipd:group", "nope")), 0},
		{"tag-key", count(f("tag-key", "eipd:group")), 12},
		{"running", count(f("instance-state-name", "running")), 11},
		{"stopped code", count(f("instance-state-code", "80")), 1},
		{"running or stopped", count(f("instance-state-name", "running", "stopped")), 12},
		{"AND of filters", count(f("instance-state-name", "running"), f("availability-zone", "us-east-1a")), 4},
		{"private ip", count(f("private-ip-address", "127.0.0.12")), 1},
		{"eip", count(f("network-interface.association.public-ip", info.EIPs[0].PublicIP)), 1},
		{"ip-address", count(f("ip-address", info.EIPs[0].PublicIP)), 1},
		{"allocation", count(f("network-interface.association.allocation-id", info.EIPs[0].AllocationID)), 1},
		{"eni", count(f("network-interface.network-interface-id", info.Instances[3].ENIID)), 1},
		{"instance-id filter unknown is empty", count(f("instance-id", "i-0123456789abcdef0")), 0},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: %d instances, want %d", ch.name, ch.got, ch.want)
		}
	}
	_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{f("public-ip", "x")}})
	simWantCode(t, err, "InvalidParameterValue")
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{f("state", "x")}})
	simWantCode(t, err, "InvalidParameterValue")
	a, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{f("instance-id", info.Instances[0].InstanceID)}})
	simOK(t, err)
	if len(a.Addresses) != 1 {
		t.Fatalf("instance-id address filter: %d", len(a.Addresses))
	}
	a, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{f("allocation-id", "eipalloc-0123456789abcdef0")}})
	simOK(t, err)
	if len(a.Addresses) != 0 {
		t.Fatalf("unknown allocation filter: %d", len(a.Addresses))
	}

	// Paging: 12 instances in pages of 5.
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	var pages, total int
	seen := map[string]bool{}
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		simOK(t, err)
		pages++
		for _, r := range out.Reservations {
			seen[aws.ToString(r.Instances[0].InstanceId)] = true
			total++
		}
	}
	if pages != 3 || total != 12 || len(seen) != 12 {
		t.Fatalf("paging: %d pages, %d instances, %d distinct", pages, total, len(seen))
	}
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), InstanceIds: []string{info.Instances[0].InstanceID}})
	simWantCode(t, err, "InvalidParameterCombination")
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(4)})
	simWantCode(t, err, "InvalidParameterValue")
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-0123456789abcdef0", info.Instances[0].InstanceID}})
	simWantCode(t, err, "InvalidInstanceID.NotFound")
	_, err = c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"i-xyz"}})
	simWantCode(t, err, "InvalidInstanceID.Malformed")

	// DescribeInstanceStatus: running only unless IncludeAllInstances.
	st, err := c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{})
	simOK(t, err)
	if len(st.InstanceStatuses) != 11 || st.InstanceStatuses[0].InstanceStatus.Status != types.SummaryStatusOk {
		t.Fatalf("status: %d %+v", len(st.InstanceStatuses), st.InstanceStatuses[0])
	}
	st, err = c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{IncludeAllInstances: aws.Bool(true), InstanceIds: []string{info.Instances[4].InstanceID}})
	simOK(t, err)
	if len(st.InstanceStatuses) != 1 || st.InstanceStatuses[0].InstanceState.Name != types.InstanceStateNameStopped {
		t.Fatalf("status of stopped: %+v", st.InstanceStatuses)
	}
	simOK(t, s.ScheduleMaintenance(info.Instances[1].InstanceID, "system-reboot"))
	st, err = c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{Filters: []types.Filter{f("event.code", "system-reboot")}})
	simOK(t, err)
	if len(st.InstanceStatuses) != 1 || len(st.InstanceStatuses[0].Events) != 1 || st.InstanceStatuses[0].Events[0].Code != types.EventCodeSystemReboot {
		t.Fatalf("maintenance status: %+v", st.InstanceStatuses)
	}
}

func TestTags(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 3, EIPs: 1})
	info := s.Info()
	alloc, i1 := info.EIPs[0].AllocationID, info.Instances[0].InstanceID
	c := simClient(t, s, "AKIDOPERATOR")
	tag := func(k, v string) types.Tag { return types.Tag{Key: aws.String(k), Value: aws.String(v)} }

	_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc}, Tags: []types.Tag{tag("eipd:holder", i1), tag("eipd:term", "1"), tag("empty", "")}})
	simOK(t, err)
	v, _ := s.Address(alloc)
	if v.Tags["eipd:holder"] != i1 || v.Tags["eipd:term"] != "1" || v.Tags["empty"] != "" || len(v.Tags) != 4 {
		t.Fatalf("tags = %v", v.Tags)
	}
	dt, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("resource-id"), Values: []string{alloc}}}})
	simOK(t, err)
	if len(dt.Tags) != 4 || dt.Tags[0].ResourceType != types.ResourceTypeElasticIp || aws.ToString(dt.Tags[0].ResourceId) != alloc {
		t.Fatalf("DescribeTags = %+v", dt.Tags)
	}
	// DescribeTags paging over every tag (3 instances × 2 + 4).
	p := ec2.NewDescribeTagsPaginator(c, &ec2.DescribeTagsInput{MaxResults: aws.Int32(5)})
	n := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		simOK(t, err)
		n += len(out.Tags)
	}
	if n != 10 {
		t.Fatalf("paged tags = %d", n)
	}
	// DeleteTags: key only, key+wrong value (kept), then everything.
	_, err = c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{alloc}, Tags: []types.Tag{{Key: aws.String("eipd:holder")}, tag("eipd:term", "2")}})
	simOK(t, err)
	v, _ = s.Address(alloc)
	if _, ok := v.Tags["eipd:holder"]; ok || v.Tags["eipd:term"] != "1" {
		t.Fatalf("after DeleteTags: %v", v.Tags)
	}
	_, err = c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{alloc}})
	simOK(t, err)
	if v, _ = s.Address(alloc); len(v.Tags) != 0 {
		t.Fatalf("after DeleteTags all: %v", v.Tags)
	}
	errCases := []struct {
		name string
		in   ec2.CreateTagsInput
		code string
	}{
		{"invalid id", ec2.CreateTagsInput{Resources: []string{"bogus"}, Tags: []types.Tag{tag("a", "b")}}, "InvalidID"},
		{"unknown instance", ec2.CreateTagsInput{Resources: []string{"i-0123456789abcdef0"}, Tags: []types.Tag{tag("a", "b")}}, "InvalidInstanceID.NotFound"},
		{"unknown allocation", ec2.CreateTagsInput{Resources: []string{"eipalloc-0123456789abcdef0"}, Tags: []types.Tag{tag("a", "b")}}, "InvalidAllocationID.NotFound"},
		{"aws prefix", ec2.CreateTagsInput{Resources: []string{alloc}, Tags: []types.Tag{tag("aws:x", "b")}}, "InvalidParameterValue"},
		{"dry run", ec2.CreateTagsInput{Resources: []string{i1}, Tags: []types.Tag{tag("a", "b")}, DryRun: aws.Bool(true)}, "DryRunOperation"},
		{"eni", ec2.CreateTagsInput{Resources: []string{info.Instances[0].ENIID}, Tags: []types.Tag{tag("a", "b")}}, ""},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateTags(ctx, &tc.in)
			simWantCode(t, err, tc.code)
		})
	}
	var many []types.Tag
	for i := 0; i < 51; i++ {
		many = append(many, tag(fmt.Sprintf("k%d", i), "v"))
	}
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc}, Tags: many})
	simWantCode(t, err, "TagLimitExceeded")
	_, err = c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("tag-key"), Values: []string{"x"}}}})
	simOK(t, err) // tag-key is accepted by DescribeTags as by every tagged Describe
	_, err = c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("owner"), Values: []string{"x"}}}})
	simWantCode(t, err, "InvalidParameterValue")
}

func TestPropagationDelayResolve(t *testing.T) {
	s := simStart(t, Options{Instances: 2, TargetPort: 8080, PropagationDelay: 2 * time.Second})
	info := s.Info()
	alloc := info.EIPs[0].AllocationID
	now := time.Now()
	if _, ok := s.resolveTarget(alloc, now); ok {
		t.Fatal("unassociated EIP resolves")
	}
	simOK(t, s.Associate(alloc, info.Instances[0].InstanceID))
	t0 := time.Now()
	if _, ok := s.resolveTarget(alloc, t0); ok {
		t.Fatal("association visible to traffic before the propagation delay")
	}
	if addr, ok := s.resolveTarget(alloc, t0.Add(2100*time.Millisecond)); !ok || addr != "127.0.0.11:8080" {
		t.Fatalf("after delay: %q %v", addr, ok)
	}
	// t1 is at least 300ms after t0, so t1-150ms lies between the two
	// association changes however slow the machine is.
	time.Sleep(300 * time.Millisecond)
	simOK(t, s.Associate(alloc, info.Instances[1].InstanceID))
	t1 := time.Now()
	if addr, _ := s.resolveTarget(alloc, t1.Add(2*time.Second-150*time.Millisecond)); addr != "127.0.0.11:8080" {
		t.Fatalf("during switch: %q", addr)
	}
	if addr, _ := s.resolveTarget(alloc, t1.Add(2100*time.Millisecond)); addr != "127.0.0.12:8080" {
		t.Fatalf("after switch: %q", addr)
	}
	simOK(t, s.StopInstance(info.Instances[1].InstanceID))
	if _, ok := s.resolveTarget(alloc, time.Now().Add(2100*time.Millisecond)); ok {
		t.Fatal("stopped instance still receives EIP traffic")
	}
}

func TestEIPTrafficReachesInstance(t *testing.T) {
	// A real server on instance 1's private IP receives the EIP's traffic.
	s := simStart(t, Options{Instances: 2, FirstIP: "127.0.0.71"})
	info := s.Info()
	ln, err := net.Listen("tcp", "127.0.0.71:0")
	simOK(t, err)
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	s.Close() // restart with the target port now known
	s = simStart(t, Options{Instances: 2, FirstIP: "127.0.0.71", TargetPort: port})
	info = s.Info()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello from 71\n"))
			_ = c.Close()
		}
	}()
	simOK(t, s.Associate(info.EIPs[0].AllocationID, info.Instances[0].InstanceID))
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", info.EIPs[0].ForwardAddr)
		if err == nil {
			b := make([]byte, 64)
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			n, _ := conn.Read(b)
			conn.Close()
			if strings.HasPrefix(string(b[:n]), "hello from 71") {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("EIP traffic never reached the instance (last err %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestSetTargetPort(t *testing.T) {
	s := simStart(t, Options{Instances: 2, TargetPort: 8080})
	info := s.Info()
	alloc, id := info.EIPs[0].AllocationID, info.Instances[0].InstanceID
	simOK(t, s.Associate(alloc, id))
	if addr, _ := s.resolveTarget(alloc, time.Now()); addr != "127.0.0.11:8080" {
		t.Fatalf("default target: %q", addr)
	}
	simOK(t, s.SetTargetPort(id, 9090))
	if addr, _ := s.resolveTarget(alloc, time.Now()); addr != "127.0.0.11:9090" {
		t.Fatalf("after SetTargetPort: %q, want the instance's own port at once", addr)
	}
	// The other instance keeps the default port.
	simOK(t, s.Associate(alloc, info.Instances[1].InstanceID))
	if addr, _ := s.resolveTarget(alloc, time.Now()); addr != "127.0.0.12:8080" {
		t.Fatalf("other instance: %q", addr)
	}
	simOK(t, s.Associate(alloc, id))
	simOK(t, s.SetTargetPort(id, 0))
	if addr, _ := s.resolveTarget(alloc, time.Now()); addr != "127.0.0.11:8080" {
		t.Fatalf("after SetTargetPort 0: %q, want the default again", addr)
	}
	if err := s.SetTargetPort("i-00000000000000000", 9090); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown instance: %v", err)
	}
	if err := s.SetTargetPort(id, 70000); err == nil {
		t.Fatal("port 70000 accepted")
	}
}
