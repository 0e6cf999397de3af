package awsenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go/logging"
)

// FromProcess is Load from the process environment, for the eipd commands
// that call AWS (run, preflight, status --watch). The app ID puts
// "app/eipd-<version>" (the SDK turns / into -) in every request's
// User-Agent, so eipd's calls are recognisable in CloudTrail (userAgent
// field). The SDK's own log lines go to logger.
//
// The AWS_* variables are read from the process environment, as the SDK
// does, not through a command's getenv: a caller that passes a restricted
// getenv (tests do) must never fall back to the production endpoints.
func FromProcess(ctx context.Context, version string, logger logging.Logger) (aws.Config, *imds.Client, error) {
	cfg, meta, err := Load(ctx, os.Getenv, AppID(version), logger)
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("AWS configuration: %w", err)
	}
	return cfg, meta, nil
}

// AppID is the SDK application ID: "eipd/" and the version.
func AppID(version string) string { return "eipd/" + version }

// EC2Endpoint is the endpoint an EC2 client built from awsCfg calls: the
// configured one (AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL), else the
// Region's, FIPS or dual-stack as configured.
func EC2Endpoint(ctx context.Context, awsCfg aws.Config) (*url.URL, error) {
	o := ec2.NewFromConfig(awsCfg).Options()
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, ec2.EndpointParameters{
		Region:       aws.String(o.Region),
		Endpoint:     o.BaseEndpoint,
		UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
	})
	if err != nil {
		return nil, fmt.Errorf("resolve the EC2 endpoint of region %q: %w", o.Region, err)
	}
	return &ep.URI, nil
}

// AutoScalingEndpoint is the Auto Scaling endpoint the environment sets:
// AWS_ENDPOINT_URL_AUTO_SCALING, else AWS_ENDPOINT_URL, as the SDK resolves
// a service's configured endpoint; nil (the regional endpoint) otherwise.
// The EC2 endpoint of awsCfg.BaseEndpoint must not leak into this client.
func AutoScalingEndpoint(getenv func(string) string) *string {
	if ignore, _ := strconv.ParseBool(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")); ignore {
		return nil // Load has refused a value that does not parse
	}
	for _, name := range []string{"AWS_ENDPOINT_URL_AUTO_SCALING", "AWS_ENDPOINT_URL"} {
		if v := getenv(name); v != "" {
			return aws.String(v)
		}
	}
	return nil
}
