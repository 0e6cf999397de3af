package harness

import (
	"os"
	"path/filepath"
)

// Env is the whole environment of a child: PATH, HOME and nothing that
// could reach real AWS (the SDK's config and credentials files point at an
// empty file in home), then extra.
func Env(home string, extra ...string) []string {
	empty := filepath.Join(home, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	return append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"AWS_CONFIG_FILE=" + empty, "AWS_SHARED_CREDENTIALS_FILE=" + empty,
	}, extra...)
}

// DaemonEnv is Env for a daemon of a simulated instance: the emulator's
// EC2 (and Auto Scaling) endpoint and the instance's own metadata endpoint.
// Credentials come from the instance's (emulated) instance profile, so the
// emulator counts each daemon's calls under its instance.
func DaemonEnv(home, ec2Endpoint, imdsEndpoint, region string, extra ...string) []string {
	return Env(home, append([]string{
		"AWS_ENDPOINT_URL_EC2=" + ec2Endpoint, "AWS_ENDPOINT_URL_AUTO_SCALING=" + ec2Endpoint,
		"AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imdsEndpoint, "AWS_REGION=" + region,
	}, extra...)...)
}
