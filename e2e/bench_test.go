package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Benchmarks run the daemons at their DEFAULT settings (no timing flags)
// and report figures with b.ReportMetric; they assert nothing about speed.
// Run with: go test -run '^$' -bench . -benchtime 1x -timeout 60m ./e2e/
// Each benchmark does its own trials (E2E_TRIALS, default 20) whatever b.N.

var defaults = []string{}

func trials() int {
	if n, err := strconv.Atoi(os.Getenv("E2E_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// percentile is the nearest-rank percentile (with 20 trials p99 is the
// slowest trial).
func percentile(xs []float64, p float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func fmtSeconds(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

// allReady waits until every instance carries eipd:state=ready in the
// emulator, so that a holder's handoff has every member to choose from.
func (c *cluster) allReady(n int) {
	c.t.Helper()
	cl := c.operatorEC2()
	waitFor(c.t, 60*time.Second, "every member tagged eipd:state=ready", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := cl.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{
			{Name: aws.String("tag:eipd:state"), Values: []string{"ready"}},
			{Name: aws.String("instance-state-name"), Values: []string{"running"}},
		}})
		if err != nil {
			return false
		}
		got := 0
		for _, r := range out.Reservations {
			got += len(r.Instances)
		}
		return got == n
	})
}

// failoverBench runs trials of: steady state → fail the holder → time
// until the emulator associates the EIP with another instance → restore.
func failoverBench(b *testing.B, fail func(h *node), restore func(h *node)) {
	c := newCluster(b, clusterOpts{instances: 3, flags: defaults})
	alloc := c.alloc(0)
	c.startAll()
	var ds, ages []float64
	for i := 0; i < trials(); i++ {
		h := c.steady(alloc)
		c.allReady(len(c.nodes))
		// A thawed ex-holder writes one stale renewal (eipd:holder = itself)
		// before it re-reads and steps down; start the trial only once the
		// real holder's own renewal has replaced it, so the lease age at the
		// failure is the natural 0..renew-interval.
		waitFor(b, 60*time.Second, "the holder's own lease renewal", func() bool {
			return c.address(alloc).Tags["eipd:holder"] == h.id()
		})
		// That renewal just happened; fail at a uniformly random point of
		// the renew interval (3 s by default), as a real failure would.
		time.Sleep(rand.N(3 * time.Second))
		mark := c.mark()
		renewed, _ := time.Parse(time.RFC3339Nano, c.address(alloc).Tags["eipd:renewed"])
		t0 := time.Now()
		fail(h)
		ages = append(ages, t0.Sub(renewed).Seconds())
		waitFor(b, 120*time.Second, "the EIP to move off the failed holder", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
		e := c.assocsSince(mark, alloc)[0]
		if e.To == h.id() {
			b.Fatalf("trial %d: associated back to the failed holder:%s", i, c.eventsSince(mark))
		}
		ds = append(ds, e.Time.Sub(t0).Seconds())
		restore(h)
	}
	b.Logf("trials (s): %s", fmtSeconds(ds))
	b.Logf("lease age when the holder failed (s): %s", fmtSeconds(ages))
	b.ReportMetric(percentile(ds, 50), "p50-s")
	b.ReportMetric(percentile(ds, 99), "p99-s")
	b.ReportMetric(percentile(ds, 100), "max-s")
	b.ReportMetric(float64(len(ds)), "trials")
}

// BenchmarkFailoverHAProxyDeath: the holder's HAProxy is killed; time
// until the EIP is associated with a healthy instance (a handoff).
func BenchmarkFailoverHAProxyDeath(b *testing.B) {
	failoverBench(b, func(h *node) { h.killHAProxy() }, func(h *node) { h.restartHAProxy() })
}

// BenchmarkFailoverInstanceDeath: the holder instance hangs (its eipd and
// HAProxy are SIGSTOPped: no renewals, no answers); time until a standby
// has taken the EIP over. The hang is thawed between trials (a terminated
// instance cannot come back in the emulator).
func BenchmarkFailoverInstanceDeath(b *testing.B) {
	failoverBench(b, func(h *node) {
		h.eipd.stop()
		h.haproxy.stop()
	}, func(h *node) {
		h.eipd.cont()
		h.haproxy.cont()
	})
}

// BenchmarkAPICost: steady-state EC2 calls per minute of a whole cluster,
// from the emulator's counters, over one minute after settling. N ≥ 10 use
// a plain TCP listener per instance as health target instead of HAProxy
// (the EC2 calls do not depend on it; the 2-core machine does).
func BenchmarkAPICost(b *testing.B) {
	sizes := []int{3, 10, 30}
	if os.Getenv("E2E_BENCH_N100") == "1" {
		sizes = append(sizes, 100)
	}
	window := time.Minute
	if d, err := time.ParseDuration(os.Getenv("E2E_API_WINDOW")); err == nil && d > 0 {
		window = d
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			c := newCluster(b, clusterOpts{instances: n, flags: defaults, tcpTarget: n >= 10})
			alloc := c.alloc(0)
			c.startAll()
			c.steady(alloc)
			// Settle: start-up reads and eipd:state writes are not steady
			// state.
			time.Sleep(15 * time.Second)
			mark := c.mark()
			s0 := c.stats()
			time.Sleep(window)
			s1 := c.stats()
			if m := c.assocsSince(mark, alloc); len(m) > 0 {
				b.Fatalf("the EIP moved during the measurement:%s", c.eventsSince(mark))
			}
			perMin := func(d int64) float64 { return float64(d) / window.Minutes() }
			mut := int64(0)
			var parts []string
			actions := make([]string, 0, len(s1.ByAction))
			for a := range s1.ByAction {
				actions = append(actions, a)
			}
			sort.Strings(actions)
			for _, a := range actions {
				d := s1.ByAction[a] - s0.ByAction[a]
				if d == 0 {
					continue
				}
				parts = append(parts, fmt.Sprintf("%s=%.1f/min", a, perMin(d)))
				switch a {
				case "AssociateAddress", "DisassociateAddress", "CreateTags", "DeleteTags":
					mut += d
				}
			}
			b.Logf("N=%d over %s: %s", n, window, strings.Join(parts, " "))
			b.ReportMetric(perMin(s1.Total-s0.Total), "calls/min")
			b.ReportMetric(perMin(mut), "mutating-calls/min")
		})
	}
}

// procCPU is utime+stime of pid in seconds (USER_HZ is 100 on Linux).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime/stime", pid)
	}
	return (ut + st) / 100, nil
}

// procRSS is VmRSS of pid in MiB.
func procRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// BenchmarkIdle: resident memory and CPU of the holder's daemon (and of a
// standby's) over one minute of steady state, three instances, defaults.
func BenchmarkIdle(b *testing.B) {
	c := newCluster(b, clusterOpts{instances: 3, flags: defaults})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	sb := c.others(h)[0]
	time.Sleep(10 * time.Second)
	type m struct{ cpu0, rssMax float64 }
	pids := []int{h.eipd.pid(), sb.eipd.pid()}
	ms := make([]m, len(pids))
	for i, p := range pids {
		cpu, err := procCPU(p)
		if err != nil {
			b.Fatal(err)
		}
		ms[i].cpu0 = cpu
	}
	start := time.Now()
	for time.Since(start) < time.Minute {
		time.Sleep(time.Second)
		for i, p := range pids {
			r, err := procRSS(p)
			if err != nil {
				b.Fatal(err)
			}
			ms[i].rssMax = max(ms[i].rssMax, r)
		}
	}
	el := time.Since(start).Seconds()
	cpu := make([]float64, len(pids))
	for i, p := range pids {
		c1, err := procCPU(p)
		if err != nil {
			b.Fatal(err)
		}
		cpu[i] = 100 * (c1 - ms[i].cpu0) / el
	}
	if h.role(alloc) != "holder" {
		b.Fatalf("the holder changed during the measurement")
	}
	b.ReportMetric(ms[0].rssMax, "rss-MiB")
	b.ReportMetric(cpu[0], "cpu-%")
	b.ReportMetric(ms[1].rssMax, "standby-rss-MiB")
	b.ReportMetric(cpu[1], "standby-cpu-%")
}
