package ec2sim

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// asgClient is an Auto Scaling client signing with the given key.
func asgClient(t *testing.T, endpoint string, creds aws.CredentialsProvider) *autoscaling.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return autoscaling.New(autoscaling.Options{
		HTTPClient:   &http.Client{Transport: confBufferedRT{tr}, Timeout: 10 * time.Second},
		Region:       confRegion,
		BaseEndpoint: aws.String(endpoint),
		Credentials:  creds,
		Retryer:      retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = 1 }),
	})
}

func completeInput(group, hook, id, result string) *autoscaling.CompleteLifecycleActionInput {
	return &autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String(group), LifecycleHookName: aws.String(hook),
		InstanceId: aws.String(id), LifecycleActionResult: aws.String(result)}
}

// TestSDKCompleteLifecycleAction: the Auto Scaling SDK client completes a
// termination lifecycle action on the EC2 listener; the simulator records
// it once, refuses what AWS refuses and denies like IAM.
func TestSDKCompleteLifecycleAction(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 2, AutoScalingGroup: "web-asg", LifecycleHooks: []string{"eipd-drain"}})
	info := s.Info()
	ctx := confCtx(t)
	i0, i1 := info.Instances[0].InstanceID, info.Instances[1].InstanceID
	cr, _ := s.Credentials(i0)
	c := asgClient(t, info.EC2Endpoint, credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.Token))

	// Instances carry the group's tag, as Auto Scaling adds it.
	out, err := confClient(t, info.EC2Endpoint, "operator", 1).DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{i0}})
	if err != nil {
		t.Fatal(err)
	}
	tagged := false
	for _, tg := range out.Reservations[0].Instances[0].Tags {
		tagged = tagged || (aws.ToString(tg.Key) == "aws:autoscaling:groupName" && aws.ToString(tg.Value) == "web-asg")
	}
	if !tagged {
		t.Errorf("instance lacks aws:autoscaling:groupName=web-asg: %+v", out.Reservations[0].Instances[0].Tags)
	}

	// No action before the instance is terminating.
	_, err = c.CompleteLifecycleAction(ctx, completeInput("web-asg", "eipd-drain", i0, "CONTINUE"))
	if code, status := confCode(err), confStatus(err); code != "ValidationError" || status != 400 {
		t.Errorf("complete before Terminated: %q/%d (%v)", code, status, err)
	}
	if err := s.SetLifecycleState(i0, "Terminated"); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*autoscaling.CompleteLifecycleActionInput{
		completeInput("other-asg", "eipd-drain", i0, "CONTINUE"),
		completeInput("web-asg", "other-hook", i0, "CONTINUE"),
		completeInput("web-asg", "eipd-drain", i1, "CONTINUE"),
		completeInput("web-asg", "eipd-drain", i0, "MAYBE"),
	} {
		if _, err := c.CompleteLifecycleAction(ctx, bad); confCode(err) != "ValidationError" {
			t.Errorf("%s/%s/%s/%s: want ValidationError, got %v", *bad.AutoScalingGroupName, *bad.LifecycleHookName, *bad.InstanceId, *bad.LifecycleActionResult, err)
		}
	}
	if err := s.SetInstanceFaults(i0, Faults{Deny: []string{"CompleteLifecycleAction"}}); err != nil {
		t.Fatal(err)
	}
	_, err = c.CompleteLifecycleAction(ctx, completeInput("web-asg", "eipd-drain", i0, "CONTINUE"))
	if code, status := confCode(err), confStatus(err); code != "AccessDenied" || status != 403 {
		t.Errorf("denied: %q/%d (%v)", code, status, err)
	}
	s.ClearFaults()
	before := time.Now()
	if _, err := c.CompleteLifecycleAction(ctx, completeInput("web-asg", "eipd-drain", i0, "CONTINUE")); err != nil {
		t.Fatalf("complete: %v", err)
	}
	if _, err := c.CompleteLifecycleAction(ctx, completeInput("web-asg", "eipd-drain", i0, "CONTINUE")); confCode(err) != "ValidationError" {
		t.Errorf("second completion: want ValidationError, got %v", err)
	}
	acts := s.LifecycleActions()
	if len(acts) != 1 || acts[0].Completed == nil || acts[0].Completed.Before(before) || acts[0].Result != "CONTINUE" ||
		acts[0].Caller != i0 || acts[0].InstanceID != i0 || acts[0].Hook != "eipd-drain" || acts[0].Group != "web-asg" {
		t.Errorf("recorded actions: %+v", acts)
	}
	var viaControl []LifecycleAction
	resp, err := http.Get(info.ControlEndpoint + "/lifecycle-actions")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&viaControl)
	resp.Body.Close()
	if err != nil || len(viaControl) != 1 || viaControl[0].Result != "CONTINUE" {
		t.Errorf("GET /_sim/lifecycle-actions: %+v %v", viaControl, err)
	}
	if st := s.Stats(); st.ByOutcome["CompleteLifecycleAction"]["ok"] != 1 {
		t.Errorf("stats: %+v", st.ByOutcome)
	}
}

// TestSDKAutoScalingEndpointFromEnv: AWS_ENDPOINT_URL_AUTO_SCALING set to
// the simulator's one endpoint reaches it through the SDK's default config.
func TestSDKAutoScalingEndpointFromEnv(t *testing.T) {
	s := confStartSim(t, Options{Instances: 1, AutoScalingGroup: "g", LifecycleHooks: []string{"h"}})
	info := s.Info()
	id := info.Instances[0].InstanceID
	empty := filepath.Join(t.TempDir(), "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	for k, v := range map[string]string{
		"AWS_ENDPOINT_URL_AUTO_SCALING": info.EC2Endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT": info.Instances[0].IMDSEndpoint,
		"AWS_REGION": confRegion, "AWS_CONFIG_FILE": empty, "AWS_SHARED_CREDENTIALS_FILE": empty,
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_PROFILE": "",
	} {
		t.Setenv(k, v)
	}
	ctx := confCtx(t)
	cfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetLifecycleState(id, "Terminated"); err != nil {
		t.Fatal(err)
	}
	if _, err := autoscaling.NewFromConfig(cfg).CompleteLifecycleAction(ctx, completeInput("g", "h", id, "ABANDON")); err != nil {
		t.Fatalf("complete through the env endpoint: %v", err)
	}
	if acts := s.LifecycleActions(); len(acts) != 1 || acts[0].Result != "ABANDON" || acts[0].Caller != id {
		t.Errorf("recorded: %+v", acts)
	}
}

// TestSDKSetInstanceHealth: the Auto Scaling SDK client marks an instance
// unhealthy; the simulator takes it out of service as Auto Scaling does
// (target lifecycle state Terminated, its termination lifecycle actions
// started), counts the call under its caller, refuses what AWS refuses and
// denies like IAM.
func TestSDKSetInstanceHealth(t *testing.T) {
	t.Parallel()
	s := confStartSim(t, Options{Instances: 2, AutoScalingGroup: "web-asg", LifecycleHooks: []string{"eipd-drain"}})
	info := s.Info()
	ctx := confCtx(t)
	i0, i1 := info.Instances[0].InstanceID, info.Instances[1].InstanceID
	cr, _ := s.Credentials(i0)
	c := asgClient(t, info.EC2Endpoint, credentials.NewStaticCredentialsProvider(cr.AccessKeyID, cr.SecretAccessKey, cr.Token))
	in := func(id, status string) *autoscaling.SetInstanceHealthInput {
		return &autoscaling.SetInstanceHealthInput{InstanceId: aws.String(id), HealthStatus: aws.String(status), ShouldRespectGracePeriod: aws.Bool(true)}
	}
	lifecycle := func(id string) string {
		snap, ok := s.metadata(id)
		if !ok {
			t.Fatalf("no metadata for %s", id)
		}
		return snap.TargetLifecycleState
	}

	for _, bad := range []struct {
		in   *autoscaling.SetInstanceHealthInput
		want string
	}{
		{in(i0, "Sick"), "Valid instance health states are: [Healthy, Unhealthy]."},
		{in("i-0123456789abcdef0", "Unhealthy"), "No managed instance found for instance ID: i-0123456789abcdef0"},
	} {
		_, err := c.SetInstanceHealth(ctx, bad.in)
		if code, status := confCode(err), confStatus(err); code != "ValidationError" || status != 400 || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s %s: got %q/%d (%v), want ValidationError %q", *bad.in.InstanceId, *bad.in.HealthStatus, code, status, err, bad.want)
		}
	}
	// Healthy changes nothing.
	if _, err := c.SetInstanceHealth(ctx, in(i0, "Healthy")); err != nil {
		t.Fatalf("Healthy: %v", err)
	}
	if got := lifecycle(i0); got != "" {
		t.Errorf("after Healthy, target lifecycle state %q, want none", got)
	}
	if acts := s.LifecycleActions(); len(acts) != 0 {
		t.Errorf("after Healthy, lifecycle actions %+v", acts)
	}

	if err := s.SetInstanceFaults(i0, Faults{Deny: []string{"SetInstanceHealth"}}); err != nil {
		t.Fatal(err)
	}
	_, err := c.SetInstanceHealth(ctx, in(i0, "Unhealthy"))
	if code, status := confCode(err), confStatus(err); code != "AccessDenied" || status != 403 || !strings.Contains(err.Error(), "autoscaling:SetInstanceHealth on resource: arn:aws:autoscaling:") ||
		!strings.Contains(err.Error(), "autoScalingGroupName/web-asg") {
		t.Errorf("denied: %q/%d (%v)", code, status, err)
	}
	if got := lifecycle(i0); got != "" {
		t.Errorf("a denied call changed the target lifecycle state to %q", got)
	}
	s.ClearFaults()

	if _, err := c.SetInstanceHealth(ctx, in(i0, "Unhealthy")); err != nil {
		t.Fatalf("Unhealthy: %v", err)
	}
	if got := lifecycle(i0); got != "Terminated" {
		t.Errorf("after Unhealthy, target lifecycle state %q, want Terminated", got)
	}
	if got := lifecycle(i1); got != "" {
		t.Errorf("the other instance's target lifecycle state is %q", got)
	}
	acts := s.LifecycleActions()
	if len(acts) != 1 || acts[0].InstanceID != i0 || acts[0].Hook != "eipd-drain" || acts[0].Completed != nil {
		t.Errorf("lifecycle actions after Unhealthy: %+v", acts)
	}
	// A repeat keeps the one open action.
	if _, err := c.SetInstanceHealth(ctx, in(i0, "Unhealthy")); err != nil {
		t.Fatalf("Unhealthy again: %v", err)
	}
	if acts := s.LifecycleActions(); len(acts) != 1 {
		t.Errorf("a repeated Unhealthy started another action: %+v", acts)
	}
	st := s.Stats()
	if got := st.ByOutcome["SetInstanceHealth"]; got["ok"] != 3 || got["ValidationError"] != 2 || got["AccessDenied"] != 1 {
		t.Errorf("outcomes of SetInstanceHealth: %v", got)
	}
	if got := st.ByCaller[i0]["SetInstanceHealth"]; got != 6 {
		t.Errorf("calls by %s: %d, want 6", i0, got)
	}

	// Without an Auto Scaling group no instance is managed.
	plain := confStartSim(t, Options{Instances: 1})
	pid := plain.Info().Instances[0].InstanceID
	pc := asgClient(t, plain.Info().EC2Endpoint, credentials.NewStaticCredentialsProvider("AKIDOPERATOR", "secret", ""))
	if _, err := pc.SetInstanceHealth(ctx, in(pid, "Unhealthy")); confCode(err) != "ValidationError" {
		t.Errorf("no group: want ValidationError, got %v", err)
	}
}
