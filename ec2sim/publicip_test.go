package ec2sim

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// The behaviour under test is AWS's, from "Elastic IP address concepts
// and rules"
// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/elastic-ip-addresses-eip.html):
// associating an EIP with an instance whose primary network interface had
// an auto-assigned public IPv4 address releases that address; after the
// EIP is disassociated the instance gets a new one "within a few
// minutes", not if a second network interface is attached. And "Public
// IPv4 addresses"
// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-instance-addressing.html#concepts-public-addresses):
// released at stop, a new one at start.

var autoRange = netip.MustParsePrefix("198.18.0.0/15")

// instancePublic reads an instance's public IPv4 address and the owner of
// its primary private IP's association from DescribeInstances.
func instancePublic(t *testing.T, c *ec2.Client, id string) (ip, eniOwner, privOwner string) {
	t.Helper()
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	simOK(t, err)
	in := out.Reservations[0].Instances[0]
	ip = aws.ToString(in.PublicIpAddress)
	if len(in.NetworkInterfaces) == 0 {
		return ip, "", ""
	}
	eni := in.NetworkInterfaces[0]
	if eni.Association != nil {
		eniOwner = aws.ToString(eni.Association.IpOwnerId)
		if aws.ToString(eni.Association.PublicIp) != ip {
			t.Fatalf("%s: ENI association %s, ipAddress %s", id, aws.ToString(eni.Association.PublicIp), ip)
		}
	}
	for _, p := range eni.PrivateIpAddresses {
		if aws.ToBool(p.Primary) && p.Association != nil {
			privOwner = aws.ToString(p.Association.IpOwnerId)
		}
		if !aws.ToBool(p.Primary) && p.Association != nil && aws.ToString(p.Association.IpOwnerId) == "amazon" {
			t.Fatalf("%s: an auto-assigned address on secondary IP %s", id, aws.ToString(p.PrivateIpAddress))
		}
	}
	return ip, eniOwner, privOwner
}

func eventsOf(s *Sim, action string) []Event {
	var out []Event
	for _, e := range s.Events() {
		if e.Action == action {
			out = append(out, e)
		}
	}
	return out
}

func TestAutoAssignedPublicIP(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2, EIPs: 2, PrivateIPs: 2, AutoAssignPublicIP: true})
	info := s.Info()
	in1, i2 := info.Instances[0], info.Instances[1].InstanceID
	i1 := in1.InstanceID
	eip1, eip2 := info.EIPs[0], info.EIPs[1]
	c := simInstanceClient(t, s, i1)
	m := imdsSDKClient(t, in1.IMDSEndpoint)
	mac, err := imdsGet(t, m, "mac")
	simOK(t, err)
	macs := "network/interfaces/macs/" + mac + "/"

	// At launch: an amazon-owned address on the primary private IP,
	// nothing in DescribeAddresses, the same in IMDS.
	auto, eniOwner, privOwner := instancePublic(t, c, i1)
	if a, err := netip.ParseAddr(auto); err != nil || !autoRange.Contains(a) || eniOwner != "amazon" || privOwner != "amazon" {
		t.Fatalf("auto-assigned address %q (owners %q, %q), want one in %v owned by amazon", auto, eniOwner, privOwner, autoRange)
	}
	if other, _, _ := instancePublic(t, c, i2); other == "" || other == auto {
		t.Fatalf("instances' addresses %q and %q", auto, other)
	}
	addrs, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	simOK(t, err)
	if len(addrs.Addresses) != 2 {
		t.Fatalf("DescribeAddresses lists %d addresses, want the 2 EIPs only", len(addrs.Addresses))
	}
	for p, want := range map[string]string{"public-ipv4": auto, macs + "public-ipv4s": auto, macs + "ipv4-associations/" + auto: in1.PrivateIP} {
		if v, err := imdsGet(t, m, p); err != nil || v != want {
			t.Fatalf("IMDS %s = %q, %v; want %q", p, v, err, want)
		}
	}
	byFilter := func(name, value string) int {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String(name), Values: []string{value}}}})
		simOK(t, err)
		return len(out.Reservations)
	}
	if byFilter("ip-address", auto) != 1 || byFilter("network-interface.association.public-ip", auto) != 1 ||
		byFilter("network-interface.addresses.association.public-ip", auto) != 1 {
		t.Fatal("the public-ip filters do not find the auto-assigned address")
	}

	// An EIP on a secondary private IP leaves it alone.
	simOK(t, s.AssociatePrivateIP(eip2.AllocationID, i1, in1.PrivateIPs[1]))
	if ip, _, _ := instancePublic(t, c, i1); ip != auto {
		t.Fatalf("EIP on a secondary IP: public IP %q, want %q kept", ip, auto)
	}

	// An EIP on the primary private IP releases it.
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(eip1.AllocationID), InstanceId: aws.String(i1)})
	simOK(t, err)
	if ip, owner, _ := instancePublic(t, c, i1); ip != eip1.PublicIP || owner != simAccountID {
		t.Fatalf("with the EIP: public IP %q owner %q", ip, owner)
	}
	rel := eventsOf(s, "public-ip-release")
	if len(rel) != 1 || rel[0].From != i1 || rel[0].PublicIP != auto || rel[0].AllocationID != eip1.AllocationID || rel[0].Caller != i1 {
		t.Fatalf("release events %+v", rel)
	}
	if v, err := imdsGet(t, m, "public-ipv4"); err != nil || v != eip1.PublicIP {
		t.Fatalf("IMDS public-ipv4 %q, %v", v, err)
	}

	// public_ip_release 0: a new, different address as soon as it leaves.
	simOK(t, s.Disassociate(eip1.AllocationID))
	back, owner, _ := instancePublic(t, c, i1)
	if back == "" || back == auto || owner != "amazon" {
		t.Fatalf("after the EIP left: public IP %q owner %q, want a new one (not %s)", back, owner, auto)
	}
	if ret := eventsOf(s, "public-ip-return"); len(ret) != 1 || ret[0].To != i1 || ret[0].PublicIP != back {
		t.Fatalf("return events %+v", ret)
	}

	// With public_ip_release, nothing in between; moving the EIP away
	// counts as leaving too.
	const release = 2 * time.Second
	simOK(t, s.SetInstanceFaults(i1, Faults{PublicIPRelease: release}))
	simOK(t, s.Associate(eip1.AllocationID, i1))
	simOK(t, s.Associate(eip1.AllocationID, i2))
	left := time.Now()
	if ip, _, _ := instancePublic(t, c, i1); ip != "" {
		t.Fatalf("right after the EIP left: public IP %q, want none for %v", ip, release)
	}
	if _, err := imdsGet(t, m, "public-ipv4"); imdsStatus(err) != 404 {
		t.Fatalf("IMDS public-ipv4 without a public address: %v", err)
	}
	waitFor(t, "the new address", func() bool { v, _ := s.Instance(i1); return v.PublicIP != "" })
	if el := time.Since(left); el < release-100*time.Millisecond {
		t.Fatalf("new address after %v, public_ip_release is %v", el, release)
	}
	ret := eventsOf(s, "public-ip-return")
	if last := ret[len(ret)-1]; last.To != i1 || last.Time.Sub(left) < release-100*time.Millisecond {
		t.Fatalf("return event %+v", last)
	}

	// Stop releases it, start gives a new one; the EIP on i2 stays.
	v2, _ := s.Instance(i2)
	simOK(t, s.Disassociate(eip1.AllocationID))
	before, _ := s.Instance(i2)
	simOK(t, s.StopInstance(i2))
	if v, _ := s.Instance(i2); v.PublicIP != "" {
		t.Fatalf("stopped instance keeps %q", v.PublicIP)
	}
	simOK(t, s.StartInstance(i2))
	if v, _ := s.Instance(i2); v.PublicIP == "" || v.PublicIP == before.PublicIP || v.PublicIP == v2.PublicIP {
		t.Fatalf("started instance: %q (had %q, then %q)", v.PublicIP, v2.PublicIP, before.PublicIP)
	}
}

// TestAutoAssignedPublicIPSecondENI: with a second network interface
// attached, a released address does not come back.
func TestAutoAssignedPublicIPSecondENI(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 1, ENIsPerInstance: 2, AutoAssignPublicIP: true})
	info := s.Info()
	i1, alloc := info.Instances[0].InstanceID, info.EIPs[0].AllocationID
	c := simClient(t, s, "AKIDOPERATOR")
	if ip, owner, _ := instancePublic(t, c, i1); ip == "" || owner != "amazon" {
		t.Fatalf("launch: public IP %q owner %q", ip, owner)
	}
	out, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), NetworkInterfaceId: aws.String(info.Instances[0].ENIID)})
	simOK(t, err)
	_, err = c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: out.AssociationId})
	simOK(t, err)
	if ip, _, _ := instancePublic(t, c, i1); ip != "" {
		t.Fatalf("public IP %q came back with two interfaces attached", ip)
	}
	if ret := eventsOf(s, "public-ip-return"); len(ret) != 0 {
		t.Fatalf("return events %+v", ret)
	}
}

// TestEgressNeedsPublicIP: an instance that reaches the API only through
// its public IPv4 address (a public subnet without VPC endpoints or NAT)
// gets no answer while it has none; its IMDS, other instances and the
// operator are unaffected.
func TestEgressNeedsPublicIP(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2, AutoAssignPublicIP: true})
	info := s.Info()
	i1, i2, alloc := info.Instances[0].InstanceID, info.Instances[1].InstanceID, info.EIPs[0].AllocationID
	c1, c2 := simInstanceClient(t, s, i1), simInstanceClient(t, s, i2)
	op := simClient(t, s, "AKIDOPERATOR")
	simOK(t, s.SetInstanceFaults(i1, Faults{EgressNeedsPublicIP: true, PublicIPRelease: time.Hour}))
	cut := func(c *ec2.Client) bool {
		cctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		_, err := c.DescribeAddresses(cctx, &ec2.DescribeAddressesInput{})
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("DescribeAddresses: %v", err)
		}
		return err != nil
	}
	if cut(c1) {
		t.Fatal("cut off with its auto-assigned address")
	}
	simOK(t, s.Associate(alloc, i1)) // the EIP replaces the auto-assigned address
	if cut(c1) {
		t.Fatal("cut off with the EIP on its primary private IP")
	}
	simOK(t, s.Associate(alloc, i2)) // the address comes back in an hour
	if !cut(c1) {
		t.Fatal("answered with no public IPv4 address")
	}
	if cut(c2) || cut(op) {
		t.Fatal("other callers cut off")
	}
	if id, err := imdsGet(t, imdsSDKClient(t, info.Instances[0].IMDSEndpoint), "instance-id"); err != nil || id != i1 {
		t.Fatalf("IMDS of the cut-off instance: %q, %v", id, err)
	}
	cr, _ := s.Credentials(i1)
	asg := asgClient(t, info.EC2Endpoint, credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.Token))
	actx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := asg.CompleteLifecycleAction(actx, completeInput("g", "h", i1, "CONTINUE"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Auto Scaling call of the cut-off instance: %v", err)
	}
	if n := s.Stats().ByCallerOutcome[i1]["no-public-ip"]; n != 2 {
		t.Fatalf("%d calls counted no-public-ip, want 2", n)
	}
	simOK(t, s.Associate(alloc, i1))
	if cut(c1) {
		t.Fatal("still cut off with the EIP back")
	}
}

// TestEgressNeedsPublicIPPrivateSubnet: without auto-assigned addresses
// the EIP is the instance's only way out, so only its holder can call.
func TestEgressNeedsPublicIPPrivateSubnet(t *testing.T) {
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	i1, i2, alloc := info.Instances[0].InstanceID, info.Instances[1].InstanceID, info.EIPs[0].AllocationID
	s.SetFaults(Faults{EgressNeedsPublicIP: true})
	call := func(id string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := simInstanceClient(t, s, id).DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		return err
	}
	if err := call(i1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("no public IPv4 at all: %v", err)
	}
	simOK(t, s.Associate(alloc, i1))
	simOK(t, call(i1))
	if err := call(i2); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the instance without the EIP: %v", err)
	}
	_, err := simClient(t, s, "AKIDOPERATOR").DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	simOK(t, err)
}
