package leader

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/eipd/eipd/eip"
)

// modelCloud is the Cloud of one daemon in the model-based test: the calls
// eip.Client makes, in the same order, on that daemon's connection to the
// EC2 model (which injects the faults). It is deliberately thin: when the
// Cloud interface changes, only this file follows.
type modelCloud struct {
	api   *ec2Conn
	group string
	// now is the daemon's clock: eip.Client stamps the lease of a claim or
	// a handoff with the time the association was confirmed.
	now func() time.Time
}

func (c *modelCloud) Addresses(_ context.Context, ids []string) ([]eip.Address, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	// As eip.Client: the allocation-id filter, so a released EIP is
	// left out rather than failing the read of the others.
	as, err := c.api.describeAddresses(ids, "", true)
	if err != nil {
		return nil, fmt.Errorf("describe addresses %v: %w", ids, classifyModel(err))
	}
	return toAddresses(as), nil
}

func (c *modelCloud) GroupAddresses(context.Context) ([]eip.Address, error) {
	as, err := c.api.describeAddresses(nil, c.group, false)
	if err != nil {
		return nil, fmt.Errorf("describe addresses of group %q: %w", c.group, classifyModel(err))
	}
	return toAddresses(as), nil
}

func toAddresses(as []ec2Address) []eip.Address {
	out := make([]eip.Address, 0, len(as))
	for _, a := range as {
		out = append(out, eip.Address{
			AllocationID: a.AllocationID, PublicIP: a.PublicIP, AssociationID: a.AssociationID,
			InstanceID: a.InstanceID, NetworkInterfaceID: a.NetworkInterfaceID, PrivateIP: a.PrivateIP,
			Group: a.Tags[eip.TagGroup], Lease: eip.ParseLease(a.Tags),
		})
	}
	return out
}

func (c *modelCloud) Members(context.Context) ([]eip.Instance, error) {
	vs, err := c.api.describeInstances(c.group)
	if err != nil {
		return nil, fmt.Errorf("describe instances of group %q: %w", c.group, classifyModel(err))
	}
	out := make([]eip.Instance, 0, len(vs))
	for _, v := range vs {
		in := eip.Instance{InstanceID: v.InstanceID, State: v.State, NetworkInterfaceID: v.NetworkInterfaceID}
		for _, p := range v.PrivateIPs {
			ip := eip.PrivateIP{Address: p.PrivateIP, Primary: p.Primary, PublicIP: p.PublicIP}
			if p.Primary {
				in.PrivateIP = p.PrivateIP
				in.PrivateIPs = append([]eip.PrivateIP{ip}, in.PrivateIPs...)
				continue
			}
			in.PrivateIPs = append(in.PrivateIPs, ip)
		}
		switch s := v.Tags[eip.TagState]; s {
		case eip.StateReady, eip.StateUnhealthy, eip.StateDraining:
			in.EIPDState = s
		}
		in.Priority, _ = strconv.Atoi(v.Tags[eip.TagPriority])
		out = append(out, in)
	}
	return out, nil
}

// Renew stamps holder and renewed on every EIP in one CreateTags, never
// the term (eip.Client.Renew).
func (c *modelCloud) Renew(_ context.Context, allocs []string, holder string, at time.Time) error {
	if len(allocs) == 0 {
		return nil
	}
	tags := map[string]string{eip.TagHolder: holder, eip.TagRenewed: at.UTC().Format(eip.RenewedLayout)}
	if err := c.api.createTags(allocs, tags); err != nil {
		return fmt.Errorf("renew leases of %v for %s: %w", allocs, holder, classifyModel(err))
	}
	return nil
}

// WriteLease writes a whole lease in one CreateTags (eip.Client.WriteLease).
func (c *modelCloud) WriteLease(_ context.Context, alloc string, lease eip.Lease) error {
	if lease.Renewed.IsZero() {
		lease.Renewed = c.now()
	}
	if err := c.api.createTags([]string{alloc}, modelLeaseTags(lease)); err != nil {
		return fmt.Errorf("write lease of %s for %s term %d: %w", alloc, lease.Holder, lease.Term, classifyModel(err))
	}
	return nil
}

// Claim fences on the observed association, associates without
// reassociation to the given private IP of self's ENI, then writes the
// lease.
func (c *modelCloud) Claim(ctx context.Context, observed eip.Address, self eip.Identity, slot string, lease eip.Lease) (string, error) {
	alloc := observed.AllocationID
	if slot == "" {
		slot = self.PrivateIP
	}
	if observed.Associated() {
		if err := c.api.disassociateAddress(observed.AssociationID); err != nil {
			return "", fmt.Errorf("claim %s: disassociate %s: %w", alloc, observed.AssociationID, classifyModel(err))
		}
	}
	assoc, err := c.api.associateAddress(alloc, self.NetworkInterfaceID, slot, false)
	if err != nil {
		return "", fmt.Errorf("claim %s: associate to %s (%s): %w", alloc, self.NetworkInterfaceID, slot, classifyModel(err))
	}
	lease.Renewed = c.now()
	if err := c.WriteLease(ctx, alloc, lease); err != nil {
		return assoc, fmt.Errorf("claim %s: associated as %s but lease not written: %w", alloc, assoc, err)
	}
	return assoc, nil
}

// Handoff moves the EIP to the given private IP of the target's ENI with
// reassociation, then writes the lease naming the target.
func (c *modelCloud) Handoff(ctx context.Context, addr eip.Address, target eip.Instance, slot string, lease eip.Lease) (string, error) {
	alloc := addr.AllocationID
	if slot == "" {
		slot = target.PrivateIP
	}
	if lease.Holder != target.InstanceID {
		return "", fmt.Errorf("hand off %s to %s: lease names holder %s: %w", alloc, target.InstanceID, lease.Holder, eip.ErrInvalidRequest)
	}
	assoc, err := c.api.associateAddress(alloc, target.NetworkInterfaceID, slot, true)
	if err != nil {
		return "", fmt.Errorf("hand off %s to %s (%s): %w", alloc, target.InstanceID, target.NetworkInterfaceID, classifyModel(err))
	}
	lease.Renewed = c.now()
	if err := c.WriteLease(ctx, alloc, lease); err != nil {
		return assoc, fmt.Errorf("hand off %s to %s: associated as %s but lease not written: %w", alloc, target.InstanceID, assoc, err)
	}
	return assoc, nil
}

func (c *modelCloud) SetState(_ context.Context, instanceID, state string) error {
	if err := c.api.createTags([]string{instanceID}, map[string]string{eip.TagState: state}); err != nil {
		return fmt.Errorf("set state of %s to %s: %w", instanceID, state, classifyModel(err))
	}
	return nil
}

// modelLeaseTags are the tags eip.Client.Renew writes for a lease.
func modelLeaseTags(l eip.Lease) map[string]string {
	tags := map[string]string{
		eip.TagHolder:  l.Holder,
		eip.TagTerm:    strconv.FormatInt(l.Term, 10),
		eip.TagRenewed: l.Renewed.UTC().Format(eip.RenewedLayout),
	}
	if l.Reason != "" {
		tags[eip.TagReason] = l.Reason
	}
	if !l.Decided.IsZero() {
		tags[eip.TagDecided] = l.Decided.UTC().Format(eip.RenewedLayout)
	}
	if l.Reason != "" {
		tags[eip.TagFrom] = l.From
	}
	return tags
}

// classifyModel wraps an EC2 model error with the eip sentinel its code
// maps to, as eip.Classify does for SDK errors.
func classifyModel(err error) error {
	var e *ec2Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%w: %w", eip.ErrUnavailable, err)
	}
	kind := eip.ErrInvalidRequest
	switch {
	case e.Code == codeAlreadyAssociated:
		kind = eip.ErrAlreadyAssociated
	case e.Code == codeAssociationNotFound:
		kind = eip.ErrStaleAssociation
	case e.Code == codeThrottled:
		kind = eip.ErrThrottled
	case strings.HasSuffix(e.Code, ".NotFound"):
		kind = eip.ErrNotFound
	case e.Code == codeUnavailable, e.Code == codeTimeout:
		kind = eip.ErrUnavailable
	}
	return fmt.Errorf("%w: %w", kind, err)
}
