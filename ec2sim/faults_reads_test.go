package ec2sim

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// TestFaultIMDSLag: an instance's association-derived metadata items
// show the association as it was imds_lag ago (AWS's metadata trails an
// association change); its other items and other instances' metadata do
// not lag.
func TestFaultIMDSLag(t *testing.T) {
	const lag = 2 * time.Second
	s := simStart(t, Options{Instances: 2, EIPs: 2})
	info := s.Info()
	in1, in2 := info.Instances[0], info.Instances[1]
	eip1, eip2 := info.EIPs[0], info.EIPs[1]
	m1, m2 := imdsSDKClient(t, in1.IMDSEndpoint), imdsSDKClient(t, in2.IMDSEndpoint)
	simOK(t, s.SetInstanceFaults(in1.InstanceID, Faults{IMDSLag: lag}))
	mac, err := imdsGet(t, m1, "mac")
	simOK(t, err)
	macs := "network/interfaces/macs/" + mac + "/"

	simOK(t, s.Associate(eip1.AllocationID, in1.InstanceID))
	simOK(t, s.Associate(eip2.AllocationID, in2.InstanceID))
	start := time.Now()
	for _, p := range []string{"public-ipv4", macs + "public-ipv4s", macs + "ipv4-associations/" + eip1.PublicIP} {
		if v, err := imdsGet(t, m1, p); imdsStatus(err) != 404 {
			t.Fatalf("%s of the lagged instance right after the association: %q, %v; want 404", p, v, err)
		}
	}
	for p, want := range map[string]string{"instance-id": in1.InstanceID, "local-ipv4": in1.PrivateIP, macs + "local-ipv4s": in1.PrivateIP} {
		if v, err := imdsGet(t, m1, p); err != nil || v != want {
			t.Fatalf("%s lags too: %q, %v", p, v, err)
		}
	}
	if v, err := imdsGet(t, m2, "public-ipv4"); err != nil || v != eip2.PublicIP {
		t.Fatalf("an instance without imds_lag: public-ipv4 %q, %v", v, err)
	}
	waitFor(t, "the lagged public-ipv4", func() bool { v, _ := imdsGet(t, m1, "public-ipv4"); return v == eip1.PublicIP })
	if el := time.Since(start); el < lag-100*time.Millisecond {
		t.Fatalf("association in metadata after %v, imds_lag is %v", el, lag)
	}
	if v, err := imdsGet(t, m1, macs+"ipv4-associations/"+eip1.PublicIP); err != nil || v != in1.PrivateIP {
		t.Fatalf("ipv4-associations: %q, %v", v, err)
	}

	// A disassociation lags too: the address stays in metadata a while.
	simOK(t, s.Disassociate(eip1.AllocationID))
	if v, err := imdsGet(t, m1, macs+"public-ipv4s"); err != nil || v != eip1.PublicIP {
		t.Fatalf("public-ipv4s right after the disassociation: %q, %v; want the old %s", v, err, eip1.PublicIP)
	}
	waitFor(t, "the lagged disassociation", func() bool { _, err := imdsGet(t, m1, "public-ipv4"); return imdsStatus(err) == 404 })
}

// mixedObservations reads the address for window and reports which
// (association, tag) pairs DescribeAddresses showed.
func mixedObservations(t *testing.T, c *ec2.Client, alloc string, window time.Duration) map[string]bool {
	t.Helper()
	seen := map[string]bool{}
	for end := time.Now().Add(window); time.Now().Before(end); {
		a := simAddr(t, c, alloc)
		tag := ""
		for _, tg := range a.Tags {
			if aws.ToString(tg.Key) == "eipd:holder" {
				tag = aws.ToString(tg.Value)
			}
		}
		seen[aws.ToString(a.InstanceId)+"|"+tag] = true
		time.Sleep(5 * time.Millisecond)
	}
	return seen
}

// TestFaultMixedReads: with mixed_reads, DescribeAddresses can show an
// address's tags newer than its association (or the reverse) within the
// describe_lag window; without it, a read is one moment, and a tag
// written after the association never shows without it.
func TestFaultMixedReads(t *testing.T) {
	const lag = 2 * time.Second
	ctx := context.Background()
	s := simStart(t, Options{Instances: 1})
	info := s.Info()
	i1, alloc := info.Instances[0].InstanceID, info.EIPs[0].AllocationID
	c := simClient(t, s, "AKIDOPERATOR")
	tag := func(v string) {
		_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc},
			Tags: []types.Tag{{Key: aws.String("eipd:holder"), Value: aws.String(v)}}})
		simOK(t, err)
	}
	// With describe_lag 0, mixed_reads changes nothing.
	s.SetFaults(Faults{MixedReads: true})
	simOK(t, s.Associate(alloc, i1))
	tag(i1)
	if a := simAddr(t, c, alloc); aws.ToString(a.InstanceId) != i1 || len(a.Tags) != 2 {
		t.Fatalf("mixed_reads without describe_lag: %+v", a)
	}

	run := func(mixed bool) map[string]bool {
		simOK(t, s.Disassociate(alloc))
		tag("none")
		s.SetFaults(Faults{DescribeLag: lag, MixedReads: mixed})
		time.Sleep(lag) // the whole window now holds the same state
		simOK(t, s.Associate(alloc, i1))
		time.Sleep(200 * time.Millisecond)
		tag(i1) // after the association
		return mixedObservations(t, c, alloc, lag)
	}
	plain := run(false)
	if plain["|"+i1] {
		t.Fatalf("without mixed_reads a read showed the newer tag with the older association: %v", plain)
	}
	// About one read in ten shows it; a slow machine may read only a few
	// dozen times in a window, so it gets more windows.
	for attempt := 1; ; attempt++ {
		mixed := run(true)
		for k := range mixed {
			if a, tg, _ := strings.Cut(k, "|"); (a != "" && a != i1) || (tg != "none" && tg != i1) {
				t.Fatalf("a read outside the window: %v", mixed)
			}
		}
		if mixed["|"+i1] {
			break
		}
		if attempt == 5 {
			t.Fatalf("mixed_reads never showed the newer tag with the older association in %d windows: %v", attempt, mixed)
		}
	}
}
