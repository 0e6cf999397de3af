package ec2sim

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestInstanceView(t *testing.T) {
	s := simStart(t, Options{Instances: 2, Group: "g1"})
	info := s.Info()
	id := info.Instances[1].InstanceID
	c := simClient(t, s, "AKIDEXAMPLE")
	_, err := c.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{id},
		Tags: []types.Tag{{Key: aws.String("eipd:state"), Value: aws.String("ready")}}})
	simOK(t, err)
	before := s.Stats().Total

	v, ok := s.Instance(id)
	if !ok || v.InstanceID != id || v.State != "running" || v.AZ != "us-east-1b" || v.PrivateIP != "127.0.0.12" ||
		v.Tags["eipd:state"] != "ready" || v.Tags["eipd:group"] != "g1" {
		t.Fatalf("Instance(%s) = %+v, %v", id, v, ok)
	}
	v.Tags["eipd:state"] = "changed by the caller"
	if again, _ := s.Instance(id); again.Tags["eipd:state"] != "ready" {
		t.Errorf("the returned tags alias the simulator's: %v", again.Tags)
	}
	if err := s.TerminateInstance(id); err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Instance(id); v.State != "terminated" || v.PrivateIP != "127.0.0.12" {
		t.Errorf("after terminate: %+v", v)
	}
	if _, ok := s.Instance("i-0000000000000000"); ok {
		t.Error("unknown instance found")
	}
	if after := s.Stats().Total; after != before {
		t.Errorf("Instance counted as EC2 calls: %d → %d", before, after)
	}
}
