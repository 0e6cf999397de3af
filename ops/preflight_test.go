package ops

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/eip"
)

// pfSim is an emulator for preflight: 2 instances, 2 EIPs of group "pf";
// EIP 0 is held by instance 0, EIP 1 is unassociated.
func pfSim(t *testing.T) *ec2sim.Sim {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := ec2sim.Start(ctx, ec2sim.Options{Instances: 2, EIPs: 2, Group: "pf", Listen: "127.0.0.1:0", Logger: hclog.NewNullLogger()})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		cancel()
	})
	info := s.Info()
	if err := s.Associate(info.EIPs[0].AllocationID, info.Instances[0].InstanceID); err != nil {
		t.Fatal(err)
	}
	return s
}

// pfEnv points the AWS SDK of this process at the emulator as instance i
// (its IMDS gives identity and credentials), with nothing else configured.
func pfEnv(t *testing.T, s *ec2sim.Sim, i int) {
	t.Helper()
	info := s.Info()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_EC2": info.EC2Endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT": info.Instances[i].IMDSEndpoint,
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_PROFILE": "", "AWS_REGION": "",
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "",
		"AWS_EC2_METADATA_DISABLED": "",
	} {
		t.Setenv(k, v)
	}
}

// pfHealthy is a health check URL that passes while the test runs.
func pfHealthy(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return "tcp://" + ln.Addr().String()
}

// preflight runs eipd preflight for group pf with a passing health check.
func preflight(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	args = append([]string{"preflight", "--group", "pf", "--health-check", pfHealthy(t)}, args...)
	return runCLI(t, env, args...)
}

// wantLine fails unless a line of out starts with prefix and contains parts.
func wantLine(t *testing.T, out, prefix string, parts ...string) {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, prefix) {
			continue
		}
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return
		}
	}
	t.Errorf("no %q line with %q in:\n%s", prefix, parts, out)
}

// TestPreflightHealthyCluster: holder and standby of a healthy cluster
// pass; the unassociated EIP's disassociate permission is reported as not
// checkable rather than claimed.
func TestPreflightHealthyCluster(t *testing.T) {
	s := pfSim(t)
	info := s.Info()
	for i, role := range []string{"holder", "standby"} {
		t.Run(role, func(t *testing.T) {
			pfEnv(t, s, i)
			out, stderr, code := preflight(t, nil)
			if code != 0 || strings.Contains(out, "FAIL") {
				t.Fatalf("preflight on the %s: exit %d\n%s%s", role, code, out, stderr)
			}
			wantLine(t, out, "ok    may associate "+info.EIPs[0].AllocationID+" to this instance")
			wantLine(t, out, "ok    may disassociate "+info.EIPs[0].AllocationID)
			wantLine(t, out, "skip  ec2:DisassociateAddress on "+info.EIPs[1].AllocationID+" could not be checked")
			wantLine(t, out, "ok    may write the group lease and record tags of "+info.EIPs[0].AllocationID+" (DryRun)")
			wantLine(t, out, "ok    may write eipd:heartbeat on this instance (DryRun)")
			wantLine(t, out, "all checks passed; 1 could not be checked")
		})
	}
	// Nothing moved and no tag was written: every probe was a dry run.
	if ev := s.Events(); len(ev) != 1 {
		t.Errorf("preflight changed associations: %+v", ev)
	}
	for _, e := range info.EIPs {
		if a, _ := s.Address(e.AllocationID); a.Tags[eip.TagHolder] != "" || a.Tags[eip.TagCoordinator] != "" || a.Tags[eip.TagTerm] != "" {
			t.Errorf("preflight wrote a lease or a record: %v", a.Tags)
		}
	}
	for _, in := range info.Instances {
		if iv, _ := s.Instance(in.InstanceID); iv.Tags[eip.TagHeartbeat] != "" {
			t.Errorf("preflight wrote a heartbeat: %v", iv.Tags)
		}
	}
}

// TestPreflightInvalidConfig exits 2 like run, listing the problems
// without the internal usage: prefix.
func TestPreflightInvalidConfig(t *testing.T) {
	out, stderr, code := runCLI(t, map[string]string{"EIPD_HEALTH_FALL": "x"}, "preflight", "--renew-interval", "5s", "--lease-duration", "6s")
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	wantLine(t, out, "FAIL  fix the configuration")
	// A 6s lease also leaves the default --address-poll (5s) no shorter
	// than lease − skew.
	for _, want := range []string{"--group (EIPD_GROUP) is required", `EIPD_HEALTH_FALL="x": not an integer`, "--lease-duration (6s) must be at least twice",
		"--address-poll (5s) must be shorter than --lease-duration minus --max-clock-skew (5s)"} {
		if !strings.Contains(out, "      "+want) {
			t.Errorf("problem %q not listed:\n%s", want, out)
		}
	}
	if strings.Contains(out+stderr, "usage:") || strings.Contains(out, "invalid configuration:") {
		t.Errorf("internal prefix in output:\n%s%s", out, stderr)
	}
	if !strings.Contains(stderr, "4 configuration problem(s)") {
		t.Errorf("stderr %q", stderr)
	}
}

// TestPreflightIMDSUnreachable names the hop limit.
func TestPreflightIMDSUnreachable(t *testing.T) {
	s := pfSim(t)
	pfEnv(t, s, 1)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := "http://" + ln.Addr().String()
	ln.Close()
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", refused)
	out, _, code := preflight(t, nil)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	wantLine(t, out, "FAIL  make IMDSv2 reachable", "hop limit to 2", "host networking")
}

// TestPreflightCredentials: a credential source that fails is named.
func TestPreflightCredentials(t *testing.T) {
	s := pfSim(t)
	pfEnv(t, s, 1)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	t.Setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://"+ln.Addr().String()+"/creds")
	ln.Close()
	out, _, code := preflight(t, nil)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	wantLine(t, out, "ok    instance metadata")
	wantLine(t, out, "FAIL  give eipd credentials", "instance profile")
}

// TestPreflightEIPs: an unknown allocation ID, no EIP tagged for the
// group, and an EIP of another group.
func TestPreflightEIPs(t *testing.T) {
	s := pfSim(t)
	pfEnv(t, s, 1)
	out, _, code := preflight(t, nil, "--allocation-id", "eipalloc-0123456789abcdef0")
	if code != 1 {
		t.Errorf("unknown allocation: exit %d", code)
	}
	wantLine(t, out, "FAIL  check --allocation-id")
	wantLine(t, out, "      not found: eipalloc-0123456789abcdef0")

	out, _, _ = runCLI(t, nil, "preflight", "--group", "other", "--health-check", pfHealthy(t))
	wantLine(t, out, "FAIL  tag the EIP(s) of this cluster with eipd:group=other")
	wantLine(t, out, "FAIL  tag this instance with eipd:group=other")

	alloc := s.Info().EIPs[1].AllocationID
	out, _, _ = runCLI(t, nil, "preflight", "--group", "other", "--health-check", pfHealthy(t), "--allocation-id", alloc)
	wantLine(t, out, "FAIL  tag "+alloc+" with eipd:group=other")
}

// TestPreflightDenied: each IAM permission the daemon needs, denied, is
// named with its fix, and nothing claims success for it.
func TestPreflightDenied(t *testing.T) {
	s := pfSim(t)
	info := s.Info()
	standby := info.Instances[1].InstanceID
	e0, e1 := info.EIPs[0].AllocationID, info.EIPs[1].AllocationID
	for _, c := range []struct {
		action string
		want   []string // FAIL line parts
	}{
		{"DescribeAddresses", []string{"grant ec2:DescribeAddresses"}},
		{"DescribeInstances", []string{"grant ec2:DescribeInstances"}},
		{"AssociateAddress", []string{"grant ec2:AssociateAddress on " + e0}},
		{"DisassociateAddress", []string{"grant ec2:DisassociateAddress on " + e0}},
		{"CreateTags", []string{"grant ec2:CreateTags on " + e0}},
	} {
		t.Run(c.action, func(t *testing.T) {
			pfEnv(t, s, 1)
			if err := s.SetInstanceFaults(standby, ec2sim.Faults{Deny: []string{c.action}}); err != nil {
				t.Fatal(err)
			}
			defer s.ClearFaults()
			out, _, code := preflight(t, nil)
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			wantLine(t, out, "FAIL  "+strings.Join(c.want, ""))
			if !strings.Contains(out, "UnauthorizedOperation") {
				t.Errorf("the AWS error is not shown:\n%s", out)
			}
			switch c.action {
			case "DisassociateAddress":
				// The unassociated EIP cannot be checked: said, not claimed.
				wantLine(t, out, "skip  ec2:DisassociateAddress on "+e1+" could not be checked")
				if strings.Contains(out, "ok    may disassociate") {
					t.Errorf("disassociate claimed despite the denial:\n%s", out)
				}
			case "CreateTags":
				wantLine(t, out, "FAIL  grant ec2:CreateTags on "+standby)
				if strings.Contains(out, "associated as  but") {
					t.Errorf("empty association ID in:\n%s", out)
				}
			}
		})
	}
}

// TestPreflightDisassociateUncheckable: with DisassociateAddress denied
// and no EIP associated, preflight says plainly it could not check it.
func TestPreflightDisassociateUncheckable(t *testing.T) {
	s := pfSim(t)
	info := s.Info()
	pfEnv(t, s, 1)
	if err := s.SetInstanceFaults(info.Instances[1].InstanceID, ec2sim.Faults{Deny: []string{"DisassociateAddress"}}); err != nil {
		t.Fatal(err)
	}
	out, _, code := preflight(t, nil, "--allocation-id", info.EIPs[1].AllocationID)
	if code != 0 {
		t.Errorf("exit %d", code)
	}
	wantLine(t, out, "skip  ec2:DisassociateAddress on "+info.EIPs[1].AllocationID+" could not be checked: it is not associated")
	if strings.Contains(out, "may associate, disassociate") || strings.Contains(out, "ok    may disassociate") || strings.Contains(out, "all checks passed\n") {
		t.Errorf("claims what it did not check:\n%s", out)
	}
}

// tagsProbe records the CreateTags calls preflight makes and answers each
// as a DryRun that would succeed.
type tagsProbe struct {
	probeEC2
	calls []*ec2.CreateTagsInput
}

func (p *tagsProbe) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	p.calls = append(p.calls, in)
	return nil, &smithy.GenericAPIError{Code: "DryRunOperation", Message: "Request would have succeeded, but DryRun flag is set."}
}

// TestPreflightTagKeys: the DryRun tag writes carry every key the daemon
// writes, in one call per resource as the daemon makes them: the group
// lease and a move's record on each EIP, eipd:heartbeat on the instance.
// The policy allows CreateTags only for listed keys, so a key missing here
// would pass preflight and fail the first move.
func TestPreflightTagKeys(t *testing.T) {
	api := &tagsProbe{}
	var out bytes.Buffer
	r := &preflightReport{w: &out}
	self := eip.Identity{InstanceID: "i-self"}
	addrs := []eip.Address{{AllocationID: "eipalloc-1", Lease: eip.GroupLease{Epoch: 4}}, {AllocationID: "eipalloc-2"}}
	preflightTags(context.Background(), r, api, "pf", addrs, self)
	if r.failed != 0 {
		t.Fatalf("failed checks:\n%s", out.String())
	}
	eipKeys := []string{eip.TagCoordinator, eip.TagDecided, eip.TagEpoch, eip.TagFrom, eip.TagHolder, eip.TagMoved,
		eip.TagReason, eip.TagRenewed, eip.TagTerm}
	slices.Sort(eipKeys)
	if len(api.calls) != 3 {
		t.Fatalf("%d CreateTags calls, want one per EIP and one for the instance", len(api.calls))
	}
	for i, c := range api.calls {
		var keys []string
		tags := map[string]string{}
		for _, tg := range c.Tags {
			keys = append(keys, aws.ToString(tg.Key))
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		slices.Sort(keys)
		if !aws.ToBool(c.DryRun) {
			t.Errorf("call %d without DryRun", i)
		}
		if i == 2 {
			if !slices.Equal(c.Resources, []string{"i-self"}) || !slices.Equal(keys, []string{eip.TagHeartbeat}) {
				t.Errorf("instance call: resources %v keys %v", c.Resources, keys)
			}
			continue
		}
		if !slices.Equal(c.Resources, []string{addrs[i].AllocationID}) || !slices.Equal(keys, eipKeys) {
			t.Errorf("EIP call %d: resources %v keys %v, want %v", i, c.Resources, keys, eipKeys)
		}
		// Values the daemon would write: a lease and a record that parse.
		if l := eip.ParseGroupLease(tags); l.Coordinator != "i-self" || l.Epoch != addrs[i].Lease.Epoch+1 || len(l.Invalid) != 0 {
			t.Errorf("EIP call %d: lease %+v", i, l)
		}
		if rec := eip.ParseRecord(tags); rec.Holder != "i-self" || rec.Term != (eip.Term{Epoch: addrs[i].Lease.Epoch + 1, Seq: 1}) || len(rec.Invalid) != 0 {
			t.Errorf("EIP call %d: record %+v", i, rec)
		}
	}
	for _, want := range []string{"ok    may write the group lease and record tags of eipalloc-1 (DryRun)",
		"ok    may write the group lease and record tags of eipalloc-2 (DryRun)", "ok    may write eipd:heartbeat on this instance (DryRun)"} {
		wantLine(t, out.String(), want)
	}
}
