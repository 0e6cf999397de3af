// Package asghook completes this instance's Auto Scaling termination
// lifecycle hook once eipd has nothing left to hand off, so that a scale-in
// waits for the EIP to move but not for the hook's heartbeat timeout.
//
// When Auto Scaling terminates an instance whose group has a termination
// lifecycle hook, the instance stays in Terminating:Wait, and instance
// metadata says autoscaling/target-lifecycle-state = Terminated. The leader
// loop reads that notice and drains: it hands every EIP it holds to a ready
// member. The Completer watches the loop's status; once the loop is
// draining for that notice and holds no EIP (the handoff is done, or it held
// none), it calls CompleteLifecycleAction with CONTINUE, once. If the
// handoff cannot happen (no ready member), the instance keeps its EIPs and
// the hook is left to its heartbeat timeout and default result.
//
// The group's name is the instance's aws:autoscaling:groupName tag, which
// Auto Scaling puts on its instances, read once with DescribeInstances.
package asghook

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/leader"
)

// GroupNameTag is the tag Auto Scaling puts on its instances.
const GroupNameTag = "aws:autoscaling:groupName"

// AutoScaling is the call the Completer makes; *autoscaling.Client
// satisfies it.
type AutoScaling interface {
	CompleteLifecycleAction(ctx context.Context, in *autoscaling.CompleteLifecycleActionInput, optFns ...func(*autoscaling.Options)) (*autoscaling.CompleteLifecycleActionOutput, error)
}

// EC2 reads this instance's tags; *ec2.Client satisfies it.
type EC2 interface {
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// Notices are the lifecycle notices in instance metadata; *eip.Metadata
// satisfies it.
type Notices interface {
	Notices(ctx context.Context) ([]eip.Notice, error)
}

// Loop is the leader loop as the Completer sees it; *leader.Loop satisfies it.
type Loop interface {
	Status() leader.Status
}

// Config configures a Completer.
type Config struct {
	// Hook is the lifecycle hook's name (--lifecycle-hook).
	Hook string
	// InstanceID is this instance.
	InstanceID string
	// Every is how often the loop's status is looked at (default 1s): the
	// delay between the end of the handoff and the completion.
	Every time.Duration
	// NoticeEvery bounds how often instance metadata is read to tell an
	// Auto Scaling termination from another drain (default 5s).
	NoticeEvery time.Duration
	// RetryEvery is the pause after a failed AWS call (default 5s).
	RetryEvery time.Duration
	// CallTimeout bounds each AWS or IMDS call (default 5s).
	CallTimeout time.Duration
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// DryRun (eipd run --dry-run): log the completion instead of making
	// it; CompleteLifecycleAction has no DryRun parameter.
	DryRun bool
}

// Completer completes the lifecycle hook once; see the package comment.
type Completer struct {
	cfg     Config
	asg     AutoScaling
	ec2     EC2
	notices Notices
	loop    Loop
	log     hclog.Logger

	terminating bool      // Auto Scaling's termination notice was seen
	noticesAt   time.Time // last read of the notices
	triedAt     time.Time // last failed AWS call
	waitLogged  bool
	group       string
}

// New returns a Completer. logger may be nil.
func New(cfg Config, asg AutoScaling, ec2api EC2, notices Notices, loop Loop, logger hclog.Logger) *Completer {
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.NoticeEvery <= 0 {
		cfg.NoticeEvery = 5 * time.Second
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = 5 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Completer{cfg: cfg, asg: asg, ec2: ec2api, notices: notices, loop: loop, log: logger}
}

// Run looks every cfg.Every until it has completed the lifecycle action
// (or found that there is none to complete), or ctx ends. It returns nil.
func (c *Completer) Run(ctx context.Context) error {
	t := time.NewTicker(c.cfg.Every)
	defer t.Stop()
	for {
		if c.Step(ctx) {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step looks once and acts if it is time; it reports whether nothing is
// left to do.
func (c *Completer) Step(ctx context.Context) bool {
	now := c.cfg.Now()
	s := c.loop.Status()
	// The loop drains for every lifecycle notice (spot, maintenance, Auto
	// Scaling); only Auto Scaling's termination has a hook to complete.
	if s.Draining != leader.ReasonHandoffDraining {
		return false
	}
	if !c.terminating {
		if now.Sub(c.noticesAt) < c.cfg.NoticeEvery {
			return false
		}
		c.noticesAt = now
		cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
		ns, err := c.notices.Notices(cctx)
		cancel()
		if err != nil {
			c.log.Debug("cannot read lifecycle notices", "error", err)
			return false
		}
		for _, n := range ns {
			c.terminating = c.terminating || n.Kind == eip.NoticeASGTerminating
		}
		if !c.terminating {
			return false
		}
		c.log.Info("Auto Scaling is terminating this instance; the lifecycle hook is completed once it holds no EIP", "hook", c.cfg.Hook)
	}
	if held := holding(s); len(held) > 0 {
		if !c.waitLogged {
			c.log.Info("waiting for the handoff before completing the lifecycle hook", "hook", c.cfg.Hook, "held", held)
			c.waitLogged = true
		}
		return false
	}
	if !c.triedAt.IsZero() && now.Sub(c.triedAt) < c.cfg.RetryEvery {
		return false
	}
	done, err := c.complete(ctx)
	if err != nil {
		c.triedAt = now
		c.log.Warn("cannot complete the lifecycle hook; retrying", "hook", c.cfg.Hook, "retry_in", c.cfg.RetryEvery, "error", err)
	}
	return done
}

// holding lists the EIPs this instance may still hold: holder, or unverified
// (it holds them as far as it knows).
func holding(s leader.Status) []string {
	var ids []string
	for _, e := range s.EIPs {
		if e.Role == leader.RoleHolder || e.Role == leader.RoleUnverified {
			ids = append(ids, e.AllocationID)
		}
	}
	return ids
}

// complete finds the group and completes the action. done is true once
// there is nothing left to try.
func (c *Completer) complete(ctx context.Context) (done bool, err error) {
	if c.group == "" {
		group, err := c.groupName(ctx)
		if err != nil {
			return false, err
		}
		if group == "" {
			c.log.Error("this instance has no "+GroupNameTag+" tag: it is not in an Auto Scaling group, so there is no lifecycle hook to complete; unset --lifecycle-hook here",
				"hook", c.cfg.Hook, "instance_id", c.cfg.InstanceID)
			return true, nil
		}
		c.group = group
	}
	if c.cfg.DryRun {
		c.log.Info("dry-run: would complete the lifecycle hook (CONTINUE)", "hook", c.cfg.Hook, "auto_scaling_group", c.group, "instance_id", c.cfg.InstanceID)
		return true, nil
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	_, err = c.asg.CompleteLifecycleAction(cctx, &autoscaling.CompleteLifecycleActionInput{
		AutoScalingGroupName: aws.String(c.group), LifecycleHookName: aws.String(c.cfg.Hook),
		InstanceId: aws.String(c.cfg.InstanceID), LifecycleActionResult: aws.String("CONTINUE"),
	})
	var ae smithy.APIError
	switch {
	case err == nil:
		c.log.Info("completed the lifecycle hook (CONTINUE): Auto Scaling may terminate this instance now",
			"hook", c.cfg.Hook, "auto_scaling_group", c.group, "instance_id", c.cfg.InstanceID)
		return true, nil
	case errors.As(err, &ae) && ae.ErrorCode() == "ValidationError":
		// No open action: completed by someone else, timed out, or the
		// hook or group name is not the one Auto Scaling knows. Retrying
		// cannot help.
		c.log.Warn("no lifecycle action to complete (already completed, timed out, or --lifecycle-hook does not name a hook of the group)",
			"hook", c.cfg.Hook, "auto_scaling_group", c.group, "error", err)
		return true, nil
	}
	return false, fmt.Errorf("complete lifecycle action %s of %s for %s: %w", c.cfg.Hook, c.group, c.cfg.InstanceID, err)
}

// groupName reads this instance's aws:autoscaling:groupName tag ("" when
// it has none).
func (c *Completer) groupName(ctx context.Context) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.CallTimeout)
	defer cancel()
	out, err := c.ec2.DescribeInstances(cctx, &ec2.DescribeInstancesInput{InstanceIds: []string{c.cfg.InstanceID}})
	if err != nil {
		return "", fmt.Errorf("read the Auto Scaling group of %s: %w", c.cfg.InstanceID, eip.Classify(err))
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			for _, t := range in.Tags {
				if aws.ToString(t.Key) == GroupNameTag {
					return aws.ToString(t.Value), nil
				}
			}
		}
	}
	return "", nil
}
