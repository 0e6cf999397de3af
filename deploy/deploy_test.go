// Package deploy_test checks the files that install and run eipd: the systemd
// unit and user-data script, the container image recipe, the ECS task and
// service, the IAM policy and the CloudFormation example. Each test parses the
// file the way its consumer does (systemd-analyze, shellcheck, the SDK's ECS
// input types, the AWS CLI's parameter validation, cfn-lint) and asserts the
// properties operators rely on. Nothing here talks to AWS: the CLI is pointed
// at a closed loopback port.
package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/eipd/eipd/eip"
)

// root is the repository root; go test runs in deploy/.
const root = ".."

func path(parts ...string) string { return filepath.Join(append([]string{root}, parts...)...) }

func read(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(path(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tool finds an external program. Under CI a missing tool is a failure, since
// the check it backs would otherwise silently stop running.
func tool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not found (required under CI): %v", name, err)
		}
		t.Skipf("%s not found: %v", name, err)
	}
	return p
}

// ---------------------------------------------------------------- systemd

// stubUnit copies eipd.service into a temp dir with ExecStart pointing at an
// executable stub: systemd-analyze verify fails when the ExecStart binary does
// not exist, and no eipd is installed on a build machine. Only the path
// changes; every other line is checked as written.
func stubUnit(t *testing.T) string {
	t.Helper()
	unit := string(read(t, "systemd", "eipd.service"))
	const execLine = "ExecStart=/usr/local/bin/eipd run"
	if !strings.Contains(unit, "\n"+execLine+"\n") {
		t.Fatalf("eipd.service: want %q", execLine)
	}
	dir := t.TempDir()
	stub := filepath.Join(dir, "eipd")
	if err := os.WriteFile(stub, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "eipd.service")
	unit = strings.Replace(unit, execLine, "ExecStart="+stub+" run", 1)
	if err := os.WriteFile(p, []byte(unit), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSystemdVerify(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	out, err := exec.Command(sa, "verify", stubUnit(t)).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Fatalf("systemd-analyze verify: err=%v\n%s", err, out)
	}
}

func TestSystemdSecurityExposure(t *testing.T) {
	sa := tool(t, "systemd-analyze")
	out, err := exec.Command(sa, "security", "--offline=true", stubUnit(t)).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for eipd\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in output:\n%s", out)
	}
	level, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("exposure %.1f", level)
	if level > 2.0 {
		t.Errorf("exposure %.1f > 2.0:\n%s", level, out)
	}
}

// unitDirectives returns every Key=value of the unit (keys may repeat).
func unitDirectives(unit string) map[string][]string {
	d := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if ok {
			d[k] = append(d[k], v)
		}
	}
	return d
}

func TestSystemdUnitDirectives(t *testing.T) {
	d := unitDirectives(string(read(t, "systemd", "eipd.service")))
	want := map[string]string{
		"Type":            "notify",
		"Restart":         "on-failure",
		"EnvironmentFile": "-/etc/default/eipd",
		"DynamicUser":     "yes",
		"NoNewPrivileges": "yes",
		"ProtectSystem":   "strict",
		"KillSignal":      "SIGTERM",
		"Wants":           "network-online.target",
		// The control socket's directory (unix:/run/eipd/eipd.sock).
		"RuntimeDirectory": "eipd",
	}
	for k, v := range want {
		if !slices.Contains(d[k], v) {
			t.Errorf("%s=%v, want %s", k, d[k], v)
		}
	}
	if !slices.Contains(d["After"], "network-online.target") {
		t.Errorf("After=%v lacks network-online.target", d["After"])
	}
	// ProcSubset=pid hides /proc/stat: the process collector then drops
	// process_start_time_seconds, and the dashboard loses restarts.
	if slices.Contains(d["ProcSubset"], "pid") {
		t.Error("ProcSubset=pid hides /proc/stat, which process_start_time_seconds needs")
	}
	if len(d["WatchdogSec"]) != 1 {
		t.Errorf("WatchdogSec=%v, want one value", d["WatchdogSec"])
	}
	// The SIGTERM handoff runs for up to --stop-timeout (default 20s, or
	// EIPD_STOP_TIMEOUT in eipd.env); systemd must not kill it first.
	stop, err := time.ParseDuration(strings.Join(d["TimeoutStopSec"], ""))
	if err != nil {
		t.Fatalf("TimeoutStopSec=%v: %v", d["TimeoutStopSec"], err)
	}
	handoff := 20 * time.Second
	if m := regexp.MustCompile(`(?m)^#?EIPD_STOP_TIMEOUT=(\S+)$`).FindSubmatch(read(t, "systemd", "eipd.env")); m != nil {
		if handoff, err = time.ParseDuration(string(m[1])); err != nil {
			t.Fatal(err)
		}
	}
	if stop <= handoff {
		t.Errorf("TimeoutStopSec %v must exceed the handoff stop timeout %v", stop, handoff)
	}
}

// envNames is the `eipd run` environment from the daemon's interface, plus
// what the daemon's code declares (codeFiles: package main, the command
// packages and internal/config): every EIPD_* literal, and EIPD_<NAME> for
// each row of its flag table ({"flag-name", default, usage, func…}), so a
// flag added in code but not documented fails here.
func envNames(t *testing.T) []string {
	names := []string{"EIPD_GROUP", "EIPD_ALLOCATION_ID", "EIPD_HEALTH_CHECK", "EIPD_LISTEN",
		"EIPD_CONTROL", "EIPD_HEALTH_INTERVAL", "EIPD_HEALTH_TIMEOUT", "EIPD_HEALTH_RISE",
		"EIPD_HEALTH_FALL", "EIPD_PROBE_INTERVAL", "EIPD_PROBE_FALL", "EIPD_RENEW_INTERVAL",
		"EIPD_LEASE_DURATION", "EIPD_MAX_CLOCK_SKEW", "EIPD_ADDRESS_POLL", "EIPD_MEMBER_POLL",
		"EIPD_LIFECYCLE_POLL", "EIPD_STOP_TIMEOUT", "EIPD_API_RATE", "EIPD_API_BURST",
		"EIPD_LOG_LEVEL", "EIPD_LOG_FORMAT", "EIPD_DRY_RUN", "EIPD_PPROF"}
	lit := regexp.MustCompile(`^"(EIPD_[A-Z0-9_]+)"$`)
	flagName := regexp.MustCompile(`^"([a-z][a-z0-9]*(-[a-z0-9]+)*)"$`)
	add := func(n string) {
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, f := range codeFiles(t) {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.BasicLit:
				if m := lit.FindStringSubmatch(n.Value); n.Kind == token.STRING && m != nil {
					add(m[1])
				}
			case *ast.CompositeLit:
				if len(n.Elts) < 3 {
					break
				}
				first, ok := n.Elts[0].(*ast.BasicLit)
				if _, fn := n.Elts[len(n.Elts)-1].(*ast.FuncLit); !ok || !fn {
					break
				}
				if m := flagName.FindStringSubmatch(first.Value); m != nil {
					add("EIPD_" + strings.ToUpper(strings.ReplaceAll(m[1], "-", "_")))
				}
			}
			return true
		})
	}
	return names
}

func TestEnvFileDocumentsEveryVariable(t *testing.T) {
	env := read(t, "systemd", "eipd.env")
	for _, name := range envNames(t) {
		if !regexp.MustCompile(`(?m)^#?` + name + `=`).Match(env) {
			t.Errorf("systemd/eipd.env does not document %s", name)
		}
	}
	// systemd reads the file itself: shell syntax would end up in the values.
	for i, line := range strings.Split(string(env), "\n") {
		if strings.HasPrefix(line, "export ") || strings.Contains(line, "$") {
			t.Errorf("eipd.env:%d: shell syntax in a systemd environment file: %q", i+1, line)
		}
	}
}

// ---------------------------------------------------------------- shell

// shellScripts lists tracked files that are shell: *.sh or a sh/bash shebang.
func shellScripts(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command(tool(t, "git"), "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	shebang := regexp.MustCompile(`^#!\s*(/usr/bin/env\s+(-\S+\s+)*)?/?(\S*/)?(sh|bash|dash|ksh)(\s|$)`)
	var files []string
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if f == "" {
			continue
		}
		if strings.HasSuffix(f, ".sh") {
			files = append(files, f)
			continue
		}
		b, err := os.ReadFile(path(f))
		if err != nil {
			continue // deleted in the work tree, or a submodule
		}
		first, _, _ := bytes.Cut(b, []byte("\n"))
		if shebang.Match(first) {
			files = append(files, f)
		}
	}
	return files
}

func TestShellcheck(t *testing.T) {
	sc := tool(t, "shellcheck")
	files := shellScripts(t)
	for _, must := range []string{".ci/run", "systemd/user-data.sh"} {
		if !slices.Contains(files, must) {
			t.Errorf("%s not found among shell scripts %v", must, files)
		}
	}
	cmd := exec.Command(sc, append([]string{"--external-sources"}, files...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck %v: %v\n%s", files, err, out)
	}
	for _, f := range files {
		if out, err := exec.Command("bash", "-n", path(f)).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
}

// userDataParts splits user-data.sh at the end of its settings block.
func userDataParts(t *testing.T) (settings, body string) {
	t.Helper()
	const marker = "# --- end of settings ---\n"
	settings, body, ok := strings.Cut(string(read(t, "systemd", "user-data.sh")), marker)
	if !ok {
		t.Fatalf("user-data.sh: no %q line", strings.TrimSpace(marker))
	}
	return settings, body
}

// settingNames returns the NAME of every NAME=... line.
func settingNames(s string) []string {
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^([A-Z][A-Z0-9_]*)=`).FindAllStringSubmatch(s, -1) {
		names = append(names, m[1])
	}
	return names
}

func TestUserData(t *testing.T) {
	settings, body := userDataParts(t)
	script := settings + body
	if !strings.Contains(settings, "\nset -euo pipefail\n") {
		t.Error("user-data.sh: want set -euo pipefail before the settings")
	}
	for _, name := range []string{"EIPD_BINARY_URL", "EIPD_BINARY_SHA256_AMD64", "EIPD_BINARY_SHA256_ARM64",
		"EIPD_ALLOW_UNVERIFIED", "EIPD_GROUP", "EIPD_LISTEN", "EIPD_LIFECYCLE_HOOK", "EIPD_READY_TIMEOUT"} {
		if !slices.Contains(settingNames(settings), name) {
			t.Errorf("user-data.sh settings lack %s", name)
		}
	}
	for _, want := range []string{
		"aws s3 cp",                           // s3:// sources
		"sha256sum",                           // verify and skip when unchanged
		"cmp -s",                              // replace files only when they differ
		"systemctl enable --now eipd.service", // start now and at boot
		"/readyz",                             // wait for ready
		`envfile=$root/etc/default/eipd`,      // settings go where the unit reads them
		`unit=$root/etc/systemd/system/eipd.service`, // the unit
		`bin=$root/usr/local/bin/eipd`,               // where ExecStart runs it
		`root=${EIPD_INSTALL_ROOT:-}`,                // / unless a test says otherwise
		`echo "EIPD_GROUP=$EIPD_GROUP"`,              // the env file is written from the settings
	} {
		if !strings.Contains(script, want) {
			t.Errorf("user-data.sh lacks %q", want)
		}
	}

	// The unit is embedded verbatim: user-data must install what is reviewed
	// and checked above, not a copy that drifts.
	_, rest, ok := strings.Cut(body, "<<'UNIT'\n")
	if !ok {
		t.Fatal("user-data.sh: no <<'UNIT' heredoc")
	}
	embedded, _, ok := strings.Cut(rest, "\nUNIT\n")
	if !ok {
		t.Fatal("user-data.sh: UNIT heredoc not closed")
	}
	if unit := string(read(t, "systemd", "eipd.service")); embedded+"\n" != unit {
		t.Error("the unit embedded in user-data.sh differs from systemd/eipd.service; paste it again")
	}
}

// ---------------------------------------------------------------- ECS

// decodeStrict decodes JSON into v refusing unknown fields, and then checks
// every object key against the exact wire name of the field it landed in.
// encoding/json matches names case-insensitively, so "Family" or "FAMILY"
// would pass DisallowUnknownFields while `aws ecs register-task-definition
// --cli-input-json` rejects them. The SDK structs have no json tags; the ECS
// wire name of field Xyz is xyz (lower-case first letter), which the CLI
// confirms in TestECSAcceptedByCLI.
func decodeStrict(t *testing.T, data []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode into %T: %v", v, err)
	}
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, e := range keyErrors("$", raw, reflect.TypeOf(v)) {
		t.Error(e)
	}
}

func wireName(f reflect.StructField) string {
	if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag != "" && tag != "-" {
		return tag
	}
	return strings.ToLower(f.Name[:1]) + f.Name[1:]
}

// keyErrors lists the keys of raw that are not the exact wire name of a field
// of typ, recursively.
func keyErrors(at string, raw any, typ reflect.Type) []string {
	var errs []string
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	switch typ.Kind() {
	case reflect.Struct:
		obj, ok := raw.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s: want an object for %s", at, typ)}
		}
		fields := map[string]reflect.StructField{}
		for i := range typ.NumField() {
			if f := typ.Field(i); f.IsExported() {
				fields[wireName(f)] = f
			}
		}
		for k, v := range obj {
			f, ok := fields[k]
			if !ok {
				errs = append(errs, fmt.Sprintf("%s.%s: no field with this exact name in %s", at, k, typ))
				continue
			}
			errs = append(errs, keyErrors(at+"."+k, v, f.Type)...)
		}
	case reflect.Slice:
		if arr, ok := raw.([]any); ok {
			for i, v := range arr {
				errs = append(errs, keyErrors(fmt.Sprintf("%s[%d]", at, i), v, typ.Elem())...)
			}
		}
	case reflect.Map:
		// Keys are user data (log driver options): only the values have a shape.
		if obj, ok := raw.(map[string]any); ok {
			for k, v := range obj {
				errs = append(errs, keyErrors(at+"["+k+"]", v, typ.Elem())...)
			}
		}
	}
	return errs
}

func TestECSStrictDecodeRejectsMiscasedKeys(t *testing.T) {
	// The checker itself must catch what encoding/json lets through.
	typ := reflect.TypeOf(ecs.RegisterTaskDefinitionInput{})
	bad := map[string]any{"family": "x", "containerDefinitions": []any{map[string]any{"Name": "eipd"}}}
	if errs := keyErrors("$", bad, typ); len(errs) != 1 || !strings.Contains(errs[0], "containerDefinitions[0].Name") {
		t.Errorf("keyErrors = %q, want one error for containerDefinitions[0].Name", errs)
	}
	good := map[string]any{"family": "x", "containerDefinitions": []any{map[string]any{"name": "eipd",
		"logConfiguration": map[string]any{"options": map[string]any{"Any-Key": "v"}}}}}
	if errs := keyErrors("$", good, typ); len(errs) != 0 {
		t.Errorf("keyErrors = %q for wire names and free-form option keys", errs)
	}
	var in ecs.RegisterTaskDefinitionInput
	if err := json.Unmarshal([]byte(`{"FAMILY":"x"}`), &in); err != nil || in.Family == nil {
		t.Fatalf("premise: encoding/json should match FAMILY case-insensitively: %v", err)
	}
}

func taskDefinition(t *testing.T) ecs.RegisterTaskDefinitionInput {
	var td ecs.RegisterTaskDefinitionInput
	decodeStrict(t, read(t, "deploy", "ecs", "task-definition.json"), &td)
	return td
}

func TestECSTaskDefinition(t *testing.T) {
	td := taskDefinition(t)
	if td.NetworkMode != "host" {
		t.Errorf("networkMode %q, want host (IMDS hop limit 1, peers reach :9380)", td.NetworkMode)
	}
	if len(td.RequiresCompatibilities) != 1 || td.RequiresCompatibilities[0] != "EC2" {
		t.Errorf("requiresCompatibilities %v, want [EC2]", td.RequiresCompatibilities)
	}
	if len(td.ContainerDefinitions) != 1 {
		t.Fatalf("%d containers, want 1", len(td.ContainerDefinitions))
	}
	c := td.ContainerDefinitions[0]
	if c.Essential == nil || !*c.Essential {
		t.Error("container not essential")
	}
	if c.Memory == nil || *c.Memory > 256 {
		t.Errorf("memory %v, want a hard limit of at most 256 MiB", c.Memory)
	}
	if c.ReadonlyRootFilesystem == nil || !*c.ReadonlyRootFilesystem {
		t.Error("readonlyRootFilesystem not set")
	}
	if c.Privileged != nil && *c.Privileged {
		t.Error("privileged container")
	}
	if c.StopTimeout == nil || *c.StopTimeout <= 20 {
		t.Errorf("stopTimeout %v, want more than the 20s handoff", c.StopTimeout)
	}
	// No shell in the image: CMD form running the binary itself.
	if c.HealthCheck == nil || !slices.Equal(c.HealthCheck.Command, []string{"CMD", "/eipd", "healthcheck"}) {
		t.Errorf("healthCheck %+v, want command [CMD /eipd healthcheck]", c.HealthCheck)
	}
	if c.LogConfiguration == nil || c.LogConfiguration.LogDriver == "" {
		t.Error("no logConfiguration")
	}
	// The root file system is read-only; the control socket lives in
	// /run/eipd, a tmpfs the container's user owns.
	uid, _, _ := strings.Cut(aws.ToString(c.User), ":")
	if lp := c.LinuxParameters; lp == nil || !slices.ContainsFunc(lp.Tmpfs, func(m ecstypes.Tmpfs) bool {
		return aws.ToString(m.ContainerPath) == "/run/eipd" && slices.Contains(m.MountOptions, "uid="+uid) && slices.Contains(m.MountOptions, "mode=0700")
	}) {
		t.Errorf("no tmpfs at /run/eipd owned by the container user %q with mode 0700", uid)
	}
	// A placeholder that fails at the first pull, not an image that does not
	// exist presented as a release.
	if img := aws.ToString(c.Image); strings.HasPrefix(img, "ghcr.io/eipd/") || !strings.Contains(img, "REPLACE") {
		t.Errorf("image %q: want an obvious placeholder for the operator's own registry (docs/install.md)", img)
	}
	env := map[string]string{}
	for _, kv := range c.Environment {
		env[*kv.Name] = *kv.Value
	}
	if env["EIPD_GROUP"] == "" {
		t.Error("environment lacks EIPD_GROUP")
	}
	known := envNames(t)
	for k := range env {
		if strings.HasPrefix(k, "EIPD_") && !slices.Contains(known, k) {
			t.Errorf("environment %s is not an eipd variable", k)
		}
	}
}

func service(t *testing.T) ecs.CreateServiceInput {
	var svc ecs.CreateServiceInput
	decodeStrict(t, read(t, "deploy", "ecs", "service.json"), &svc)
	return svc
}

func TestECSService(t *testing.T) {
	svc := service(t)
	if svc.SchedulingStrategy != "DAEMON" {
		t.Errorf("schedulingStrategy %q, want DAEMON", svc.SchedulingStrategy)
	}
	if svc.LaunchType != "EC2" {
		t.Errorf("launchType %q, want EC2", svc.LaunchType)
	}
	if svc.DesiredCount != nil {
		t.Error("desiredCount set on a DAEMON service")
	}
	// The API default for DAEMON is 0%: a redeploy would stop every daemon.
	dc := svc.DeploymentConfiguration
	if dc == nil || dc.MinimumHealthyPercent == nil || *dc.MinimumHealthyPercent != 50 ||
		dc.MaximumPercent == nil || *dc.MaximumPercent != 100 {
		t.Errorf("deploymentConfiguration %+v, want minimumHealthyPercent 50, maximumPercent 100", dc)
	}
	if td := taskDefinition(t); svc.TaskDefinition == nil || *svc.TaskDefinition != *td.Family {
		t.Errorf("taskDefinition %v, want family %q", svc.TaskDefinition, *td.Family)
	}
}

// TestECSAcceptedByCLI runs the AWS CLI's own parameter validation (botocore's
// ECS model) on both files. The endpoint is a closed loopback port, so a valid
// file ends in a connection error and nothing reaches AWS.
func TestECSAcceptedByCLI(t *testing.T) {
	aws := tool(t, "aws")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	endpoint := "http://" + l.Addr().String()
	l.Close()
	for _, c := range []struct{ op, file string }{
		{"register-task-definition", "task-definition.json"},
		{"create-service", "service.json"},
	} {
		abs, err := filepath.Abs(path("deploy", "ecs", c.file))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(aws, "ecs", c.op, "--cli-input-json", "file://"+abs,
			"--endpoint-url", endpoint, "--cli-connect-timeout", "2")
		// Only our AWS_* settings: no profile, credentials or endpoint from the machine.
		cmd.Env = slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "AWS_") })
		cmd.Env = append(cmd.Env,
			"AWS_ACCESS_KEY_ID=test", "AWS_SECRET_ACCESS_KEY=test", "AWS_DEFAULT_REGION=us-east-1",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			"AWS_EC2_METADATA_DISABLED=true", "AWS_MAX_ATTEMPTS=1")
		out, _ := cmd.CombinedOutput()
		if bytes.Contains(out, []byte("Parameter validation failed")) || !bytes.Contains(out, []byte("Could not connect")) {
			t.Errorf("aws ecs %s --cli-input-json %s:\n%s", c.op, c.file, out)
		}
	}
}

// ---------------------------------------------------------------- IAM

type policy struct {
	Version   string
	Statement []statement
}

type statement struct {
	Sid       string
	Effect    string
	Action    stringList
	NotAction stringList
	Resource  stringList
	Condition map[string]map[string]stringList
}

// stringList is an IAM field that is either a string or a list of strings.
type stringList []string

func (s *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(s))
}

func loadPolicy(t *testing.T) policy {
	var p policy
	dec := json.NewDecoder(bytes.NewReader(read(t, "deploy", "iam", "eipd-policy.json")))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("eipd-policy.json: %v", err)
	}
	return p
}

// goFiles parses the non-test Go files of one directory.
func goFiles(t *testing.T, dir string) []*ast.File {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	var files []*ast.File
	for _, n := range names {
		if strings.HasSuffix(n, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, n, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	return files
}

// codeOperations finds the EC2 operations package eip uses: every ec2.XxxInput
// it names (in the client interface, in calls) where Xxx is a method of
// *ec2.Client. This reads the code itself, not a list kept beside it.
func codeOperations(t *testing.T) []string {
	t.Helper()
	return serviceOperations(t, goFiles(t, path("eip")), "github.com/aws/aws-sdk-go-v2/service/ec2", reflect.TypeOf(&ec2.Client{}))
}

// codeActions is every IAM action the daemon's code can call, in any of its
// packages (not the emulator, the tests or the deploy checks): ec2:Xxx and
// autoscaling:Xxx for each XxxInput it names.
func codeActions(t *testing.T) []string {
	t.Helper()
	files := codeFiles(t)
	var actions []string
	for _, op := range serviceOperations(t, files, "github.com/aws/aws-sdk-go-v2/service/ec2", reflect.TypeOf(&ec2.Client{})) {
		actions = append(actions, "ec2:"+op)
	}
	for _, op := range serviceOperations(t, files, "github.com/aws/aws-sdk-go-v2/service/autoscaling", reflect.TypeOf(&autoscaling.Client{})) {
		actions = append(actions, "autoscaling:"+op)
	}
	slices.Sort(actions)
	return actions
}

// codeFiles parses the non-test Go files of the daemon's code: every
// package of the module but the emulator, the end-to-end tests and the
// deploy checks.
func codeFiles(t *testing.T) []*ast.File {
	t.Helper()
	var files []*ast.File
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "ec2sim", "e2e", "deploy", "testdata", ".git", "node_modules":
				return filepath.SkipDir
			}
			files = append(files, goFiles(t, p)...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// serviceOperations finds the operations of one SDK service that files name
// as svc.XxxInput, where Xxx is a method of its client.
func serviceOperations(t *testing.T, files []*ast.File, importPath string, client reflect.Type) []string {
	t.Helper()
	var ops []string
	for _, f := range files {
		name := importName(f, importPath)
		if name == "" {
			continue
		}
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if x, ok := sel.X.(*ast.Ident); !ok || x.Name != name {
				return true
			}
			op, ok := strings.CutSuffix(sel.Sel.Name, "Input")
			if _, isMethod := client.MethodByName(op); ok && isMethod && !slices.Contains(ops, op) {
				ops = append(ops, op)
			}
			return true
		})
	}
	slices.Sort(ops)
	return ops
}

func TestIAMPolicyCoversCode(t *testing.T) {
	p := loadPolicy(t)
	if p.Version != "2012-10-17" {
		t.Errorf("Version %q, want 2012-10-17 (policy variables need it)", p.Version)
	}
	code := codeOperations(t)
	if len(code) == 0 {
		t.Fatal("found no EC2 operations in eip/*.go")
	}
	listed := slices.Sorted(slices.Values(eip.Operations))
	if !slices.Equal(code, listed) {
		t.Errorf("EC2 operations used in eip/*.go %v differ from eip.Operations %v", code, listed)
	}
	// The whole daemon: eip's EC2 calls, preflight's dry runs, the
	// lifecycle hook's DescribeInstances and CompleteLifecycleAction.
	want := map[string]bool{}
	all := codeActions(t)
	for _, a := range all {
		want[a] = true
	}
	for _, op := range code {
		if !want["ec2:"+op] {
			t.Fatalf("codeActions %v misses eip's ec2:%s", all, op)
		}
	}
	if !want["autoscaling:CompleteLifecycleAction"] {
		t.Fatalf("codeActions %v misses the lifecycle hook's autoscaling:CompleteLifecycleAction", all)
	}
	if !want["autoscaling:SetInstanceHealth"] {
		t.Fatalf("codeActions %v misses --asg-health's autoscaling:SetInstanceHealth", all)
	}
	granted := map[string]bool{}
	for _, s := range p.Statement {
		if s.Effect != "Allow" || len(s.NotAction) > 0 {
			t.Errorf("%s: only Allow statements with Action, got Effect=%s NotAction=%v", s.Sid, s.Effect, s.NotAction)
		}
		for _, a := range s.Action {
			if strings.ContainsAny(a, "*?") {
				t.Errorf("%s: wildcard action %q", s.Sid, a)
			}
			if !want[a] {
				t.Errorf("%s: grants %s, which the code never calls", s.Sid, a)
			}
			granted[a] = true
		}
	}
	for a := range want {
		if !granted[a] {
			t.Errorf("policy does not allow %s, which the code calls", a)
		}
	}
}

// importName is the name file f uses for the package at importPath, or "".
func importName(f *ast.File, importPath string) string {
	for _, imp := range f.Imports {
		if imp.Path.Value == strconv.Quote(importPath) {
			if imp.Name != nil {
				return imp.Name.Name
			}
			return importPath[strings.LastIndex(importPath, "/")+1:]
		}
	}
	return ""
}

// eipTagKeys reads package eip: the values of its Tag* constants, and the keys
// of every ec2 types.Tag it builds (the tags it writes). A key that is not a
// Tag* constant cannot be checked against the policy, so it is an error.
func eipTagKeys(t *testing.T) (declared map[string]string, written []string) {
	t.Helper()
	files := goFiles(t, path("eip"))
	declared = map[string]string{}
	for _, f := range files {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if i < len(vs.Values) && strings.HasPrefix(n.Name, "Tag") {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							declared[n.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
		}
	}
	add := func(name string, where ast.Expr) {
		v, ok := declared[name]
		if !ok {
			t.Errorf("eip writes a tag whose key is not a Tag* constant: %s", fmt.Sprint(where))
			return
		}
		if !slices.Contains(written, v) {
			written = append(written, v)
		}
	}
	isStringMap := func(e ast.Expr) bool {
		m, ok := e.(*ast.MapType)
		return ok && fmt.Sprint(m.Key) == "string" && fmt.Sprint(m.Value) == "string"
	}
	for _, f := range files {
		types := importName(f, "github.com/aws/aws-sdk-go-v2/service/ec2/types")
		isTag := func(e ast.Expr) bool {
			sel, ok := e.(*ast.SelectorExpr)
			return ok && types != "" && sel.Sel.Name == "Tag" && fmt.Sprint(sel.X) == types
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			// A function that turns a map of tags into the SDK's form
			// (its only parameter a map[string]string) may build a
			// types.Tag from a key it does not name: the keys written
			// are those of the tag maps below.
			converts := fn.Type.Params != nil && len(fn.Type.Params.List) == 1 && len(fn.Type.Params.List[0].Names) == 1 &&
				isStringMap(fn.Type.Params.List[0].Type)
			var tagLits []*ast.CompositeLit
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				lit, ok := n.(*ast.CompositeLit)
				if !ok {
					return true
				}
				if isTag(lit.Type) {
					tagLits = append(tagLits, lit)
				}
				// []types.Tag{{Key: …}}: the elements' type is elided.
				if arr, ok := lit.Type.(*ast.ArrayType); ok && isTag(arr.Elt) {
					for _, e := range lit.Elts {
						if el, ok := e.(*ast.CompositeLit); ok && el.Type == nil {
							tagLits = append(tagLits, el)
						}
					}
				}
				// map[string]string{TagX: …}: a set of tags to write
				// (GroupLease.Tags, Record.Tags); every key must be a
				// Tag* constant.
				if isStringMap(lit.Type) {
					for _, e := range lit.Elts {
						if kv, ok := e.(*ast.KeyValueExpr); ok {
							id, _ := kv.Key.(*ast.Ident)
							name := ""
							if id != nil {
								name = id.Name
							}
							add(name, kv.Key)
						}
					}
				}
				return true
			})
			for _, lit := range tagLits {
				for _, e := range lit.Elts {
					kv, ok := e.(*ast.KeyValueExpr)
					if !ok || fmt.Sprint(kv.Key) != "Key" {
						continue
					}
					// Key: aws.String(TagX)
					var arg ast.Expr
					if call, ok := kv.Value.(*ast.CallExpr); ok && len(call.Args) == 1 {
						arg = call.Args[0]
					}
					id, _ := arg.(*ast.Ident)
					switch {
					case id != nil && declared[id.Name] != "":
						add(id.Name, kv.Value)
					case converts:
					default:
						t.Errorf("eip writes a tag whose key is not a Tag* constant: %s.Tag in %s at %s", types, fn.Name.Name, fmt.Sprint(kv.Value))
					}
				}
			}
		}
	}
	slices.Sort(written)
	return declared, written
}

func TestIAMPolicyScopesMutations(t *testing.T) {
	groupCond := "aws:ResourceTag/" + eip.TagGroup
	// The policy allows the keys eipd owns: every eip Tag* constant except the
	// operator's (docs/design.md, What is stored in EC2). Each key the code writes must be among them,
	// and the group tag never: the policy's scoping relies on it.
	declared, written := eipTagKeys(t)
	if len(written) == 0 {
		t.Fatal("found no tag writes in eip/*.go")
	}
	var owned []string
	for name, v := range declared {
		if name != "TagGroup" && name != "TagPriority" {
			owned = append(owned, v)
		}
	}
	slices.Sort(owned)
	for _, k := range written {
		if k == eip.TagGroup || k == eip.TagPriority {
			t.Errorf("eip writes the operator's tag %s", k)
		} else if !slices.Contains(owned, k) {
			t.Errorf("eip writes %s, not an eipd-owned tag", k)
		}
	}
	t.Logf("tags eip writes now: %v; eipd-owned: %v", written, owned)
	for _, s := range loadPolicy(t).Statement {
		mutating := slices.ContainsFunc(s.Action, func(a string) bool { return !strings.HasPrefix(a, "ec2:Describe") })
		if !mutating {
			continue
		}
		if len(s.Resource) == 0 || slices.Contains(s.Resource, "*") {
			t.Errorf("%s: mutating statement on Resource %v", s.Sid, s.Resource)
		}
		for _, r := range s.Resource {
			ec2Res := regexp.MustCompile(`^arn:aws:ec2:[^:]*:[^:]*:(elastic-ip|network-interface|instance)/\*$`)
			// CompleteLifecycleAction and SetInstanceHealth: groups only,
			// scoped by their tag, one action per statement (each can be
			// dropped with the flag it serves).
			asgRes := regexp.MustCompile(`^arn:aws:autoscaling:[^:]*:[^:]*:autoScalingGroup:\*:autoScalingGroupName/\*$`)
			asgAction := slices.Equal(s.Action, []string{"autoscaling:CompleteLifecycleAction"}) || slices.Equal(s.Action, []string{"autoscaling:SetInstanceHealth"})
			if !ec2Res.MatchString(r) && !(asgRes.MatchString(r) && asgAction) {
				t.Errorf("%s: unexpected resource %q", s.Sid, r)
			}
		}
		if len(s.Condition["StringEquals"][groupCond]) != 1 {
			t.Errorf("%s: no StringEquals %s condition", s.Sid, groupCond)
		}
		if slices.Contains(s.Action, "ec2:CreateTags") {
			keys := slices.Sorted(slices.Values(s.Condition["ForAllValues:StringEquals"]["aws:TagKeys"]))
			if !slices.Equal(keys, owned) {
				t.Errorf("%s: aws:TagKeys %v, want exactly the eipd-owned keys %v", s.Sid, keys, owned)
			}
			if !slices.Equal(s.Condition["Null"]["aws:TagKeys"], []string{"false"}) {
				t.Errorf("%s: want Null aws:TagKeys false, or an empty key set passes ForAllValues", s.Sid)
			}
		}
	}
}

// ---------------------------------------------------------------- CloudFormation

// cfnLoader turns CloudFormation YAML, short-form tags included, into JSON with
// the long forms (!Ref x → {"Ref": x}, !Sub s → {"Fn::Sub": s}).
const cfnLoader = `
import json, sys, yaml
class L(yaml.SafeLoader): pass
def tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode): v = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode): v = loader.construct_sequence(node, deep=True)
    else: v = loader.construct_mapping(node, deep=True)
    if suffix == "Ref": return {"Ref": v}
    if suffix == "GetAtt" and isinstance(v, str): v = v.split(".", 1)
    if suffix == "Condition": return {"Condition": v}
    return {"Fn::" + suffix: v}
L.add_multi_constructor("!", tag)
json.dump(yaml.load(open(sys.argv[1]), Loader=L), sys.stdout)
`

type cfnTemplate struct {
	Parameters map[string]map[string]any
	Conditions map[string]any
	Rules      map[string]struct {
		RuleCondition any
		Assertions    []struct {
			Assert            any
			AssertDescription string
		}
	}
	Resources map[string]struct {
		Type                string
		Condition           string
		DependsOn           any
		DeletionPolicy      string
		UpdateReplacePolicy string
		CreationPolicy      map[string]any
		UpdatePolicy        map[string]any
		Metadata            map[string]any
		Properties          map[string]any
	}
}

// renderSub renders a Fn::Sub template the way CloudFormation would, with
// every ${Name} (a parameter, an attribute, a pseudo parameter or a variable
// of the list form) replaced by a placeholder: the result is the shell that
// reaches the instance, for shellcheck.
func renderSub(t *testing.T, sub any) string {
	t.Helper()
	tmpl, ok := sub.(string)
	if l, isList := sub.([]any); isList && len(l) == 2 {
		tmpl, ok = l[0].(string)
	}
	if !ok {
		t.Fatalf("Fn::Sub %T: want a string or [string, {vars}]", sub)
	}
	if strings.Contains(tmpl, "${!") {
		t.Fatal("${!Literal} in Fn::Sub: renderSub does not handle it")
	}
	return regexp.MustCompile(`\$\{[A-Za-z0-9:.]+\}`).ReplaceAllString(tmpl, "placeholder")
}

// shellcheckText runs shellcheck and bash -n on a script given as text.
func shellcheckText(t *testing.T, name, script string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool(t, "shellcheck"), "--shell=bash", f).CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", name, err, out)
	}
	if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
		t.Errorf("bash -n %s: %v\n%s", name, err, out)
	}
}

// loadYAMLFile decodes a YAML file (plain YAML, no CloudFormation tags) into
// v through the machine's PyYAML.
func loadYAMLFile(t *testing.T, file string, v any) {
	t.Helper()
	py := tool(t, "python3")
	if err := exec.Command(py, "-c", "import yaml").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PyYAML missing from python3 (required under CI): %v", err)
		}
		t.Skipf("PyYAML missing: %v", err)
	}
	out, err := exec.Command(py, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", file).Output()
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

func loadTemplate(t *testing.T) cfnTemplate {
	t.Helper()
	py := tool(t, "python3")
	if err := exec.Command(py, "-c", "import yaml").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PyYAML missing from python3 (required under CI): %v", err)
		}
		t.Skipf("PyYAML missing: %v", err)
	}
	out, err := exec.Command(py, "-c", cfnLoader, path("deploy", "cloudformation", "eipd.yaml")).Output()
	if err != nil {
		t.Fatalf("parse eipd.yaml: %v", err)
	}
	var tpl cfnTemplate
	if err := json.Unmarshal(out, &tpl); err != nil {
		t.Fatal(err)
	}
	return tpl
}

// dig walks maps and lists: dig(v, "a", 0, "b").
func dig(t *testing.T, v any, keys ...any) any {
	t.Helper()
	for _, k := range keys {
		switch k := k.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				t.Fatalf("dig %v: %T is not an object", keys, v)
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				t.Fatalf("dig %v: no element %d in %T", keys, k, v)
			}
			v = l[k]
		}
	}
	return v
}

// normalize round-trips through JSON so values from different parsers compare.
func normalize(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCloudFormation(t *testing.T) {
	tpl := loadTemplate(t)
	byType := map[string][]string{}
	for name, r := range tpl.Resources {
		byType[r.Type] = append(byType[r.Type], name)
	}
	for _, typ := range []string{"AWS::IAM::Role", "AWS::IAM::InstanceProfile", "AWS::IAM::ManagedPolicy",
		"AWS::EC2::LaunchTemplate", "AWS::AutoScaling::AutoScalingGroup", "AWS::EC2::EIP",
		"AWS::EC2::SecurityGroup", "AWS::EC2::SecurityGroupIngress", "AWS::ECS::Service", "AWS::ECS::TaskDefinition"} {
		if len(byType[typ]) == 0 {
			t.Errorf("no %s resource", typ)
		}
	}
	res := func(typ string) map[string]any {
		t.Helper()
		if len(byType[typ]) != 1 {
			t.Fatalf("want one %s, got %v", typ, byType[typ])
		}
		return tpl.Resources[byType[typ][0]].Properties
	}
	groupTag := map[string]any{"Key": eip.TagGroup, "Value": map[string]any{"Ref": "GroupName"}}

	t.Run("policy equals deploy/iam", func(t *testing.T) {
		var file map[string]any
		if err := json.Unmarshal(read(t, "deploy", "iam", "eipd-policy.json"), &file); err != nil {
			t.Fatal(err)
		}
		got := normalize(t, dig(t, res("AWS::IAM::ManagedPolicy"), "PolicyDocument"))
		if !reflect.DeepEqual(got, file) {
			t.Errorf("policy in the stack differs from deploy/iam/eipd-policy.json:\n got %v\nwant %v", got, file)
		}
		// ${aws:PrincipalTag/eipd:group} needs the tag on every role using it.
		for _, name := range byType["AWS::IAM::Role"] {
			if tags, _ := tpl.Resources[name].Properties["Tags"].([]any); !slices.ContainsFunc(tags, func(v any) bool { return reflect.DeepEqual(v, groupTag) }) {
				t.Errorf("role %s lacks tag %s", name, eip.TagGroup)
			}
		}
	})

	t.Run("launch template", func(t *testing.T) {
		lt := dig(t, res("AWS::EC2::LaunchTemplate"), "LaunchTemplateData")
		md := dig(t, lt, "MetadataOptions")
		if dig(t, md, "HttpTokens") != "required" || dig(t, md, "HttpPutResponseHopLimit") != 1.0 {
			t.Errorf("MetadataOptions %v: want IMDSv2 required, hop limit 1 (host networking)", md)
		}
		tagged := map[string]bool{}
		for _, ts := range dig(t, lt, "TagSpecifications").([]any) {
			if slices.ContainsFunc(dig(t, ts, "Tags").([]any), func(v any) bool { return reflect.DeepEqual(v, groupTag) }) {
				tagged[dig(t, ts, "ResourceType").(string)] = true
			}
		}
		if !tagged["instance"] || !tagged["network-interface"] {
			t.Errorf("launch template tags %v with %s; the policy needs instance and network-interface", tagged, eip.TagGroup)
		}
		// The user data is a prelude (bootstrap, HAProxy, signalling) and
		// one of two branches. The systemd branch renders user-data.sh:
		// settings via Fn::Sub, the body verbatim (no Fn::Sub, which would
		// eat the shell's ${...}).
		parts := dig(t, lt, "UserData", "Fn::Base64", "Fn::Join", 1)
		prelude := renderSub(t, dig(t, parts, 0, "Fn::Sub"))
		branches := dig(t, parts, 1, "Fn::If")
		if dig(t, branches, 0) != "UseEcs" {
			t.Fatalf("user data branches on %v, want UseEcs", dig(t, branches, 0))
		}
		join := dig(t, branches, 2, "Fn::Join", 1)
		settings, body := userDataParts(t)
		if got := dig(t, join, 1); got != body {
			t.Error("user-data body in eipd.yaml differs from systemd/user-data.sh after the settings; paste it again")
		}
		rendered := renderSub(t, dig(t, join, 0, "Fn::Sub"))
		if !strings.HasSuffix(rendered, "# --- end of settings ---\n") {
			t.Error("rendered settings must end with the end-of-settings line")
		}
		// The settings are the part of the heredoc after the prelude.
		_, renderedSettings, ok := strings.Cut(rendered, "<<'EIPD_USER_DATA'\n")
		if !ok {
			t.Fatal("user-data does not write the install script with <<'EIPD_USER_DATA'")
		}
		if got, want := settingNames(renderedSettings), settingNames(settings); !slices.Equal(got, want) {
			t.Errorf("rendered settings %v, want the script's %v", got, want)
		}
		if strings.Contains(body, "\nEIPD_USER_DATA\n") {
			t.Error("the user-data.sh body contains the heredoc delimiter EIPD_USER_DATA")
		}
		tail, _ := dig(t, join, 2).(string)
		if !strings.HasPrefix(tail, "EIPD_USER_DATA\n") {
			t.Errorf("the part after the body must close the heredoc, got %q", tail)
		}
		// The stack is signalled with the install's outcome: HAProxy by
		// cfn-init first, then the script, then cfn-signal with its status.
		systemd := prelude + rendered + body + tail
		ecs := prelude + renderSub(t, dig(t, branches, 1, "Fn::Sub"))
		for name, script := range map[string]string{"systemd": systemd, "ecs": ecs} {
			init := strings.Index(script, "/opt/aws/bin/cfn-init -v --stack placeholder --resource LaunchTemplate --configsets haproxy")
			if init < 0 || !strings.Contains(script, "/opt/aws/bin/cfn-signal -e \"$1\" --stack placeholder --resource ProxyGroup") {
				t.Errorf("%s user-data does not run cfn-init for HAProxy and cfn-signal for ProxyGroup", name)
			}
			if !strings.HasSuffix(script, "signal 0\n") {
				t.Errorf("%s user-data does not end by signalling success", name)
			}
			shellcheckText(t, name+"-user-data.sh", script)
		}
		if !strings.HasSuffix(tail, "bash /usr/local/sbin/eipd-user-data.sh ||\n\tfail \"installing eipd failed (the reason is above, in /var/log/cloud-init-output.log)\"\nsignal 0\n") {
			t.Errorf("systemd user-data must signal the install script's failure, ends %q", tail)
		}
		// The lifecycle hook eipd completes is the group's.
		hook := dig(t, res("AWS::AutoScaling::AutoScalingGroup"), "LifecycleHookSpecificationList", 0, "LifecycleHookName")
		if !strings.Contains(renderedSettings, fmt.Sprintf("\nEIPD_LIFECYCLE_HOOK=%q\n", hook)) {
			t.Errorf("user-data settings do not set EIPD_LIFECYCLE_HOOK=%v", hook)
		}
		ecsEnv := normalize(t, dig(t, res("AWS::ECS::TaskDefinition"), "ContainerDefinitions", 0, "Environment"))
		if !slices.ContainsFunc(ecsEnv.([]any), func(v any) bool {
			return reflect.DeepEqual(v, map[string]any{"Name": "EIPD_LIFECYCLE_HOOK", "Value": hook})
		}) {
			t.Errorf("ECS task environment lacks EIPD_LIFECYCLE_HOOK=%v", hook)
		}
	})

	t.Run("HAProxy", func(t *testing.T) {
		lt := tpl.Resources[byType["AWS::EC2::LaunchTemplate"][0]]
		cfg := dig(t, lt.Metadata, "AWS::CloudFormation::Init", "haproxy", "files", "/etc/haproxy/haproxy.cfg", "content")
		if cfg != string(read(t, "deploy", "haproxy", "haproxy.cfg")) {
			t.Error("haproxy.cfg in eipd.yaml differs from deploy/haproxy/haproxy.cfg; paste it again")
		}
		dropIn := renderSub(t, dig(t, lt.Metadata, "AWS::CloudFormation::Init", "haproxy", "files", "/etc/systemd/system/haproxy.service.d/eipd.conf", "content", "Fn::Sub"))
		for _, v := range haproxyEnv {
			if !strings.Contains(dropIn, "\nEnvironment="+v+"=placeholder\n") {
				t.Errorf("the HAProxy drop-in does not set %s", v)
			}
		}
		svc := dig(t, lt.Metadata, "AWS::CloudFormation::Init", "haproxy", "services", "systemd", "haproxy")
		if dig(t, svc, "enabled") != "true" || dig(t, svc, "ensureRunning") != "true" {
			t.Errorf("cfn-init does not enable and start haproxy: %v", svc)
		}
	})

	t.Run("signals, retention and required sources", func(t *testing.T) {
		asgName := byType["AWS::AutoScaling::AutoScalingGroup"][0]
		asg := tpl.Resources[asgName]
		if got := fmt.Sprint(dig(t, asg.CreationPolicy, "ResourceSignal", "Count")); got != fmt.Sprint(asg.Properties["MinSize"]) {
			t.Errorf("CreationPolicy waits for %s signals, want MinSize %v", got, asg.Properties["MinSize"])
		}
		if dig(t, asg.UpdatePolicy, "AutoScalingRollingUpdate", "WaitOnResourceSignals") != true {
			t.Error("rolling updates do not wait for the instances' signals")
		}
		addr := tpl.Resources[byType["AWS::EC2::EIP"][0]]
		if addr.DeletionPolicy != "Retain" || addr.UpdateReplacePolicy != "Retain" {
			t.Errorf("EIP DeletionPolicy %q UpdateReplacePolicy %q, want Retain for both", addr.DeletionPolicy, addr.UpdateReplacePolicy)
		}
		asgTags, _ := asg.Properties["Tags"].([]any)
		if !slices.ContainsFunc(asgTags, func(v any) bool {
			m, _ := v.(map[string]any)
			return m["Key"] == eip.TagGroup && reflect.DeepEqual(m["Value"], map[string]any{"Ref": "GroupName"})
		}) {
			t.Errorf("the Auto Scaling group lacks the %s tag", eip.TagGroup)
		}
		// No default may point at a release or image that does not exist:
		// the sources are the operator's, and rules refuse an empty one.
		for _, p := range []string{"BinaryUrl", "ContainerImage"} {
			if d := tpl.Parameters[p]["Default"]; d != "" {
				t.Errorf("parameter %s defaults to %v; it must be given (docs/install.md)", p, d)
			}
			asserted := false
			for _, r := range tpl.Rules {
				for _, a := range r.Assertions {
					want := map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": p}, ""}}}}
					asserted = asserted || reflect.DeepEqual(a.Assert, want)
				}
			}
			if !asserted {
				t.Errorf("no rule asserts that %s is not empty", p)
			}
		}
	})

	t.Run("group, EIP and peer ports", func(t *testing.T) {
		asg := res("AWS::AutoScaling::AutoScalingGroup")
		if !reflect.DeepEqual(asg["VPCZoneIdentifier"], map[string]any{"Ref": "SubnetIds"}) {
			t.Errorf("ASG VPCZoneIdentifier %v, want the SubnetIds list (two AZs)", asg["VPCZoneIdentifier"])
		}
		if n, _ := strconv.Atoi(fmt.Sprint(asg["MinSize"])); n < 2 {
			t.Errorf("ASG MinSize %v, want at least 2", asg["MinSize"])
		}
		eipTags := res("AWS::EC2::EIP")["Tags"].([]any)
		if !slices.ContainsFunc(eipTags, func(v any) bool { return reflect.DeepEqual(v, groupTag) }) {
			t.Errorf("EIP tags %v lack %s", eipTags, eip.TagGroup)
		}
		status := false
		for _, name := range byType["AWS::EC2::SecurityGroupIngress"] {
			p := tpl.Resources[name].Properties
			if p["FromPort"] == 9380.0 && p["ToPort"] == 9380.0 && reflect.DeepEqual(p["SourceSecurityGroupId"], p["GroupId"]) {
				status = true
			}
		}
		if !status {
			t.Error("no self-referencing ingress rule for the status port 9380")
		}
	})

	t.Run("ECS matches deploy/ecs", func(t *testing.T) {
		td := taskDefinition(t)
		svc := service(t)
		cfnTD := res("AWS::ECS::TaskDefinition")
		cfnSvc := res("AWS::ECS::Service")
		if cfnTD["NetworkMode"] != string(td.NetworkMode) {
			t.Errorf("NetworkMode %v, want %s", cfnTD["NetworkMode"], td.NetworkMode)
		}
		if got := normalize(t, dig(t, cfnTD, "ContainerDefinitions", 0, "HealthCheck", "Command")); !reflect.DeepEqual(got, normalize(t, td.ContainerDefinitions[0].HealthCheck.Command)) {
			t.Errorf("health check command %v differs from task-definition.json", got)
		}
		tmpfs := normalize(t, dig(t, cfnTD, "ContainerDefinitions", 0, "LinuxParameters", "Tmpfs"))
		if want := normalize(t, td.ContainerDefinitions[0].LinuxParameters.Tmpfs); fmt.Sprint(tmpfs) != fmt.Sprint(want) {
			t.Errorf("Tmpfs %v differs from task-definition.json %v", tmpfs, want)
		}
		if cfnSvc["SchedulingStrategy"] != string(svc.SchedulingStrategy) {
			t.Errorf("SchedulingStrategy %v, want %s", cfnSvc["SchedulingStrategy"], svc.SchedulingStrategy)
		}
		dc := dig(t, cfnSvc, "DeploymentConfiguration")
		if dig(t, dc, "MinimumHealthyPercent") != float64(*svc.DeploymentConfiguration.MinimumHealthyPercent) ||
			dig(t, dc, "MaximumPercent") != float64(*svc.DeploymentConfiguration.MaximumPercent) {
			t.Errorf("DeploymentConfiguration %v differs from service.json", dc)
		}
		for _, typ := range []string{"AWS::ECS::Service", "AWS::ECS::TaskDefinition"} {
			if c := tpl.Resources[byType[typ][0]].Condition; c == "" {
				t.Errorf("%s is not optional (no Condition)", typ)
			}
		}
	})
}

func TestCloudFormationLint(t *testing.T) {
	lint := tool(t, "cfn-lint")
	// Informational checks too: I3011 asks for explicit DeletionPolicy and
	// UpdateReplacePolicy on stateful resources.
	if out, err := exec.Command(lint, "--include-checks", "I", "--", path("deploy", "cloudformation", "eipd.yaml")).CombinedOutput(); err != nil {
		t.Errorf("cfn-lint: %v\n%s", err, out)
	}
}

// ---------------------------------------------------------------- Dockerfile

type instruction struct {
	cmd  string // upper case
	args string
}

// dockerfile parses instructions, joining continuation lines and dropping
// comments. There is no Docker engine on the build machine, so the image is
// not built here; this checks the recipe's properties instead.
func dockerfile(t *testing.T) []instruction {
	t.Helper()
	var out []instruction
	var cur strings.Builder
	for _, line := range strings.Split(string(read(t, "Dockerfile")), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if s, ok := strings.CutSuffix(trimmed, `\`); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := dockerfile(t)
	var stages [][]instruction
	for _, in := range ins {
		if in.cmd == "FROM" {
			stages = append(stages, nil)
		}
		if len(stages) == 0 {
			if in.cmd != "ARG" {
				t.Fatalf("%s before the first FROM", in.cmd)
			}
			continue
		}
		stages[len(stages)-1] = append(stages[len(stages)-1], in)
	}
	if len(stages) < 2 {
		t.Fatalf("%d stages, want a builder and a final stage", len(stages))
	}
	build, final := stages[0], stages[len(stages)-1]

	// The builder runs natively and cross-compiles (multi-arch images
	// without emulation).
	from := strings.Fields(build[0].args)
	if len(from) != 4 || from[0] != "--platform=$BUILDPLATFORM" || from[1] != "golang:1.26" || !strings.EqualFold(from[2], "AS") {
		t.Fatalf("builder FROM %q, want --platform=$BUILDPLATFORM golang:1.26 AS <name>", build[0].args)
	}
	builder := from[3]
	idx := func(pred func(instruction) bool) int { return slices.IndexFunc(build, pred) }
	modCopy := idx(func(i instruction) bool {
		return i.cmd == "COPY" && strings.Contains(i.args, "go.mod") && !strings.Contains(i.args, ". .")
	})
	download := idx(func(i instruction) bool { return i.cmd == "RUN" && strings.Contains(i.args, "go mod download") })
	srcCopy := idx(func(i instruction) bool { return i.cmd == "COPY" && strings.HasPrefix(i.args, ". ") })
	if modCopy < 0 || download < modCopy || srcCopy < download {
		t.Errorf("want COPY go.mod go.sum, RUN go mod download, then COPY . (a dependency layer); got positions %d %d %d", modCopy, download, srcCopy)
	}
	goBuild := idx(func(i instruction) bool { return i.cmd == "RUN" && strings.Contains(i.args, "go build") })
	if goBuild < 0 {
		t.Fatal("no RUN go build")
	}
	for _, want := range []string{"CGO_ENABLED=0", "GOOS=$TARGETOS", "GOARCH=$TARGETARCH", "-trimpath", "-X main.version=${VERSION}", "-X main.revision=${REVISION}"} {
		if !strings.Contains(build[goBuild].args, want) {
			t.Errorf("go build lacks %q: %s", want, build[goBuild].args)
		}
	}
	for _, arg := range []string{"VERSION", "REVISION", "TARGETOS", "TARGETARCH"} {
		if !slices.ContainsFunc(build[:goBuild], func(i instruction) bool {
			return i.cmd == "ARG" && (i.args == arg || strings.HasPrefix(i.args, arg+"="))
		}) {
			t.Errorf("no ARG %s before go build", arg)
		}
	}
	// The -X targets must exist, or the linker silently ignores them.
	vars := map[string]bool{}
	for _, f := range goFiles(t, root) {
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.VAR {
				for _, s := range g.Specs {
					for _, n := range s.(*ast.ValueSpec).Names {
						vars[n.Name] = true
					}
				}
			}
		}
	}
	if !vars["version"] || !vars["revision"] {
		t.Errorf("package main lacks var version or revision for -X")
	}

	if final[0].args != "gcr.io/distroless/static-debian12:nonroot" {
		t.Errorf("final FROM %q, want gcr.io/distroless/static-debian12:nonroot", final[0].args)
	}
	var entry []string
	for _, in := range final {
		switch in.cmd {
		case "USER":
			if u, _, _ := strings.Cut(in.args, ":"); u != "nonroot" && u != "65532" {
				t.Errorf("USER %q, want nonroot", in.args)
			}
		case "ENTRYPOINT":
			if err := json.Unmarshal([]byte(in.args), &entry); err != nil {
				t.Errorf("ENTRYPOINT %q is not exec (JSON) form: %v", in.args, err)
			}
		case "COPY":
			if !strings.Contains(in.args, "--from="+builder) || !strings.HasSuffix(in.args, " /eipd") {
				t.Errorf("final COPY %q, want --from=%s … /eipd", in.args, builder)
			}
		case "RUN", "VOLUME", "HEALTHCHECK":
			// No shell in distroless; nothing written at run time; the health
			// check is the ECS task definition's.
			t.Errorf("final stage has %s %s", in.cmd, in.args)
		}
	}
	if !slices.ContainsFunc(final, func(i instruction) bool { return i.cmd == "USER" }) {
		t.Error("final stage has no USER")
	}
	if !slices.Equal(entry, []string{"/eipd", "run"}) {
		t.Errorf("ENTRYPOINT %v, want [/eipd run]", entry)
	}

	ignore := string(read(t, ".dockerignore"))
	for _, line := range strings.Split(ignore, "\n") {
		if line = strings.TrimSpace(line); slices.Contains([]string{"*", "*.go", "go.mod", "go.sum", "main.go", "eip"}, line) {
			t.Errorf(".dockerignore excludes %q, which the build needs", line)
		}
	}
}
