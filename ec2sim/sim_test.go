package ec2sim

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
)

func simStart(t *testing.T, opts Options) *Sim {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, opts)
	if err != nil {
		cancel()
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// simClient is an SDK client signing with the given access key (the
// operator when the key is unknown to the simulator).
func simClient(t *testing.T, s *Sim, akid string, mods ...func(*ec2.Options)) *ec2.Client {
	t.Helper()
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(akid, "secret", "token"),
	}
	return ec2.NewFromConfig(cfg, append([]func(*ec2.Options){func(o *ec2.Options) {
		o.BaseEndpoint = aws.String(s.Info().EC2Endpoint)
		o.RetryMaxAttempts = 1
		o.HTTPClient = &http.Client{Transport: simBodyRT{awshttp.NewBuildableClient().GetTransport()}}
	}}, mods...)...)
}

// simBodyRT works around a client-side race in this SDK version: smithy
// closes the request body as soon as client.Do returns, while net/http's
// write loop may still do its final read of it; the body's WriteTo then
// returns io.EOF, which io.Copy passes on, the transport closes the
// connection and a response larger than one read buffer (~4 KiB) fails with
// "use of closed network connection". Hiding WriteTo makes io.Copy treat
// that EOF as the end of the body. Reproduced against a bare httptest
// server too, so it is not the simulator's doing.
type simBodyRT struct{ rt http.RoundTripper }

func (b simBodyRT) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return b.rt.RoundTrip(r)
}

// simInstanceClient signs with an instance's own credentials.
func simInstanceClient(t *testing.T, s *Sim, id string, mods ...func(*ec2.Options)) *ec2.Client {
	t.Helper()
	c, ok := s.Credentials(id)
	if !ok {
		t.Fatalf("no credentials for %s", id)
	}
	return simClient(t, s, c.AccessKeyID, mods...)
}

func simCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err == nil {
		return ""
	}
	return "non-API error: " + err.Error()
}

func simWantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := simCode(err); got != code {
		t.Fatalf("error code = %q, want %q (err: %v)", got, code, err)
	}
}

func simOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func simAddr(t *testing.T, c *ec2.Client, alloc string) types.Address {
	t.Helper()
	out, err := c.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{AllocationIds: []string{alloc}})
	simOK(t, err)
	if len(out.Addresses) != 1 {
		t.Fatalf("DescribeAddresses %s: %d results", alloc, len(out.Addresses))
	}
	return out.Addresses[0]
}

// simRaw posts a raw Query body; auth "" sends no Authorization header.
func simRaw(t *testing.T, s *Sim, body, auth string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.Info().EC2Endpoint+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

const simOperatorAuth = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=00"

func TestInfoAndInitialState(t *testing.T) {
	s := simStart(t, Options{Instances: 3, EIPs: 2, Group: "g1", TargetPort: 8080})
	info := s.Info()
	if len(info.Instances) != 3 || len(info.EIPs) != 2 || info.Group != "g1" || info.Region != "us-east-1" {
		t.Fatalf("info = %+v", info)
	}
	if !strings.HasSuffix(info.ControlEndpoint, "/_sim") || !strings.HasPrefix(info.EC2Endpoint, "http://127.0.0.1:") {
		t.Fatalf("endpoints: %s %s", info.EC2Endpoint, info.ControlEndpoint)
	}
	for i, in := range info.Instances {
		wantIP := []string{"127.0.0.11", "127.0.0.12", "127.0.0.13"}[i]
		wantAZ := []string{"us-east-1a", "us-east-1b", "us-east-1c"}[i]
		if in.PrivateIP != wantIP || in.AZ != wantAZ || !instanceIDRE().MatchString(in.InstanceID) ||
			!eniIDRE().MatchString(in.ENIID) || !strings.HasPrefix(in.IMDSEndpoint, "http://"+wantIP+":") {
			t.Errorf("instance %d = %+v", i, in)
		}
	}
	for _, e := range info.EIPs {
		if !allocIDRE().MatchString(e.AllocationID) || !strings.HasPrefix(e.PublicIP, "198.51.100.") || e.ForwardAddr == "" {
			t.Errorf("eip = %+v", e)
		}
	}
	if j := string(info.JSON()); strings.Contains(j, "\n") || !strings.Contains(j, `"ec2_endpoint":`) ||
		!strings.Contains(j, `"forward_addr":`) || !strings.Contains(j, `"imds_endpoint":`) {
		t.Errorf("JSON = %s", j)
	}

	c := simClient(t, s, "AKIDEXAMPLE")
	out, err := c.DescribeInstances(context.Background(), &ec2.DescribeInstancesInput{})
	simOK(t, err)
	if len(out.Reservations) != 3 {
		t.Fatalf("reservations = %d", len(out.Reservations))
	}
	in := out.Reservations[0].Instances[0]
	if aws.ToString(in.InstanceId) != info.Instances[0].InstanceID || in.State.Name != types.InstanceStateNameRunning ||
		aws.ToInt32(in.State.Code) != 16 || aws.ToString(in.PrivateIpAddress) != "127.0.0.11" ||
		in.PublicIpAddress != nil || aws.ToString(in.Placement.AvailabilityZone) != "us-east-1a" ||
		len(in.NetworkInterfaces) != 1 || aws.ToString(in.NetworkInterfaces[0].NetworkInterfaceId) != info.Instances[0].ENIID ||
		aws.ToInt32(in.NetworkInterfaces[0].Attachment.DeviceIndex) != 0 || aws.ToString(in.NetworkInterfaces[0].MacAddress) == "" ||
		in.LaunchTime == nil {
		t.Errorf("instance = %+v", in)
	}
	tags := map[string]string{}
	for _, tg := range in.Tags {
		tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	if tags["eipd:group"] != "g1" || tags["Name"] == "" {
		t.Errorf("tags = %v", tags)
	}
	a := simAddr(t, c, info.EIPs[0].AllocationID)
	// Absent elements must be omitted, so the SDK leaves them nil.
	if a.AssociationId != nil || a.InstanceId != nil || a.NetworkInterfaceId != nil || a.PrivateIpAddress != nil ||
		aws.ToString(a.PublicIp) != info.EIPs[0].PublicIP || a.Domain != types.DomainTypeVpc {
		t.Errorf("address = %+v", a)
	}
}

func TestWireFormat(t *testing.T) {
	s := simStart(t, Options{})
	resp, body := simRaw(t, s, "Action=DescribeAddresses&Version=2016-11-15", simOperatorAuth)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/xml;charset=UTF-8" || resp.Header.Get("Date") == "" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(body, `<DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">`) ||
		!strings.Contains(body, "<requestId>") || strings.Contains(body, "<instanceId/>") {
		t.Fatalf("body = %s", body)
	}
	cases := []struct {
		name, body, auth string
		status           int
		code             string
	}{
		{"no auth", "Action=DescribeAddresses&Version=2016-11-15", "", 401, "MissingAuthenticationToken"},
		{"wrong region", "Action=DescribeAddresses&Version=2016-11-15",
			"AWS4-HMAC-SHA256 Credential=AKID/20260101/eu-west-1/ec2/aws4_request, SignedHeaders=host, Signature=0", 401, "AuthFailure"},
		{"unknown action", "Action=RunInstances&Version=2016-11-15", simOperatorAuth, 400, "InvalidAction"},
		{"no action", "Version=2016-11-15", simOperatorAuth, 400, "MissingAction"},
		{"bad escape", "Action=DescribeAddresses&x=%zz", simOperatorAuth, 400, "MalformedQueryString"},
		{"unknown param", "Action=DescribeAddresses&Version=2016-11-15&Bogus=1", simOperatorAuth, 400, "UnknownParameter"},
		{"empty list marker", "Action=DescribeAddresses&Version=2016-11-15&AllocationId=&Filter=", simOperatorAuth, 200, ""},
		{"bad bool", "Action=DescribeAddresses&Version=2016-11-15&DryRun=yes", simOperatorAuth, 400, "InvalidParameterValue"},
		{"bad list index", "Action=DescribeAddresses&Version=2016-11-15&AllocationId.x=1", simOperatorAuth, 400, "InvalidParameterValue"},
		{"filter without name", "Action=DescribeAddresses&Version=2016-11-15&Filter.1.Value.1=x", simOperatorAuth, 400, "MissingParameter"},
		{"dry run", "Action=DescribeAddresses&Version=2016-11-15&DryRun=true", simOperatorAuth, 412, "DryRunOperation"},
		{"bad token", "Action=DescribeTags&Version=2016-11-15&NextToken=zzz", simOperatorAuth, 400, "InvalidPaginationToken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := simRaw(t, s, tc.body, tc.auth)
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.code != "" && (!strings.HasPrefix(body, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<Response><Errors><Error><Code>"+tc.code+"</Code><Message>") ||
				!strings.Contains(body, "<RequestID>")) {
				t.Fatalf("body = %s", body)
			}
		})
	}
}

func TestParseQuery(t *testing.T) {
	r, err := parseQuery([]byte("Action=CreateTags&Version=2016-11-15&ResourceId.2=b&ResourceId.1=a&Tag.1.Key=k&Tag.1.Value="))
	simOK(t, err)
	ids, _ := r.list("ResourceId")
	tags, err := parseTags(r, true)
	simOK(t, err)
	if r.Action != "CreateTags" || strings.Join(ids, ",") != "a,b" || len(tags) != 1 || tags[0].key != "k" || !tags[0].hasValue {
		t.Fatalf("parsed %+v ids %v tags %+v", r, ids, tags)
	}
	if _, err := parseQuery([]byte("Action=X&Version=2000-01-01")); simCodeOf(err) != "InvalidParameterValue" {
		t.Fatalf("old version: %v", err)
	}
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{{"a*c", "abbc", true}, {"a?c", "abc", true}, {"a?c", "ac", false}, {`a\*`, "a*", true}, {`a\*`, "ab", false},
		{"*", "", true}, {"demo", "demo", true}, {"de*", "xdemo", false}, {strings.Repeat("*a", 40), strings.Repeat("a", 39) + "b", false}} {
		if got := globMatch(tc.pattern, tc.s); got != tc.want {
			t.Errorf("globMatch(%q, %q) = %v", tc.pattern, tc.s, got)
		}
	}
}

func simCodeOf(err error) string {
	var e *apiError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func TestControlAPIOverHTTP(t *testing.T) {
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	id := info.Instances[0].InstanceID
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, info.ControlEndpoint+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	steps := []struct {
		method, path, body string
		status             int
		contains           string
	}{
		{"GET", "/info", "", 200, `"ec2_endpoint"`},
		{"POST", "/addresses/" + info.EIPs[0].AllocationID + "/associate", `{"instance_id":"` + id + `"}`, 200, `"association_id":"eipassoc-`},
		{"POST", "/addresses/" + info.EIPs[0].AllocationID + "/associate", `{"instance":"x"}`, 400, `"error"`},
		{"POST", "/addresses/eipalloc-00000000000000000/associate", `{"instance_id":"` + id + `"}`, 404, `"error"`},
		{"GET", "/events", "", 200, `"action":"associate"`},
		{"POST", "/instances/" + id + "/spot-interruption", `{"action":"stop"}`, 200, `"done"`},
		{"POST", "/instances/" + id + "/spot-interruption", `{"action":"explode"}`, 400, `"error"`},
		{"POST", "/instances/" + id + "/rebalance", "", 200, `"done"`},
		{"POST", "/instances/" + id + "/maintenance", `{"code":"system-reboot"}`, 200, `"done"`},
		{"PUT", "/instances/" + id + "/lifecycle-state", "Terminated", 200, `"Terminated"`},
		{"PUT", "/instances/" + id + "/lifecycle-state", `{"state":"InService"}`, 200, `"InService"`},
		{"PUT", "/instances/" + id + "/lifecycle-state", "Bogus", 400, `"error"`},
		{"PUT", "/faults", `{"latency":"1ms","deny":["CreateTags"]}`, 200, `"latency":"1ms"`},
		{"GET", "/faults", "", 200, `"deny":["CreateTags"]`},
		{"PUT", "/faults", `{"latency":"fast"}`, 400, `"error"`},
		{"PUT", "/faults", `{"unknown":1}`, 400, `"error"`},
		{"DELETE", "/faults", "", 200, `"cleared"`},
		{"PUT", "/instances/" + id + "/faults", `{"partition":true}`, 200, `"partition":true`},
		{"PUT", "/instances/i-00000000000000000/faults", `{"partition":true}`, 404, `"error"`},
		{"DELETE", "/instances/" + id + "/faults", "", 200, `"cleared"`},
		{"PUT", "/instances/" + id + "/target-port", `{"port":9090}`, 200, `"target_port":9090`},
		{"PUT", "/instances/" + id + "/target-port", `{"port":0}`, 200, `"target_port":0`},
		{"PUT", "/instances/" + id + "/target-port", `{}`, 400, `"error"`},
		{"PUT", "/instances/" + id + "/target-port", `{"port":-1}`, 400, `"error"`},
		{"PUT", "/instances/i-00000000000000000/target-port", `{"port":9090}`, 404, `"error"`},
		{"POST", "/instances/" + id + "/stop", "", 200, `"done"`},
		{"POST", "/instances/" + id + "/start", "", 200, `"done"`},
		{"POST", "/instances/" + id + "/terminate", "", 200, `"done"`},
		{"POST", "/instances/" + id + "/start", "", 409, `"error"`},
		{"POST", "/instances/" + id + "/explode", "", 404, `"error"`},
		{"GET", "/events", "", 200, `"action":"terminate"`},
		{"GET", "/stats", "", 200, `"by_action"`},
		{"GET", "/nothing", "", 404, `"error"`},
	}
	for _, st := range steps {
		code, body := do(st.method, st.path, st.body)
		if code != st.status || !strings.Contains(body, st.contains) {
			t.Fatalf("%s %s %s: %d %s (want %d containing %s)", st.method, st.path, st.body, code, body, st.status, st.contains)
		}
	}
	// The GET of a query-string request also works, as on AWS.
	resp, err := http.Get(info.EC2Endpoint + "/?Action=DescribeAddresses&Version=2016-11-15&X-Amz-Credential=" +
		url.QueryEscape("AKID/20260101/us-east-1/ec2/aws4_request"))
	simOK(t, err)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET query: %d", resp.StatusCode)
	}
}

func TestStartFailsCleanlyOnBusyListen(t *testing.T) {
	s := simStart(t, Options{Instances: 1})
	addr := strings.TrimPrefix(s.Info().EC2Endpoint, "http://")
	_, err := Start(context.Background(), Options{Instances: 1, Listen: addr, FirstIP: "127.0.0.51"})
	if err == nil || !strings.Contains(err.Error(), "listen") {
		t.Fatalf("Start on a busy port: %v", err)
	}
	if _, err := Start(context.Background(), Options{FirstIP: "nope"}); err == nil {
		t.Fatal("bad FirstIP accepted")
	}
}

func TestCloseOnContextEnd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{Instances: 1, FirstIP: "127.0.0.61"})
	simOK(t, err)
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := http.Get(s.Info().EC2Endpoint + "/_sim/info")
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("simulator still serving after its context ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
	simOK(t, s.Close())
}
