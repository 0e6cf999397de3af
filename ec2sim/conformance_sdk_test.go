package ec2sim

// SDK conformance: the real aws-sdk-go-v2 ec2 and imds clients against
// ec2sim over HTTP. Also home of the helpers the other conformance files
// share (clients, worlds, tool lookup).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/aws/aws-sdk-go-v2/config"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/hashicorp/go-hclog"
)

const confRegion = "us-east-1"

// confNeedTool returns the path of an external tool, or skips (fails under CI)
// when it is missing: the brief forbids silently passing without it.
func confNeedTool(t *testing.T, path string) string {
	t.Helper()
	p, err := exec.LookPath(path)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI: %v", path, err)
		}
		t.Skipf("%s not available: %v", path, err)
	}
	return p
}

// confClient builds an SDK client with static credentials. maxAttempts 1
// turns retries off so each call is exactly one request. The client owns its
// transport so the test can close idle connections (goleak).
func confClient(t *testing.T, endpoint, accessKey string, maxAttempts int) *ec2.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return ec2.New(ec2.Options{
		HTTPClient:   &http.Client{Transport: confBufferedRT{tr}, Timeout: 10 * time.Second},
		Region:       confRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider(accessKey, "secret-"+accessKey, ""),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = maxAttempts
		}),
	})
}

// confBufferedRT hands the transport a private in-memory copy of each
// request body. smithy-go closes the request body once the response arrives;
// against a server as fast as ec2sim, net/http's write loop can still be
// probing that body for EOF, fail, and close the connection under the
// response being read ("use of closed network connection",
// aws-sdk-go-v2#1825/#2737). The SDK retries that (PR #2949), but these
// tests turn retries off to see every request, so they avoid the race.
type confBufferedRT struct{ next http.RoundTripper }

func (b confBufferedRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		buf, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("buffer request body: %w", err)
		}
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(bytes.NewReader(buf))
		r.ContentLength = int64(len(buf))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	}
	return b.next.RoundTrip(r)
}

// confStartSim starts an ec2sim on loopback and closes it with the test.
func confStartSim(t *testing.T, opts Options) *Sim {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.Group == "" {
		opts.Group = "conf"
	}
	if opts.Region == "" {
		opts.Region = confRegion
	}
	if opts.Logger == nil {
		opts.Logger = hclog.NewNullLogger()
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("start ec2sim %+v: %v", opts, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close ec2sim: %v", err)
		}
		cancel()
	})
	return s
}

// confCode returns the AWS error code of err, "" for nil and "!<err>" for an
// error that carries no code (transport failure, parse failure).
func confCode(err error) string {
	if err == nil {
		return ""
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return "!" + err.Error()
}

// confStatus returns the HTTP status carried by err, 0 if none.
func confStatus(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func confCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// world is one EC2 (ec2sim or moto) seeded with the same shape: instance k,
// its ENIs in device-index order, and EIP k line up across worlds.
type confWorld struct {
	name      string
	client    *ec2.Client
	instances []confInstance
	eips      []confEIP
	// enis lists every ENI in (instance, device index) order; its index is
	// the ENI's identity across worlds.
	enis []confENI
}

type confInstance struct {
	ID   string
	ENIs []int // indexes into confWorld.enis
}

type confENI struct {
	ID, PrivateIP string
	Instance      int
}

type confEIP struct {
	AllocationID, PublicIP string
}

// confLoadWorld fills the ENI layout of the given instances from DescribeInstances.
func confLoadWorld(ctx context.Context, t *testing.T, name string, c *ec2.Client, instanceIDs, allocIDs []string) *confWorld {
	t.Helper()
	w := &confWorld{name: name, client: c}
	out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: instanceIDs})
	if err != nil {
		t.Fatalf("%s: describe instances %v: %v", name, instanceIDs, err)
	}
	byID := map[string]types.Instance{}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			byID[aws.ToString(in.InstanceId)] = in
		}
	}
	for k, id := range instanceIDs {
		in, ok := byID[id]
		if !ok {
			t.Fatalf("%s: instance %s missing from DescribeInstances", name, id)
		}
		nis := append([]types.InstanceNetworkInterface(nil), in.NetworkInterfaces...)
		sort.Slice(nis, func(i, j int) bool {
			return aws.ToInt32(nis[i].Attachment.DeviceIndex) < aws.ToInt32(nis[j].Attachment.DeviceIndex)
		})
		wi := confInstance{ID: id}
		for _, ni := range nis {
			wi.ENIs = append(wi.ENIs, len(w.enis))
			w.enis = append(w.enis, confENI{ID: aws.ToString(ni.NetworkInterfaceId), PrivateIP: aws.ToString(ni.PrivateIpAddress), Instance: k})
		}
		w.instances = append(w.instances, wi)
	}
	if len(allocIDs) > 0 {
		ao, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: allocIDs})
		if err != nil {
			t.Fatalf("%s: describe addresses %v: %v", name, allocIDs, err)
		}
		ips := map[string]string{}
		for _, a := range ao.Addresses {
			ips[aws.ToString(a.AllocationId)] = aws.ToString(a.PublicIp)
		}
		for _, id := range allocIDs {
			w.eips = append(w.eips, confEIP{AllocationID: id, PublicIP: ips[id]})
		}
	}
	return w
}

func (w *confWorld) eniIndex(id string) int {
	for i, e := range w.enis {
		if e.ID == id {
			return i
		}
	}
	return -1
}

func (w *confWorld) instIndex(id string) int {
	for i, in := range w.instances {
		if in.ID == id {
			return i
		}
	}
	return -1
}

func (w *confWorld) eipIndex(id string) int {
	for i, e := range w.eips {
		if e.AllocationID == id {
			return i
		}
	}
	return -1
}

func confSimWorld(ctx context.Context, t *testing.T, s *Sim, accessKey string) *confWorld {
	t.Helper()
	info := s.Info()
	var ids, allocs []string
	for _, in := range info.Instances {
		ids = append(ids, in.InstanceID)
	}
	for _, e := range info.EIPs {
		allocs = append(allocs, e.AllocationID)
	}
	return confLoadWorld(ctx, t, "ec2sim", confClient(t, info.EC2Endpoint, accessKey, 1), ids, allocs)
}

func confSorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

func TestSDKDescribeInstancesPaginator(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 13, EIPs: 1})
	ctx := confCtx(t)
	c := confClient(t, s.Info().EC2Endpoint, "operator", 1)
	seen := map[string]int{}
	pages := 0
	p := ec2.NewDescribeInstancesPaginator(c, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		n := 0
		for _, r := range out.Reservations {
			for _, in := range r.Instances {
				seen[aws.ToString(in.InstanceId)]++
				n++
			}
		}
		if n > 5 {
			t.Errorf("page %d holds %d instances, MaxResults is 5", pages, n)
		}
		if pages > 10 {
			t.Fatalf("paginator does not terminate: %d pages", pages)
		}
	}
	for _, in := range s.Info().Instances {
		if seen[in.InstanceID] != 1 {
			t.Errorf("instance %s seen %d times, want exactly once", in.InstanceID, seen[in.InstanceID])
		}
	}
	if len(seen) != 13 || pages != 3 {
		t.Errorf("want 13 instances in 3 pages, got %d in %d", len(seen), pages)
	}
	// A token is opaque: garbage is refused, not treated as "start over".
	_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{MaxResults: aws.Int32(5), NextToken: aws.String("garbage")})
	if code := confCode(err); code == "" || code[0] == '!' {
		t.Errorf("bad NextToken: want an API error, got %v", err)
	}
}

// TestSDKDryRun: every mutating call with DryRun answers DryRunOperation
// (412) and changes nothing; with the action denied it answers
// UnauthorizedOperation (403).
func TestSDKDryRun(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 2, EIPs: 2})
	info := s.Info()
	ctx := confCtx(t)
	e0, e1, i0 := info.EIPs[0].AllocationID, info.EIPs[1].AllocationID, info.Instances[0]
	if err := s.Associate(e1, i0.InstanceID); err != nil {
		t.Fatalf("associate %s to %s: %v", e1, i0.InstanceID, err)
	}
	v1, _ := s.Address(e1)
	calls := map[string]func(c *ec2.Client) error{
		"AssociateAddress": func(c *ec2.Client) error {
			_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{DryRun: aws.Bool(true), AllocationId: aws.String(e0), InstanceId: aws.String(i0.InstanceID)})
			return err
		},
		"DisassociateAddress": func(c *ec2.Client) error {
			_, err := c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{DryRun: aws.Bool(true), AssociationId: aws.String(v1.AssociationID)})
			return err
		},
		"CreateTags": func(c *ec2.Client) error {
			_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{DryRun: aws.Bool(true), Resources: []string{e0}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
			return err
		},
		"DeleteTags": func(c *ec2.Client) error {
			_, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{DryRun: aws.Bool(true), Resources: []string{e0}, Tags: []types.Tag{{Key: aws.String("eipd:group")}}})
			return err
		},
		"AllocateAddress": func(c *ec2.Client) error {
			_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{DryRun: aws.Bool(true), Domain: types.DomainTypeVpc})
			return err
		},
		"ReleaseAddress": func(c *ec2.Client) error {
			_, err := c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{DryRun: aws.Bool(true), AllocationId: aws.String(e0)})
			return err
		},
	}
	creds, ok := s.Credentials(i0.InstanceID)
	if !ok {
		t.Fatalf("no credentials for %s", i0.InstanceID)
	}
	op := confClient(t, info.EC2Endpoint, "operator", 1)
	inst := ec2.New(ec2.Options{}, func(o *ec2.Options) {
		*o = op.Options()
		o.Credentials = credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, creds.Token)
	})
	var denied []string
	for name := range calls {
		denied = append(denied, name)
	}
	if err := s.SetInstanceFaults(i0.InstanceID, Faults{Deny: denied}); err != nil {
		t.Fatalf("deny %v to %s: %v", denied, i0.InstanceID, err)
	}
	before0, _ := s.Address(e0)
	for name, call := range calls {
		err := call(op)
		if code, status := confCode(err), confStatus(err); code != "DryRunOperation" || status != 412 {
			t.Errorf("%s DryRun: want DryRunOperation/412, got %q/%d (%v)", name, code, status, err)
		}
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorFault() != smithy.FaultUnknown && ae.ErrorFault() != smithy.FaultClient {
			t.Errorf("%s DryRun: fault %v", name, ae.ErrorFault())
		}
		err = call(inst)
		if code, status := confCode(err), confStatus(err); code != "UnauthorizedOperation" || status != 403 {
			t.Errorf("%s DryRun while denied: want UnauthorizedOperation/403, got %q/%d (%v)", name, code, status, err)
		}
	}
	after0, _ := s.Address(e0)
	after1, _ := s.Address(e1)
	if fmt.Sprint(before0) != fmt.Sprint(after0) || after1.AssociationID != v1.AssociationID {
		t.Errorf("dry runs changed state: %+v → %+v; %+v → %+v", before0, after0, v1, after1)
	}
	if n := len(s.Info().EIPs); n != 2 {
		t.Errorf("dry-run AllocateAddress/ReleaseAddress changed the EIP count to %d", n)
	}
}

// TestSDKErrorCodes: each AWS-PROTOCOL §1.3 code the sim produces reaches
// the SDK with its HTTP status.
func TestSDKErrorCodes(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 3, EIPs: 2, BootDelay: time.Hour})
	multi := confStartSim(t, Options{Instances: 1, EIPs: 1, ENIsPerInstance: 2})
	info, minfo := s.Info(), multi.Info()
	ctx := confCtx(t)
	c := confClient(t, info.EC2Endpoint, "operator", 1)
	mc := confClient(t, minfo.EC2Endpoint, "operator", 1)
	e0, e1 := info.EIPs[0].AllocationID, info.EIPs[1].AllocationID
	i0, i1, i2 := info.Instances[0], info.Instances[1], info.Instances[2]
	if err := s.Associate(e1, i1.InstanceID); err != nil {
		t.Fatalf("associate: %v", err)
	}
	// i2 stopped then started: pending for BootDelay (an hour).
	if err := s.StopInstance(i2.InstanceID); err != nil {
		t.Fatalf("stop %s: %v", i2.InstanceID, err)
	}
	if err := s.StartInstance(i2.InstanceID); err != nil {
		t.Fatalf("start %s: %v", i2.InstanceID, err)
	}
	assoc := func(cl *ec2.Client, in ec2.AssociateAddressInput) func() error {
		return func() error { _, err := cl.AssociateAddress(ctx, &in); return err }
	}
	cases := []struct {
		code   string
		status int
		call   func() error
	}{
		{"InvalidAllocationID.NotFound", 400, assoc(c, ec2.AssociateAddressInput{AllocationId: aws.String(confUnknownAlloc), InstanceId: aws.String(i0.InstanceID)})},
		{"InvalidAllocationID.NotFound", 400, func() error {
			_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{e0, confUnknownAlloc}})
			return err
		}},
		{"InvalidAssociationID.NotFound", 400, func() error {
			_, err := c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(confUnknownAssoc)})
			return err
		}},
		{"Resource.AlreadyAssociated", 400, assoc(c, ec2.AssociateAddressInput{AllocationId: aws.String(e1), InstanceId: aws.String(i0.InstanceID), AllowReassociation: aws.Bool(false)})},
		{"InvalidInstanceID.NotFound", 400, assoc(c, ec2.AssociateAddressInput{AllocationId: aws.String(e0), InstanceId: aws.String(confUnknownInst)})},
		{"InvalidInstanceID.NotFound", 400, func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{confUnknownInst}})
			return err
		}},
		{"InvalidInstanceID.Malformed", 400, func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{"ma1"}})
			return err
		}},
		{"InvalidInstanceID", 400, assoc(mc, ec2.AssociateAddressInput{AllocationId: aws.String(minfo.EIPs[0].AllocationID), InstanceId: aws.String(minfo.Instances[0].InstanceID)})},
		{"InvalidInstanceID", 400, assoc(c, ec2.AssociateAddressInput{AllocationId: aws.String(e0), InstanceId: aws.String(i2.InstanceID)})},
		{"IncorrectInstanceState", 400, assoc(c, ec2.AssociateAddressInput{AllocationId: aws.String(e0), NetworkInterfaceId: aws.String(i2.ENIID)})},
		{"InvalidAddress.NotFound", 400, func() error {
			_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{PublicIps: []string{"192.0.2.254"}})
			return err
		}},
		{"InvalidParameterValue", 400, func() error {
			_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{{Name: aws.String("no-such-filter"), Values: []string{"x"}}}})
			return err
		}},
		{"MissingParameter", 400, func() error {
			_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{{Name: aws.String(""), Values: []string{"x"}}}})
			return err
		}},
		{"InvalidID", 400, func() error {
			_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{"not-an-id"}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
			return err
		}},
		{"InvalidParameterCombination", 400, func() error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{i0.InstanceID}, MaxResults: aws.Int32(5)})
			return err
		}},
		{"InvalidParameterCombination", 400, assoc(c, ec2.AssociateAddressInput{AllocationId: aws.String(e0), InstanceId: aws.String(i0.InstanceID), NetworkInterfaceId: aws.String(i0.ENIID)})},
		{"DryRunOperation", 412, func() error {
			_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{DryRun: aws.Bool(true)})
			return err
		}},
	}
	for _, tc := range cases {
		err := tc.call()
		if code, status := confCode(err), confStatus(err); code != tc.code || status != tc.status {
			t.Errorf("want %s/%d, got %q/%d (%v)", tc.code, tc.status, code, status, err)
		}
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorMessage() == "" {
			t.Errorf("%s: empty message", tc.code)
		}
	}
	if v, _ := s.Address(e0); v.AssociationID != "" {
		t.Errorf("failed calls associated %s: %+v", e0, v)
	}

	// Faults: throttling, server errors, denial.
	faulty := []struct {
		f      Faults
		code   string
		status int
	}{
		{Faults{ThrottleRatio: 1}, "RequestLimitExceeded", 503},
		{Faults{Deny: []string{"DescribeAddresses"}}, "UnauthorizedOperation", 403},
	}
	for _, fc := range faulty {
		s.SetFaults(fc.f)
		_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
		if code, status := confCode(err), confStatus(err); code != fc.code || status != fc.status {
			t.Errorf("faults %+v: want %s/%d, got %q/%d (%v)", fc.f, fc.code, fc.status, code, status, err)
		}
		s.ClearFaults()
	}
	s.SetFaults(Faults{ErrorRatio: 1})
	codes := map[string]bool{}
	for i := 0; i < 40 && len(codes) < 2; i++ {
		_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
		code, status := confCode(err), confStatus(err)
		if (code != "InternalError" || status != 500) && (code != "Unavailable" || status != 503) {
			t.Fatalf("ErrorRatio 1: want InternalError/500 or Unavailable/503, got %q/%d (%v)", code, status, err)
		}
		codes[code] = true
	}
	if len(codes) != 2 {
		t.Errorf("ErrorRatio 1: 40 calls gave only %v", codes)
	}
	s.ClearFaults()
	if _, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{}); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}
}

// TestSDKRetryBackoff: the standard retryer retries RequestLimitExceeded
// with backoff and succeeds once throttling stops; when it never stops it
// gives up after MaxAttempts requests.
func TestSDKRetryBackoff(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 2, EIPs: 1})
	info := s.Info()
	ctx := confCtx(t)
	// Keep the jittered delays short (max 200 ms) so the test is fast; the
	// retry decisions are the SDK's own.
	c := ec2.New(ec2.Options{}, func(o *ec2.Options) {
		*o = confClient(t, info.EC2Endpoint, "operator", 1).Options()
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 5
			so.MaxBackoff = 200 * time.Millisecond
		})
	})
	throttled := func() int64 { return s.Stats().ByOutcome["DescribeAddresses"]["RequestLimitExceeded"] }
	okCount := func() int64 { return s.Stats().ByOutcome["DescribeAddresses"]["ok"] }

	s.SetFaults(Faults{ThrottleRatio: 1})
	start := time.Now()
	_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	if code, status := confCode(err), confStatus(err); code != "RequestLimitExceeded" || status != 503 {
		t.Fatalf("always throttled: want RequestLimitExceeded/503 after retries, got %q/%d (%v)", code, status, err)
	}
	var me *retry.MaxAttemptsError
	if !errors.As(err, &me) || me.Attempt != 5 {
		t.Errorf("want retry.MaxAttemptsError after 5 attempts, got %v", err)
	}
	if n := throttled(); n != 5 {
		t.Errorf("sim saw %d throttled requests, want 5 (MaxAttempts)", n)
	}
	t.Logf("5 throttled attempts took %v", time.Since(start))

	// Throttled for a while, then cleared: the call in flight succeeds.
	type result struct{ err error }
	done := make(chan result, 1)
	go func() {
		_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
		done <- result{err}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for throttled() < 5+2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	s.ClearFaults()
	r := <-done
	if r.err != nil {
		t.Fatalf("call retried across the throttling must succeed once cleared: %v", r.err)
	}
	if n := throttled() - 5; n < 2 || n > 4 {
		t.Errorf("want 2..4 throttled attempts before success, sim saw %d", n)
	}
	if okCount() != 1 {
		t.Errorf("want exactly one successful request, sim saw %d", okCount())
	}
}

// TestSDKThrottleBucket: with AWS-like token buckets on, a burst of 200
// DescribeAddresses (bucket 100, refill 20/s) gets RequestLimitExceeded
// (503) after about 100.
func TestSDKThrottleBucket(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 1, EIPs: 1})
	ctx := confCtx(t)
	c := confClient(t, s.Info().EC2Endpoint, "operator", 1)
	s.SetFaults(Faults{Throttle: true})
	first := -1
	ok := 0
	start := time.Now()
	for i := 0; i < 200; i++ {
		_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
		switch code := confCode(err); code {
		case "":
			ok++
		case "RequestLimitExceeded":
			if st := confStatus(err); st != 503 {
				t.Fatalf("call %d: RequestLimitExceeded with HTTP %d, want 503", i, st)
			}
			if first < 0 {
				first = i
			}
		default:
			t.Fatalf("call %d: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	// The bucket refills 20/s while the burst runs, so allow that much more.
	maxOK := 100 + int(elapsed.Seconds()*20) + 1
	if (first >= 0 && first < 100) || ok > maxOK {
		t.Errorf("first throttle at call %d, %d succeeded in %v; want the first ~100 (at most %d) to pass", first, ok, elapsed, maxOK)
	}
	if first < 0 && elapsed < 4*time.Second {
		t.Errorf("200 calls in %v were never throttled", elapsed)
	}
	// Mutations have their own bucket: Describe throttling leaves them alone.
	if _, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{s.Info().EIPs[0].AllocationID}, Tags: []types.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}); err != nil {
		t.Errorf("CreateTags after a DescribeAddresses burst: %v", err)
	}
}

// TestSDKIMDSCredentials: with no credentials anywhere but an instance's
// IMDS, the SDK's default chain gets that instance's credentials and the
// sim attributes the calls to it.
func TestSDKIMDSCredentials(t *testing.T) {
	s := confStartSim(t, Options{Instances: 2, EIPs: 1})
	info := s.Info()
	in := info.Instances[1]
	empty := filepath.Join(t.TempDir(), "none")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty,
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "",
		"AWS_EC2_METADATA_DISABLED":         "",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": in.IMDSEndpoint,
		"AWS_REGION":                        confRegion,
		"AWS_ENDPOINT_URL":                  "", "AWS_ENDPOINT_URL_EC2": "", "AWS_CA_BUNDLE": "",
	} {
		t.Setenv(k, v)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ctx := confCtx(t)
	cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(&http.Client{Transport: confBufferedRT{tr}, Timeout: 10 * time.Second}))
	if err != nil {
		t.Fatalf("load default config: %v", err)
	}
	c := ec2.NewFromConfig(cfg, func(o *ec2.Options) { o.BaseEndpoint = aws.String(info.EC2Endpoint) })
	if _, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{}); err != nil {
		t.Fatalf("describe addresses with IMDS credentials: %v", err)
	}
	got, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("retrieve credentials: %v", err)
	}
	want, _ := s.Credentials(in.InstanceID)
	if got.AccessKeyID != want.AccessKeyID || got.Source == "" {
		t.Errorf("credentials %s from %q, want %s (instance %s)", got.AccessKeyID, got.Source, want.AccessKeyID, in.InstanceID)
	}
	st := s.Stats()
	if st.ByCaller[in.InstanceID]["DescribeAddresses"] != 1 || st.ByCaller[""]["DescribeAddresses"] != 0 {
		t.Errorf("calls must be attributed to %s: by caller %v", in.InstanceID, st.ByCaller)
	}
}
