// Package awsenv builds the AWS SDK configuration of eipd from the standard
// AWS environment variables, for the credential sources an EC2 instance or
// an ECS task has: the instance profile (through IMDS), the ECS task role
// (the container credentials endpoint), or static keys in the environment.
//
// It replaces config.LoadDefaultConfig, whose chain also links and
// initialises the SSO, SSO-OIDC, STS and sign-in clients and parses the
// shared config files: code an instance profile never uses, paid in memory
// and start-up time by every eipd process, `eipd healthcheck` included.
// What is deliberately not read: ~/.aws/config and ~/.aws/credentials
// (AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE), profiles (AWS_PROFILE:
// refused, so that nobody believes a profile is in use), SSO,
// credential_process, assume-role chains and web identity tokens
// (AWS_WEB_IDENTITY_TOKEN_FILE: refused).
package awsenv

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/credentials/endpointcreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/smithy-go/logging"
)

// ecsCredentialsHost serves AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
// (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-iam-roles.html).
const ecsCredentialsHost = "http://169.254.170.2"

// Load returns the configuration for EC2 calls and an IMDSv2-only client.
// getenv is os.Getenv outside tests. Region is empty when neither
// AWS_REGION nor AWS_DEFAULT_REGION is set (the caller takes it from IMDS).
// No network is used: credentials are fetched on the first call. logger,
// if not nil, receives the SDK's own messages (EC2 and IMDS clients).
//
// Honoured: AWS_REGION, AWS_DEFAULT_REGION; AWS_ENDPOINT_URL_EC2,
// AWS_ENDPOINT_URL, AWS_IGNORE_CONFIGURED_ENDPOINT_URLS;
// AWS_USE_FIPS_ENDPOINT, AWS_USE_DUALSTACK_ENDPOINT; AWS_MAX_ATTEMPTS,
// AWS_RETRY_MODE; AWS_EC2_METADATA_SERVICE_ENDPOINT,
// AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE, AWS_EC2_METADATA_DISABLED; and
// for credentials, in this order: AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY
// (+ AWS_SESSION_TOKEN), AWS_CONTAINER_CREDENTIALS_RELATIVE_URI or
// AWS_CONTAINER_CREDENTIALS_FULL_URI (+ AWS_CONTAINER_AUTHORIZATION_TOKEN or
// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE), else the instance profile.
func Load(ctx context.Context, getenv func(string) string, appID string, logger logging.Logger) (aws.Config, *imds.Client, error) {
	var errs []error
	for _, name := range []string{"AWS_PROFILE", "AWS_DEFAULT_PROFILE"} {
		if v := getenv(name); v != "" {
			errs = append(errs, fmt.Errorf("%s=%s: eipd does not read shared config or credentials files; unset it and use the instance profile, the ECS task role or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY", name, v))
		}
	}
	if getenv("AWS_WEB_IDENTITY_TOKEN_FILE") != "" {
		errs = append(errs, errors.New("AWS_WEB_IDENTITY_TOKEN_FILE is set: eipd does not use web identity (STS) credentials; unset it and use the instance profile or the ECS task role"))
	}

	cfg := aws.Config{AppID: appID, Region: getenv("AWS_REGION"), Logger: logger}
	if cfg.Region == "" {
		cfg.Region = getenv("AWS_DEFAULT_REGION")
	}
	if ignore, err := boolEnv(getenv, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"); err != nil {
		errs = append(errs, err)
	} else if !ignore {
		ep := getenv("AWS_ENDPOINT_URL_EC2")
		if ep == "" {
			ep = getenv("AWS_ENDPOINT_URL")
		}
		if ep != "" {
			cfg.BaseEndpoint = aws.String(ep)
		}
	}
	var src endpointSource
	var err error
	if src.fips, err = boolEnv(getenv, "AWS_USE_FIPS_ENDPOINT"); err != nil {
		errs = append(errs, err)
	}
	if src.dualStack, err = boolEnv(getenv, "AWS_USE_DUALSTACK_ENDPOINT"); err != nil {
		errs = append(errs, err)
	}
	cfg.ConfigSources = []any{src}
	if v := getenv("AWS_MAX_ATTEMPTS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("AWS_MAX_ATTEMPTS=%q: want an integer of at least 1", v))
		}
		cfg.RetryMaxAttempts = n
	}
	if v := getenv("AWS_RETRY_MODE"); v != "" {
		m, err := aws.ParseRetryMode(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("AWS_RETRY_MODE=%q: want standard or adaptive", v))
		}
		cfg.RetryMode = m
	}

	meta, err := newIMDS(getenv, logger)
	if err != nil {
		errs = append(errs, err)
	}
	creds, err := credentialsFrom(ctx, getenv, meta)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return aws.Config{}, nil, errors.Join(errs...)
	}
	cfg.Credentials = creds
	return cfg, meta, nil
}

// newIMDS is an IMDSv2-only client: a token failure must be an error, not
// a silent IMDSv1 call.
func newIMDS(getenv func(string) string, logger logging.Logger) (*imds.Client, error) {
	o := imds.Options{Endpoint: getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT"), EnableFallback: aws.FalseTernary, Logger: logger}
	switch v := getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"); {
	case v == "":
	case strings.EqualFold(v, "IPv4"):
		o.EndpointMode = imds.EndpointModeStateIPv4
	case strings.EqualFold(v, "IPv6"):
		o.EndpointMode = imds.EndpointModeStateIPv6
	default:
		return nil, fmt.Errorf("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=%q: want IPv4 or IPv6", v)
	}
	// Only "true" disables, as in the SDK; anything else leaves IMDS on.
	if strings.EqualFold(getenv("AWS_EC2_METADATA_DISABLED"), "true") {
		o.ClientEnableState = imds.ClientDisabled
	} else {
		o.ClientEnableState = imds.ClientEnabled
	}
	return imds.New(o), nil
}

// credentialsFrom picks the first source the environment configures, in
// the order of the SDK's default chain, and caches what it returns.
func credentialsFrom(ctx context.Context, getenv func(string) string, meta *imds.Client) (aws.CredentialsProvider, error) {
	akid, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	if akid == "" {
		akid = getenv("AWS_ACCESS_KEY")
	}
	if secret == "" {
		secret = getenv("AWS_SECRET_KEY")
	}
	switch {
	case akid != "" && secret != "":
		return aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(akid, secret, getenv("AWS_SESSION_TOKEN"))), nil
	case akid != "":
		return nil, errors.New("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not: set both, or neither to use the instance profile or the ECS task role")
	case secret != "":
		return nil, errors.New("AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not: set both, or neither to use the instance profile or the ECS task role")
	}
	if rel := getenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"); rel != "" {
		return containerCredentials(ecsCredentialsHost+rel, getenv), nil
	}
	if full := getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"); full != "" {
		if err := checkFullURI(ctx, full); err != nil {
			return nil, err
		}
		return containerCredentials(full, getenv), nil
	}
	if meta == nil {
		return nil, nil // newIMDS failed; its error is reported
	}
	return aws.NewCredentialsCache(ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = meta })), nil
}

// containerCredentials reads the ECS task role (or an EKS pod identity)
// from the container credentials endpoint; a token file is re-read on each
// refresh, as the SDK does, because the agent rotates it.
func containerCredentials(endpoint string, getenv func(string) string) aws.CredentialsProvider {
	token, tokenFile := getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN"), getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")
	p := endpointcreds.New(endpoint, func(o *endpointcreds.Options) {
		o.AuthorizationToken = token
		if tokenFile != "" {
			o.AuthorizationTokenProvider = endpointcreds.TokenProviderFunc(func() (string, error) {
				b, err := os.ReadFile(tokenFile)
				if err != nil {
					return "", fmt.Errorf("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE: %w", err)
				}
				return strings.TrimSpace(string(b)), nil
			})
		}
	})
	return aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = 5 * time.Minute })
}

// checkFullURI applies the SDK's rule for AWS_CONTAINER_CREDENTIALS_FULL_URI:
// over plain http only loopback and the ECS/EKS credential addresses may
// serve credentials, so a misconfigured variable cannot send the
// authorization token elsewhere.
func checkFullURI(ctx context.Context, raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI=%q: want an http(s) URL with a host", raw)
	}
	if u.Scheme == "https" {
		return nil
	}
	host := u.Hostname()
	addrs := []string{host}
	if net.ParseIP(host) == nil {
		if addrs, err = net.DefaultResolver.LookupHost(ctx, host); err != nil {
			return fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI=%q: resolve %s: %w", raw, host, err)
		}
	}
	for _, a := range addrs {
		if ip := net.ParseIP(a); ip == nil || !allowedCredentialsIP(ip) {
			return fmt.Errorf("AWS_CONTAINER_CREDENTIALS_FULL_URI=%q: over http the host must be loopback, 169.254.170.2, 169.254.170.23 or fd00:ec2::23 (use https otherwise)", raw)
		}
	}
	return nil
}

func allowedCredentialsIP(ip net.IP) bool {
	return ip.IsLoopback() || ip.Equal(net.IPv4(169, 254, 170, 2)) || ip.Equal(net.IPv4(169, 254, 170, 23)) ||
		ip.Equal(net.ParseIP("fd00:ec2::23"))
}

func boolEnv(getenv func(string) string, name string) (bool, error) {
	v := getenv(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s=%q: want true or false", name, v)
	}
	return b, nil
}

// endpointSource answers the SDK clients' questions about FIPS and
// dual-stack endpoints (the interfaces of the SDK's internal configsources,
// which clients look up in aws.Config.ConfigSources).
type endpointSource struct{ fips, dualStack bool }

func (s endpointSource) GetUseFIPSEndpoint(context.Context) (aws.FIPSEndpointState, bool, error) {
	if s.fips {
		return aws.FIPSEndpointStateEnabled, true, nil
	}
	return aws.FIPSEndpointStateUnset, false, nil
}

func (s endpointSource) GetUseDualStackEndpoint(context.Context) (aws.DualStackEndpointState, bool, error) {
	if s.dualStack {
		return aws.DualStackEndpointStateEnabled, true, nil
	}
	return aws.DualStackEndpointStateUnset, false, nil
}
