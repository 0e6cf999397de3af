// Package asghealth lets a member whose proxy stays down be replaced: once
// its own health check has been down for a configured time (--asg-health-after),
// while it holds no EIP and another member serves, it marks itself
// Unhealthy in its Auto Scaling group (autoscaling:SetInstanceHealth), and
// the group terminates it and launches a replacement. This is the custom
// health check of the Amazon EC2 Auto Scaling user guide ("Set up a custom
// health check for your Auto Scaling group"); with HealthCheckType EC2
// alone, an instance whose HAProxy is dead but whose EC2 status checks pass
// is never replaced.
//
// It never marks a member that holds an EIP: that member keeps its EIPs
// because no ready member could take them (a handoff would have happened
// otherwise), and replacing it would leave the EIPs on nothing. Nor does it
// mark one while no other member serves: when every proxy is down the cause
// is shared (the backends, a bad configuration pushed to all), and
// replacing instances one after another would not help.
//
// The call respects the group's health check grace period
// (ShouldRespectGracePeriod), so a member that is still starting is left
// alone by Auto Scaling. While the conditions hold the call is repeated once
// every --asg-health-after, in case Auto Scaling ignored it during the grace
// period; a failed call is retried every RetryEvery.
package asghealth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/health"
)

// AutoScaling is the call the Reporter makes; *autoscaling.Client
// satisfies it.
type AutoScaling interface {
	SetInstanceHealth(ctx context.Context, in *autoscaling.SetInstanceHealthInput, optFns ...func(*autoscaling.Options)) (*autoscaling.SetInstanceHealthOutput, error)
}

// Health is this instance's own health check after hysteresis. Changed
// receives a value after each status change (a subscription of its own:
// *health.Monitor's Subscribe gives one).
type Health interface {
	Status() health.Status
	Changed() <-chan struct{}
}

// Metrics counts the reports; *metrics.Metrics satisfies it.
type Metrics interface {
	ASGUnhealthyReport(outcome string)
}

// Outcomes of a report, as counted by Metrics.
const (
	OutcomeSuccess      = "success"
	OutcomeUnauthorized = "unauthorized"
	OutcomeNotInGroup   = "not_in_group"
	OutcomeError        = "error"
	OutcomeDryRun       = "dry_run"
)

// Outcomes lists every outcome, for the metric's labels.
var Outcomes = []string{OutcomeSuccess, OutcomeUnauthorized, OutcomeNotInGroup, OutcomeError, OutcomeDryRun}

// Config configures a Reporter.
type Config struct {
	// InstanceID is this instance.
	InstanceID string
	// After is how long the own health check must stay down before the
	// instance is marked unhealthy (--asg-health-after); default 5m.
	After time.Duration
	// Every is how often the conditions are looked at, besides every change
	// of the health status (default 1s).
	Every time.Duration
	// RetryEvery is the pause after a failed call (default 30s).
	RetryEvery time.Duration
	// CallTimeout bounds the call (default 5s).
	CallTimeout time.Duration
	// DryRun (eipd run --dry-run): log what would be done instead;
	// SetInstanceHealth has no DryRun parameter.
	DryRun bool
	// Now is the clock; nil = time.Now.
	Now func() time.Time
}

// Reporter marks this instance unhealthy in its Auto Scaling group; see the
// package comment.
type Reporter struct {
	cfg     Config
	health  Health
	holds   func() bool
	serving func() bool
	asg     AutoScaling
	log     hclog.Logger
	m       Metrics

	downSince time.Time // zero while the health is not down
	triedAt   time.Time // last call (or dry-run log)
	retryIn   time.Duration
	gaveUp    bool   // the instance is in no Auto Scaling group
	waiting   string // why it waits, as last logged
}

// New returns a Reporter. holds says whether this instance holds (or may
// still hold) any EIP; serving whether another member serves the EIPs (nil:
// not checked). logger and m may be nil.
func New(cfg Config, h Health, holds, serving func() bool, asg AutoScaling, logger hclog.Logger, m Metrics) *Reporter {
	if cfg.After <= 0 {
		cfg.After = 5 * time.Minute
	}
	if cfg.Every <= 0 {
		cfg.Every = time.Second
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = 30 * time.Second
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
	if m == nil {
		m = nopMetrics{}
	}
	return &Reporter{cfg: cfg, health: h, holds: holds, serving: serving, asg: asg, log: logger, m: m}
}

// Run looks at the conditions on every change of the health status and
// every cfg.Every, until ctx ends. It returns nil.
func (r *Reporter) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.Every)
	defer t.Stop()
	changed := r.health.Changed()
	for {
		r.Step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		case <-t.C:
		}
	}
}

// Step looks once and reports if it is time.
func (r *Reporter) Step(ctx context.Context) {
	now := r.cfg.Now()
	if r.health.Status() != health.Down {
		if !r.downSince.IsZero() {
			r.log.Info("own health check no longer down: not asking Auto Scaling to replace this instance", "instance_id", r.cfg.InstanceID)
		}
		r.downSince, r.triedAt, r.retryIn, r.gaveUp, r.waiting = time.Time{}, time.Time{}, 0, false, ""
		return
	}
	if r.downSince.IsZero() {
		r.downSince = now
		r.log.Info("own health check down: this instance asks its Auto Scaling group to replace it if it stays down",
			"instance_id", r.cfg.InstanceID, "after", r.cfg.After)
	}
	if r.gaveUp || now.Sub(r.downSince) < r.cfg.After {
		return
	}
	switch {
	case r.holds():
		r.wait("it holds an EIP: no member is ready to take it, and replacing this one would leave the EIP on nothing")
		return
	case r.serving != nil && !r.serving():
		r.wait("no other member serves either: the cause is likely shared (backends, configuration), and replacing this instance would not help")
		return
	}
	r.waiting = ""
	if !r.triedAt.IsZero() && now.Sub(r.triedAt) < r.retryIn {
		return
	}
	r.report(ctx, now)
}

// wait logs, once per reason, why the instance is not reported yet.
func (r *Reporter) wait(why string) {
	if r.waiting == why {
		return
	}
	r.waiting = why
	r.log.Warn("own health check down for longer than --asg-health-after, but not asking Auto Scaling to replace this instance: "+why,
		"instance_id", r.cfg.InstanceID, "down_for", r.cfg.Now().Sub(r.downSince).Round(time.Second))
}

// report makes the call and sets when to try again.
func (r *Reporter) report(ctx context.Context, now time.Time) {
	r.triedAt = now
	downFor := now.Sub(r.downSince).Round(time.Second)
	if r.cfg.DryRun {
		r.m.ASGUnhealthyReport(OutcomeDryRun)
		r.retryIn = r.cfg.After
		r.log.Warn("dry-run: would mark this instance Unhealthy in its Auto Scaling group (SetInstanceHealth)", "instance_id", r.cfg.InstanceID, "down_for", downFor)
		return
	}
	cctx, cancel := context.WithTimeout(ctx, r.cfg.CallTimeout)
	defer cancel()
	_, err := r.asg.SetInstanceHealth(cctx, &autoscaling.SetInstanceHealthInput{
		InstanceId: aws.String(r.cfg.InstanceID), HealthStatus: aws.String("Unhealthy"),
		ShouldRespectGracePeriod: aws.Bool(true),
	})
	outcome := classify(err)
	r.m.ASGUnhealthyReport(outcome)
	switch outcome {
	case OutcomeSuccess:
		// Repeated once per After while still down: Auto Scaling ignores
		// the call during the group's health check grace period.
		r.retryIn = r.cfg.After
		r.log.Warn("marked this instance Unhealthy in its Auto Scaling group: the group replaces it (its termination lifecycle hook runs first)",
			"instance_id", r.cfg.InstanceID, "down_for", downFor)
	case OutcomeNotInGroup:
		r.gaveUp = true
		r.log.Error("cannot mark this instance unhealthy: it is not in an Auto Scaling group; unset --asg-health here",
			"instance_id", r.cfg.InstanceID, "error", err)
	case OutcomeUnauthorized:
		r.retryIn = 10 * r.cfg.RetryEvery
		r.log.Error("not allowed to mark this instance unhealthy: grant autoscaling:SetInstanceHealth on its Auto Scaling group (deploy/iam/eipd-policy.json; the group must carry the eipd:group tag)",
			"instance_id", r.cfg.InstanceID, "retry_in", r.retryIn, "error", err)
	default:
		r.retryIn = r.cfg.RetryEvery
		r.log.Warn("cannot mark this instance unhealthy; retrying", "instance_id", r.cfg.InstanceID, "retry_in", r.retryIn,
			"error", fmt.Errorf("set instance health of %s: %w", r.cfg.InstanceID, err))
	}
}

// classify reads the answer of SetInstanceHealth.
func classify(err error) string {
	if err == nil {
		return OutcomeSuccess
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "AccessDenied", "AccessDeniedException", "UnauthorizedOperation":
			return OutcomeUnauthorized
		case "ValidationError":
			// "Instance Id not found - No managed instance found for
			// instance ID": not in a group (or no longer).
			return OutcomeNotInGroup
		}
	}
	return OutcomeError
}

type nopMetrics struct{}

func (nopMetrics) ASGUnhealthyReport(string) {}
