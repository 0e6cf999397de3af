package deploy_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// TestReleaseWorkflow lints the release workflow with actionlint (which also
// runs shellcheck on its run: scripts) and checks what a release must do.
func TestReleaseWorkflow(t *testing.T) {
	lint := tool(t, "actionlint")
	wf := path(".github", "workflows", "release.yml")
	if out, err := exec.Command(lint, wf).CombinedOutput(); err != nil {
		t.Errorf("actionlint: %v\n%s", err, out)
	}

	var doc struct {
		// PyYAML reads the key `on` as YAML 1.1's true.
		On struct {
			Push struct {
				Tags []string
			}
		} `json:"true"`
		Jobs map[string]struct {
			Needs     any
			Container any
			Steps     []struct {
				Name string
				Uses string
				Run  string
			}
		}
	}
	loadYAMLFile(t, wf, &doc)
	if !slices.Equal(doc.On.Push.Tags, []string{"v*"}) {
		t.Errorf("on.push.tags %v, want [v*]", doc.On.Push.Tags)
	}
	test, rel := doc.Jobs["test"], doc.Jobs["release"]
	if rel.Needs != "test" {
		t.Errorf("release needs %v, want the test job", rel.Needs)
	}
	runs := func(steps []struct{ Name, Uses, Run string }) string {
		var b strings.Builder
		for _, s := range steps {
			b.WriteString(s.Run + "\n")
		}
		return b.String()
	}
	if !strings.Contains(runs(test.Steps), "bash .ci/run") {
		t.Error("the test job does not run .ci/run")
	}
	r := runs(rel.Steps)
	for _, want := range []string{
		"make dist VERSION=\"$GITHUB_REF_NAME\"",
		"dist/eipd-linux-amd64 dist/eipd-linux-arm64 dist/SHA256SUMS",
		"docker buildx build --platform linux/amd64,linux/arm64",
		"--tag \"$(cat dist/IMAGE_TAG)\" --push",
	} {
		if !strings.Contains(r, want) {
			t.Errorf("the release job does not run %q", want)
		}
	}
}

// TestCIWorkflow lints the CI workflow and checks that every push and pull
// request runs .ci/run (make check) within CI's 90 minutes.
func TestCIWorkflow(t *testing.T) {
	lint := tool(t, "actionlint")
	wf := path(".github", "workflows", "ci.yml")
	if out, err := exec.Command(lint, wf).CombinedOutput(); err != nil {
		t.Errorf("actionlint: %v\n%s", err, out)
	}
	var doc struct {
		On struct {
			Push        map[string]any
			PullRequest any `json:"pull_request"`
		} `json:"true"`
		Jobs map[string]struct {
			TimeoutMinutes int `json:"timeout-minutes"`
			Steps          []struct{ Run string }
		}
	}
	loadYAMLFile(t, wf, &doc)
	if doc.On.Push == nil {
		t.Error("ci.yml does not run on push")
	}
	check, ok := doc.Jobs["check"]
	if !ok {
		t.Fatal("ci.yml has no check job")
	}
	var runs strings.Builder
	for _, s := range check.Steps {
		runs.WriteString(s.Run + "\n")
	}
	if !strings.Contains(runs.String(), "bash .ci/run") {
		t.Error("the check job does not run .ci/run")
	}
	if check.TimeoutMinutes == 0 || check.TimeoutMinutes > 90 {
		t.Errorf("timeout-minutes %d, want at most 90", check.TimeoutMinutes)
	}
}
