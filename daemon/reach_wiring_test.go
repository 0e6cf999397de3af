package daemon

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/ops"
)

// /status and eipd status say, while the EC2 API does not answer, since
// when, why and what to do.
func TestStatusShowsUnreachableAPI(t *testing.T) {
	v := newDaemonView(time.Minute, fakeHealth{s: 0})
	v.started(&fakeLoop{last: time.Now()}, "i-self", nil)
	if d := v.status(context.Background(), nil); d.AWSUnreachable != nil {
		t.Fatalf("unreachable before any call: %+v", d.AWSUnreachable)
	}
	since := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r := eip.Reachability{Known: true, Reachable: true}
	v.watchReachability(func() eip.Reachability { return r })
	if d := v.status(context.Background(), nil); d.AWSUnreachable != nil {
		t.Fatalf("unreachable while it answers: %+v", d.AWSUnreachable)
	}
	r = eip.Reachability{Known: true, Since: since, LastAnswer: since.Add(-time.Minute), Cause: "no answer from ec2.eu-west-1.amazonaws.com (timed out)"}
	d := v.status(context.Background(), nil)
	if d.AWSUnreachable == nil || d.AWSUnreachable.Cause != r.Cause || !d.AWSUnreachable.Since.Equal(since) || !strings.Contains(d.AWSUnreachable.Hint, "VPC interface endpoints") {
		t.Fatalf("aws_unreachable %+v", d.AWSUnreachable)
	}
	var out bytes.Buffer
	ops.PrintStatus(&out, d)
	for _, want := range []string{"EC2 API UNREACHABLE since 2026-12-01T12:00:00Z (last answer 2026-12-01T11:59:00Z): no answer from ec2.eu-west-1.amazonaws.com (timed out)", "VPC interface endpoints"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("eipd status lacks %q:\n%s", want, out.String())
		}
	}
}
