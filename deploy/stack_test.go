package deploy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// stack evaluates the example template for given parameter values, the way
// CloudFormation would for the few intrinsic functions the template uses:
// Ref, Fn::If, Fn::Equals, Fn::Not, Fn::And, Fn::Or, Condition, Fn::Join,
// Fn::Sub, Fn::Split, Fn::Select, Fn::GetAtt (a fixed value per attribute),
// and the rule function Fn::Contains.
type stack struct {
	t      *testing.T
	tpl    cfnTemplate
	params map[string]string
}

// pseudo are the pseudo parameters and resource references of the test's
// stack.
var pseudo = map[string]string{
	"AWS::StackName": "eipd-test", "AWS::Region": "eu-west-1", "AWS::Partition": "aws",
	"AWS::URLSuffix": "amazonaws.com", "AWS::AccountId": "123456789012",
}

// getAtt is what Fn::GetAtt gives in the test's stack.
var getAtt = map[string]string{
	"Address.AllocationId": "eipalloc-0123456789abcdef0",
	"InstanceProfile.Arn":  "arn:aws:iam::123456789012:instance-profile/eipd-test",
	"TaskRole.Arn":         "arn:aws:iam::123456789012:role/eipd-test-task",
}

// newStack takes the template's defaults, then params.
func newStack(t *testing.T, tpl cfnTemplate, params map[string]string) *stack {
	t.Helper()
	// The parameters without a default, as an operator would give them.
	p := map[string]string{"VpcId": "vpc-0123456789abcdef0", "SubnetIds": "subnet-0a,subnet-0b",
		"BackendSrvName": "_web._tcp.internal.example"}
	for name, def := range tpl.Parameters {
		if d, ok := def["Default"]; ok {
			p[name] = fmt.Sprint(d)
		}
	}
	for k, v := range params {
		if _, ok := tpl.Parameters[k]; !ok {
			t.Fatalf("no parameter %s", k)
		}
		p[k] = v
	}
	return &stack{t: t, tpl: tpl, params: p}
}

// noValue stands for AWS::NoValue: the property or list element is left out.
type noValue struct{}

// cond evaluates a condition by name.
func (s *stack) cond(name string) bool {
	s.t.Helper()
	c, ok := s.tpl.Conditions[name]
	if !ok {
		s.t.Fatalf("no condition %s", name)
	}
	return s.truth(c)
}

func (s *stack) truth(v any) bool {
	s.t.Helper()
	b, ok := s.eval(v).(bool)
	if !ok {
		s.t.Fatalf("condition %v is not a boolean", v)
	}
	return b
}

// str evaluates v to a string.
func (s *stack) str(v any) string {
	s.t.Helper()
	switch x := s.eval(v).(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	s.t.Fatalf("%v is not a string", v)
	return ""
}

// eval evaluates v: intrinsic functions are applied, the rest is copied.
func (s *stack) eval(v any) any {
	s.t.Helper()
	switch x := v.(type) {
	case []any:
		var out []any
		for _, e := range x {
			if ev := s.eval(e); ev != (noValue{}) {
				out = append(out, ev)
			}
		}
		return out
	case map[string]any:
		if len(x) == 1 {
			for k, a := range x {
				if r, ok := s.fn(k, a); ok {
					return r
				}
			}
		}
		out := map[string]any{}
		for k, e := range x {
			if ev := s.eval(e); ev != (noValue{}) {
				out[k] = ev
			}
		}
		return out
	}
	return v
}

func (s *stack) fn(name string, arg any) (any, bool) {
	s.t.Helper()
	args, _ := arg.([]any)
	switch name {
	case "Ref":
		ref := arg.(string)
		if ref == "AWS::NoValue" {
			return noValue{}, true
		}
		if v, ok := pseudo[ref]; ok {
			return v, true
		}
		if v, ok := s.params[ref]; ok {
			if s.tpl.Parameters[ref]["Type"] == "CommaDelimitedList" {
				var l []any
				for _, e := range strings.Split(v, ",") {
					l = append(l, e)
				}
				return l, true
			}
			return v, true
		}
		if _, ok := s.tpl.Resources[ref]; ok {
			return "ref-" + ref, true
		}
		s.t.Fatalf("Ref to unknown %s", ref)
	case "Condition":
		return s.cond(arg.(string)), true
	case "Fn::If":
		if s.cond(args[0].(string)) {
			return s.eval(args[1]), true
		}
		return s.eval(args[2]), true
	case "Fn::Equals":
		return s.str(args[0]) == s.str(args[1]), true
	case "Fn::Not":
		return !s.truth(args[0]), true
	case "Fn::And", "Fn::Or":
		and := name == "Fn::And"
		for _, a := range args {
			if s.truth(a) != and {
				return !and, true
			}
		}
		return and, true
	case "Fn::Contains":
		// A rule function: a list of strings holds the string.
		for _, e := range s.eval(args[0]).([]any) {
			if s.str(e) == s.str(args[1]) {
				return true, true
			}
		}
		return false, true
	case "Fn::Join":
		var parts []string
		for _, e := range s.eval(args[1]).([]any) {
			parts = append(parts, s.str(e))
		}
		return strings.Join(parts, s.str(args[0])), true
	case "Fn::Split":
		var out []any
		for _, e := range strings.Split(s.str(args[1]), s.str(args[0])) {
			out = append(out, e)
		}
		return out, true
	case "Fn::Select":
		i, _ := strconv.Atoi(s.str(args[0]))
		return s.eval(args[1]).([]any)[i], true
	case "Fn::GetAtt":
		key := strings.Join([]string{fmt.Sprint(args[0]), fmt.Sprint(args[1])}, ".")
		v, ok := getAtt[key]
		if !ok {
			s.t.Fatalf("no test value for Fn::GetAtt %s", key)
		}
		return v, true
	case "Fn::Sub":
		tmpl, vars := "", map[string]any{}
		if str, ok := arg.(string); ok {
			tmpl = str
		} else {
			tmpl = args[0].(string)
			vars = args[1].(map[string]any)
		}
		return regexp.MustCompile(`\$\{([A-Za-z0-9:.]+)\}`).ReplaceAllStringFunc(tmpl, func(m string) string {
			name := m[2 : len(m)-1]
			if v, ok := vars[name]; ok {
				return s.str(v)
			}
			if strings.Contains(name, ".") && !strings.HasPrefix(name, "AWS::") {
				return getAtt[name]
			}
			return s.str(map[string]any{"Ref": name})
		}), true
	case "Fn::Base64":
		return s.eval(arg), true
	}
	return nil, false
}

// resource is the evaluated properties of the one resource of that type,
// nil when its condition leaves it out.
func (s *stack) resource(name string) map[string]any {
	s.t.Helper()
	r, ok := s.tpl.Resources[name]
	if !ok {
		s.t.Fatalf("no resource %s", name)
	}
	if r.Condition != "" && !s.cond(r.Condition) {
		return nil
	}
	return s.eval(r.Properties).(map[string]any)
}

// userData is the launch template's user data as the instance gets it.
func (s *stack) userData() string {
	s.t.Helper()
	return s.str(dig(s.t, s.tpl.Resources["LaunchTemplate"].Properties, "LaunchTemplateData", "UserData"))
}

// initDigest is the sha256 of the launch template's cfn-init metadata, as
// the user data must name it.
func initDigest(t *testing.T, tpl cfnTemplate) string {
	t.Helper()
	b, err := json.Marshal(tpl.Resources["LaunchTemplate"].Metadata["AWS::CloudFormation::Init"])
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestStackFixes: what a real account needs from the example stack, first
// try (issue 20), asserted on the template as CloudFormation evaluates it
// with the default parameters and with the ones each fix is about.
func TestStackFixes(t *testing.T) {
	tpl := loadTemplate(t)

	t.Run("endpoints on by default, off by parameter", func(t *testing.T) {
		def := newStack(t, tpl, nil)
		want := map[string]string{"ec2": "Interface", "autoscaling": "Interface", "cloudformation": "Interface", "s3": "Gateway"}
		got := map[string]string{}
		var names []string
		for name, r := range tpl.Resources {
			if r.Type != "AWS::EC2::VPCEndpoint" {
				continue
			}
			p := def.resource(name)
			if p == nil {
				t.Errorf("%s is not created with the default parameters", name)
				continue
			}
			svc := strings.TrimPrefix(p["ServiceName"].(string), "com.amazonaws.eu-west-1.")
			got[svc] = p["VpcEndpointType"].(string)
			names = append(names, name)
			if p["VpcEndpointType"] == "Interface" {
				if p["PrivateDnsEnabled"] != true || !reflect.DeepEqual(p["SubnetIds"], def.eval(map[string]any{"Ref": "SubnetIds"})) {
					t.Errorf("%s: want private DNS in the proxies' subnets, got %v", name, p)
				}
			} else if !reflect.DeepEqual(p["RouteTableIds"], def.eval(map[string]any{"Ref": "RouteTableIds"})) {
				t.Errorf("%s: want the RouteTableIds parameter, got %v", name, p["RouteTableIds"])
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("endpoints %v, want %v", got, want)
		}
		// The instances start once the endpoints exist.
		asg := tpl.Resources["ProxyGroup"]
		ready := fmt.Sprint(tpl.Resources["EndpointsReady"].Metadata)
		for _, n := range names {
			if !strings.Contains(ready, "map[Ref:"+n+"]") {
				t.Errorf("EndpointsReady does not wait for %s", n)
			}
		}
		if !strings.Contains(fmt.Sprint(asg.DependsOn), "EndpointsReady") {
			t.Errorf("ProxyGroup does not depend on EndpointsReady")
		}
		// The endpoint security group lets the proxies in on 443 only.
		sg := def.resource("EndpointSecurityGroup")
		ing := sg["SecurityGroupIngress"].([]any)[0].(map[string]any)
		if ing["FromPort"] != 443.0 || ing["ToPort"] != 443.0 || ing["SourceSecurityGroupId"] != "ref-ProxySecurityGroup" {
			t.Errorf("endpoint ingress %v, want 443 from the proxies", ing)
		}
		for mode, left := range map[string][]string{"interface": {"s3"}, "none": {"ec2", "autoscaling", "cloudformation", "s3"}} {
			s := newStack(t, tpl, map[string]string{"VpcEndpoints": mode})
			for name, r := range tpl.Resources {
				if r.Type != "AWS::EC2::VPCEndpoint" {
					continue
				}
				svc := strings.TrimPrefix(fmt.Sprint(dig(t, r.Properties, "ServiceName", "Fn::Sub")), "com.amazonaws.${AWS::Region}.")
				if created := s.resource(name) != nil; created == slices.Contains(left, svc) {
					t.Errorf("VpcEndpoints=%s: %s created=%v", mode, svc, created)
				}
			}
		}
		// Without route tables the S3 endpoint cannot be made: a rule says so
		// at stack creation.
		rule := tpl.Rules["RouteTablesForS3Endpoint"]
		if len(rule.Assertions) != 1 || !def.truth(rule.RuleCondition) || def.truth(rule.Assertions[0].Assert) {
			t.Errorf("RouteTablesForS3Endpoint must refuse the defaults (no RouteTableIds): %+v", rule)
		}
		if s := newStack(t, tpl, map[string]string{"RouteTableIds": "rtb-0a,rtb-0b"}); !s.truth(rule.Assertions[0].Assert) {
			t.Error("RouteTablesForS3Endpoint refuses RouteTableIds=rtb-0a,rtb-0b")
		}
	})

	t.Run("the network interface sets the public IP and carries the security group", func(t *testing.T) {
		def := newStack(t, tpl, nil)
		lt := def.resource("LaunchTemplate")["LaunchTemplateData"].(map[string]any)
		if _, ok := lt["SecurityGroupIds"]; ok {
			t.Error("SecurityGroupIds at the instance level conflicts with NetworkInterfaces")
		}
		nis := lt["NetworkInterfaces"].([]any)
		if len(nis) != 1 {
			t.Fatalf("NetworkInterfaces %v, want the primary one", nis)
		}
		ni := nis[0].(map[string]any)
		if ni["DeviceIndex"] != 0.0 || ni["AssociatePublicIpAddress"] != true || !reflect.DeepEqual(ni["Groups"], []any{"ref-ProxySecurityGroup"}) {
			t.Errorf("primary interface %v: want device 0, a public IPv4 address by default, the proxies' security group", ni)
		}
		if _, ok := ni["SecondaryPrivateIpAddressCount"]; ok {
			t.Errorf("secondary private IPs by default: %v", ni)
		}
		off := newStack(t, tpl, map[string]string{"AssociatePublicIpAddress": "false", "SecondaryPrivateIpCount": "2"})
		ni = off.resource("LaunchTemplate")["LaunchTemplateData"].(map[string]any)["NetworkInterfaces"].([]any)[0].(map[string]any)
		if ni["AssociatePublicIpAddress"] != false {
			t.Errorf("AssociatePublicIpAddress=false gives %v", ni["AssociatePublicIpAddress"])
		}
		// Several EIPs: k-1 secondary private IPs on each member.
		if ni["SecondaryPrivateIpAddressCount"] != "2" {
			t.Errorf("SecondaryPrivateIpCount=2 gives %v", ni["SecondaryPrivateIpAddressCount"])
		}
	})

	t.Run("the S3 grant is scoped to the bucket parameter", func(t *testing.T) {
		def := newStack(t, tpl, nil)
		if p := def.resource("InstanceRole"); p["Policies"] != nil {
			t.Errorf("an S3 grant without BinaryBucket: %v", p["Policies"])
		}
		s := newStack(t, tpl, map[string]string{"BinaryBucket": "my-bucket", "BinaryKeyPrefix": "eipd/"})
		pols := s.resource("InstanceRole")["Policies"].([]any)
		if len(pols) != 1 {
			t.Fatalf("policies %v", pols)
		}
		stmts := dig(t, pols[0], "PolicyDocument", "Statement").([]any)
		want := []any{map[string]any{"Sid": "ReadEipdBinary", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::my-bucket/eipd/*"}}
		if !reflect.DeepEqual(stmts, want) {
			t.Errorf("S3 grant %v, want %v", stmts, want)
		}
	})

	t.Run("managed policies: SSM by default, extras by parameter", func(t *testing.T) {
		def := newStack(t, tpl, nil)
		arns := def.resource("InstanceRole")["ManagedPolicyArns"].([]any)
		if !slices.Contains(arns, any("arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore")) || !slices.Contains(arns, any("ref-EipdPolicy")) || len(arns) != 2 {
			t.Errorf("default managed policies %v, want eipd's and AmazonSSMManagedInstanceCore", arns)
		}
		s := newStack(t, tpl, map[string]string{"EnableSsm": "false", "DeployEcsService": "true",
			"ExtraManagedPolicyArns": "arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy,arn:aws:iam::123456789012:policy/mine"})
		want := []any{"arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role",
			"arn:aws:iam::aws:policy/CloudWatchAgentServerPolicy", "arn:aws:iam::123456789012:policy/mine"}
		if got := s.resource("InstanceRole")["ManagedPolicyArns"]; !reflect.DeepEqual(got, want) {
			t.Errorf("ECS, no SSM, two extras: %v, want %v", got, want)
		}
		lt := def.resource("LaunchTemplate")["LaunchTemplateData"].(map[string]any)
		if _, ok := lt["KeyName"]; ok {
			t.Error("a key pair by default")
		}
		lt = newStack(t, tpl, map[string]string{"KeyName": "ops"}).resource("LaunchTemplate")["LaunchTemplateData"].(map[string]any)
		if lt["KeyName"] != "ops" {
			t.Errorf("KeyName=ops gives %v", lt["KeyName"])
		}
	})

	t.Run("the ECS mode runs the ECS-optimized AMI", func(t *testing.T) {
		def := newStack(t, tpl, nil)
		if d := fmt.Sprint(tpl.Parameters["EcsImageId"]["Default"]); !strings.HasPrefix(d, "/aws/service/ecs/optimized-ami/amazon-linux-2023/") {
			t.Errorf("EcsImageId defaults to %s, want the ECS-optimized AL2023 AMI's SSM parameter", d)
		}
		if got := def.resource("LaunchTemplate")["LaunchTemplateData"].(map[string]any)["ImageId"]; got != def.params["ImageId"] {
			t.Errorf("systemd mode runs %v, want ImageId", got)
		}
		s := newStack(t, tpl, map[string]string{"DeployEcsService": "true"})
		if got := s.resource("LaunchTemplate")["LaunchTemplateData"].(map[string]any)["ImageId"]; got != def.params["EcsImageId"] {
			t.Errorf("ECS mode runs %v, want EcsImageId %s", got, def.params["EcsImageId"])
		}
	})

	t.Run("rolling updates keep two in service", func(t *testing.T) {
		asg := tpl.Resources["ProxyGroup"]
		min, _ := strconv.Atoi(fmt.Sprint(dig(t, asg.UpdatePolicy, "AutoScalingRollingUpdate", "MinInstancesInService")))
		desired, _ := strconv.Atoi(fmt.Sprint(asg.Properties["DesiredCapacity"]))
		max, _ := strconv.Atoi(fmt.Sprint(asg.Properties["MaxSize"]))
		if min < 2 || min < desired || min >= max {
			t.Errorf("MinInstancesInService %d with DesiredCapacity %d, MaxSize %d: want at least 2 and the desired capacity, below MaxSize", min, desired, max)
		}
	})

	t.Run("an existing EIP by allocation ID", func(t *testing.T) {
		def := newStack(t, tpl, nil)
		if def.resource("Address") == nil {
			t.Fatal("no EIP created by default")
		}
		ids := "eipalloc-0123456789abcdef1,eipalloc-0123456789abcdef2"
		s := newStack(t, tpl, map[string]string{"AllocationIds": ids})
		if s.resource("Address") != nil {
			t.Error("an EIP is allocated although AllocationIds names the EIPs to manage")
		}
		if ud := s.userData(); !strings.Contains(ud, "\nEIPD_ALLOCATION_ID=\""+ids+"\"\n") {
			t.Errorf("systemd user data does not manage %s", ids)
		}
		e := newStack(t, tpl, map[string]string{"AllocationIds": ids, "DeployEcsService": "true"})
		env := e.resource("TaskDefinition")["ContainerDefinitions"].([]any)[0].(map[string]any)["Environment"].([]any)
		if !slices.ContainsFunc(env, func(v any) bool {
			return reflect.DeepEqual(v, map[string]any{"Name": "EIPD_ALLOCATION_ID", "Value": ids})
		}) {
			t.Errorf("ECS task environment %v lacks EIPD_ALLOCATION_ID=%s", env, ids)
		}
		if !regexp.MustCompile(fmt.Sprint(tpl.Parameters["AllocationIds"]["AllowedPattern"])).MatchString(ids) {
			t.Errorf("AllocationIds refuses %s", ids)
		}
	})

	t.Run("Prometheus may reach the status port", func(t *testing.T) {
		def := newStack(t, tpl, nil)
		if def.resource("MetricsFromSecurityGroupIngress") != nil || def.resource("MetricsFromCidrIngress") != nil {
			t.Error("the status port is opened to Prometheus by default")
		}
		s := newStack(t, tpl, map[string]string{"MetricsSourceSecurityGroupId": "sg-0123456789abcdef0", "MetricsSourceCidr": "10.9.0.0/16"})
		for name, src := range map[string][2]string{"MetricsFromSecurityGroupIngress": {"SourceSecurityGroupId", "sg-0123456789abcdef0"}, "MetricsFromCidrIngress": {"CidrIp", "10.9.0.0/16"}} {
			p := s.resource(name)
			if p == nil || p["FromPort"] != 9380.0 || p["ToPort"] != 9380.0 || p[src[0]] != src[1] {
				t.Errorf("%s: %v", name, p)
			}
		}
	})

	t.Run("a change of HAProxy's settings rolls the instances", func(t *testing.T) {
		// cfn-init runs at boot only; a new launch template version (a
		// change of the user data) is what the rolling update rolls out.
		prelude := fmt.Sprint(dig(t, tpl.Resources["LaunchTemplate"].Properties, "LaunchTemplateData", "UserData", "Fn::Base64", "Fn::Join", 1, 0, "Fn::Sub"))
		digest := initDigest(t, tpl)
		if !strings.Contains(prelude, "cfn-init metadata sha256\n# "+digest+".\n") {
			t.Errorf("the user data does not name the cfn-init metadata's digest; after changing the metadata, set it to %s", digest)
		}
		meta, _ := json.Marshal(tpl.Resources["LaunchTemplate"].Metadata)
		for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9]+)\}`).FindAllStringSubmatch(string(meta), -1) {
			if _, isParam := tpl.Parameters[m[1]]; isParam && !strings.Contains(prelude, "${"+m[1]+"}") {
				t.Errorf("the cfn-init metadata uses parameter %s, which the user data does not name: changing it would not reach the instances", m[1])
			}
		}
		a := newStack(t, tpl, nil).userData()
		for param, v := range map[string]string{"ProxyPort": "8080", "BackendSrvName": "_api._tcp.internal.example", "MinBackendsUp": "2"} {
			if newStack(t, tpl, map[string]string{param: v}).userData() == a {
				t.Errorf("changing %s leaves the user data (and the launch template version) as it is", param)
			}
		}
	})

	t.Run("HAProxy's monitor needs backends by default", func(t *testing.T) {
		def := newStack(t, tpl, nil)
		if d := fmt.Sprint(tpl.Parameters["MinBackendsUp"]["Default"]); d != "1" {
			t.Errorf("MinBackendsUp defaults to %s, want 1", d)
		}
		dropIn := def.str(dig(t, tpl.Resources["LaunchTemplate"].Metadata, "AWS::CloudFormation::Init", "haproxy", "files",
			"/etc/systemd/system/haproxy.service.d/eipd.conf", "content"))
		if !strings.Contains(dropIn, "\nEnvironment=MONITOR_MIN_UP=1\n") {
			t.Errorf("the HAProxy drop-in does not set MONITOR_MIN_UP=1:\n%s", dropIn)
		}
	})

	t.Run("the user data fits EC2's limit", func(t *testing.T) {
		// "User data is limited to 16 KB, in raw form, before it is
		// base64-encoded" (Amazon EC2 user guide, instance user data).
		for _, p := range []map[string]string{nil, {"DeployEcsService": "true", "ContainerImage": "x"}} {
			if n := len(newStack(t, tpl, p).userData()); n > 16*1024 {
				t.Errorf("user data with %v is %d bytes, over EC2's 16 KB", p, n)
			}
		}
	})

	t.Run("self-healing by default", func(t *testing.T) {
		def := newStack(t, tpl, nil)
		ud := def.userData()
		for _, want := range []string{"\nEIPD_ASG_HEALTH=\"true\"\n", "\nEIPD_ASG_HEALTH_AFTER=\"5m\"\n"} {
			if !strings.Contains(ud, want) {
				t.Errorf("systemd user data lacks %q", want)
			}
		}
		if g := tpl.Resources["ProxyGroup"].Properties["HealthCheckGracePeriod"]; g == nil {
			t.Error("no HealthCheckGracePeriod: a starting member could be reported before it is up")
		}
	})
}
