package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/eipd/eipd/eip"
)

// operatorEC2 is an EC2 client against the emulator with keys it does not
// know: its calls count as the operator's.
func (c *cluster) operatorEC2() *ec2.Client {
	return ec2.New(ec2.Options{
		Region:       c.info.Region,
		BaseEndpoint: aws.String(c.info.EC2Endpoint),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIAOPERATOREXAMPLE", SecretAccessKey: "operator-secret", Source: "e2e"}, nil
		}),
	})
}

func (c *cluster) writeGarbageLease(alloc string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.operatorEC2().CreateTags(ctx, &ec2.CreateTagsInput{
		Resources: []string{alloc},
		Tags: []types.Tag{
			{Key: aws.String("eipd:term"), Value: aws.String("banana")},
			{Key: aws.String("eipd:renewed"), Value: aws.String("yesterday at noon")},
		},
	})
	if err != nil {
		c.t.Fatalf("write garbage lease tags on %s: %v", alloc, err)
	}
	tags := c.address(alloc).Tags
	if tags["eipd:term"] != "banana" && tags["eipd:renewed"] != "yesterday at noon" {
		// Already rewritten by the holder: fine, but say so.
		c.t.Logf("garbage already overwritten: %v", tags)
	}
}

// validLease reports whether alloc carries a fresh group lease (renewed
// by an instance, within 3 s, epoch ≥ 1) and a record that parses and
// names holder.
func (c *cluster) validLease(alloc, holder string) error {
	tags := c.address(alloc).Tags
	term, ok := eip.ParseTerm(tags["eipd:term"])
	if !ok || term.Epoch < 1 || term.Seq < 1 {
		return fmt.Errorf("eipd:term %q", tags["eipd:term"])
	}
	if e, err := strconv.ParseInt(tags["eipd:epoch"], 10, 64); err != nil || e < 1 || tags["eipd:coordinator"] == "" {
		return fmt.Errorf("eipd:coordinator %q eipd:epoch %q", tags["eipd:coordinator"], tags["eipd:epoch"])
	}
	r, err := time.Parse(time.RFC3339Nano, tags["eipd:renewed"])
	if err != nil || time.Since(r) > 3*time.Second {
		return fmt.Errorf("eipd:renewed %q", tags["eipd:renewed"])
	}
	if tags["eipd:holder"] != holder {
		return fmt.Errorf("eipd:holder %q, want %s", tags["eipd:holder"], holder)
	}
	return nil
}

// TestGarbageLeaseRecovers: an operator writes garbage into eipd:term and
// eipd:renewed, once while every daemon runs and once while the
// coordinator's daemon is down (so that whichever coordinates next must
// read and parse it): a valid lease and record are written again each
// time; at most one move in all.
func TestGarbageLeaseRecovers(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	c.steady(alloc)
	mark := c.mark()

	c.writeGarbageLease(alloc)
	waitFor(t, 15*time.Second, "a valid lease again", func() bool {
		h2 := c.holder(alloc)
		return h2 != "" && c.validLease(alloc, h2) == nil
	})

	c.steady(alloc)
	co, _ := c.coordinator(10 * time.Second)
	co.eipd.killWait(t)
	c.writeGarbageLease(alloc)
	co.startDaemon()
	co.waitUp()
	waitFor(t, 15*time.Second, "a valid lease after the coordinator's restart over garbage", func() bool {
		h2 := c.holder(alloc)
		return h2 != "" && c.validLease(alloc, h2) == nil && c.node(h2).role(alloc) == "holder"
	})
	during(t, 3*fastLease, "after garbage lease tags", func() error {
		if m := c.assocsSince(mark, alloc); len(m) > 1 {
			return fmt.Errorf("want at most one move, got:%s", c.eventsSince(mark))
		}
		return nil
	})
	if s := c.stats(); s.ByCaller[""]["CreateTags"] < 2 {
		t.Fatalf("the operator's CreateTags did not reach the emulator: %v", s.ByCaller[""])
	}
}

// scrapeAll scrapes every running daemon.
func (c *cluster) scrapeAll() map[string][]sample {
	out := map[string][]sample{}
	for _, n := range c.nodes {
		if n.eipd == nil || n.eipd.Exited() {
			continue
		}
		ss, err := n.scrape()
		if err != nil {
			c.t.Fatalf("scrape %s: %v", n.id(), err)
		}
		out[n.id()] = ss
	}
	return out
}

func sumOver(all map[string][]sample, name string, labels map[string]string) float64 {
	s := 0.0
	for _, ss := range all {
		s += metricSum(ss, name, labels)
	}
	return s
}

// TestMetricsThreeDaemons (issue 4): one eipd_is_holder per EIP across
// the cluster; a failover shows on the new holder with its reason and
// duration; injected throttling shows in
// eipd_ec2_requests_total{outcome="throttled"}.
func TestMetricsThreeDaemons(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	isHolder := map[string]string{"allocation_id": alloc}
	waitFor(t, 10*time.Second, "sum of eipd_is_holder to be 1", func() bool {
		return sumOver(c.scrapeAll(), "eipd_is_holder", isHolder) == 1
	})
	// The coordinator's gauges: one coordinator; it sees the three
	// members and reaches them; the others say 0. Every member reports
	// the EIP's term as epoch × 1e6 + seq, and that it reaches the API.
	co, _ := c.coordinator(10 * time.Second)
	waitFor(t, 10*time.Second, "the coordinator's gauges", func() bool {
		all := c.scrapeAll()
		if sumOver(all, "eipd_is_coordinator", nil) != 1 || metricSum(all[co.id()], "eipd_is_coordinator", nil) != 1 {
			return false
		}
		for id, ss := range all {
			want := 0.0
			if id == co.id() {
				want = 3
			}
			if metricSum(ss, "eipd_members", nil) != want || metricSum(ss, "eipd_members_reachable", nil) != want {
				return false
			}
		}
		return true
	})
	// Within a probe interval or two of the term's last change: a check
	// that times out on a loaded machine may move the EIP meanwhile (a new
	// term), so the tags and the scrapes are compared until they agree.
	var mismatch string
	agree := func() bool {
		term, ok := eip.ParseTerm(c.address(alloc).Tags["eipd:term"])
		if !ok {
			t.Fatalf("eipd:term %q does not parse", c.address(alloc).Tags["eipd:term"])
		}
		mismatch = ""
		for id, ss := range c.scrapeAll() {
			if got, want := metricSum(ss, "eipd_term", isHolder), float64(term.Epoch*1000000+term.Seq); got != want {
				mismatch += fmt.Sprintf("eipd_term on %s = %v, want %v (term %s); ", id, got, want, term)
			}
			if got := metricSum(ss, "eipd_aws_reachable", nil); got != 1 {
				mismatch += fmt.Sprintf("eipd_aws_reachable on %s = %v, want 1; ", id, got)
			}
		}
		return mismatch == ""
	}
	for deadline := time.Now().Add(10 * time.Second); !agree(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after 10s the members still disagree with the tags: %s", mismatch)
		}
	}
	during(t, 2*time.Second, "steady state", func() error {
		all := c.scrapeAll()
		if s := sumOver(all, "eipd_is_holder", isHolder); s != 1 {
			return fmt.Errorf("sum of eipd_is_holder{allocation_id=%q} = %v", alloc, s)
		}
		if v := metricSum(all[h.id()], "eipd_is_holder", isHolder); v != 1 {
			return fmt.Errorf("the holder %s reports eipd_is_holder %v", h.id(), v)
		}
		return nil
	})

	reason := map[string]string{"allocation_id": alloc, "reason": "handoff-unhealthy"}
	durReason := map[string]string{"reason": "handoff-unhealthy"}
	before := c.scrapeAll()
	mark := c.mark()
	h.killHAProxy()
	waitFor(t, 20*time.Second, "the handoff", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
	to := c.node(c.assocsSince(mark, alloc)[0].To)
	waitFor(t, 15*time.Second, "the new holder's failover metrics", func() bool {
		ss, err := to.scrape()
		if err != nil {
			return false
		}
		return metricSum(ss, "eipd_failovers_total", reason) == metricSum(before[to.id()], "eipd_failovers_total", reason)+1 &&
			metricSum(ss, "eipd_failover_duration_seconds_count", durReason) == metricSum(before[to.id()], "eipd_failover_duration_seconds_count", durReason)+1
	})
	waitFor(t, 10*time.Second, "sum of eipd_is_holder to be 1 on the new holder", func() bool {
		all := c.scrapeAll()
		return sumOver(all, "eipd_is_holder", isHolder) == 1 && metricSum(all[to.id()], "eipd_is_holder", isHolder) == 1
	})

	throttled := map[string]string{"outcome": "throttled"}
	thrBefore := sumOver(c.scrapeAll(), "eipd_ec2_requests_total", throttled)
	// Every call is throttled until the metric shows it: the counter
	// counts calls that ended throttled after the SDK's retries, so a
	// window shorter than one call's retries could end in a success.
	c.setFaults(map[string]any{"throttle_ratio": 1})
	waitFor(t, 30*time.Second, "eipd_ec2_requests_total{outcome=throttled} to count the throttling", func() bool {
		return sumOver(c.scrapeAll(), "eipd_ec2_requests_total", throttled) > thrBefore
	})
	c.clearFaults()
	if s := c.stats(); s.ByAction["CreateTags"]+s.ByAction["DescribeAddresses"] == 0 {
		t.Fatal("no EC2 calls reached the emulator")
	}
}

func TestParseMetrics(t *testing.T) {
	in := "# HELP x y\n# TYPE x counter\nx_total{a=\"1\",b=\"q\\\"x,y\"} 3\nplain 4.5\nh_bucket{le=\"+Inf\"} 2\n"
	ss, err := parseMetrics(stringsReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 3 || ss[0].labels["b"] != "q\"x,y" || ss[0].value != 3 || ss[1].name != "plain" || ss[1].value != 4.5 || ss[2].labels["le"] != "+Inf" {
		t.Fatalf("parsed %+v", ss)
	}
	if metricSum(ss, "x_total", map[string]string{"a": "1"}) != 3 || metricSum(ss, "x_total", map[string]string{"a": "2"}) != 0 {
		t.Fatal("metricSum")
	}
}
func stringsReader(s string) *strings.Reader { return strings.NewReader(s) }
