package ec2sim

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// DryRun order. AWS documents DryRun as a permission check: "If you have
// the required permissions, the error response is DryRunOperation.
// Otherwise, it is UnauthorizedOperation" (EC2 API reference,
// AssociateAddress), and IAM authorizes a request before the service acts
// on its resources (IAM user guide, "How IAM works"). So a dry run answers
// DryRunOperation whatever state the resources are in: the state a real
// call would trip over (an EIP associated elsewhere, an address in use) is
// only checked when the call is carried out. Malformed or unknown IDs are
// still refused, since the resource must be named to be authorized.

// dryRunCase is one call made twice, with DryRun and without.
type dryRunCase struct {
	name     string
	call     func(ctx context.Context, c *ec2.Client, dry bool) error
	dry, run string // expected error codes ("" = success)
	// moto: which answers moto must share: "both", "dry" (its real call
	// deviates from AWS, see the case), or "" (see the case).
	moto string
}

// dryRunCases are the calls of the DryRun-order check against w, in which
// EIP 0 is associated to instance 0 (ENI 0) and EIP 1 is unassociated.
func dryRunCases(w *confWorld) []dryRunCase {
	e0, e1 := w.eips[0].AllocationID, w.eips[1].AllocationID
	eni1 := w.enis[w.instances[1].ENIs[0]]
	return []dryRunCase{
		{"AssociateAddress AllowReassociation=false onto another instance while associated", func(ctx context.Context, c *ec2.Client, dry bool) error {
			_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{DryRun: aws.Bool(dry), AllocationId: aws.String(e0),
				NetworkInterfaceId: aws.String(eni1.ID), PrivateIpAddress: aws.String(eni1.PrivateIP), AllowReassociation: aws.Bool(false)})
			return err
		}, "DryRunOperation", "Resource.AlreadyAssociated", "both"},
		// moto releases an associated EIP; AWS refuses: "You must
		// disassociate the Elastic IP address before you can release it.
		// Otherwise, Amazon EC2 returns an error (InvalidIPAddress.InUse)"
		// (EC2 API reference, ReleaseAddress).
		{"ReleaseAddress of an associated EIP", func(ctx context.Context, c *ec2.Client, dry bool) error {
			_, err := c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{DryRun: aws.Bool(dry), AllocationId: aws.String(e0)})
			return err
		}, "DryRunOperation", "InvalidIPAddress.InUse", "dry"},
		// moto answers this dry run DryRunOperation: it checks DryRun before
		// it looks the EIP up. ec2sim refuses the unknown ID first: IAM
		// evaluates conditions on the resource's tags (eipd's policy scopes
		// by aws:ResourceTag/eipd:group), which needs the resource.
		{"AssociateAddress of an unknown allocation", func(ctx context.Context, c *ec2.Client, dry bool) error {
			_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{DryRun: aws.Bool(dry), AllocationId: aws.String("eipalloc-00000000000000000"),
				NetworkInterfaceId: aws.String(eni1.ID)})
			return err
		}, "InvalidAllocationID.NotFound", "InvalidAllocationID.NotFound", ""},
		{"AssociateAddress AllowReassociation=false of an unassociated EIP", func(ctx context.Context, c *ec2.Client, dry bool) error {
			_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{DryRun: aws.Bool(dry), AllocationId: aws.String(e1),
				NetworkInterfaceId: aws.String(eni1.ID), PrivateIpAddress: aws.String(eni1.PrivateIP), AllowReassociation: aws.Bool(false)})
			return err
		}, "DryRunOperation", "", "both"},
	}
}

// dryRunSetup associates EIP 0 with instance 0's first ENI.
func dryRunSetup(ctx context.Context, t *testing.T, w *confWorld) {
	t.Helper()
	eni0 := w.enis[w.instances[0].ENIs[0]]
	if _, err := w.client.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(w.eips[0].AllocationID),
		NetworkInterfaceId: aws.String(eni0.ID), PrivateIpAddress: aws.String(eni0.PrivateIP)}); err != nil {
		t.Fatalf("%s: associate EIP 0: %v", w.name, err)
	}
}

// runDryRunCases runs every case dry then for real, and returns the codes.
func runDryRunCases(ctx context.Context, t *testing.T, w *confWorld) map[string][2]string {
	t.Helper()
	dryRunSetup(ctx, t, w)
	got := map[string][2]string{}
	for _, c := range dryRunCases(w) {
		got[c.name] = [2]string{confCode(c.call(ctx, w.client, true)), confCode(c.call(ctx, w.client, false))}
	}
	return got
}

// TestSDKDryRunBeforeState: a dry run answers DryRunOperation where the
// real call would fail on the resource's state, and still refuses an
// unknown resource.
func TestSDKDryRunBeforeState(t *testing.T) {
	t.Parallel()
	ctx := confCtx(t)
	w := confSimWorld(ctx, t, confStartSim(t, Options{Instances: 2, EIPs: 2}), "operator")
	got := runDryRunCases(ctx, t, w)
	for _, c := range dryRunCases(w) {
		if g := got[c.name]; g != [2]string{c.dry, c.run} {
			t.Errorf("%s: dry run %q then real call %q, want %q then %q", c.name, g[0], g[1], c.dry, c.run)
		}
	}
}

// TestMotoDryRunBeforeState: moto (an independent implementation) answers
// the same sequence the same way.
func TestMotoDryRunBeforeState(t *testing.T) {
	endpoint := confStartMoto(t)
	ctx := confCtx(t)
	confResetMoto(t, endpoint)
	mw := confSeedMoto(ctx, t, endpoint, "conf", 2, 1, 2)
	sw := confSimWorld(ctx, t, confStartSim(t, Options{Instances: 2, EIPs: 2}), "operator")
	motoGot, simGot := runDryRunCases(ctx, t, mw), runDryRunCases(ctx, t, sw)
	compared := 0
	for _, c := range dryRunCases(sw) {
		s, m := simGot[c.name], motoGot[c.name]
		switch c.moto {
		case "both":
			if m != s {
				t.Errorf("%s: ec2sim answered %q, moto %q", c.name, s, m)
			}
		case "dry":
			if m[0] != s[0] {
				t.Errorf("%s dry run: ec2sim answered %q, moto %q", c.name, s[0], m[0])
			}
		default:
			continue
		}
		compared++
	}
	if compared < 3 {
		t.Errorf("only %d case(s) compared with moto", compared)
	}
}
