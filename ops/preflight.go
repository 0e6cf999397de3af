package ops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/asghook"
	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
	"github.com/eipd/eipd/internal/awsenv"
	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/config"
	"github.com/eipd/eipd/internal/logging"
)

// probeEC2 is what preflight sends with DryRun=true; *ec2.Client
// satisfies it. The daemon's own calls go through eip, which decides what
// to send from the state it reads; preflight asks only "would IAM allow
// this", so it sends each call the way that AWS answers with
// DryRunOperation or UnauthorizedOperation whatever the EIP's state.
type probeEC2 interface {
	AssociateAddress(ctx context.Context, in *ec2.AssociateAddressInput, optFns ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error)
	DisassociateAddress(ctx context.Context, in *ec2.DisassociateAddressInput, optFns ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error)
	CreateTags(ctx context.Context, in *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
	// DescribeInstances reads this instance's network interfaces for the
	// egress check.
	DescribeInstances(ctx context.Context, in *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
}

// preflightReport prints one line per check: ok, FAIL with the fix and
// the error, WARN with the fix and what is at risk (it works now, and will
// not when it matters), or skip with why it could not be checked.
type preflightReport struct {
	w                       io.Writer
	failed, warned, skipped int
}

func (r *preflightReport) ok(what string) { fmt.Fprintf(r.w, "ok    %s\n", what) }

func (r *preflightReport) fail(fix string, err error) {
	r.failed++
	fmt.Fprintf(r.w, "FAIL  %s\n", fix)
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(r.w, "      %s\n", strings.TrimSpace(line))
	}
}

func (r *preflightReport) warn(fix string, err error) {
	r.warned++
	fmt.Fprintf(r.w, "WARN  %s\n", fix)
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(r.w, "      %s\n", strings.TrimSpace(line))
	}
}

func (r *preflightReport) skip(what string) {
	r.skipped++
	fmt.Fprintf(r.w, "skip  %s\n", what)
}

// check reports err as a failure with fix, or what as ok; it returns err == nil.
func (r *preflightReport) check(err error, what, fix string) bool {
	if err != nil {
		r.fail(fix, err)
		return false
	}
	r.ok(what)
	return true
}

func (r *preflightReport) result() error {
	if r.failed > 0 {
		return fmt.Errorf("%d check(s) failed", r.failed)
	}
	var notes []string
	if r.warned > 0 {
		notes = append(notes, fmt.Sprintf("%d warning(s) (see WARN above)", r.warned))
	}
	if r.skipped > 0 {
		notes = append(notes, fmt.Sprintf("%d could not be checked (see skip above)", r.skipped))
	}
	if len(notes) > 0 {
		fmt.Fprintf(r.w, "all checks passed; %s\n", strings.Join(notes, "; "))
		return nil
	}
	fmt.Fprintln(r.w, "all checks passed")
	return nil
}

// Preflight is `eipd preflight`: it checks, before the daemon is trusted
// with an EIP, that it could do its job: config, IMDS, credentials, the
// EIPs, membership, IAM permissions (with DryRun=true, so nothing changes)
// and the health checks.
// It takes the same flags and environment as `eipd run`, and exits 2 on a
// bad configuration like run does.
func Preflight(ctx context.Context, args []string, env cli.Env) error {
	getenv, stdout, stderr := env.Getenv, env.Stdout, env.Stderr
	r := &preflightReport{w: stdout}
	cfg, err := config.Parse("preflight", args, getenv, stderr)
	if err != nil {
		var ce config.Error
		if !errors.As(err, &ce) {
			return err // -h, or a flag that does not parse: already one line
		}
		r.fail("fix the configuration (eipd run -h lists the flags)", errors.New(strings.TrimPrefix(ce.Error(), "invalid configuration:\n  ")))
		return cli.Usagef("%d configuration problem(s); fix them and run eipd preflight again", len(ce))
	}
	awsCfg, imdsClient, err := awsenv.FromProcess(ctx, env.Version, logging.SDK(hclog.NewNullLogger()))
	if !r.check(err, "AWS SDK configuration", "fix the AWS_* environment variables") {
		return r.result()
	}
	md := eip.NewMetadata(imdsClient, nil, nil)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	self, err := md.Identity(cctx)
	cancel()
	if !r.check(err, fmt.Sprintf("instance metadata (IMDSv2): %s in %s, ENI %s, %s", self.InstanceID, self.AvailabilityZone, self.NetworkInterfaceID, self.PrivateIP),
		"make IMDSv2 reachable: on EC2 enable the metadata service (HttpEndpoint=enabled); in a bridge-mode container set the hop limit to 2 (aws ec2 modify-instance-metadata-options --instance-id ID --http-put-response-hop-limit 2) or use host networking") {
		return r.result()
	}
	if awsCfg.Region == "" {
		awsCfg.Region = self.Region
	}
	cctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	creds, err := awsCfg.Credentials.Retrieve(cctx)
	cancel()
	if !r.check(err, "credentials from "+creds.Source, "give eipd credentials: attach an instance profile (or an ECS task role) with the policy in "+eip.PolicyPath) {
		return r.result()
	}
	api := ec2.NewFromConfig(awsCfg, eip.GuardRequestBody)
	cloud := eip.New(eip.Config{Group: cfg.Group, Rate: cfg.APIRate, Burst: cfg.APIBurst}, api, nil, nil)

	cctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	addrs := preflightAddresses(cctx, r, cloud, cfg)
	preflightMembership(cctx, r, cloud, cfg.Group, self)
	for _, a := range addrs {
		preflightMoves(cctx, r, api, cfg.Group, a, self)
	}
	preflightTags(cctx, r, api, cfg.Group, addrs, self)
	endpoint, err := awsenv.EC2Endpoint(cctx, awsCfg)
	if err != nil {
		endpoint = nil
	}
	inst, instErr := describeSelf(cctx, api, self.InstanceID)
	managed, _ := cloud.Addresses(cctx, nil)
	preflightEgress(cctx, r, defaultEgressEnv(endpoint), inst, instErr, append(managed, addrs...))
	preflightAutoScaling(r, cfg, inst, instErr)

	checks, err := health.ParseAll(cfg.HealthChecks)
	if err == nil {
		hctx, hcancel := context.WithTimeout(ctx, cfg.HealthTimeout)
		err = health.RunAll(hctx, checks, cfg.HealthTimeout)
		hcancel()
	}
	r.check(err, "health checks pass now", "make the local HAProxy answer the --health-check URLs")
	return r.result()
}

// preflightAddresses reads the EIPs eipd would manage and checks their tags.
func preflightAddresses(ctx context.Context, r *preflightReport, cloud *eip.Client, cfg *config.Config) []eip.Address {
	var addrs []eip.Address
	var err error
	if len(cfg.AllocationIDs) > 0 {
		addrs, err = cloud.Addresses(ctx, cfg.AllocationIDs)
	} else if addrs, err = cloud.Addresses(ctx, nil); err == nil && len(addrs) == 0 {
		r.fail(fmt.Sprintf("tag the EIP(s) of this cluster with eipd:group=%s, or name them with --allocation-id", cfg.Group),
			fmt.Errorf("no EIP in this account and region is tagged eipd:group=%s", cfg.Group))
		return nil
	}
	switch {
	case errors.Is(err, eip.ErrUnauthorized):
		r.fail("grant ec2:DescribeAddresses (on *, it cannot be scoped) to eipd's role; the policy is "+eip.PolicyPath, err)
		return nil
	case errors.Is(err, eip.ErrNotFound):
		r.fail("check --allocation-id: each must be an EIP allocated in this account and region ("+strings.Join(cfg.AllocationIDs, ", ")+")", err)
		return nil
	case err != nil:
		r.fail("make the EC2 API reachable (DescribeAddresses failed)", err)
		return nil
	}
	var missing []string
	for _, id := range cfg.AllocationIDs {
		found := false
		for _, a := range addrs {
			found = found || a.AllocationID == id
		}
		if !found {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		r.fail("check --allocation-id: each must be an EIP allocated in this account and region",
			fmt.Errorf("not found: %s", strings.Join(missing, ", ")))
		if len(addrs) == 0 {
			return nil
		}
	}
	r.ok(fmt.Sprintf("%d EIP(s) readable", len(addrs)))
	var good []eip.Address
	for _, a := range addrs {
		switch {
		case a.Group != cfg.Group:
			r.fail("tag "+a.AllocationID+" with eipd:group="+cfg.Group+" (the IAM policy lets eipd move only the EIPs of its group)",
				fmt.Errorf("%s has eipd:group=%q", a.AllocationID, a.Group))
			continue
		case len(a.Lease.Invalid) > 0:
			r.fail("delete the broken eipd:* tags of "+a.AllocationID+"; the next holder writes them again",
				fmt.Errorf("%s: tags %v do not parse", a.AllocationID, a.Lease.Invalid))
		}
		good = append(good, a)
	}
	return good
}

// preflightMembership checks that this instance is a running member.
func preflightMembership(ctx context.Context, r *preflightReport, cloud *eip.Client, group string, self eip.Identity) {
	members, err := cloud.Members(ctx)
	members = eip.Running(members)
	switch {
	case errors.Is(err, eip.ErrUnauthorized):
		r.fail("grant ec2:DescribeInstances (on *, it cannot be scoped) to eipd's role; the policy is "+eip.PolicyPath, err)
		return
	case err != nil:
		r.fail("make the EC2 API reachable (DescribeInstances failed)", err)
		return
	}
	for _, m := range members {
		if m.InstanceID == self.InstanceID {
			r.ok(fmt.Sprintf("this instance is one of %d running member(s) of eipd:group=%s", len(members), group))
			return
		}
	}
	r.fail("tag this instance with eipd:group="+group+" (launch template or ASG tag)",
		fmt.Errorf("%s is not among the %d running instance(s) tagged eipd:group=%s", self.InstanceID, len(members), group))
}

// dryRunOK reads the answer to a DryRun call: nil when IAM would allow it.
// Any other answer is returned classified (eip's sentinels).
func dryRunOK(err error) error {
	err = eip.Classify(err)
	switch {
	case err == nil:
		// A DryRun call that succeeds did not honour DryRun: say so rather
		// than count it as a pass.
		return errors.New("the call succeeded although DryRun was set: the endpoint ignores DryRun")
	case errors.Is(err, eip.ErrDryRun):
		return nil
	}
	return err
}

// preflightMoves checks, with DryRun, that this instance may associate the
// EIP to itself and disassociate it. AllowReassociation=true: a dry run
// checks permissions, not the EIP's state, and on a healthy standby the EIP
// is on another instance (the daemon's claim sends false, the same IAM
// action).
func preflightMoves(ctx context.Context, r *preflightReport, api probeEC2, group string, a eip.Address, self eip.Identity) {
	_, err := api.AssociateAddress(ctx, &ec2.AssociateAddressInput{
		DryRun: aws.Bool(true), AllocationId: aws.String(a.AllocationID),
		NetworkInterfaceId: aws.String(self.NetworkInterfaceID), PrivateIpAddress: aws.String(self.PrivateIP),
		AllowReassociation: aws.Bool(true),
	})
	err = dryRunOK(err)
	if errors.Is(err, eip.ErrAlreadyAssociated) {
		// State is checked after authorization: IAM allowed it.
		err = nil
	}
	r.check(err, "may associate "+a.AllocationID+" to this instance (DryRun)", grantFix("ec2:AssociateAddress", group, a.AllocationID+" and this instance's ENI "+self.NetworkInterfaceID, err))

	if !a.Associated() {
		r.skip(fmt.Sprintf("ec2:DisassociateAddress on %s could not be checked: it is not associated, and a dry run needs a real association ID; run eipd preflight again once it is", a.AllocationID))
		return
	}
	_, err = api.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{DryRun: aws.Bool(true), AssociationId: aws.String(a.AssociationID)})
	err = dryRunOK(err)
	if errors.Is(err, eip.ErrStaleAssociation) {
		r.skip(fmt.Sprintf("ec2:DisassociateAddress on %s could not be checked: its association %s changed while preflight ran; run it again", a.AllocationID, a.AssociationID))
		return
	}
	r.check(err, "may disassociate "+a.AllocationID+" (DryRun, association "+a.AssociationID+")", grantFix("ec2:DisassociateAddress", group, a.AllocationID, err))
}

// preflightTags checks, with DryRun, the tag writes the daemon makes: the
// group lease and a move's record on each EIP (as coordinator), and
// eipd:heartbeat on this instance. Each call carries every key the daemon
// writes there, built as the daemon builds them: the policy allows
// CreateTags for listed keys only (ForAllValues aws:TagKeys), so a key it
// lacks must fail here, not at the first move.
func preflightTags(ctx context.Context, r *preflightReport, api probeEC2, group string, addrs []eip.Address, self eip.Identity) {
	at := time.Now()
	now := at.UTC().Format(eip.RenewedLayout)
	for _, a := range addrs {
		epoch := a.Lease.Epoch + 1
		tags := eip.GroupLease{Coordinator: self.InstanceID, Epoch: epoch, Renewed: at}.Tags()
		maps.Copy(tags, eip.Record{Holder: self.InstanceID, Term: eip.Term{Epoch: epoch, Seq: 1}, Reason: "takeover-unassociated",
			Decided: at, Moved: at, From: a.InstanceID}.Tags())
		_, err := api.CreateTags(ctx, &ec2.CreateTagsInput{DryRun: aws.Bool(true), Resources: []string{a.AllocationID}, Tags: sdkTags(tags)})
		err = dryRunOK(err)
		r.check(err, "may write the group lease and record tags of "+a.AllocationID+" (DryRun)", grantFix("ec2:CreateTags", group, a.AllocationID, err))
	}
	_, err := api.CreateTags(ctx, &ec2.CreateTagsInput{
		DryRun: aws.Bool(true), Resources: []string{self.InstanceID},
		Tags: []types.Tag{{Key: aws.String(eip.TagHeartbeat), Value: aws.String(now)}},
	})
	err = dryRunOK(err)
	r.check(err, "may write eipd:heartbeat on this instance (DryRun)", grantFix("ec2:CreateTags", group, self.InstanceID, err))
}

// grantFix is the fix for a failed DryRun call: the grant when IAM refused,
// else what the error says.
func grantFix(action, group, resource string, err error) string {
	if errors.Is(err, eip.ErrUnauthorized) {
		return fmt.Sprintf("grant %s on %s to eipd's role; the policy (%s) allows it for resources tagged eipd:group=%s when the role carries the same eipd:group tag",
			action, resource, eip.PolicyPath, group)
	}
	return fmt.Sprintf("%s on %s was refused for another reason than IAM; see the error", action, resource)
}

// sdkTags is tags in the SDK's form, sorted by key.
func sdkTags(tags map[string]string) []types.Tag {
	out := make([]types.Tag, 0, len(tags))
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(tags[k])})
	}
	return out
}

// preflightAutoScaling checks that --lifecycle-hook and --asg-health have
// an Auto Scaling group to act on: the instance's aws:autoscaling:groupName
// tag. Their calls have no dry run, so the permissions are not checked.
func preflightAutoScaling(r *preflightReport, cfg *config.Config, self types.Instance, selfErr error) {
	var flags []string
	if cfg.LifecycleHook != "" {
		flags = append(flags, "--lifecycle-hook")
	}
	if cfg.ASGHealth {
		flags = append(flags, "--asg-health")
	}
	if len(flags) == 0 {
		return
	}
	if selfErr != nil {
		r.skip(fmt.Sprintf("%s could not be checked: %v", strings.Join(flags, " and "), selfErr))
		return
	}
	group := ""
	for _, t := range self.Tags {
		if aws.ToString(t.Key) == asghook.GroupNameTag {
			group = aws.ToString(t.Value)
		}
	}
	if group == "" {
		r.fail("launch this instance from its Auto Scaling group, or unset "+strings.Join(flags, " and "),
			fmt.Errorf("%s need an Auto Scaling group, and this instance has no %s tag", strings.Join(flags, " and "), asghook.GroupNameTag))
		return
	}
	r.ok(fmt.Sprintf("in Auto Scaling group %s for %s (its calls have no dry run: the group must carry this cluster's eipd:group tag for the policy to allow them)", group, strings.Join(flags, " and ")))
}
