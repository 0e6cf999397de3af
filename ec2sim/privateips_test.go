package ec2sim

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// simNoKeepAlive leaves no idle connection behind for goleak to find.
var simNoKeepAlive = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func TestPrivateIPsLayoutAndValidation(t *testing.T) {
	s := simStart(t, Options{Instances: 3, ENIsPerInstance: 2, PrivateIPs: 3})
	info := s.Info()
	seen := map[string]string{}
	for i, in := range info.Instances {
		if want := ipAdd(net.ParseIP("127.0.0.11"), i); in.PrivateIP != want {
			t.Errorf("instance %d primary IP %s, want %s (secondary IPs must not shift the primaries)", i, in.PrivateIP, want)
		}
		if len(in.PrivateIPs) != 3 || in.PrivateIPs[0] != in.PrivateIP {
			t.Fatalf("instance %d private IPs %v: want 3, primary first", i, in.PrivateIPs)
		}
	}
	// Every IP of every ENI, from the source of truth, is distinct.
	s.mu.Lock()
	for _, in := range s.w.instances {
		for _, e := range in.ENIs {
			for _, ip := range e.PrivateIPs {
				if other, dup := seen[ip]; dup {
					t.Errorf("%s on %s/%s and %s", ip, in.ID, e.ID, other)
				}
				seen[ip] = in.ID + "/" + e.ID
			}
		}
	}
	s.mu.Unlock()
	if len(seen) != 3*(3+1) {
		t.Fatalf("%d distinct IPs, want 12 (3 per primary ENI, 1 per extra ENI): %v", len(seen), seen)
	}
	if d := simStart(t, Options{Instances: 2}).Info(); len(d.Instances[0].PrivateIPs) != 1 {
		t.Fatalf("default private IPs %v, want the primary only", d.Instances[0].PrivateIPs)
	}
	for _, n := range []int{-1, MaxPrivateIPs + 1} {
		if _, err := Start(context.Background(), Options{PrivateIPs: n}); err == nil || !strings.Contains(err.Error(), "private ips") {
			t.Errorf("PrivateIPs %d: err %v, want a clear refusal", n, err)
		}
	}
}

// TestSecondaryIPAssociation: an EIP goes to a secondary private IP by
// NetworkInterfaceId + PrivateIpAddress; DescribeInstances lists it under
// that IP's privateIpAddressesSet item (as EC2 does) and the filters find
// it; IMDS lists it; a second EIP on the same private IP displaces it.
func TestSecondaryIPAssociation(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2, EIPs: 3, PrivateIPs: 2})
	info := s.Info()
	in := info.Instances[0]
	a, b, c3 := info.EIPs[0], info.EIPs[1], info.EIPs[2]
	prim, sec := in.PrivateIPs[0], in.PrivateIPs[1]
	c := simInstanceClient(t, s, in.InstanceID)

	_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(a.AllocationID),
		NetworkInterfaceId: aws.String(in.ENIID), PrivateIpAddress: aws.String(prim), AllowReassociation: aws.Bool(false)})
	simOK(t, err)
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(b.AllocationID),
		NetworkInterfaceId: aws.String(in.ENIID), PrivateIpAddress: aws.String(sec), AllowReassociation: aws.Bool(false)})
	simOK(t, err)
	if got := simAddr(t, c, b.AllocationID); aws.ToString(got.PrivateIpAddress) != sec || aws.ToString(got.InstanceId) != in.InstanceID {
		t.Fatalf("EIP on the secondary IP: %+v", got)
	}
	if got := simAddr(t, c, a.AllocationID); aws.ToString(got.PrivateIpAddress) != prim {
		t.Fatalf("EIP on the primary IP lost it: %+v", got)
	}
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(c3.AllocationID),
		NetworkInterfaceId: aws.String(in.ENIID), PrivateIpAddress: aws.String("127.0.9.9")})
	simWantCode(t, err, "InvalidParameterValue")

	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{in.InstanceID}})
	simOK(t, err)
	inst := out.Reservations[0].Instances[0]
	if aws.ToString(inst.PublicIpAddress) != a.PublicIP {
		t.Errorf("instance public IP %q, want the primary IP's EIP %s", aws.ToString(inst.PublicIpAddress), a.PublicIP)
	}
	ni := inst.NetworkInterfaces[0]
	if ni.Association == nil || aws.ToString(ni.Association.PublicIp) != a.PublicIP {
		t.Errorf("ENI association %+v, want the primary IP's EIP %s", ni.Association, a.PublicIP)
	}
	got := map[string]string{}
	for _, p := range ni.PrivateIpAddresses {
		pub := ""
		if p.Association != nil {
			pub = aws.ToString(p.Association.PublicIp)
		}
		got[aws.ToString(p.PrivateIpAddress)] = pub
		if aws.ToBool(p.Primary) != (aws.ToString(p.PrivateIpAddress) == prim) {
			t.Errorf("%s primary=%v", aws.ToString(p.PrivateIpAddress), aws.ToBool(p.Primary))
		}
	}
	if len(got) != 2 || got[prim] != a.PublicIP || got[sec] != b.PublicIP {
		t.Fatalf("privateIpAddressesSet: %v, want %s→%s and %s→%s", got, prim, a.PublicIP, sec, b.PublicIP)
	}
	for _, f := range []struct{ name, value string }{
		{"network-interface.addresses.private-ip-address", sec},
		{"network-interface.addresses.association.public-ip", b.PublicIP},
	} {
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String(f.name), Values: []string{f.value}}}})
		simOK(t, err)
		if len(out.Reservations) != 1 || aws.ToString(out.Reservations[0].Instances[0].InstanceId) != in.InstanceID {
			t.Errorf("filter %s=%s: %d reservations, want %s only", f.name, f.value, len(out.Reservations), in.InstanceID)
		}
	}

	// IMDS of the instance.
	md, _ := s.metadata(in.InstanceID)
	tree := buildIMDSTree(md, time.Now())
	mac := md.Interfaces[0].MAC
	base := "meta-data/network/interfaces/macs/" + mac + "/"
	for path, want := range map[string]string{
		base + "local-ipv4s":                     prim + "\n" + sec,
		base + "public-ipv4s":                    a.PublicIP + "\n" + b.PublicIP,
		base + "ipv4-associations/" + b.PublicIP: sec,
		base + "ipv4-associations/" + a.PublicIP: prim,
		"meta-data/public-ipv4":                  a.PublicIP,
		"meta-data/local-ipv4":                   prim,
	} {
		if v, ok := tree.lookup(path); !ok || v != want {
			t.Errorf("IMDS %s = %q (%v), want %q", path, v, ok, want)
		}
	}

	// A third EIP on the occupied secondary IP displaces the second.
	mark := len(s.Events())
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(c3.AllocationID),
		NetworkInterfaceId: aws.String(in.ENIID), PrivateIpAddress: aws.String(sec)})
	simOK(t, err)
	if got := simAddr(t, c, b.AllocationID); got.AssociationId != nil {
		t.Fatalf("displaced EIP still associated: %+v", got)
	}
	ev := s.Events()[mark:]
	if len(ev) != 2 || ev[0].Action != "displaced" || ev[0].AllocationID != b.AllocationID || ev[0].Caller != in.InstanceID ||
		ev[1].Action != "associate" || ev[1].AllocationID != c3.AllocationID {
		t.Fatalf("events %+v, want displaced %s then associate %s", ev, b.AllocationID, c3.AllocationID)
	}
	md, _ = s.metadata(in.InstanceID)
	if v, _ := buildIMDSTree(md, time.Now()).lookup(base + "ipv4-associations/" + c3.PublicIP); v != sec {
		t.Errorf("IMDS ipv4-associations/%s = %q after the displacement, want %s", c3.PublicIP, v, sec)
	}

	// The operator does the same through the control API.
	simOK(t, s.AssociatePrivateIP(b.AllocationID, info.Instances[1].InstanceID, info.Instances[1].PrivateIPs[1]))
	if v, _ := s.Address(b.AllocationID); v.PrivateIP != info.Instances[1].PrivateIPs[1] {
		t.Fatalf("operator association to a secondary IP: %+v", v)
	}
	if err := s.AssociatePrivateIP(b.AllocationID, info.Instances[1].InstanceID, sec); err == nil {
		t.Fatal("operator association to another instance's IP accepted")
	}
}

// TestSecondaryIPTrafficReachesPrimary: an EIP on a secondary IP is served
// by whatever listens on the instance's primary IP (an HAProxy bound to
// 0.0.0.0 serves every slot).
func TestSecondaryIPTrafficReachesPrimary(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.81:0")
	simOK(t, err)
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("hello from 81\n"))
			_ = c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	s := simStart(t, Options{Instances: 2, PrivateIPs: 2, FirstIP: "127.0.0.81", TargetPort: port})
	info := s.Info()
	in := info.Instances[0]
	alloc := info.EIPs[0].AllocationID
	simOK(t, s.AssociatePrivateIP(alloc, in.InstanceID, in.PrivateIPs[1]))
	if addr, ok := s.resolveTarget(alloc, time.Now()); !ok || addr != net.JoinHostPort(in.PrivateIP, strconv.Itoa(port)) {
		t.Fatalf("target %q %v, want the primary IP %s", addr, ok, in.PrivateIP)
	}
	conn, err := net.DialTimeout("tcp", info.EIPs[0].ForwardAddr, 5*time.Second)
	simOK(t, err)
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(conn)
	if !strings.HasPrefix(string(b), "hello from 81") {
		t.Fatalf("through the EIP: %q", b)
	}
}

// TestOperatorDisassociateAndRelease: by hand through the EC2 API (operator
// keys) and through the control API; every step is in the history.
func TestOperatorDisassociateAndRelease(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2, EIPs: 3})
	info := s.Info()
	i1 := info.Instances[0].InstanceID
	a, b := info.EIPs[0].AllocationID, info.EIPs[1].AllocationID
	op := simClient(t, s, "AKIDOPERATOR")
	simOK(t, s.Associate(a, i1))
	simOK(t, s.Associate(b, info.Instances[1].InstanceID))

	// EC2 API: release refused while associated, then disassociate + release.
	_, err := op.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(a)})
	simWantCode(t, err, "InvalidIPAddress.InUse")
	assoc := simAddr(t, op, a).AssociationId
	_, err = op.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: assoc})
	simOK(t, err)
	_, err = op.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(a)})
	simOK(t, err)
	_, err = op.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{a}})
	simWantCode(t, err, "InvalidAllocationID.NotFound")
	_, err = simInstanceClient(t, s, i1).CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{a},
		Tags: []types.Tag{{Key: aws.String("eipd:renewed"), Value: aws.String("x")}}})
	simWantCode(t, err, "InvalidAllocationID.NotFound")
	if _, ok := s.Address(a); ok {
		t.Fatal("released address still visible")
	}

	// Control API: disassociate, then release.
	do := func(method, path string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, info.ControlEndpoint+path, nil)
		simOK(t, err)
		resp, err := simNoKeepAlive.Do(req)
		simOK(t, err)
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := do("POST", "/addresses/"+b+"/release"); code != 409 {
		t.Fatalf("release of an associated EIP: %d %s, want 409", code, body)
	}
	if code, body := do("POST", "/addresses/"+b+"/disassociate"); code != 200 || strings.Contains(body, "association_id") {
		t.Fatalf("disassociate: %d %s", code, body)
	}
	if code, body := do("POST", "/addresses/"+b+"/disassociate"); code != 200 {
		t.Fatalf("disassociate again (a no-op): %d %s", code, body)
	}
	if code, body := do("POST", "/addresses/"+b+"/release"); code != 200 {
		t.Fatalf("release: %d %s", code, body)
	}
	if code, _ := do("POST", "/addresses/"+b+"/release"); code != 404 {
		t.Fatalf("release of a released EIP: %d, want 404", code)
	}
	// The forwarder of a released EIP goes away (its listener closes).
	deadline := time.Now().Add(5 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", info.EIPs[1].ForwardAddr, time.Second)
		if err != nil {
			break
		}
		conn.Close()
		if time.Now().After(deadline) {
			t.Fatal("a released EIP's forwarder still accepts")
		}
		time.Sleep(20 * time.Millisecond)
	}

	var got []string
	for _, e := range s.Events() {
		if e.AllocationID == a || e.AllocationID == b {
			got = append(got, e.AllocationID[len(e.AllocationID)-3:]+":"+e.Action+":"+e.Caller)
		}
	}
	sa, sb := a[len(a)-3:], b[len(b)-3:]
	want := []string{sa + ":associate:", sb + ":associate:", sa + ":disassociate:", sa + ":release:", sb + ":disassociate:", sb + ":release:"}
	if !slices.Equal(got, want) {
		t.Fatalf("history %v, want %v", got, want)
	}
	// The other EIP is untouched and still works.
	simOK(t, s.Associate(info.EIPs[2].AllocationID, i1))
}

// TestTagHistory: eipd:* tag writes on allocations (and instances) are
// recorded with their time, caller and values; other keys are not.
func TestTagHistory(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2, EIPs: 2})
	info := s.Info()
	i1, alloc := info.Instances[0].InstanceID, info.EIPs[0].AllocationID
	c := simInstanceClient(t, s, i1)
	op := simClient(t, s, "AKIDOPERATOR")
	before := time.Now()
	_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc}, Tags: []types.Tag{
		{Key: aws.String("eipd:holder"), Value: aws.String(i1)},
		{Key: aws.String("eipd:term"), Value: aws.String("3")},
		{Key: aws.String("eipd:renewed"), Value: aws.String("2026-01-01T00:00:00.000Z")},
		{Key: aws.String("Name"), Value: aws.String("web")},
	}})
	simOK(t, err)
	_, err = op.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc}, Tags: []types.Tag{{Key: aws.String("Name"), Value: aws.String("x")}}})
	simOK(t, err)
	_, err = op.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{i1}, Tags: []types.Tag{{Key: aws.String("eipd:priority"), Value: aws.String("5")}}})
	simOK(t, err)
	_, err = c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{alloc}, Tags: []types.Tag{{Key: aws.String("eipd:holder")}, {Key: aws.String("eipd:term"), Value: aws.String("9")}}})
	simOK(t, err)
	// A denied or failed write is not a write.
	simOK(t, s.SetInstanceFaults(i1, Faults{Deny: []string{"CreateTags"}}))
	_, err = c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc}, Tags: []types.Tag{{Key: aws.String("eipd:term"), Value: aws.String("4")}}})
	simWantCode(t, err, "UnauthorizedOperation")

	h := s.TagHistory(alloc)
	if len(h) != 2 {
		t.Fatalf("history of %s: %+v, want the create and the delete", alloc, h)
	}
	w0, w1 := h[0], h[1]
	if w0.Action != "create" || w0.Caller != i1 || w0.ResourceID != alloc || len(w0.Tags) != 3 ||
		w0.Tags["eipd:term"] != "3" || w0.Tags["eipd:holder"] != i1 || w0.Tags["eipd:renewed"] != "2026-01-01T00:00:00.000Z" {
		t.Errorf("create record %+v", w0)
	}
	if w0.Time.Before(before) || w0.Time.After(time.Now()) {
		t.Errorf("create record time %v", w0.Time)
	}
	// eipd:term=9 did not match the value 3, so only eipd:holder went.
	if w1.Action != "delete" || len(w1.Tags) != 1 || w1.Tags["eipd:holder"] != i1 {
		t.Errorf("delete record %+v", w1)
	}
	if all := s.TagHistory(""); len(all) != 3 || all[1].ResourceID != i1 || all[1].Caller != "" || all[1].Tags["eipd:priority"] != "5" {
		t.Errorf("whole history %+v", all)
	}
	resp, err := simNoKeepAlive.Get(info.ControlEndpoint + "/tag-history?resource_id=" + alloc)
	simOK(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || strings.Count(string(body), `"resource_id"`) != 2 || !strings.Contains(string(body), `"eipd:term":"3"`) {
		t.Fatalf("GET /tag-history: %d %s", resp.StatusCode, body)
	}
}
