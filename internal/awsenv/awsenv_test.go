package awsenv

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/eipd/eipd/ec2sim"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func load(t *testing.T, env map[string]string) (aws.Config, *imds.Client) {
	t.Helper()
	cfg, meta, err := Load(context.Background(), envOf(env), "eipd/test", nil)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return cfg, meta
}

func retrieve(t *testing.T, cfg aws.Config) aws.Credentials {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cfg.Credentials.Retrieve(ctx)
	if err != nil {
		t.Fatalf("Retrieve: %v", err)
	}
	return c
}

// The instance profile through the emulator's IMDS: what every e2e test
// and production instance uses. EC2 calls signed with it count as that
// instance's, at the configured endpoint and region.
func TestInstanceProfileThroughIMDS(t *testing.T) {
	sim, err := ec2sim.Start(context.Background(), ec2sim.Options{Instances: 1, EIPs: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sim.Close()
	inst := sim.Info().Instances[0]
	cfg, meta := load(t, map[string]string{
		"AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL_EC2": sim.Info().EC2Endpoint,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT": inst.IMDSEndpoint,
	})
	want, _ := sim.Credentials(inst.InstanceID)
	got := retrieve(t, cfg)
	if got.AccessKeyID != want.AccessKeyID || got.SecretAccessKey != want.SecretAccessKey || got.SessionToken != want.Token {
		t.Errorf("credentials %+v, want the instance's %+v", got, want)
	}
	if got.Source != "EC2RoleProvider" || !got.CanExpire {
		t.Errorf("source %q, CanExpire %v; want EC2RoleProvider, true", got.Source, got.CanExpire)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := meta.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	if err != nil {
		t.Fatalf("IMDS: %v", err)
	}
	b, err := io.ReadAll(out.Content)
	out.Content.Close()
	if err != nil || string(b) != inst.InstanceID {
		t.Errorf("IMDS instance-id %q (%v), want %q", b, err, inst.InstanceID)
	}
	before := sim.Stats().ByCaller[inst.InstanceID]["DescribeAddresses"]
	if _, err := ec2.NewFromConfig(cfg).DescribeAddresses(ctx, &ec2.DescribeAddressesInput{}); err != nil {
		t.Fatalf("DescribeAddresses: %v", err)
	}
	if after := sim.Stats().ByCaller[inst.InstanceID]["DescribeAddresses"]; after != before+1 {
		t.Errorf("the call was not counted as %s's (%d → %d)", inst.InstanceID, before, after)
	}
}

func TestStaticKeysRegionAndEndpoints(t *testing.T) {
	cfg, _ := load(t, map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_SESSION_TOKEN": "tok",
		"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://global.example", "AWS_ENDPOINT_URL_EC2": "http://ec2.example",
		"AWS_MAX_ATTEMPTS": "7", "AWS_RETRY_MODE": "adaptive", "AWS_USE_FIPS_ENDPOINT": "true",
	})
	c := retrieve(t, cfg)
	if c.AccessKeyID != "AKIDTEST" || c.SecretAccessKey != "secret" || c.SessionToken != "tok" {
		t.Errorf("credentials %+v", c)
	}
	if cfg.Region != "eu-west-1" || aws.ToString(cfg.BaseEndpoint) != "http://ec2.example" || cfg.AppID != "eipd/test" {
		t.Errorf("region %q, endpoint %q, app ID %q", cfg.Region, aws.ToString(cfg.BaseEndpoint), cfg.AppID)
	}
	o := ec2.NewFromConfig(cfg).Options()
	if o.RetryMaxAttempts != 7 || o.RetryMode != aws.RetryModeAdaptive {
		t.Errorf("retry %d %q, want 7 adaptive", o.RetryMaxAttempts, o.RetryMode)
	}
	if o.EndpointOptions.UseFIPSEndpoint != aws.FIPSEndpointStateEnabled || o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled {
		t.Errorf("FIPS %v, dual-stack %v; want FIPS only", o.EndpointOptions.UseFIPSEndpoint, o.EndpointOptions.UseDualStackEndpoint)
	}

	// AWS_REGION wins over AWS_DEFAULT_REGION; the global endpoint is used
	// when there is no EC2 one; AWS_IGNORE_CONFIGURED_ENDPOINT_URLS drops both.
	cfg, _ = load(t, map[string]string{"AWS_REGION": "us-west-2", "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": "http://global.example"})
	if cfg.Region != "us-west-2" || aws.ToString(cfg.BaseEndpoint) != "http://global.example" {
		t.Errorf("region %q endpoint %q", cfg.Region, aws.ToString(cfg.BaseEndpoint))
	}
	cfg, _ = load(t, map[string]string{"AWS_ENDPOINT_URL_EC2": "http://ec2.example", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"})
	if cfg.BaseEndpoint != nil || cfg.Region != "" {
		t.Errorf("endpoint %v, region %q; want none (the region then comes from IMDS)", aws.ToString(cfg.BaseEndpoint), cfg.Region)
	}
}

// The ECS task role: the container credentials endpoint, with its
// authorization token from the variable or (re-read each time) the file.
func TestContainerCredentials(t *testing.T) {
	var mu sync.Mutex
	var auth []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		auth = append(auth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"AccessKeyId":"ASIATASK","SecretAccessKey":"tasksecret","Token":"tasktoken","Expiration":"` +
			time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`))
	}))
	defer srv.Close()
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name     string
		env      map[string]string
		wantAuth string
	}{
		{"token variable", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.URL + "/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "from-var"}, "from-var"},
		{"token file wins", map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.URL + "/creds", "AWS_CONTAINER_AUTHORIZATION_TOKEN": "from-var",
			"AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": tokenFile}, "from-file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, _ := load(t, tt.env)
			c := retrieve(t, cfg)
			if c.AccessKeyID != "ASIATASK" || c.SecretAccessKey != "tasksecret" || c.SessionToken != "tasktoken" {
				t.Errorf("credentials %+v", c)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(auth) == 0 || auth[len(auth)-1] != tt.wantAuth {
				t.Errorf("Authorization %q, want %q", auth, tt.wantAuth)
			}
		})
	}
	// Static keys come first, as in the SDK's chain.
	cfg, _ := load(t, map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": srv.URL, "AWS_ACCESS_KEY_ID": "AKIDTEST", "AWS_SECRET_ACCESS_KEY": "s"})
	if c := retrieve(t, cfg); c.AccessKeyID != "AKIDTEST" {
		t.Errorf("static keys should win, got %q", c.AccessKeyID)
	}
	// The relative URI is served by the ECS agent's fixed address.
	cfg, _ = load(t, map[string]string{"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "/v2/credentials/abc"})
	if cfg.Credentials == nil {
		t.Fatal("no provider for the relative URI")
	}
}

// IMDS can be switched off and pointed elsewhere; IPv6 mode is accepted.
func TestIMDSOptions(t *testing.T) {
	_, meta := load(t, map[string]string{"AWS_EC2_METADATA_DISABLED": "TRUE", "AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := meta.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"}); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Errorf("disabled IMDS answered: %v", err)
	}
	if _, _, err := Load(context.Background(), envOf(map[string]string{"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"}), "", nil); err != nil {
		t.Errorf("IPv6 mode: %v", err)
	}
}

// Bad input is refused with what to fix, every problem at once; a profile
// or a web identity token is refused rather than silently ignored.
func TestRefused(t *testing.T) {
	_, _, err := Load(context.Background(), envOf(map[string]string{
		"AWS_PROFILE": "prod", "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token", "AWS_ACCESS_KEY_ID": "AKIDONLY",
		"AWS_MAX_ATTEMPTS": "zero", "AWS_RETRY_MODE": "eager", "AWS_USE_FIPS_ENDPOINT": "yes please",
		"AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv5",
	}), "", nil)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{
		"AWS_PROFILE=prod: eipd does not read shared config", "AWS_WEB_IDENTITY_TOKEN_FILE is set",
		"AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not", `AWS_MAX_ATTEMPTS="zero"`, `AWS_RETRY_MODE="eager"`,
		`AWS_USE_FIPS_ENDPOINT="yes please"`, `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE="IPv5"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	for _, uri := range []string{"http://203.0.113.5/creds", "http://[2001:db8::1]/creds", "ftp://127.0.0.1/x", "not a url"} {
		if _, _, err := Load(context.Background(), envOf(map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}), "", nil); err == nil ||
			!strings.Contains(err.Error(), "AWS_CONTAINER_CREDENTIALS_FULL_URI") {
			t.Errorf("FULL_URI %q accepted (err %v)", uri, err)
		}
	}
	for _, uri := range []string{"http://169.254.170.2/v2/x", "http://169.254.170.23/v1/x", "http://[fd00:ec2::23]/x", "http://localhost:9/x", "https://creds.example/x"} {
		if _, _, err := Load(context.Background(), envOf(map[string]string{"AWS_CONTAINER_CREDENTIALS_FULL_URI": uri}), "", nil); err != nil {
			t.Errorf("FULL_URI %q refused: %v", uri, err)
		}
	}
}
