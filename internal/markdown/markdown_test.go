package markdown

import (
	"reflect"
	"testing"
)

func TestAnchor(t *testing.T) {
	for in, want := range map[string]string{
		"EIPDNoHolder":                             "eipdnoholder",
		"Reading `/status`":                        "reading-status",
		"Throttling (RequestLimitExceeded)":        "throttling-requestlimitexceeded",
		"The service does not start under systemd": "the-service-does-not-start-under-systemd",
		"Path 1: systemd unit from user-data":      "path-1-systemd-unit-from-user-data",
		"The binary: S3 or any HTTPS server":       "the-binary-s3-or-any-https-server",
		"eipd_ready and snake_case":                "eipd_ready-and-snake_case",
	} {
		if got := Anchor(in); got != want {
			t.Errorf("Anchor(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnchorsAndLinks(t *testing.T) {
	doc := "# Title\n\n## Alerts\ntext [a](other.md#x) and `[not](a-link.md)`\n" +
		"```\n# not a heading\n[not](in-fence.md)\n```\n## Alerts\n[b](#alerts-1) [c](https://example.com/p)\n"
	want := map[string]bool{"title": true, "alerts": true, "alerts-1": true}
	if got := Anchors(doc); !reflect.DeepEqual(got, want) {
		t.Errorf("Anchors = %v, want %v", got, want)
	}
	wantLinks := []Link{{4, "other.md", "x"}, {10, "", "alerts-1"}, {10, "https://example.com/p", ""}}
	if got := Links(doc); !reflect.DeepEqual(got, wantLinks) {
		t.Errorf("Links = %+v, want %+v", got, wantLinks)
	}
}
