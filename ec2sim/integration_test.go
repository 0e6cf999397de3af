package ec2sim

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials/ec2rolecreds"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// TestInstanceIdentityEndToEnd: an instance's IMDS hands out its own
// credentials, and EC2 calls signed with them are counted as that instance.
func TestInstanceIdentityEndToEnd(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	in := info.Instances[1]
	md := imds.New(imds.Options{Endpoint: in.IMDSEndpoint})
	out, err := md.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"})
	simOK(t, err)
	b, _ := io.ReadAll(out.Content)
	out.Content.Close()
	if string(b) != in.InstanceID {
		t.Fatalf("instance-id = %q, want %s", b, in.InstanceID)
	}
	simOK(t, s.Associate(info.EIPs[0].AllocationID, in.InstanceID))
	out, err = md.GetMetadata(ctx, &imds.GetMetadataInput{Path: "public-ipv4"})
	simOK(t, err)
	b, _ = io.ReadAll(out.Content)
	out.Content.Close()
	if string(b) != info.EIPs[0].PublicIP {
		t.Fatalf("public-ipv4 = %q", b)
	}

	creds := ec2rolecreds.New(func(o *ec2rolecreds.Options) { o.Client = md })
	c := ec2.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: aws.NewCredentialsCache(creds)}, func(o *ec2.Options) {
		o.BaseEndpoint = aws.String(info.EC2Endpoint)
		o.HTTPClient = &http.Client{Transport: simBodyRT{awshttp.NewBuildableClient().GetTransport()}}
	})
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	simOK(t, err)
	if n := s.Stats().ByCaller[in.InstanceID]["DescribeAddresses"]; n != 1 {
		t.Fatalf("calls by %s = %d: %+v", in.InstanceID, n, s.Stats().ByCaller)
	}

	// Spot notice reaches IMDS; a stopped instance's IMDS does not answer.
	simOK(t, s.SpotInterruption(in.InstanceID, "terminate"))
	out, err = md.GetMetadata(ctx, &imds.GetMetadataInput{Path: "spot/instance-action"})
	simOK(t, err)
	b, _ = io.ReadAll(out.Content)
	out.Content.Close()
	if !strings.Contains(string(b), `"terminate"`) {
		t.Fatalf("spot/instance-action = %s", b)
	}
	simOK(t, s.StopInstance(in.InstanceID))
	if _, err := md.GetMetadata(ctx, &imds.GetMetadataInput{Path: "instance-id"}); err == nil {
		t.Fatal("stopped instance's IMDS answered")
	}
}
