package ec2sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/hashicorp/go-hclog"
)

// imdsTestInstance is a mutable snapshot source, as the EC2 state would be.
type imdsTestInstance struct {
	mu      sync.Mutex
	snap    MetadataSnapshot
	running bool
}

func (i *imdsTestInstance) get() (MetadataSnapshot, bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.snap, i.running
}

func (i *imdsTestInstance) update(fn func(s *MetadataSnapshot)) {
	i.mu.Lock()
	defer i.mu.Unlock()
	fn(&i.snap)
}

func (i *imdsTestInstance) setRunning(r bool) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.running = r
}

var imdsTestPending = time.Date(2019, 10, 31, 7, 2, 24, 0, time.UTC)
var imdsTestExpiry = time.Now().Add(3 * time.Hour).UTC().Truncate(time.Second)

func imdsTestSnapshot() MetadataSnapshot {
	return MetadataSnapshot{
		InstanceID:         "i-1234567890abcdef0",
		AccountID:          "123456789012",
		ImageID:            "ami-0b69ea66ff7391e80",
		InstanceType:       "m5.large",
		Region:             "eu-west-1",
		AvailabilityZone:   "eu-west-1a",
		AvailabilityZoneID: "euw1-az1",
		PrivateIP:          "10.0.7.10",
		PublicIP:           "203.0.113.7",
		PendingTime:        imdsTestPending,
		Interfaces: []InterfaceMetadata{
			{
				MAC: "0e:00:00:00:00:01", InterfaceID: "eni-0000000000000001", DeviceIndex: 0,
				PrivateIPs: []string{"10.0.7.10", "10.0.7.11"},
				PublicIPs:  map[string]string{"10.0.7.10": "203.0.113.7", "10.0.7.11": "203.0.113.8"},
			},
			{
				MAC: "0e:00:00:00:00:02", InterfaceID: "eni-0000000000000002", DeviceIndex: 1,
				PrivateIPs: []string{"10.0.8.20"},
			},
		},
		Role: "eipd-node",
		Credentials: Credentials{
			AccessKeyID:     "ASIAEXAMPLEKEY",
			SecretAccessKey: "secret/example+key",
			Token:           "session-token-example",
			Expiration:      imdsTestExpiry,
		},
	}
}

func startIMDSForTest(t *testing.T, inst *imdsTestInstance) (string, *imdsHandler) {
	t.Helper()
	h := newIMDSHandler(inst.get, hclog.NewNullLogger())
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL, h.(*imdsHandler)
}

func newIMDSTestInstance() *imdsTestInstance {
	return &imdsTestInstance{snap: imdsTestSnapshot(), running: true}
}

// imdsSDKClient is the real SDK client, IMDSv2 only, with its own transport so
// the test can close its idle connections (goleak).
func imdsSDKClient(t *testing.T, endpoint string) *imds.Client {
	t.Helper()
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return imds.New(imds.Options{
		Endpoint:       endpoint,
		EnableFallback: aws.FalseTernary,
		HTTPClient:     &http.Client{Transport: tr},
	})
}

func imdsGet(t *testing.T, c *imds.Client, path string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", err
	}
	defer out.Content.Close()
	b, err := io.ReadAll(out.Content)
	return string(b), err
}

func imdsStatus(err error) int {
	var se interface{ HTTPStatusCode() int }
	if errors.As(err, &se) {
		return se.HTTPStatusCode()
	}
	return 0
}

func TestIMDSMetadataPathsViaSDK(t *testing.T) {
	url, _ := startIMDSForTest(t, newIMDSTestInstance())
	c := imdsSDKClient(t, url)
	mac0 := "network/interfaces/macs/0e:00:00:00:00:01/"
	mac1 := "network/interfaces/macs/0e:00:00:00:00:02/"
	tests := []struct{ path, want string }{
		{"instance-id", "i-1234567890abcdef0"},
		{"placement/availability-zone", "eu-west-1a"},
		{"placement/availability-zone-id", "euw1-az1"},
		{"placement/region", "eu-west-1"},
		{"local-ipv4", "10.0.7.10"},
		{"public-ipv4", "203.0.113.7"},
		{"mac", "0e:00:00:00:00:01"},
		{"instance-type", "m5.large"},
		{"ami-id", "ami-0b69ea66ff7391e80"},
		{"instance-action", "none"},
		{"network/interfaces/macs/", "0e:00:00:00:00:01/\n0e:00:00:00:00:02/"},
		{"network/interfaces/macs", "0e:00:00:00:00:01/\n0e:00:00:00:00:02/"},
		{mac0 + "interface-id", "eni-0000000000000001"},
		{mac0 + "device-number", "0"},
		{mac0 + "local-ipv4s", "10.0.7.10\n10.0.7.11"},
		{mac0 + "public-ipv4s", "203.0.113.7\n203.0.113.8"},
		{mac0 + "ipv4-associations/", "203.0.113.7\n203.0.113.8"},
		{mac0 + "ipv4-associations/203.0.113.8", "10.0.7.11"},
		{mac1 + "interface-id", "eni-0000000000000002"},
		{mac1 + "device-number", "1"},
		{mac1 + "local-ipv4s", "10.0.8.20"},
		{"iam/security-credentials/", "eipd-node"},
		{"iam/", "info\nsecurity-credentials/"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, err := imdsGet(t, c, tt.path)
			if err != nil {
				t.Fatalf("GetMetadata(%q): %v", tt.path, err)
			}
			if got != tt.want {
				t.Errorf("GetMetadata(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}

	for _, absent := range []string{
		"no-such-item", mac1 + "public-ipv4s", mac0 + "ipv4-associations/198.51.100.1",
		"spot/instance-action", "spot/termination-time", "events/recommendations/rebalance",
		"autoscaling/target-lifecycle-state", "events/maintenance/scheduled", "events/maintenance/history",
	} {
		if _, err := imdsGet(t, c, absent); imdsStatus(err) != http.StatusNotFound {
			t.Errorf("GetMetadata(%q): err %v, want a 404", absent, err)
		}
	}

	top, err := imdsGet(t, c, "")
	if err != nil {
		t.Fatalf("top-level listing: %v", err)
	}
	lines := strings.Split(top, "\n")
	for _, want := range []string{"instance-id", "instance-action", "local-ipv4", "public-ipv4", "mac", "placement/", "network/", "iam/"} {
		if !contains(lines, want) {
			t.Errorf("top-level listing %q lacks %q", top, want)
		}
	}
	if contains(lines, "spot/") {
		t.Errorf("top-level listing %q has spot/ with no notice", top)
	}

	info, err := imdsGet(t, c, "iam/info")
	if err != nil {
		t.Fatalf("iam/info: %v", err)
	}
	var ii struct{ Code, InstanceProfileArn string }
	if err := json.Unmarshal([]byte(info), &ii); err != nil || ii.Code != "Success" ||
		ii.InstanceProfileArn != "arn:aws:iam::123456789012:instance-profile/eipd-node" {
		t.Errorf("iam/info = %s (%v)", info, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := c.GetIAMInfo(ctx, nil); err != nil || out.InstanceProfileArn != ii.InstanceProfileArn {
		t.Errorf("GetIAMInfo = %+v, %v", out, err)
	}
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

func TestIMDSCredentialsJSON(t *testing.T) {
	url, _ := startIMDSForTest(t, newIMDSTestInstance())
	c := imdsSDKClient(t, url)
	body, err := imdsGet(t, c, "iam/security-credentials/eipd-node")
	if err != nil {
		t.Fatalf("credentials: %v", err)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatalf("credentials are not a JSON object of strings: %v\n%s", err, body)
	}
	want := map[string]string{
		"Code":            "Success",
		"Type":            "AWS-HMAC",
		"AccessKeyId":     "ASIAEXAMPLEKEY",
		"SecretAccessKey": "secret/example+key",
		"Token":           "session-token-example",
		"Expiration":      imdsTestExpiry.Format(time.RFC3339),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339, got["LastUpdated"]); err != nil {
		t.Errorf("LastUpdated %q: %v", got["LastUpdated"], err)
	}
}

func TestIMDSIdentityDocumentAndRegion(t *testing.T) {
	url, _ := startIMDSForTest(t, newIMDSTestInstance())
	c := imdsSDKClient(t, url)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	doc, err := c.GetInstanceIdentityDocument(ctx, nil)
	if err != nil {
		t.Fatalf("GetInstanceIdentityDocument: %v", err)
	}
	want := imds.InstanceIdentityDocument{
		AccountID: "123456789012", Architecture: "x86_64", AvailabilityZone: "eu-west-1a",
		ImageID: "ami-0b69ea66ff7391e80", InstanceID: "i-1234567890abcdef0", InstanceType: "m5.large",
		PendingTime: imdsTestPending, PrivateIP: "10.0.7.10", Region: "eu-west-1", Version: "2017-09-30",
	}
	if !reflect.DeepEqual(doc.InstanceIdentityDocument, want) {
		t.Errorf("identity document\n got %+v\nwant %+v", doc.InstanceIdentityDocument, want)
	}

	region, err := c.GetRegion(ctx, nil)
	if err != nil || region.Region != "eu-west-1" {
		t.Errorf("GetRegion = %+v, %v; want eu-west-1", region, err)
	}

	// The exact key set, with the nulls, as a strict client would read it.
	raw, err := c.GetDynamicData(ctx, &imds.GetDynamicDataInput{Path: "instance-identity/document"})
	if err != nil {
		t.Fatalf("GetDynamicData: %v", err)
	}
	defer raw.Content.Close()
	var m map[string]any
	if err := json.NewDecoder(raw.Content).Decode(&m); err != nil {
		t.Fatalf("decode document: %v", err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	wantKeys := []string{"accountId", "architecture", "availabilityZone", "billingProducts", "devpayProductCodes",
		"imageId", "instanceId", "instanceType", "kernelId", "marketplaceProductCodes", "pendingTime", "privateIp",
		"ramdiskId", "region", "version"}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("document keys %v, want %v", keys, wantKeys)
	}
	for _, k := range []string{"billingProducts", "kernelId", "ramdiskId"} {
		if m[k] != nil {
			t.Errorf("%s = %v, want null", k, m[k])
		}
	}
	if m["pendingTime"] != "2019-10-31T07:02:24Z" {
		t.Errorf("pendingTime = %v", m["pendingTime"])
	}
}

type imdsRaw struct {
	t   *testing.T
	url string
	c   *http.Client
}

func newIMDSRaw(t *testing.T, url string) *imdsRaw {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &imdsRaw{t: t, url: url, c: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (r *imdsRaw) do(method, path string, hdr map[string]string) (*http.Response, string) {
	r.t.Helper()
	req, err := http.NewRequest(method, r.url+path, nil)
	if err != nil {
		r.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := r.c.Do(req)
	if err != nil {
		r.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("%s %s: read body: %v", method, path, err)
	}
	return resp, string(b)
}

func (r *imdsRaw) token(ttl string) string {
	r.t.Helper()
	resp, body := r.do(http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": ttl})
	if resp.StatusCode != http.StatusOK || body == "" {
		r.t.Fatalf("token: %d %q", resp.StatusCode, body)
	}
	return body
}

func TestIMDSTokenProtocol(t *testing.T) {
	url, _ := startIMDSForTest(t, newIMDSTestInstance())
	r := newIMDSRaw(t, url)
	const idPath = "/latest/meta-data/instance-id"

	resp, tok := r.do(http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "300"})
	if resp.StatusCode != http.StatusOK || tok == "" {
		t.Fatalf("PUT token: %d %q", resp.StatusCode, tok)
	}
	if got := resp.Header.Get("X-aws-ec2-metadata-token-ttl-seconds"); got != "300" {
		t.Errorf("TTL echo = %q, want 300", got)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain" {
		t.Errorf("token Content-Type = %q", ct)
	}

	resp, body := r.do(http.MethodGet, idPath, map[string]string{"X-aws-ec2-metadata-token": tok})
	if resp.StatusCode != http.StatusOK || body != "i-1234567890abcdef0" || resp.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("GET with token: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, _ = r.do(http.MethodHead, idPath, map[string]string{"X-aws-ec2-metadata-token": tok})
	if resp.StatusCode != http.StatusOK {
		t.Errorf("HEAD with token: %d", resp.StatusCode)
	}

	refusals := []struct {
		name, method, path string
		hdr                map[string]string
		want               int
	}{
		{"GET without token", http.MethodGet, idPath, nil, 401},
		{"HEAD without token", http.MethodHead, idPath, nil, 401},
		{"GET with unknown token", http.MethodGet, idPath, map[string]string{"X-aws-ec2-metadata-token": "forged"}, 401},
		{"GET 404 path without token", http.MethodGet, "/latest/meta-data/nothing", nil, 401},
		{"PUT without TTL", http.MethodPut, "/latest/api/token", nil, 400},
		{"PUT TTL 0", http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "0"}, 400},
		{"PUT TTL 21601", http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "21601"}, 400},
		{"PUT TTL -5", http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "-5"}, 400},
		{"PUT TTL text", http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "abc"}, 400},
		{"PUT with X-Forwarded-For", http.MethodPut, "/latest/api/token", map[string]string{
			"X-aws-ec2-metadata-token-ttl-seconds": "300", "X-Forwarded-For": "10.0.0.9"}, 403},
		{"PUT versioned path", http.MethodPut, "/2021-03-23/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "300"}, 403},
		{"POST", http.MethodPost, idPath, map[string]string{"X-aws-ec2-metadata-token": tok}, 405},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := r.do(tt.method, tt.path, tt.hdr)
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
			if tt.method != http.MethodHead && !strings.Contains(body, "<html") {
				t.Errorf("error body is not the HTML page: %q", body)
			}
		})
	}

	for _, ttl := range []string{"1", "21600"} {
		if tok := r.token(ttl); tok == "" {
			t.Errorf("TTL %s refused", ttl)
		}
	}

	resp, body = r.do(http.MethodGet, "/latest/meta-data/nothing", map[string]string{"X-aws-ec2-metadata-token": tok})
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "404 - Not Found") ||
		resp.Header.Get("Content-Type") != "text/html" {
		t.Errorf("404: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	// Dated versions serve the same tree.
	resp, body = r.do(http.MethodGet, "/2021-03-23/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": tok})
	if resp.StatusCode != http.StatusOK || body != "i-1234567890abcdef0" {
		t.Errorf("versioned GET: %d %q", resp.StatusCode, body)
	}
}

func TestIMDSTokenIsPerInstance(t *testing.T) {
	urlA, _ := startIMDSForTest(t, newIMDSTestInstance())
	urlB, _ := startIMDSForTest(t, newIMDSTestInstance())
	a, b := newIMDSRaw(t, urlA), newIMDSRaw(t, urlB)
	tok := a.token("300")
	if resp, _ := b.do(http.MethodGet, "/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": tok}); resp.StatusCode != 401 {
		t.Errorf("A's token at B: %d, want 401", resp.StatusCode)
	}
	if resp, _ := a.do(http.MethodGet, "/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": tok}); resp.StatusCode != 200 {
		t.Errorf("A's token at A: %d, want 200", resp.StatusCode)
	}
}

func TestIMDSTokenExpires(t *testing.T) {
	t.Run("fake clock", func(t *testing.T) {
		url, h := startIMDSForTest(t, newIMDSTestInstance())
		var mu sync.Mutex
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		h.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
		advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }

		r := newIMDSRaw(t, url)
		tok := r.token("10")
		get := func() int {
			resp, _ := r.do(http.MethodGet, "/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": tok})
			return resp.StatusCode
		}
		if s := get(); s != 200 {
			t.Fatalf("fresh token: %d", s)
		}
		advance(9 * time.Second)
		if s := get(); s != 200 {
			t.Fatalf("token at 9s of 10s: %d", s)
		}
		advance(time.Second)
		if s := get(); s != 401 {
			t.Fatalf("token at 10s of 10s: %d, want 401", s)
		}
	})
	t.Run("real clock TTL 1s", func(t *testing.T) {
		url, _ := startIMDSForTest(t, newIMDSTestInstance())
		r := newIMDSRaw(t, url)
		tok := r.token("1")
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, _ := r.do(http.MethodGet, "/latest/meta-data/instance-id", map[string]string{"X-aws-ec2-metadata-token": tok})
			if resp.StatusCode == 401 {
				break
			}
			if resp.StatusCode != 200 {
				t.Fatalf("unexpected status %d", resp.StatusCode)
			}
			if time.Now().After(deadline) {
				t.Fatal("a 1s token was still accepted after 15s")
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	t.Run("SDK recovers from a server-side expiry", func(t *testing.T) {
		url, h := startIMDSForTest(t, newIMDSTestInstance())
		c := imdsSDKClient(t, url)
		if _, err := imdsGet(t, c, "instance-id"); err != nil {
			t.Fatal(err)
		}
		// Forget every token behind the SDK's back: its cached one now gets a
		// 401, which it must answer by fetching a new token and retrying.
		h.mu.Lock()
		n := len(h.tokens)
		clear(h.tokens)
		h.mu.Unlock()
		if n != 1 {
			t.Fatalf("SDK holds %d tokens, want 1", n)
		}
		if got, err := imdsGet(t, c, "instance-id"); err != nil || got != "i-1234567890abcdef0" {
			t.Fatalf("after expiry: %q, %v", got, err)
		}
	})
}

func TestIMDSNoticesAppear(t *testing.T) {
	inst := newIMDSTestInstance()
	url, _ := startIMDSForTest(t, inst)
	c := imdsSDKClient(t, url)

	for _, p := range []string{"spot/instance-action", "events/recommendations/rebalance",
		"autoscaling/target-lifecycle-state", "events/maintenance/scheduled"} {
		if _, err := imdsGet(t, c, p); imdsStatus(err) != 404 {
			t.Fatalf("%s before the notice: %v, want 404", p, err)
		}
	}

	at := time.Date(2030, 9, 18, 8, 22, 0, 0, time.UTC)
	notice := time.Date(2030, 9, 18, 8, 20, 0, 0, time.UTC)
	inst.update(func(s *MetadataSnapshot) {
		s.SpotAction = &SpotAction{Action: "terminate", Time: at}
		s.Rebalance = &notice
		s.TargetLifecycleState = "Terminated"
		s.Maintenance = []MaintenanceEvent{
			{Code: "system-reboot", Description: "scheduled reboot", EventID: "instance-event-1", State: "active",
				NotBefore: time.Date(2030, 1, 21, 9, 0, 43, 0, time.UTC), NotAfter: time.Date(2030, 1, 21, 9, 17, 23, 0, time.UTC)},
			{Code: "instance-stop", Description: "done", EventID: "instance-event-0", State: "completed",
				NotBefore: time.Date(2029, 1, 2, 3, 4, 5, 0, time.UTC), NotAfter: time.Date(2029, 1, 2, 4, 4, 5, 0, time.UTC)},
		}
	})

	body, err := imdsGet(t, c, "spot/instance-action")
	if err != nil {
		t.Fatalf("spot/instance-action: %v", err)
	}
	var sa struct{ Action, Time string }
	if err := json.Unmarshal([]byte(body), &sa); err != nil || sa.Action != "terminate" || sa.Time != "2030-09-18T08:22:00Z" {
		t.Errorf("spot/instance-action = %s (%v)", body, err)
	}
	if body, err := imdsGet(t, c, "spot/termination-time"); err != nil || body != "2030-09-18T08:22:00Z" {
		t.Errorf("spot/termination-time = %q, %v", body, err)
	}
	body, err = imdsGet(t, c, "events/recommendations/rebalance")
	var rb struct {
		NoticeTime string `json:"noticeTime"`
	}
	if err != nil || json.Unmarshal([]byte(body), &rb) != nil || rb.NoticeTime != "2030-09-18T08:20:00Z" {
		t.Errorf("rebalance = %q, %v", body, err)
	}
	if body, err := imdsGet(t, c, "autoscaling/target-lifecycle-state"); err != nil || body != "Terminated" {
		t.Errorf("target-lifecycle-state = %q, %v", body, err)
	}

	type ev struct{ NotBefore, Code, Description, EventId, NotAfter, State string }
	body, err = imdsGet(t, c, "events/maintenance/scheduled")
	var sched []ev
	if err != nil || json.Unmarshal([]byte(body), &sched) != nil {
		t.Fatalf("scheduled = %q, %v", body, err)
	}
	wantSched := []ev{{"21 Jan 2030 09:00:43 GMT", "system-reboot", "scheduled reboot", "instance-event-1", "21 Jan 2030 09:17:23 GMT", "active"}}
	if !reflect.DeepEqual(sched, wantSched) {
		t.Errorf("scheduled = %+v, want %+v", sched, wantSched)
	}
	body, err = imdsGet(t, c, "events/maintenance/history")
	var hist []ev
	if err != nil || json.Unmarshal([]byte(body), &hist) != nil || len(hist) != 1 || hist[0].EventId != "instance-event-0" ||
		hist[0].NotBefore != "2 Jan 2029 03:04:05 GMT" {
		t.Errorf("history = %q, %v", body, err)
	}

	// A stop notice has no legacy termination-time.
	inst.update(func(s *MetadataSnapshot) { s.SpotAction.Action = "stop" })
	if _, err := imdsGet(t, c, "spot/termination-time"); imdsStatus(err) != 404 {
		t.Errorf("termination-time for a stop notice: %v, want 404", err)
	}
	// The EIP moving away removes public-ipv4.
	inst.update(func(s *MetadataSnapshot) { s.PublicIP = "" })
	if _, err := imdsGet(t, c, "public-ipv4"); imdsStatus(err) != 404 {
		t.Errorf("public-ipv4 without EIP: %v, want 404", err)
	}
}

func TestIMDSInstanceNotRunning(t *testing.T) {
	inst := newIMDSTestInstance()
	url, _ := startIMDSForTest(t, inst)
	c := imdsSDKClient(t, url)
	if _, err := imdsGet(t, c, "instance-id"); err != nil {
		t.Fatal(err)
	}

	inst.setRunning(false)
	_, err := imdsGet(t, c, "instance-id")
	if err == nil {
		t.Fatal("stopped instance answered")
	}
	if s := imdsStatus(err); s != 0 {
		t.Errorf("stopped instance answered with HTTP %d; want a transport failure", s)
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	if resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url + "/latest/meta-data/instance-id"); err == nil {
		resp.Body.Close()
		t.Errorf("raw GET of stopped instance: got HTTP %d, want a transport error", resp.StatusCode)
	}

	inst.setRunning(true)
	if got, err := imdsGet(t, c, "instance-id"); err != nil || got != "i-1234567890abcdef0" {
		t.Errorf("after restart: %q, %v", got, err)
	}
}

// TestIMDSDefaultCredentialChain: with nothing else configured, the SDK's
// default chain must end at this IMDS and get the instance's credentials.
func TestIMDSDefaultCredentialChain(t *testing.T) {
	url, _ := startIMDSForTest(t, newIMDSTestInstance())
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SESSION_TOKEN",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_EC2_METADATA_DISABLED", "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
		"AWS_CA_BUNDLE", // a CA bundle cannot be applied to the plain *http.Client given below
	} {
		t.Setenv(k, "")
	}
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", url)
	t.Setenv("AWS_EC2_METADATA_V1_DISABLED", "true")
	t.Setenv("AWS_REGION", "eu-west-1")

	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		t.Fatalf("LoadDefaultConfig: %v", err)
	}
	creds, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	if creds.AccessKeyID != "ASIAEXAMPLEKEY" || creds.SecretAccessKey != "secret/example+key" ||
		creds.SessionToken != "session-token-example" {
		t.Errorf("credentials = %+v", creds)
	}
	if creds.Source != "EC2RoleProvider" || !creds.CanExpire {
		t.Errorf("source %q, CanExpire %v; want EC2RoleProvider, true", creds.Source, creds.CanExpire)
	}
}
