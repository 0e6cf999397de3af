package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// cmdPreflight checks, before the daemon is trusted with an EIP, that it
// could do its job: config, IMDS, credentials, the EIPs, membership, IAM
// permissions (with DryRun=true, so nothing changes) and the health checks.
// It takes the same flags and environment as `eipd run`.
func cmdPreflight(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	failed := 0
	report := func(err error, ok, fix string) bool {
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "FAIL  %s\n      %v\n", fix, err)
			return false
		}
		fmt.Fprintf(stdout, "ok    %s\n", ok)
		return true
	}
	cfg, err := parseRunConfig("preflight", args, getenv, stderr)
	if errors.Is(err, errUsage) && cfg == nil {
		return err
	}
	if !report(err, "configuration", "fix the configuration") {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	log := hclog.NewNullLogger()
	awsCfg, imdsClient, err := loadAWS(ctx, log)
	if !report(err, "AWS SDK configuration", "fix the AWS configuration (AWS_* variables, ~/.aws/config)") {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	md := eip.NewMetadata(imdsClient, log, nil)
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	self, err := md.Identity(cctx)
	cancel()
	if !report(err, fmt.Sprintf("instance metadata (IMDSv2): %s in %s, ENI %s, %s", self.InstanceID, self.AvailabilityZone, self.NetworkInterfaceID, self.PrivateIP),
		"make IMDSv2 reachable: on EC2 enable the metadata service; in a bridge-mode container set the hop limit to 2 (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2) or use host networking") {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = self.Region
	}
	cctx, cancel = context.WithTimeout(ctx, 10*time.Second)
	creds, err := awsCfg.Credentials.Retrieve(cctx)
	cancel()
	report(err, "credentials from "+creds.Source, "attach an instance profile (or ECS task role) with deploy/iam/eipd-policy.json")

	cloud := eip.New(eip.Config{Group: cfg.Group, Rate: cfg.APIRate, Burst: cfg.APIBurst}, ec2.NewFromConfig(awsCfg, eip.GuardRequestBody), log, nil)
	dry := eip.New(eip.Config{Group: cfg.Group, DryRun: true, Rate: cfg.APIRate, Burst: cfg.APIBurst}, ec2.NewFromConfig(awsCfg, eip.GuardRequestBody), log, nil)

	cctx, cancel = context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var addrs []eip.Address
	if len(cfg.AllocationIDs) > 0 {
		addrs, err = cloud.Addresses(cctx, cfg.AllocationIDs)
	} else {
		addrs, err = cloud.GroupAddresses(cctx)
		if err == nil && len(addrs) == 0 {
			err = fmt.Errorf("no EIP is tagged eipd:group=%s", cfg.Group)
		}
	}
	report(err, fmt.Sprintf("%d EIP(s) readable", len(addrs)), "tag the EIP with eipd:group="+cfg.Group+" or pass --allocation-id; grant ec2:DescribeAddresses")
	for _, a := range addrs {
		if a.Group != cfg.Group {
			report(fmt.Errorf("%s has eipd:group=%q", a.AllocationID, a.Group), "", "tag "+a.AllocationID+" with eipd:group="+cfg.Group+" (the IAM policy scopes moves to EIPs of the group)")
		}
		if len(a.Lease.Invalid) > 0 {
			report(fmt.Errorf("%s: tags %v do not parse", a.AllocationID, a.Lease.Invalid), "", "delete the broken eipd:* tags; the holder rewrites them")
		}
	}
	members, err := cloud.Members(cctx)
	inGroup := false
	for _, m := range members {
		inGroup = inGroup || m.InstanceID == self.InstanceID
	}
	if err == nil && !inGroup {
		err = fmt.Errorf("%s is not among the running instances tagged eipd:group=%s", self.InstanceID, cfg.Group)
	}
	report(err, fmt.Sprintf("this instance is one of %d running member(s)", len(members)), "tag this instance with eipd:group="+cfg.Group+"; grant ec2:DescribeInstances")

	for _, a := range addrs {
		lease := eip.Lease{Holder: self.InstanceID, Term: a.Lease.Term + 1, Renewed: time.Now()}
		_, err := dry.Claim(cctx, a, self, "", lease)
		report(err, "may associate, disassociate and tag "+a.AllocationID+" (DryRun)",
			"grant ec2:AssociateAddress, ec2:DisassociateAddress and ec2:CreateTags on "+a.AllocationID+" and this instance's ENI (deploy/iam/eipd-policy.json)")
	}
	report(dry.SetState(cctx, self.InstanceID, eip.StateReady), "may tag this instance (DryRun)", "grant ec2:CreateTags with eipd:state on instances of the group")

	checks, err := health.ParseAll(cfg.HealthChecks)
	if err == nil {
		hctx, hcancel := context.WithTimeout(ctx, cfg.HealthTimeout)
		err = health.RunAll(hctx, checks, cfg.HealthTimeout)
		hcancel()
	}
	report(err, "health checks pass now", "make the local HAProxy answer the --health-check URLs")

	if failed > 0 {
		return fmt.Errorf("%d check(s) failed", failed)
	}
	fmt.Fprintln(stdout, "all checks passed")
	return nil
}
