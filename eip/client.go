package eip

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/go-hclog"
)

// Config configures a Client.
type Config struct {
	// Group is the eipd:group tag value of the addresses and instances managed.
	Group string
	// DryRun sends mutating calls with DryRun=true: DryRunOperation counts as
	// success (so --dry-run still proves IAM permissions) and nothing changes.
	DryRun bool
	// Rate is the client-side budget in calls per second for all EC2 calls
	// (default 5); Burst its bucket size (default 10).
	Rate  float64
	Burst int
	// Endpoint names the EC2 endpoint (host or URL) in the cause of a call
	// without an answer when the SDK's error does not (a timeout); "" =
	// "the EC2 endpoint".
	Endpoint string
	// Now stamps leases (eipd:renewed when a move is confirmed); nil =
	// time.Now. Tests shift it to run a daemon with a skewed clock.
	Now func() time.Time
}

// membersPageSize is the DescribeInstances page size: the largest EC2 allows,
// to keep the number of calls per poll at one for any realistic group.
const membersPageSize = 1000

// Client carries out EC2 calls for eipd. It decides nothing: the leader
// decides, the Client does exactly the calls asked, through one budget.
type Client struct {
	cfg     Config
	api     EC2API
	log     hclog.Logger
	obs     Observer
	limiter *limiter
	warned  onceSet
	reach   reach
}

// New returns a Client. obs may be nil.
func New(cfg Config, api EC2API, logger hclog.Logger, obs Observer) *Client {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if obs == nil {
		obs = nopObserver{}
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 5
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{
		cfg:     cfg,
		api:     api,
		log:     logger,
		obs:     obs,
		limiter: newLimiter(cfg.Rate, cfg.Burst),
	}
}

// call runs one EC2 call through the budget, classifies its error, reports
// it to the Observer and feeds the throttle backoff.
func (c *Client) call(ctx context.Context, op string, fn func(context.Context) error) error {
	start := time.Now()
	if err := c.limiter.wait(ctx); err != nil {
		c.obs.ObserveEC2(op, Outcome(err), time.Since(start))
		c.log.Debug("EC2 call not sent", "operation", op, "error", err)
		return err
	}
	sent := time.Now()
	raw := fn(ctx)
	d := time.Since(sent)
	c.noteAnswer(op, raw, sent.Add(d))
	err := classify(op, raw)
	c.obs.ObserveEC2(op, Outcome(err), d)
	switch {
	case errors.Is(err, ErrThrottled):
		pause := c.limiter.throttled()
		c.log.Warn("EC2 throttled the call; pausing all EC2 calls", "operation", op, "pause", pause, "error", err)
	case errors.Is(err, ErrUnavailable):
		// Says nothing about the throttle state: keep any backoff.
	default:
		c.limiter.succeeded()
	}
	c.log.Debug("EC2 call", "operation", op, "outcome", Outcome(err), "duration", d)
	return err
}

// Addresses describes the given allocations in one DescribeAddresses call.
// It filters on allocation-id rather than naming the IDs: EC2 fails the
// whole call with InvalidAllocationID.NotFound when one named ID no longer
// exists, while a filter simply leaves it out, so one released EIP cannot
// blind the daemon to the others. The caller sees a missing ID as gone.
func (c *Client) Addresses(ctx context.Context, allocationIDs []string) ([]Address, error) {
	if len(allocationIDs) == 0 {
		// An empty filter would describe every address of the account.
		return nil, nil
	}
	var out *ec2.DescribeAddressesOutput
	err := c.call(ctx, OpDescribeAddresses, func(ctx context.Context) error {
		var err error
		out, err = c.api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{
			Filters: []types.Filter{{Name: aws.String("allocation-id"), Values: allocationIDs}},
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe addresses %v: %w", allocationIDs, err)
	}
	return c.addresses(out), nil
}

// GroupAddresses describes the addresses tagged eipd:group=<Group>.
func (c *Client) GroupAddresses(ctx context.Context) ([]Address, error) {
	var out *ec2.DescribeAddressesOutput
	err := c.call(ctx, OpDescribeAddresses, func(ctx context.Context) error {
		var err error
		out, err = c.api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{
			Filters: []types.Filter{{Name: aws.String("tag:" + TagGroup), Values: []string{c.cfg.Group}}},
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe addresses of group %q: %w", c.cfg.Group, err)
	}
	return c.addresses(out), nil
}

func (c *Client) addresses(out *ec2.DescribeAddressesOutput) []Address {
	if out == nil {
		return nil
	}
	res := make([]Address, 0, len(out.Addresses))
	for _, a := range out.Addresses {
		tags := tagMap(a.Tags)
		addr := Address{
			AllocationID:       aws.ToString(a.AllocationId),
			PublicIP:           aws.ToString(a.PublicIp),
			AssociationID:      aws.ToString(a.AssociationId),
			InstanceID:         aws.ToString(a.InstanceId),
			NetworkInterfaceID: aws.ToString(a.NetworkInterfaceId),
			PrivateIP:          aws.ToString(a.PrivateIpAddress),
			Group:              tags[TagGroup],
			Lease:              ParseLease(tags),
		}
		for _, k := range addr.Lease.Invalid {
			if c.warned.first("address|" + addr.AllocationID + "|" + k + "|" + tags[k]) {
				c.log.Warn("ignoring unparseable lease tag; the lease counts as stale",
					"allocation_id", addr.AllocationID, "tag", k, "value", tags[k])
			}
		}
		res = append(res, addr)
	}
	return res
}

// Members lists the running instances tagged eipd:group=<Group>, all pages.
func (c *Client) Members(ctx context.Context) ([]Instance, error) {
	in := &ec2.DescribeInstancesInput{
		Filters: []types.Filter{
			{Name: aws.String("tag:" + TagGroup), Values: []string{c.cfg.Group}},
			{Name: aws.String("instance-state-name"), Values: []string{"running"}},
		},
		MaxResults: aws.Int32(membersPageSize),
	}
	var res []Instance
	seen := map[string]bool{}
	for page := 1; ; page++ {
		var out *ec2.DescribeInstancesOutput
		err := c.call(ctx, OpDescribeInstances, func(ctx context.Context) error {
			var err error
			out, err = c.api.DescribeInstances(ctx, in)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("describe instances of group %q (page %d): %w", c.cfg.Group, page, err)
		}
		for _, r := range out.Reservations {
			for _, inst := range r.Instances {
				res = append(res, c.instance(inst))
			}
		}
		next := aws.ToString(out.NextToken)
		if next == "" {
			return res, nil
		}
		if seen[next] {
			return nil, fmt.Errorf("describe instances of group %q: EC2 repeated page token %q: %w", c.cfg.Group, next, ErrUnavailable)
		}
		seen[next] = true
		in.NextToken = aws.String(next)
	}
}

func (c *Client) instance(inst types.Instance) Instance {
	tags := tagMap(inst.Tags)
	out := Instance{
		InstanceID: aws.ToString(inst.InstanceId),
		LaunchTime: aws.ToTime(inst.LaunchTime),
	}
	if inst.State != nil {
		out.State = string(inst.State.Name)
	}
	if inst.Placement != nil {
		out.AvailabilityZone = aws.ToString(inst.Placement.AvailabilityZone)
	}
	for _, eni := range inst.NetworkInterfaces {
		if eni.Attachment == nil || aws.ToInt32(eni.Attachment.DeviceIndex) != 0 || aws.ToInt32(eni.Attachment.NetworkCardIndex) != 0 {
			continue
		}
		out.NetworkInterfaceID = aws.ToString(eni.NetworkInterfaceId)
		out.PrivateIP = aws.ToString(eni.PrivateIpAddress)
		for _, p := range eni.PrivateIpAddresses {
			ip := PrivateIP{Address: aws.ToString(p.PrivateIpAddress), Primary: aws.ToBool(p.Primary)}
			if p.Association != nil && aws.ToString(p.Association.IpOwnerId) != "amazon" {
				ip.PublicIP = aws.ToString(p.Association.PublicIp)
			}
			if ip.Address == "" {
				continue
			}
			if ip.Primary {
				out.PrivateIP = ip.Address
				// Primary first: it is the default slot and the one
				// peers probe.
				out.PrivateIPs = append([]PrivateIP{ip}, out.PrivateIPs...)
				continue
			}
			out.PrivateIPs = append(out.PrivateIPs, ip)
		}
		break
	}
	if out.NetworkInterfaceID == "" && c.warned.first("eni|"+out.InstanceID) {
		c.log.Warn("member has no device-index-0 network interface; it cannot receive the address", "instance_id", out.InstanceID)
	}
	if v, ok := tags[TagState]; ok {
		switch v {
		case StateReady, StateUnhealthy, StateDraining:
			out.EIPDState = v
		default:
			if c.warned.first("state|" + out.InstanceID + "|" + v) {
				c.log.Warn("ignoring unknown eipd:state tag value", "instance_id", out.InstanceID, "value", v)
			}
		}
	}
	if v, ok := tags[TagPriority]; ok && v != "" {
		p, err := strconv.Atoi(v)
		if err == nil {
			out.Priority = p
		} else if c.warned.first("priority|" + out.InstanceID + "|" + v) {
			c.log.Warn("ignoring unparseable eipd:priority tag; using 0", "instance_id", out.InstanceID, "value", v)
		}
	}
	return out
}

// dryRun reports whether err is the DryRunOperation answer of a call sent in
// dry-run mode, i.e. the call would have succeeded.
func (c *Client) dryRun(err error) bool {
	return c.cfg.DryRun && errors.Is(err, ErrDryRun)
}

func (c *Client) dryRunFlag() *bool {
	if c.cfg.DryRun {
		return aws.Bool(true)
	}
	return nil
}

// checkLease refuses a lease that would not read back, before anything is
// sent, so a Claim never associates and then fails to write its lease.
func checkLease(l Lease) error {
	if l.Term < 0 {
		return fmt.Errorf("negative term %d: %w", l.Term, ErrInvalidRequest)
	}
	return nil
}

// Renew stamps eipd:holder and eipd:renewed on every given allocation in
// one CreateTags call (it accepts many resources), so a holder of k EIPs
// makes one write per renewal, not k. It does not write the term: a
// renewal only says "still here", and a term is written only with a move
// (WriteLease), so a late renewal can never roll a term back.
func (c *Client) Renew(ctx context.Context, allocationIDs []string, holder string, at time.Time) error {
	if len(allocationIDs) == 0 {
		return nil
	}
	if holder == "" {
		return fmt.Errorf("renew leases of %v: no holder: %w", allocationIDs, ErrInvalidRequest)
	}
	err := c.call(ctx, OpCreateTags, func(ctx context.Context) error {
		_, err := c.api.CreateTags(ctx, &ec2.CreateTagsInput{
			Resources: allocationIDs,
			Tags: []types.Tag{
				{Key: aws.String(TagHolder), Value: aws.String(holder)},
				{Key: aws.String(TagRenewed), Value: aws.String(at.UTC().Format(RenewedLayout))},
			},
			DryRun: c.dryRunFlag(),
		})
		return err
	})
	if c.dryRun(err) {
		c.log.Debug("dry-run: would renew leases", "allocation_ids", allocationIDs, "instance_id", holder)
		return nil
	}
	if err != nil {
		return fmt.Errorf("renew leases of %v for %s: %w", allocationIDs, holder, err)
	}
	c.log.Trace("renewed leases", "allocation_ids", allocationIDs, "instance_id", holder)
	return nil
}

// WriteLease writes a whole lease (holder, term, renewed, and the move's
// reason, decision time and origin when set) on one allocation in one
// CreateTags call. A zero Renewed is written as now.
func (c *Client) WriteLease(ctx context.Context, allocationID string, lease Lease) error {
	if err := checkLease(lease); err != nil {
		return fmt.Errorf("write lease of %s: %w", allocationID, err)
	}
	if lease.Renewed.IsZero() {
		lease.Renewed = c.cfg.Now()
	}
	err := c.call(ctx, OpCreateTags, func(ctx context.Context) error {
		_, err := c.api.CreateTags(ctx, &ec2.CreateTagsInput{
			Resources: []string{allocationID},
			Tags:      leaseTags(lease),
			DryRun:    c.dryRunFlag(),
		})
		return err
	})
	if c.dryRun(err) {
		c.log.Debug("dry-run: would write lease", "allocation_id", allocationID, "instance_id", lease.Holder, "term", lease.Term)
		return nil
	}
	if err != nil {
		return fmt.Errorf("write lease of %s for %s term %d: %w", allocationID, lease.Holder, lease.Term, err)
	}
	c.log.Debug("wrote lease", "allocation_id", allocationID, "instance_id", lease.Holder, "term", lease.Term)
	return nil
}

// Claim takes the address for self, on privateIP of self's primary ENI
// (a free slot: EC2 silently knocks off an EIP already on that private IP).
// The observed association is the fence: if the address was associated, it
// is disassociated by exactly the observed association ID
// (ErrStaleAssociation when someone moved it since), then associated with
// AllowReassociation=false (ErrAlreadyAssociated when someone else got there
// first), then the lease is written.
//
// A non-empty association ID with an error means the address is now
// associated to self but the lease tags were not written. In dry-run mode it
// returns "" and nil when every call would have succeeded.
func (c *Client) Claim(ctx context.Context, observed Address, self Identity, privateIP string, lease Lease) (string, error) {
	alloc := observed.AllocationID
	if privateIP == "" {
		privateIP = self.PrivateIP
	}
	if self.NetworkInterfaceID == "" || privateIP == "" {
		return "", fmt.Errorf("claim %s: own network interface or private IP unknown: %w", alloc, ErrInvalidRequest)
	}
	if err := checkLease(lease); err != nil {
		return "", fmt.Errorf("claim %s: %w", alloc, err)
	}
	if observed.Associated() {
		err := c.call(ctx, OpDisassociateAddress, func(ctx context.Context) error {
			_, err := c.api.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{
				AssociationId: aws.String(observed.AssociationID),
				DryRun:        c.dryRunFlag(),
			})
			return err
		})
		switch {
		case c.dryRun(err):
			c.log.Info("dry-run: would disassociate", "allocation_id", alloc, "association_id", observed.AssociationID, "public_ip", observed.PublicIP)
		case err != nil:
			return "", fmt.Errorf("claim %s: disassociate %s: %w", alloc, observed.AssociationID, err)
		default:
			c.log.Info("disassociated address", "allocation_id", alloc, "association_id", observed.AssociationID, "public_ip", observed.PublicIP, "instance_id", observed.InstanceID)
		}
	}
	assoc, err := c.associate(ctx, observed, self.NetworkInterfaceID, privateIP, false)
	if c.dryRun(err) {
		c.log.Info("dry-run: would associate", "allocation_id", alloc, "public_ip", observed.PublicIP, "instance_id", self.InstanceID, "network_interface_id", self.NetworkInterfaceID, "private_ip", privateIP, "term", lease.Term)
	} else if err != nil {
		return "", fmt.Errorf("claim %s: associate to %s (%s): %w", alloc, self.NetworkInterfaceID, privateIP, err)
	} else {
		c.log.Info("claimed address", "allocation_id", alloc, "association_id", assoc, "public_ip", observed.PublicIP, "instance_id", self.InstanceID, "private_ip", privateIP, "term", lease.Term)
	}
	lease.Renewed = c.cfg.Now() // when the association was confirmed
	if err := c.WriteLease(ctx, alloc, lease); err != nil {
		if c.cfg.DryRun {
			return "", fmt.Errorf("claim %s: the association would succeed but the lease could not be written: %w", alloc, err)
		}
		return assoc, fmt.Errorf("claim %s: associated as %s but lease not written: %w", alloc, assoc, err)
	}
	if c.cfg.DryRun {
		return "", nil
	}
	return assoc, nil
}

// Handoff moves the address it holds to privateIP (a free slot) of target's
// primary ENI (AllowReassociation=true: it owns the address), then writes
// the lease, whose holder must be the target. A non-empty association ID
// with an error means the move happened but the lease tags were not written.
func (c *Client) Handoff(ctx context.Context, addr Address, target Instance, privateIP string, lease Lease) (string, error) {
	alloc := addr.AllocationID
	if privateIP == "" {
		privateIP = target.PrivateIP
	}
	if target.NetworkInterfaceID == "" || privateIP == "" {
		return "", fmt.Errorf("hand off %s to %s: target network interface or private IP unknown: %w", alloc, target.InstanceID, ErrInvalidRequest)
	}
	if lease.Holder == "" {
		lease.Holder = target.InstanceID
	}
	if lease.Holder != target.InstanceID {
		return "", fmt.Errorf("hand off %s to %s: lease names holder %s: %w", alloc, target.InstanceID, lease.Holder, ErrInvalidRequest)
	}
	if err := checkLease(lease); err != nil {
		return "", fmt.Errorf("hand off %s to %s: %w", alloc, target.InstanceID, err)
	}
	assoc, err := c.associate(ctx, addr, target.NetworkInterfaceID, privateIP, true)
	if c.dryRun(err) {
		c.log.Info("dry-run: would hand off", "allocation_id", alloc, "public_ip", addr.PublicIP, "instance_id", target.InstanceID, "network_interface_id", target.NetworkInterfaceID, "private_ip", privateIP, "term", lease.Term)
	} else if err != nil {
		return "", fmt.Errorf("hand off %s to %s (%s, %s): %w", alloc, target.InstanceID, target.NetworkInterfaceID, privateIP, err)
	} else {
		c.log.Info("handed off address", "allocation_id", alloc, "association_id", assoc, "public_ip", addr.PublicIP, "instance_id", target.InstanceID, "private_ip", privateIP, "term", lease.Term)
	}
	// renewed is when the association was confirmed, so renewed − decided
	// is the move's duration for whoever reads the lease (the new holder).
	lease.Renewed = c.cfg.Now()
	if err := c.WriteLease(ctx, alloc, lease); err != nil {
		if c.cfg.DryRun {
			return "", fmt.Errorf("hand off %s to %s: the association would succeed but the lease could not be written: %w", alloc, target.InstanceID, err)
		}
		return assoc, fmt.Errorf("hand off %s to %s: associated as %s but lease not written: %w", alloc, target.InstanceID, assoc, err)
	}
	if c.cfg.DryRun {
		return "", nil
	}
	return assoc, nil
}

// associate always names the ENI and private IP, never the instance:
// instances with several ENIs (ECS awsvpc trunking) refuse association by
// instance.
func (c *Client) associate(ctx context.Context, addr Address, eni, privateIP string, reassociate bool) (string, error) {
	var assoc string
	err := c.call(ctx, OpAssociateAddress, func(ctx context.Context) error {
		out, err := c.api.AssociateAddress(ctx, &ec2.AssociateAddressInput{
			AllocationId:       aws.String(addr.AllocationID),
			NetworkInterfaceId: aws.String(eni),
			PrivateIpAddress:   aws.String(privateIP),
			AllowReassociation: aws.Bool(reassociate),
			DryRun:             c.dryRunFlag(),
		})
		if out != nil {
			assoc = aws.ToString(out.AssociationId)
		}
		return err
	})
	return assoc, err
}

// SetState writes the instance's eipd:state tag.
func (c *Client) SetState(ctx context.Context, instanceID, state string) error {
	switch state {
	case StateReady, StateUnhealthy, StateDraining:
	default:
		return fmt.Errorf("set state of %s: unknown state %q: %w", instanceID, state, ErrInvalidRequest)
	}
	err := c.call(ctx, OpCreateTags, func(ctx context.Context) error {
		_, err := c.api.CreateTags(ctx, &ec2.CreateTagsInput{
			Resources: []string{instanceID},
			Tags:      []types.Tag{{Key: aws.String(TagState), Value: aws.String(state)}},
			DryRun:    c.dryRunFlag(),
		})
		return err
	})
	if c.dryRun(err) {
		c.log.Info("dry-run: would set state", "instance_id", instanceID, "state", state)
		return nil
	}
	if err != nil {
		return fmt.Errorf("set state of %s to %s: %w", instanceID, state, err)
	}
	c.log.Info("set state", "instance_id", instanceID, "state", state)
	return nil
}
