package deploy_test

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// stackRun is one execution of the example stack's user data, rendered for
// the given parameters, with everything that would leave the machine or
// change it replaced: the AWS helpers (present or not), dnf, the AWS CLI
// (present or not), instance metadata and CloudFormation (through a curl
// stub; other URLs, the /readyz wait on loopback, go to the real curl),
// systemctl, groupadd, and the absolute paths rewritten into a scratch
// directory. PATH holds only the stubs and the real tools the scripts use,
// so an AWS CLI installed on this machine cannot stand in for an absent one.
type stackRun struct {
	params       map[string]string
	cfnHelpers   bool // /opt/aws/bin/cfn-init and cfn-signal exist
	cfnInitFails bool
	dnfWorks     bool // dnf install succeeds (and installs the helpers)
	awsCLI       bool // an aws command exists
	s3Fails      bool // aws s3 cp fails (403)
	download     []byte
	listen       string // replaces EIPD_LISTEN=":9380" (the readiness wait)
}

type stackResult struct {
	err      error
	output   string
	dir      string
	calls    string // every stubbed command, one line each
	ecsConf  string
	root     string
	ecsWrote bool
}

// realTools are the commands the user data runs for real.
var realTools = []string{"bash", "sh", "env", "sed", "head", "cat", "mktemp", "rm", "install", "cmp", "sha256sum",
	"cut", "getent", "sleep", "uname", "cp", "chmod", "mkdir", "grep", "tr"}

func runStackUserData(t *testing.T, tpl cfnTemplate, run stackRun) stackResult {
	t.Helper()
	realCurl := tool(t, "curl")
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the user-data execution tests run as root under CI")
		}
		t.Skip("the user-data execution tests need root (install -o root)")
	}
	dir := t.TempDir()
	bin, tools, logs, root := filepath.Join(dir, "bin"), filepath.Join(dir, "tools"), filepath.Join(dir, "logs"), filepath.Join(dir, "root")
	helpers := filepath.Join(dir, "opt", "aws", "bin")
	for _, d := range []string{bin, tools, logs, root, helpers} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range realTools {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := os.Symlink(p, filepath.Join(tools, name)); err != nil {
			t.Fatal(err)
		}
	}
	download := filepath.Join(dir, "download")
	if err := os.WriteFile(download, run.download, 0o755); err != nil {
		t.Fatal(err)
	}
	stub := func(at, name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(at, name), []byte("#!/usr/bin/env bash\n"+text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	helperStubs := `
cfn_init() { echo "cfn-init $*" >>"$STUB_LOGS/calls"; [ "$STUB_CFN_INIT_FAILS" != 1 ]; }
cfn_signal() { echo "cfn-signal $*" >>"$STUB_LOGS/calls"; }
`
	installHelpers := func() {
		stub(helpers, "cfn-init", helperStubs+`cfn_init "$@"`+"\n")
		stub(helpers, "cfn-signal", helperStubs+`cfn_signal "$@"`+"\n")
	}
	if run.cfnHelpers {
		installHelpers()
	}
	// dnf install -y aws-cfn-bootstrap: the helpers appear, or it fails.
	stub(bin, "dnf", `echo "dnf $*" >>"$STUB_LOGS/calls"
[ "$STUB_DNF_WORKS" = 1 ] || { echo "Error: Failed to download metadata for repo 'amazonlinux'" >&2; exit 1; }
printf '#!/usr/bin/env bash\necho "cfn-init $*" >>"$STUB_LOGS/calls"\n[ "$STUB_CFN_INIT_FAILS" != 1 ]\n' >"$STUB_HELPERS/cfn-init"
printf '#!/usr/bin/env bash\necho "cfn-signal $*" >>"$STUB_LOGS/calls"\n' >"$STUB_HELPERS/cfn-signal"
chmod 755 "$STUB_HELPERS/cfn-init" "$STUB_HELPERS/cfn-signal"
`)
	if run.awsCLI {
		stub(bin, "aws", `echo "aws $*" >>"$STUB_LOGS/calls"
if [ "$1 $2" = "s3 cp" ]; then
	[ "$STUB_S3_FAILS" != 1 ] || { echo "download failed: $4 An error occurred (403) when calling the HeadObject operation: Forbidden" >&2; exit 1; }
	cp "$STUB_DOWNLOAD" "$5"
fi
`)
	}
	// curl: instance metadata and CloudFormation answered here; anything
	// else (the readiness wait on loopback) by the real curl.
	stub(bin, "curl", `args=("$@") url=
for a in "$@"; do
	case "$a" in http://* | https://*) url=$a ;; esac
done
case "$url" in
http://imds.test/*)
	case "$url" in
	*/api/token) echo token ;;
	*/meta-data/instance-id) echo i-0123456789abcdef0 ;;
	*/meta-data/iam/security-credentials/) echo eipd-test-role ;;
	*/meta-data/iam/security-credentials/eipd-test-role)
		printf '{\n  "Code" : "Success",\n  "Type" : "AWS-HMAC",\n  "AccessKeyId" : "AKIDTEST",\n  "SecretAccessKey" : "SECRETTEST",\n  "Token" : "TOKENTEST",\n  "Expiration" : "2026-12-01T18:00:00Z"\n}\n' ;;
	*) exit 22 ;;
	esac
	;;
https://cloudformation.*) echo "curl $*" >>"$STUB_LOGS/calls" ;;
*) exec "$REAL_CURL" "${args[@]}" ;;
esac
`)
	stub(bin, "systemctl", `echo "systemctl $*" >>"$STUB_LOGS/calls"
[ "$1" != is-active ]
`)
	stub(bin, "groupadd", `echo "groupadd $*" >>"$STUB_LOGS/calls"`+"\n")
	stub(bin, "id", "echo 0\n")

	ud := newStack(t, tpl, run.params).userData()
	ecsConf := filepath.Join(dir, "ecs.config")
	for old, repl := range map[string]string{
		"/opt/aws/bin/":                     helpers + "/",
		"/usr/local/sbin/eipd-user-data.sh": filepath.Join(dir, "eipd-user-data.sh"),
		"/etc/ecs/ecs.config":               ecsConf,
		"http://169.254.169.254/latest":     "http://imds.test/latest",
	} {
		// The install script is the systemd mode's, ecs.config the ECS mode's.
		if !strings.Contains(ud, old) && !strings.HasSuffix(old, ".sh") && !strings.HasSuffix(old, ".config") {
			t.Fatalf("the user data has no %q to redirect", old)
		}
		ud = strings.ReplaceAll(ud, old, repl)
	}
	if run.listen != "" {
		ud = strings.Replace(ud, `EIPD_LISTEN=":9380"`, `EIPD_LISTEN="`+run.listen+`"`, 1)
	}
	script := filepath.Join(dir, "user-data")
	if err := os.WriteFile(script, []byte(ud), 0o755); err != nil {
		t.Fatal(err)
	}
	flag := func(b bool) string {
		if b {
			return "1"
		}
		return "0"
	}
	cmd := exec.Command(filepath.Join(tools, "bash"), script)
	cmd.Env = []string{
		"PATH=" + bin + ":" + tools,
		"HOME=" + dir, "TMPDIR=" + dir,
		"EIPD_INSTALL_ROOT=" + root,
		"STUB_LOGS=" + logs, "STUB_DOWNLOAD=" + download, "STUB_HELPERS=" + helpers, "REAL_CURL=" + realCurl,
		"STUB_CFN_INIT_FAILS=" + flag(run.cfnInitFails), "STUB_DNF_WORKS=" + flag(run.dnfWorks), "STUB_S3_FAILS=" + flag(run.s3Fails),
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	res := stackResult{err: err, output: out.String(), dir: dir, root: root}
	if b, err := os.ReadFile(filepath.Join(logs, "calls")); err == nil {
		res.calls = string(b)
	}
	if b, err := os.ReadFile(ecsConf); err == nil {
		res.ecsConf, res.ecsWrote = string(b), true
	}
	return res
}

func (r stackResult) file(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.root, p))
	if err != nil {
		t.Fatalf("%s: %v\n%s", p, err, r.output)
	}
	return string(b)
}

// TestStackUserDataSignalsEveryOutcome runs the stack's user data: a
// failed helper install, a failed cfn-init and a failed download are
// signalled at once as failures (the stack fails with the reason instead of
// waiting out its timeout), whatever the AMI has to signal with; an s3://
// binary installed unverified with AllowUnverified=true succeeds and is
// signalled; the ECS mode configures the agent.
func TestStackUserDataSignalsEveryOutcome(t *testing.T) {
	tpl := loadTemplate(t)
	arch := userDataArch(t)
	ready, _ := readyServer(t, http.StatusOK)
	ecs := map[string]string{"DeployEcsService": "true", "ContainerImage": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/eipd:v1"}
	s3 := map[string]string{"BinaryUrl": "s3://my-bucket/eipd/v1/eipd-linux-{arch}", "AllowUnverified": "true",
		"BinaryBucket": "my-bucket", "BinaryKeyPrefix": "eipd/"}
	failedSignal := "cfn-signal -e 1 --stack eipd-test --resource ProxyGroup --region eu-west-1\n"

	t.Run("ECS AMI: no helpers, no CLI, no repository", func(t *testing.T) {
		res := runStackUserData(t, tpl, stackRun{params: ecs})
		if res.err == nil {
			t.Fatalf("succeeded:\n%s", res.output)
		}
		if !strings.Contains(res.output, "cannot install aws-cfn-bootstrap") {
			t.Errorf("the reason is not said:\n%s", res.output)
		}
		for _, want := range []string{"curl ", "--aws-sigv4 aws:amz:eu-west-1:cloudformation", "--user AKIDTEST:SECRETTEST",
			"x-amz-security-token: TOKENTEST", "Action=SignalResource", "StackName=eipd-test", "LogicalResourceId=ProxyGroup",
			"UniqueId=i-0123456789abcdef0", "Status=FAILURE", "https://cloudformation.eu-west-1.amazonaws.com/"} {
			if !strings.Contains(res.calls, want) {
				t.Errorf("the failure is not signalled with %q; calls:\n%s\noutput:\n%s", want, res.calls, res.output)
			}
		}
		if res.ecsWrote {
			t.Error("the ECS agent was configured after a failed install")
		}
	})

	t.Run("no helpers, the AWS CLI signals", func(t *testing.T) {
		res := runStackUserData(t, tpl, stackRun{params: s3, awsCLI: true})
		if res.err == nil {
			t.Fatalf("succeeded:\n%s", res.output)
		}
		want := "aws cloudformation signal-resource --region eu-west-1 --stack-name eipd-test --logical-resource-id ProxyGroup --unique-id i-0123456789abcdef0 --status FAILURE\n"
		if !strings.Contains(res.calls, want) {
			t.Errorf("calls lack %q:\n%s", want, res.calls)
		}
	})

	t.Run("cfn-init fails", func(t *testing.T) {
		res := runStackUserData(t, tpl, stackRun{params: ecs, cfnHelpers: true, cfnInitFails: true})
		if res.err == nil || !strings.Contains(res.calls, failedSignal) || !strings.Contains(res.output, "cfn-init could not install or start HAProxy") {
			t.Errorf("err %v, calls:\n%s\noutput:\n%s", res.err, res.calls, res.output)
		}
	})

	t.Run("helpers installed by dnf, s3:// binary unverified", func(t *testing.T) {
		res := runStackUserData(t, tpl, stackRun{params: s3, dnfWorks: true, awsCLI: true, download: []byte(fakeEipd), listen: ready})
		if res.err != nil {
			t.Fatalf("user data: %v\n%s\ncalls:\n%s", res.err, res.output, res.calls)
		}
		for _, want := range []string{
			"dnf install -y aws-cfn-bootstrap\n",
			"cfn-init -v --stack eipd-test --resource LaunchTemplate --configsets haproxy --region eu-west-1\n",
			"aws s3 cp --only-show-errors s3://my-bucket/eipd/v1/eipd-linux-" + arch + " ",
			"systemctl enable --now eipd.service\n",
			"cfn-signal -e 0 --stack eipd-test --resource ProxyGroup --region eu-west-1\n",
		} {
			if !strings.Contains(res.calls, want) {
				t.Errorf("calls lack %q:\n%s", want, res.calls)
			}
		}
		if !strings.Contains(res.output, "WARNING: EIPD_ALLOW_UNVERIFIED=1: installing s3://my-bucket/eipd/v1/eipd-linux-"+arch+" unverified") {
			t.Errorf("AllowUnverified=true did not install unverified:\n%s", res.output)
		}
		if got := res.file(t, "usr/local/bin/eipd"); got != fakeEipd {
			t.Errorf("installed binary %q", got)
		}
		env := res.file(t, "etc/default/eipd")
		for _, want := range []string{"EIPD_GROUP=proxy-prod\n", "EIPD_ALLOCATION_ID=eipalloc-0123456789abcdef0\n",
			"EIPD_HEALTH_CHECK=http://127.0.0.1:80/haproxy-health\n", "EIPD_LIFECYCLE_HOOK=eipd-handoff\n",
			"EIPD_ASG_HEALTH=true\n", "EIPD_ASG_HEALTH_AFTER=5m\n"} {
			if !strings.Contains(env, want) {
				t.Errorf("/etc/default/eipd lacks %q:\n%s", want, env)
			}
		}
	})

	t.Run("s3:// binary the role may not read", func(t *testing.T) {
		res := runStackUserData(t, tpl, stackRun{params: s3, cfnHelpers: true, awsCLI: true, s3Fails: true, download: []byte(fakeEipd), listen: ready})
		if res.err == nil || !strings.Contains(res.calls, failedSignal) {
			t.Fatalf("err %v; calls:\n%s\noutput:\n%s", res.err, res.calls, res.output)
		}
		for _, want := range []string{"cannot download s3://my-bucket/eipd/v1/eipd-linux-" + arch, "s3:GetObject", "BinaryBucket", "installing eipd failed"} {
			if !strings.Contains(res.output, want) {
				t.Errorf("output lacks %q:\n%s", want, res.output)
			}
		}
	})

	t.Run("ECS mode configures the agent", func(t *testing.T) {
		res := runStackUserData(t, tpl, stackRun{params: ecs, cfnHelpers: true})
		if res.err != nil {
			t.Fatalf("user data: %v\n%s", res.err, res.output)
		}
		for _, want := range []string{"ECS_CLUSTER=ref-EcsCluster\n", "ECS_ENABLE_TASK_IAM_ROLE_NETWORK_HOST=true\n", `ECS_INSTANCE_ATTRIBUTES={"eipd-group":"proxy-prod"}` + "\n"} {
			if !strings.Contains(res.ecsConf, want) {
				t.Errorf("ecs.config lacks %q:\n%s", want, res.ecsConf)
			}
		}
		if !strings.HasSuffix(res.calls, "cfn-signal -e 0 --stack eipd-test --resource ProxyGroup --region eu-west-1\n") {
			t.Errorf("success not signalled last:\n%s", res.calls)
		}
	})
}
