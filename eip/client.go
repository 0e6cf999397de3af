package eip

import (
	"context"
	"errors"
	"fmt"
	"slices"
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

// Addresses describes the managed EIPs in one DescribeAddresses call: the
// given allocations, or, when none are given, every EIP tagged
// eipd:group=<Group>. Given IDs are filtered on allocation-id rather than
// named: EC2 fails the whole call with InvalidAllocationID.NotFound when
// one named ID no longer exists, while a filter simply leaves it out, so
// one released EIP cannot blind the daemon to the others. The caller sees a
// missing ID as gone.
func (c *Client) Addresses(ctx context.Context, allocationIDs []string) ([]Address, error) {
	filter := types.Filter{Name: aws.String("tag:" + TagGroup), Values: []string{c.cfg.Group}}
	what := fmt.Sprintf("of group %q", c.cfg.Group)
	if len(allocationIDs) > 0 {
		filter = types.Filter{Name: aws.String("allocation-id"), Values: allocationIDs}
		what = fmt.Sprint(allocationIDs)
	}
	var out *ec2.DescribeAddressesOutput
	err := c.call(ctx, OpDescribeAddresses, func(ctx context.Context) error {
		var err error
		out, err = c.api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{filter}})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("describe addresses %s: %w", what, err)
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
			Lease:              ParseGroupLease(tags),
			Record:             ParseRecord(tags),
		}
		for _, k := range append(slices.Clone(addr.Lease.Invalid), addr.Record.Invalid...) {
			if c.warned.first("address|" + addr.AllocationID + "|" + k + "|" + tags[k]) {
				c.log.Warn("ignoring an unparseable tag; it counts as absent (the coordinator rewrites a bad record)",
					"allocation_id", addr.AllocationID, "tag", k, "value", tags[k])
			}
		}
		res = append(res, addr)
	}
	return res
}

// Members lists the instances tagged eipd:group=<Group> that are not
// terminated (pending, running, shutting down, stopping, stopped; see State
// and Running), all pages.
func (c *Client) Members(ctx context.Context) ([]Instance, error) {
	in := &ec2.DescribeInstancesInput{
		Filters: []types.Filter{
			{Name: aws.String("tag:" + TagGroup), Values: []string{c.cfg.Group}},
			// Not only running ones: an instance listed as stopping or
			// stopped is known gone, while one missing from a list may only
			// be missing from a list that lags behind its launch.
			{Name: aws.String("instance-state-name"), Values: []string{"pending", "running", "shutting-down", "stopping", "stopped"}},
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
			if p.Association != nil {
				if aws.ToString(p.Association.IpOwnerId) == "amazon" {
					ip.AutoPublicIP = aws.ToString(p.Association.PublicIp)
				} else {
					ip.PublicIP = aws.ToString(p.Association.PublicIp)
				}
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
	if v := tags[TagHeartbeat]; v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			out.Heartbeat = t.UTC()
		} else if c.warned.first("heartbeat|" + out.InstanceID + "|" + v) {
			c.log.Warn("ignoring an unparseable eipd:heartbeat tag", "instance_id", out.InstanceID, "value", v)
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

// WriteLease writes the group lease on the given allocations in one
// CreateTags call (it accepts many resources): a renewal, a claim, or the
// hand-over of the role. An allocation that no longer exists fails the
// whole call (ErrNotFound): the caller reads again and renews without it.
func (c *Client) WriteLease(ctx context.Context, allocationIDs []string, l GroupLease) error {
	if len(allocationIDs) == 0 {
		return fmt.Errorf("write the group lease: no EIP to write it on: %w", ErrInvalidRequest)
	}
	if l.Coordinator == "" || l.Epoch <= 0 {
		return fmt.Errorf("write the group lease on %v: coordinator %q epoch %d: %w", allocationIDs, l.Coordinator, l.Epoch, ErrInvalidRequest)
	}
	err := c.createTags(ctx, allocationIDs, sdkTags(l.Tags()))
	if c.dryRun(err) {
		c.log.Debug("dry-run: would write the group lease", "allocation_ids", allocationIDs, "instance_id", l.Coordinator, "epoch", l.Epoch)
		return nil
	}
	if err != nil {
		return fmt.Errorf("write the group lease on %v for %s epoch %d: %w", allocationIDs, l.Coordinator, l.Epoch, goneIDs(err, allocationIDs))
	}
	c.log.Trace("wrote the group lease", "allocation_ids", allocationIDs, "instance_id", l.Coordinator, "epoch", l.Epoch)
	return nil
}

// WriteRecord writes the record of a move on one allocation in one
// CreateTags call.
func (c *Client) WriteRecord(ctx context.Context, allocationID string, r Record) error {
	if r.Term.Epoch <= 0 {
		return fmt.Errorf("write the record of %s: term %s: %w", allocationID, r.Term, ErrInvalidRequest)
	}
	err := c.createTags(ctx, []string{allocationID}, sdkTags(r.Tags()))
	if c.dryRun(err) {
		c.log.Debug("dry-run: would write the record", "allocation_id", allocationID, "instance_id", r.Holder, "term", r.Term.String())
		return nil
	}
	if err != nil {
		return fmt.Errorf("write the record of %s (holder %s, term %s): %w", allocationID, r.Holder, r.Term, err)
	}
	c.log.Debug("wrote the record", "allocation_id", allocationID, "instance_id", r.Holder, "term", r.Term.String())
	return nil
}

// Heartbeat writes eipd:heartbeat=at on this member's own instance.
func (c *Client) Heartbeat(ctx context.Context, instanceID string, at time.Time) error {
	err := c.createTags(ctx, []string{instanceID}, []types.Tag{{Key: aws.String(TagHeartbeat), Value: aws.String(stamp(at))}})
	if c.dryRun(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("write the heartbeat of %s: %w", instanceID, err)
	}
	return nil
}

func (c *Client) createTags(ctx context.Context, resources []string, tags []types.Tag) error {
	return c.call(ctx, OpCreateTags, func(ctx context.Context) error {
		_, err := c.api.CreateTags(ctx, &ec2.CreateTagsInput{Resources: resources, Tags: tags, DryRun: c.dryRunFlag()})
		return err
	})
}

// oneAttempt makes a move call once, without the SDK's retries: a retried
// move whose first attempt landed answers as if nothing had happened (or
// with Resource.AlreadyAssociated), and the caller must know that an
// answer never came (ErrNoAnswer: it may have happened). The coordinator
// decides what to do next from a read.
func oneAttempt(o *ec2.Options) { o.RetryMaxAttempts = 1 }

// Disassociate removes the association by its ID: the fence of a
// takeover. ErrStaleAssociation when that association no longer exists
// (someone moved the EIP since it was read). In dry-run mode it returns nil
// when the call would have succeeded.
func (c *Client) Disassociate(ctx context.Context, associationID string) error {
	err := c.call(ctx, OpDisassociateAddress, func(ctx context.Context) error {
		_, err := c.api.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{
			AssociationId: aws.String(associationID),
			DryRun:        c.dryRunFlag(),
		}, oneAttempt)
		return err
	})
	switch {
	case c.dryRun(err):
		c.log.Info("dry-run: would disassociate", "association_id", associationID)
		return nil
	case err != nil:
		return fmt.Errorf("disassociate %s: %w", associationID, err)
	}
	c.log.Info("disassociated", "association_id", associationID)
	return nil
}

// Associate associates the allocation with privateIP of the network
// interface eni, always by interface and private IP, never by instance:
// instances with several ENIs (ECS awsvpc trunking) refuse association by
// instance. reassociate=false is the fence of a takeover: ErrAlreadyAssociated
// when the EIP is associated anywhere. It returns the new association ID;
// in dry-run mode "" and nil when the call would have succeeded.
func (c *Client) Associate(ctx context.Context, allocationID, eni, privateIP string, reassociate bool) (string, error) {
	if eni == "" || privateIP == "" {
		return "", fmt.Errorf("associate %s: network interface %q, private IP %q: %w", allocationID, eni, privateIP, ErrInvalidRequest)
	}
	var assoc string
	err := c.call(ctx, OpAssociateAddress, func(ctx context.Context) error {
		out, err := c.api.AssociateAddress(ctx, &ec2.AssociateAddressInput{
			AllocationId:       aws.String(allocationID),
			NetworkInterfaceId: aws.String(eni),
			PrivateIpAddress:   aws.String(privateIP),
			AllowReassociation: aws.Bool(reassociate),
			DryRun:             c.dryRunFlag(),
		}, oneAttempt)
		if out != nil {
			assoc = aws.ToString(out.AssociationId)
		}
		return err
	})
	switch {
	case c.dryRun(err):
		c.log.Info("dry-run: would associate", "allocation_id", allocationID, "network_interface_id", eni, "private_ip", privateIP, "reassociate", reassociate)
		return "", nil
	case err != nil:
		return "", fmt.Errorf("associate %s to %s (%s): %w", allocationID, eni, privateIP, err)
	}
	c.log.Info("associated", "allocation_id", allocationID, "association_id", assoc, "network_interface_id", eni, "private_ip", privateIP)
	return assoc, nil
}
