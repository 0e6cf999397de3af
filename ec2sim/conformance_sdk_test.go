package ec2sim

// SDK conformance: the real aws-sdk-go-v2 ec2 and imds clients against
// ec2sim over HTTP. Also home of the helpers the other conformance files
// share (clients, worlds, tool lookup).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
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
