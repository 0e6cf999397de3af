package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/eipd/eipd/eip"
)

// exactKeyErrors lists the keys of raw that are not exactly the name of a
// field of typ (EC2's JSON for the CLI uses the API's member names, which
// are the SDK's field names), recursively.
func exactKeyErrors(at string, raw any, typ reflect.Type) []string {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	var errs []string
	switch typ.Kind() {
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object for %s", at, typ)}
		}
		for k, v := range obj {
			f, ok := typ.FieldByName(k)
			if !ok || !f.IsExported() {
				errs = append(errs, fmt.Sprintf("%s.%s: no field %s in %s", at, k, k, typ))
				continue
			}
			errs = append(errs, exactKeyErrors(at+"."+k, v, f.Type)...)
		}
	case reflect.Slice:
		if arr, ok := raw.([]any); ok {
			for i, v := range arr {
				errs = append(errs, exactKeyErrors(fmt.Sprintf("%s[%d]", at, i), v, typ.Elem())...)
			}
		}
	}
	return errs
}

// TestLaunchTemplateDataFile: deploy/ec2/launch-template-data.json, the
// launch template of the by-hand paths, is what the AWS CLI and EC2 accept
// and has what the example stack's launch template has: the primary network
// interface with an explicit public IPv4 setting and the security group on
// it (not at the instance level), IMDSv2, the group tag on the instance and
// its network interface.
func TestLaunchTemplateDataFile(t *testing.T) {
	raw := read(t, "deploy", "ec2", "launch-template-data.json")
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	for _, e := range exactKeyErrors("$", generic, reflect.TypeOf(ec2types.RequestLaunchTemplateData{})) {
		t.Error(e)
	}
	var lt ec2types.RequestLaunchTemplateData
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&lt); err != nil {
		t.Fatal(err)
	}
	if len(lt.SecurityGroupIds) > 0 || len(lt.SecurityGroups) > 0 {
		t.Error("security groups at the instance level: EC2 refuses them next to a network interface")
	}
	if len(lt.NetworkInterfaces) != 1 {
		t.Fatalf("network interfaces %+v, want the primary one", lt.NetworkInterfaces)
	}
	ni := lt.NetworkInterfaces[0]
	if aws.ToInt32(ni.DeviceIndex) != 0 || ni.AssociatePublicIpAddress == nil || len(ni.Groups) == 0 {
		t.Errorf("primary interface %+v: want device 0, AssociatePublicIpAddress set, the security group", ni)
	}
	if m := lt.MetadataOptions; m == nil || m.HttpTokens != "required" || aws.ToInt32(m.HttpPutResponseHopLimit) != 1 {
		t.Errorf("MetadataOptions %+v: want IMDSv2 required, hop limit 1", lt.MetadataOptions)
	}
	tagged := map[ec2types.ResourceType]bool{}
	for _, ts := range lt.TagSpecifications {
		if slices.ContainsFunc(ts.Tags, func(tg ec2types.Tag) bool { return aws.ToString(tg.Key) == eip.TagGroup }) {
			tagged[ts.ResourceType] = true
		}
	}
	if !tagged[ec2types.ResourceTypeInstance] || !tagged[ec2types.ResourceTypeNetworkInterface] {
		t.Errorf("tagged %v with %s: want instance and network-interface", tagged, eip.TagGroup)
	}

	// The AWS CLI's own validation (botocore's EC2 model), against a closed
	// loopback port so that nothing reaches AWS.
	cli := tool(t, "aws")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close()
	abs, err := filepath.Abs(path("deploy", "ec2", "launch-template-data.json"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(cli, "ec2", "create-launch-template", "--launch-template-name", "eipd-proxy-prod",
		"--launch-template-data", "file://"+abs, "--endpoint-url", endpoint, "--cli-connect-timeout", "2")
	cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "AWS_") })
	cmd.Env = append(cmd.Env, "AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_DEFAULT_REGION=us-east-1",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1")
	out, _ := cmd.CombinedOutput()
	if bytes.Contains(out, []byte("Parameter validation failed")) || !bytes.Contains(out, []byte("Could not connect")) {
		t.Errorf("aws ec2 create-launch-template --launch-template-data file://deploy/ec2/launch-template-data.json:\n%s", out)
	}
}
