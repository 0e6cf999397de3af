package ec2sim

// AWS CLI v2 conformance: the Debian awscli (/usr/bin/aws, botocore's own
// model and parsers) drives every action against ec2sim, and the test checks
// the parsed JSON and the error codes the CLI reports. The `aws` on PATH may
// be a v1 shim, so the binary is named by its full path.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"
)

const awsCLIPath = "/usr/bin/aws"

type awsCLI struct {
	t        *testing.T
	bin      string
	endpoint string
	env      []string
}

// newAWSCLI prepares a CLI with a minimal environment: test credentials,
// no config files, no IMDS, no pager.
func newAWSCLI(t *testing.T, endpoint, accessKey, secret, token string) *awsCLI {
	t.Helper()
	if _, err := os.Stat(awsCLIPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI: %v", awsCLIPath, err)
		}
		t.Skipf("%s not available: %v", awsCLIPath, err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config")
	creds := filepath.Join(dir, "credentials")
	for _, f := range []string{cfg, creds} {
		if err := os.WriteFile(f, nil, 0o600); err != nil {
			t.Fatalf("write %s: %v", f, err)
		}
	}
	env := []string{
		"HOME=" + dir,
		"PATH=/usr/bin:/bin",
		"LANG=C.UTF-8",
		"AWS_ACCESS_KEY_ID=" + accessKey,
		"AWS_SECRET_ACCESS_KEY=" + secret,
		"AWS_DEFAULT_REGION=" + confRegion,
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=" + cfg,
		"AWS_SHARED_CREDENTIALS_FILE=" + creds,
		"AWS_PAGER=",
		"AWS_MAX_ATTEMPTS=1",
	}
	if token != "" {
		env = append(env, "AWS_SESSION_TOKEN="+token)
	}
	return &awsCLI{t: t, bin: awsCLIPath, endpoint: endpoint, env: env}
}

// run executes `aws ec2 <args>` and returns stdout, stderr and exit code.
func (c *awsCLI) run(args ...string) ([]byte, string, int) {
	c.t.Helper()
	full := append([]string{"--endpoint-url", c.endpoint, "--output", "json", "ec2"}, args...)
	cmd := exec.Command(c.bin, full...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start aws %v: %v", args, err)
	}
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(60 * time.Second)
	defer timer.Stop()
	var err error
	select {
	case err = <-done:
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-done
		c.t.Fatalf("aws %v: no answer in 60s; stderr: %s", args, errb.String())
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("aws %v: %v", args, err)
	}
	return out.Bytes(), errb.String(), code
}

// ok runs a command that must succeed and decodes its JSON output into v
// (nil: output ignored).
func (c *awsCLI) ok(v any, args ...string) {
	c.t.Helper()
	out, stderr, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("aws ec2 %s: exit %d\nstderr: %s", strings.Join(args, " "), code, stderr)
	}
	if v != nil {
		if err := json.Unmarshal(out, v); err != nil {
			c.t.Fatalf("aws ec2 %s: decode output: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

var cliErrRE = regexp.MustCompile(`An error occurred \(([^)]+)\) when calling the (\w+) operation`)

// fails runs a command that must fail with a service error: exit code 254
// (CLI v2's "service returned an error") and wantCode in stderr.
func (c *awsCLI) fails(wantCode string, args ...string) string {
	c.t.Helper()
	_, stderr, code := c.run(args...)
	m := cliErrRE.FindStringSubmatch(stderr)
	if code != 254 || m == nil || m[1] != wantCode {
		c.t.Fatalf("aws ec2 %s: want exit 254 with %s, got exit %d\nstderr: %s", strings.Join(args, " "), wantCode, code, stderr)
	}
	return stderr
}

type cliAddress struct {
	AllocationId, PublicIp, Domain, AssociationId, InstanceId string
	NetworkInterfaceId, PrivateIpAddress                      string
	Tags                                                      []struct{ Key, Value string }
}

type cliInstances struct {
	Reservations []struct {
		Instances []struct {
			InstanceId string
			State      struct {
				Code int
				Name string
			}
			PrivateIpAddress string
			Tags             []struct{ Key, Value string }
		}
	}
	NextToken string
}

func (r cliInstances) ids() []string {
	var ids []string
	for _, res := range r.Reservations {
		for _, in := range res.Instances {
			ids = append(ids, in.InstanceId)
		}
	}
	return ids
}

func TestAWSCLIAddresses(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 3, EIPs: 2, Group: "conf"})
	info := s.Info()
	cli := newAWSCLI(t, info.EC2Endpoint, "AKIAOPERATOR", "secret", "")
	e0 := info.EIPs[0].AllocationID
	i0, i1, i2 := info.Instances[0], info.Instances[1], info.Instances[2]

	var da struct{ Addresses []cliAddress }
	cli.ok(&da, "describe-addresses")
	if len(da.Addresses) != 2 {
		t.Fatalf("describe-addresses: want 2 addresses, got %+v", da.Addresses)
	}
	for _, a := range da.Addresses {
		if a.Domain != "vpc" || a.PublicIp == "" || a.AssociationId != "" || a.InstanceId != "" {
			t.Errorf("fresh address %+v: want domain vpc, a public IP and no association", a)
		}
		if !cliHasTag(a.Tags, "eipd:group", "conf") {
			t.Errorf("address %s: tags %+v lack eipd:group=conf", a.AllocationId, a.Tags)
		}
	}
	cli.ok(&da, "describe-addresses", "--filters", "Name=tag:eipd:group,Values=conf", "Name=allocation-id,Values="+e0)
	if len(da.Addresses) != 1 || da.Addresses[0].AllocationId != e0 {
		t.Fatalf("describe-addresses by filters: got %+v", da.Addresses)
	}
	cli.fails("InvalidAllocationID.NotFound", "describe-addresses", "--allocation-ids", "eipalloc-0000000000000dead")

	// Allocate and release.
	var alloc struct{ AllocationId, PublicIp, Domain string }
	cli.ok(&alloc, "allocate-address", "--domain", "vpc")
	if !regexp.MustCompile(`^eipalloc-[0-9a-f]{17}$`).MatchString(alloc.AllocationId) || alloc.PublicIp == "" || alloc.Domain != "vpc" {
		t.Fatalf("allocate-address: got %+v", alloc)
	}
	cli.ok(nil, "release-address", "--allocation-id", alloc.AllocationId)
	if v, ok := s.Address(alloc.AllocationId); ok {
		t.Fatalf("release-address left %+v", v)
	}

	// Associate by ENI + private IP.
	var as struct{ AssociationId string }
	cli.ok(&as, "associate-address", "--allocation-id", e0, "--network-interface-id", i0.ENIID, "--private-ip-address", i0.PrivateIP)
	first := as.AssociationId
	if !strings.HasPrefix(first, "eipassoc-") {
		t.Fatalf("associate-address: association ID %q", first)
	}
	if v, _ := s.Address(e0); v.InstanceID != i0.InstanceID || v.AssociationID != first || v.NetworkInterfaceID != i0.ENIID {
		t.Fatalf("after associate-address by ENI: sim state %+v", v)
	}
	cli.ok(&da, "describe-addresses", "--allocation-ids", e0)
	if a := da.Addresses[0]; a.AssociationId != first || a.InstanceId != i0.InstanceID || a.NetworkInterfaceId != i0.ENIID || a.PrivateIpAddress != i0.PrivateIP {
		t.Fatalf("describe-addresses after associate: got %+v", a)
	}

	// --no-allow-reassociation must refuse to move it.
	stderr := cli.fails("Resource.AlreadyAssociated", "associate-address", "--allocation-id", e0, "--instance-id", i1.InstanceID, "--no-allow-reassociation")
	if !strings.Contains(stderr, e0) {
		t.Errorf("Resource.AlreadyAssociated message should name %s: %s", e0, stderr)
	}
	// Without the flag it moves (VPC default), and the old ID goes stale.
	cli.ok(&as, "associate-address", "--allocation-id", e0, "--instance-id", i1.InstanceID)
	second := as.AssociationId
	if second == "" || second == first {
		t.Fatalf("move: association ID %q (first was %q)", second, first)
	}
	if v, _ := s.Address(e0); v.InstanceID != i1.InstanceID {
		t.Fatalf("after move: sim state %+v", v)
	}
	cli.fails("InvalidAssociationID.NotFound", "disassociate-address", "--association-id", first)
	cli.ok(&da, "describe-addresses", "--filters", "Name=instance-id,Values="+i1.InstanceID)
	if len(da.Addresses) != 1 || da.Addresses[0].AssociationId != second {
		t.Fatalf("describe-addresses instance-id filter: got %+v", da.Addresses)
	}
	cli.ok(nil, "disassociate-address", "--association-id", second)
	if v, _ := s.Address(e0); v.AssociationID != "" || v.InstanceID != "" {
		t.Fatalf("after disassociate: sim state %+v", v)
	}

	// DryRun and unknown IDs.
	cli.fails("DryRunOperation", "associate-address", "--allocation-id", e0, "--instance-id", i0.InstanceID, "--dry-run")
	if v, _ := s.Address(e0); v.AssociationID != "" {
		t.Fatalf("a dry run associated the EIP: %+v", v)
	}
	cli.fails("InvalidInstanceID.NotFound", "associate-address", "--allocation-id", e0, "--instance-id", "i-0000000000000dead")

	// Denied: the CLI signs with instance 2's own credentials, which the
	// sim attributes to that instance.
	creds, ok := s.Credentials(i2.InstanceID)
	if !ok {
		t.Fatalf("no credentials for %s", i2.InstanceID)
	}
	if err := s.SetInstanceFaults(i2.InstanceID, Faults{Deny: []string{"AssociateAddress"}}); err != nil {
		t.Fatalf("deny AssociateAddress to %s: %v", i2.InstanceID, err)
	}
	as2 := newAWSCLI(t, info.EC2Endpoint, creds.AccessKeyID, creds.SecretAccessKey, creds.Token)
	stderr = as2.fails("UnauthorizedOperation", "associate-address", "--allocation-id", e0, "--instance-id", i2.InstanceID)
	if !strings.Contains(stderr, i2.InstanceID) {
		t.Errorf("UnauthorizedOperation message should name the caller %s: %s", i2.InstanceID, stderr)
	}
	as2.fails("UnauthorizedOperation", "associate-address", "--allocation-id", e0, "--instance-id", i2.InstanceID, "--dry-run")
	if got := s.Stats().ByCaller[i2.InstanceID]["AssociateAddress"]; got != 2 {
		t.Errorf("stats: want 2 AssociateAddress calls by %s, got %d", i2.InstanceID, got)
	}
}

func TestAWSCLIInstancesAndTags(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 12, EIPs: 1, Group: "conf"})
	info := s.Info()
	cli := newAWSCLI(t, info.EC2Endpoint, "AKIAOPERATOR", "secret", "")
	e0 := info.EIPs[0].AllocationID
	i0 := info.Instances[0].InstanceID
	var want []string
	for _, in := range info.Instances {
		want = append(want, in.InstanceID)
	}
	sort.Strings(want)

	// The CLI follows NextToken itself: 12 instances in pages of 5.
	before := s.Stats().ByAction["DescribeInstances"]
	var di cliInstances
	cli.ok(&di, "describe-instances", "--filters", "Name=tag:eipd:group,Values=conf", "Name=instance-state-name,Values=running", "--page-size", "5")
	if got := confSorted(di.ids()); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("describe-instances --page-size 5: got %v, want %v", got, want)
	}
	if n := s.Stats().ByAction["DescribeInstances"] - before; n < 3 {
		t.Errorf("12 instances in pages of 5 need 3 requests, sim saw %d", n)
	}
	for _, r := range di.Reservations {
		for _, in := range r.Instances {
			if in.State.Name != "running" || in.State.Code != 16 || in.PrivateIpAddress == "" || !cliHasTag(in.Tags, "eipd:group", "conf") {
				t.Errorf("instance %+v: want running (16) with a private IP and eipd:group=conf", in)
			}
		}
	}
	// --max-items stops early and hands back a token to resume from.
	var p1, p2 cliInstances
	cli.ok(&p1, "describe-instances", "--max-items", "7", "--page-size", "5")
	if len(p1.ids()) != 7 || p1.NextToken == "" {
		t.Fatalf("--max-items 7: got %d instances, NextToken %q", len(p1.ids()), p1.NextToken)
	}
	cli.ok(&p2, "describe-instances", "--max-items", "7", "--page-size", "5", "--starting-token", p1.NextToken)
	if got := confSorted(append(p1.ids(), p2.ids()...)); strings.Join(got, " ") != strings.Join(want, " ") || p2.NextToken != "" {
		t.Fatalf("resumed paging: got %v (next %q), want %v", got, p2.NextToken, want)
	}
	cli.fails("InvalidInstanceID.NotFound", "describe-instances", "--instance-ids", "i-0000000000000dead")
	cli.fails("InvalidInstanceID.Malformed", "describe-instances", "--instance-ids", "ma1")

	var st struct {
		InstanceStatuses []struct {
			InstanceId, AvailabilityZone string
			InstanceState                struct{ Name string }
			InstanceStatus               struct{ Status string }
			SystemStatus                 struct{ Status string }
		}
	}
	cli.ok(&st, "describe-instance-status", "--include-all-instances", "--instance-ids", i0)
	if len(st.InstanceStatuses) != 1 {
		t.Fatalf("describe-instance-status: got %+v", st)
	}
	if x := st.InstanceStatuses[0]; x.InstanceId != i0 || x.InstanceState.Name != "running" || x.AvailabilityZone == "" || x.InstanceStatus.Status != "ok" || x.SystemStatus.Status != "ok" {
		t.Fatalf("describe-instance-status: got %+v", x)
	}

	// Tags: create, then each DeleteTags form.
	cli.fails("DryRunOperation", "create-tags", "--resources", e0, "--tags", "Key=k1,Value=v1", "--dry-run")
	cli.ok(nil, "create-tags", "--resources", e0, i0, "--tags", `[{"Key":"k1","Value":"v1"},{"Key":"k2","Value":""},{"Key":"k3","Value":"x"},{"Key":"k4","Value":"y"}]`)
	type tagDesc struct {
		Tags []struct{ ResourceId, ResourceType, Key, Value string }
	}
	var td tagDesc
	cli.ok(&td, "describe-tags", "--filters", "Name=resource-type,Values=elastic-ip")
	got := map[string]string{}
	for _, tg := range td.Tags {
		if tg.ResourceType != "elastic-ip" || tg.ResourceId != e0 {
			t.Errorf("describe-tags resource-type=elastic-ip: unexpected %+v", tg)
		}
		got[tg.Key] = tg.Value
	}
	if len(got) != 5 || got["k4"] != "y" || got["k1"] != "v1" || got["k2"] != "" || got["k3"] != "x" || got["eipd:group"] != "conf" {
		t.Fatalf("describe-tags on %s: got %v", e0, got)
	}
	cli.ok(nil, "delete-tags", "--resources", e0, "--tags", "Key=k1")                    // key only: any value
	cli.ok(nil, "delete-tags", "--resources", e0, "--tags", `[{"Key":"k2","Value":""}]`) // empty value matches ""
	// Key and value: deleted only when the value matches.
	cli.ok(nil, "delete-tags", "--resources", e0, "--tags", `[{"Key":"k3","Value":"not-x"},{"Key":"k4","Value":"y"}]`)
	v, _ := s.Address(e0)
	if _, ok := v.Tags["k1"]; ok {
		t.Errorf("delete-tags Key=k1 left it: %v", v.Tags)
	}
	if _, ok := v.Tags["k2"]; ok {
		t.Errorf("delete-tags Key=k2,Value=\"\" left it: %v", v.Tags)
	}
	if _, ok := v.Tags["k4"]; ok {
		t.Errorf("delete-tags Key=k4,Value=y left it: %v", v.Tags)
	}
	if v.Tags["k3"] != "x" {
		t.Errorf("delete-tags Key=k3,Value=not-x must keep k3=x: %v", v.Tags)
	}
}

func cliHasTag(tags []struct{ Key, Value string }, k, v string) bool {
	for _, t := range tags {
		if t.Key == k && t.Value == v {
			return true
		}
	}
	return false
}

// TestAWSCLISecondaryPrivateIPs: two EIPs on the two private IPs of one
// ENI, as botocore parses them: each privateIpAddressesSet item carries its
// own association, and the per-address filters find the instance.
func TestAWSCLISecondaryPrivateIPs(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 2, EIPs: 3, PrivateIPs: 2, Group: "conf"})
	info := s.Info()
	cli := newAWSCLI(t, info.EC2Endpoint, "AKIAOPERATOR", "secret", "")
	in := info.Instances[0]
	e0, e1, e2 := info.EIPs[0], info.EIPs[1], info.EIPs[2]
	cli.ok(nil, "associate-address", "--allocation-id", e0.AllocationID, "--network-interface-id", in.ENIID, "--private-ip-address", in.PrivateIPs[0])
	cli.ok(nil, "associate-address", "--allocation-id", e1.AllocationID, "--network-interface-id", in.ENIID, "--private-ip-address", in.PrivateIPs[1])
	cli.fails("InvalidParameterValue", "associate-address", "--allocation-id", e2.AllocationID, "--network-interface-id", in.ENIID, "--private-ip-address", info.Instances[1].PrivateIP)

	var di struct {
		Reservations []struct {
			Instances []struct {
				InstanceId, PublicIpAddress string
				NetworkInterfaces           []struct {
					Association        *struct{ PublicIp, IpOwnerId string }
					PrivateIpAddresses []struct {
						PrivateIpAddress, PrivateDnsName string
						Primary                          bool
						Association                      *struct{ PublicIp, PublicDnsName, IpOwnerId string }
					}
				}
			}
		}
	}
	cli.ok(&di, "describe-instances", "--instance-ids", in.InstanceID)
	inst := di.Reservations[0].Instances[0]
	ni := inst.NetworkInterfaces[0]
	if inst.PublicIpAddress != e0.PublicIP || ni.Association == nil || ni.Association.PublicIp != e0.PublicIP {
		t.Errorf("instance/ENI public IP %q / %+v, want the primary IP's EIP %s", inst.PublicIpAddress, ni.Association, e0.PublicIP)
	}
	if len(ni.PrivateIpAddresses) != 2 {
		t.Fatalf("PrivateIpAddresses %+v, want 2", ni.PrivateIpAddresses)
	}
	for k, p := range ni.PrivateIpAddresses {
		want := []string{e0.PublicIP, e1.PublicIP}[k]
		if p.PrivateIpAddress != in.PrivateIPs[k] || p.Primary != (k == 0) || p.PrivateDnsName == "" ||
			p.Association == nil || p.Association.PublicIp != want || p.Association.IpOwnerId == "" {
			t.Errorf("PrivateIpAddresses[%d] = %+v (association %+v), want %s primary=%v with EIP %s", k, p, p.Association, in.PrivateIPs[k], k == 0, want)
		}
	}
	var f cliInstances
	cli.ok(&f, "describe-instances", "--filters", "Name=network-interface.addresses.association.public-ip,Values="+e1.PublicIP)
	if ids := f.ids(); len(ids) != 1 || ids[0] != in.InstanceID {
		t.Errorf("filter network-interface.addresses.association.public-ip: %v", ids)
	}
	cli.ok(&f, "describe-instances", "--filters", "Name=network-interface.addresses.private-ip-address,Values="+in.PrivateIPs[1])
	if ids := f.ids(); len(ids) != 1 || ids[0] != in.InstanceID {
		t.Errorf("filter network-interface.addresses.private-ip-address: %v", ids)
	}
	var da struct{ Addresses []cliAddress }
	cli.ok(&da, "describe-addresses", "--allocation-ids", e1.AllocationID)
	if a := da.Addresses[0]; a.PrivateIpAddress != in.PrivateIPs[1] || a.InstanceId != in.InstanceID || a.NetworkInterfaceId != in.ENIID {
		t.Errorf("describe-addresses of the EIP on the secondary IP: %+v", a)
	}
}
