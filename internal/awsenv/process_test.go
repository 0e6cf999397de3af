package awsenv

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// TestSDKCallsCarryAppID: every EC2 call's User-Agent names eipd and its
// version, which is what CloudTrail records as userAgent.
func TestSDKCallsCarryAppID(t *testing.T) {
	var mu sync.Mutex
	var ua string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ua = r.Header.Get("User-Agent")
		mu.Unlock()
		w.Header().Set("Content-Type", "text/xml")
		_, _ = w.Write([]byte(`<DescribeAddressesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId><addressesSet/></DescribeAddressesResponse>`))
	}))
	defer srv.Close()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_EC2": srv.URL, "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret",
		"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty, "AWS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}
	const version = "1.2.3-test"
	cfg, _, err := FromProcess(context.Background(), version, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ec2.NewFromConfig(cfg).DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// The SDK replaces "/" in the app ID with "-" in the header.
	if !strings.Contains(ua, "app/eipd-"+version) {
		t.Errorf("User-Agent %q does not carry app/eipd-%s", ua, version)
	}
}

func TestAutoScalingEndpoint(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"AWS_ENDPOINT_URL_EC2": "http://ec2"}, ""},
		{map[string]string{"AWS_ENDPOINT_URL_EC2": "http://ec2", "AWS_ENDPOINT_URL_AUTO_SCALING": "http://asg"}, "http://asg"},
		{map[string]string{"AWS_ENDPOINT_URL": "http://all"}, "http://all"},
		{map[string]string{"AWS_ENDPOINT_URL": "http://all", "AWS_ENDPOINT_URL_AUTO_SCALING": "http://asg"}, "http://asg"},
		{map[string]string{"AWS_ENDPOINT_URL_AUTO_SCALING": "http://asg", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}, ""},
	} {
		got := AutoScalingEndpoint(envOf(c.env))
		if (got == nil) != (c.want == "") || (got != nil && *got != c.want) {
			t.Errorf("%v: got %v, want %q", c.env, got, c.want)
		}
	}
}

// The EC2 endpoint eipd names in its messages and preflight resolves is
// the one the SDK calls: the Region's, dual-stack or FIPS as configured, or
// the configured URL.
func TestEC2Endpoint(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"AWS_REGION": "eu-west-1"}, "https://ec2.eu-west-1.amazonaws.com"},
		{map[string]string{"AWS_REGION": "eu-west-1", "AWS_USE_DUALSTACK_ENDPOINT": "true"}, "https://ec2.eu-west-1.api.aws"},
		{map[string]string{"AWS_REGION": "us-east-1", "AWS_USE_FIPS_ENDPOINT": "true"}, "https://ec2-fips.us-east-1.amazonaws.com"},
		{map[string]string{"AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:4566"}, "http://127.0.0.1:4566"},
	} {
		env := map[string]string{"AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_EC2_METADATA_DISABLED": "true"}
		for k, v := range c.env {
			env[k] = v
		}
		cfg, _, err := Load(context.Background(), func(k string) string { return env[k] }, "eipd/test", nil)
		if err != nil {
			t.Fatalf("%v: %v", c.env, err)
		}
		u, err := EC2Endpoint(context.Background(), cfg)
		if err != nil || u.String() != c.want {
			t.Errorf("%v: endpoint %v (%v), want %s", c.env, u, err, c.want)
		}
	}
}
