package deploy_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestIAMTrustPolicies: the trust policies of the by-hand paths are the
// example stack's: EC2 for the instance role, ECS tasks for the task role.
func TestIAMTrustPolicies(t *testing.T) {
	tpl := loadTemplate(t)
	for file, role := range map[string]string{"trust-ec2.json": "InstanceRole", "trust-ecs-tasks.json": "TaskRole"} {
		var doc map[string]any
		if err := json.Unmarshal(read(t, "deploy", "iam", file), &doc); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		stack := normalize(t, tpl.Resources[role].Properties["AssumeRolePolicyDocument"])
		// The stack writes Principal as a flow map and Action as a string,
		// as the files do.
		if !reflect.DeepEqual(normalize(t, doc), stack) {
			t.Errorf("deploy/iam/%s differs from the stack's %s trust policy:\n got %v\nwant %v", file, role, doc, stack)
		}
	}
}

// TestECSUserData: deploy/ecs/user-data.sh writes the ECS agent's settings
// the example stack writes, for the cluster and attribute that
// deploy/ecs/service.json expects.
func TestECSUserData(t *testing.T) {
	svc := service(t)
	td := taskDefinition(t)
	group := ""
	for _, kv := range td.ContainerDefinitions[0].Environment {
		if *kv.Name == "EIPD_GROUP" {
			group = *kv.Value
		}
	}
	script := string(read(t, "deploy", "ecs", "user-data.sh"))
	for name, v := range map[string]string{"ECS_CLUSTER_NAME": *svc.Cluster, "EIPD_GROUP": group} {
		if !regexp.MustCompile(`(?m)^` + name + `="` + regexp.QuoteMeta(v) + `"$`).MatchString(script) {
			t.Errorf("deploy/ecs/user-data.sh: %s is not %q as in deploy/ecs/", name, v)
		}
	}
	root := t.TempDir()
	cmd := exec.Command(tool(t, "bash"), path("deploy", "ecs", "user-data.sh"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "EIPD_INSTALL_ROOT=" + root}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("deploy/ecs/user-data.sh: %v\n%s", err, out)
	}
	conf, err := os.ReadFile(filepath.Join(root, "etc", "ecs", "ecs.config"))
	if err != nil {
		t.Fatal(err)
	}
	// The constraint matches the attribute.
	if want := "attribute:eipd-group == " + group; *svc.PlacementConstraints[0].Expression != want {
		t.Errorf("service.json placement %q, want %q", *svc.PlacementConstraints[0].Expression, want)
	}
	tpl := loadTemplate(t)
	ud := newStack(t, tpl, map[string]string{"DeployEcsService": "true", "ContainerImage": "x", "GroupName": group}).userData()
	_, stackConf, _ := strings.Cut(ud, "<<'CONF'\n")
	stackConf, _, _ = strings.Cut(stackConf, "CONF\n")
	want := strings.Replace(stackConf, "ECS_CLUSTER=ref-EcsCluster", "ECS_CLUSTER="+*svc.Cluster, 1)
	if string(conf) != want {
		t.Errorf("ecs.config\n got %q\nwant the stack's %q", conf, want)
	}
}

// TestInstallWalksBothPaths: docs/install.md walks both paths end to end
// with the repository's files and names; a step that goes missing, or a
// name that drifts from the files, fails here.
func TestInstallWalksBothPaths(t *testing.T) {
	doc := string(read(t, "docs", "install.md"))
	td := taskDefinition(t)
	svc := service(t)
	logGroup := td.ContainerDefinitions[0].LogConfiguration.Options["awslogs-group"]
	hook := ""
	for _, kv := range td.ContainerDefinitions[0].Environment {
		if *kv.Name == "EIPD_LIFECYCLE_HOOK" {
			hook = *kv.Value
		}
	}
	for what, re := range map[string]string{
		"the instance role's trust":      `aws iam create-role --role-name \S+ --tags Key=eipd:group,Value=\S+ \\\n\s+--assume-role-policy-document file://deploy/iam/trust-ec2\.json`,
		"the task role's trust and tag":  `aws iam create-role --role-name \S+ --tags Key=eipd:group,Value=\S+ \\\n\s+--assume-role-policy-document file://deploy/iam/trust-ecs-tasks\.json`,
		"eipd's policy":                  `--policy-document file://deploy/iam/eipd-policy\.json`,
		"the S3 grant":                   `"Action":"s3:GetObject"`,
		"the ECS agent's policy":         `--policy-arn arn:aws:iam::aws:policy/service-role/AmazonEC2ContainerServiceforEC2Role`,
		"the log group":                  `aws logs create-log-group --log-group-name ` + regexp.QuoteMeta(logGroup) + `\n`,
		"the cluster":                    `aws ecs create-cluster --cluster-name ` + regexp.QuoteMeta(*svc.Cluster) + `\n`,
		"the endpoints":                  `create-vpc-endpoint --vpc-id \$VPC --vpc-endpoint-type Interface`,
		"the S3 gateway endpoint":        `--vpc-endpoint-type Gateway \\\n\s+--service-name com\.amazonaws\.\$AWS_REGION\.s3`,
		"the tagged EIP":                 `aws ec2 allocate-address --domain vpc \\\n\s+--tag-specifications "ResourceType=elastic-ip,Tags=\[\{Key=eipd:group`,
		"HAProxy on the host":            `cat deploy/haproxy/user-data.sh systemd/user-data.sh >user-data.sh`,
		"HAProxy on the ECS instances":   `cat deploy/haproxy/user-data.sh deploy/ecs/user-data.sh >user-data.sh`,
		"the launch template":            `--launch-template-data file://launch-template-data\.json`,
		"the ECS-optimized AMI":          `resolve:ssm:/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id`,
		"the group's tag and hook":       `--tags "Key=eipd:group,Value=\$GROUP,PropagateAtLaunch=false" \\\n\s+--lifecycle-hook-specification-list \\\n\s+"LifecycleHookName=` + regexp.QuoteMeta(hook) + `,LifecycleTransition=autoscaling:EC2_INSTANCE_TERMINATING`,
		"two in service during updates":  `"MinHealthyPercentage":100,"MaxHealthyPercentage":200`,
		"the task definition":            `aws ecs register-task-definition --cli-input-json file://deploy/ecs/task-definition\.json`,
		"the service":                    `aws ecs create-service --cli-input-json file://deploy/ecs/service\.json`,
		"preflight on every member":      `eipd preflight'`,
		"preflight in the ECS container": `/eipd preflight`,
		"a planned move":                 "sudo eipd handoff\n",
		"a failure":                      "sudo systemctl stop haproxy\n",
	} {
		if !regexp.MustCompile(re).MatchString(doc) {
			t.Errorf("docs/install.md lacks %s (%s)", what, re)
		}
	}
}
