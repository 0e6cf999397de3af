// Package metrics holds eipd's Prometheus registry and collectors and the
// read-only HTTP server of the status listener (/metrics, /healthz, /readyz,
// /status).
//
// Label values come only from small fixed sets handed to New, so that a bug
// elsewhere can never blow up the number of series: a value outside its set is
// counted under "other" (operation, outcome, reason, kind), and an allocation
// ID beyond MaxAllocations is ignored.
package metrics

import (
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Reasons is the fixed set of failover reasons (eipd_failovers_total{reason}).
// handoff-*: the holder moved the EIP away on purpose; takeover-*: a standby
// took it because the lease was stale or the EIP was unassociated.
var Reasons = []string{
	"handoff-unhealthy",
	"handoff-draining",
	"handoff-shutdown",
	"handoff-manual",
	"handoff-rebalance",
	"takeover-stale",
	"takeover-unassociated",
}

// NoticeKinds is the fixed set of lifecycle notice kinds; it matches
// eip.NoticeKind, which this package may not import.
var NoticeKinds = []string{"spot-interruption", "rebalance", "asg-terminating", "maintenance"}

// ASGHealthOutcomes is the fixed set of outcomes of --asg-health's reports
// (eipd_asg_unhealthy_reports_total{outcome}); it matches
// asghealth.Outcomes, which this package does not import.
var ASGHealthOutcomes = []string{"success", "unauthorized", "not_in_group", "error", "dry_run"}

// Outcomes with a meaning of their own here. The alert rules match on them, so
// package eip must use exactly these strings in eip.Outcomes.
const (
	OutcomeThrottled    = "throttled"
	OutcomeUnauthorized = "unauthorized"
)

// Other replaces a label value outside its fixed set.
const Other = "other"

// MaxAllocations bounds the allocation IDs that get series. eipd manages a
// handful of EIPs; past this, new IDs are ignored rather than growing the
// scrape without limit.
const MaxAllocations = 64

// BuildInfo is exported as the labels of eipd_build_info.
type BuildInfo struct {
	Version   string
	Revision  string
	GoVersion string // runtime.Version() when empty
}

// Metrics owns eipd's registry. All methods are safe for concurrent use and
// never panic on unexpected label values.
type Metrics struct {
	reg *prometheus.Registry

	operations, outcomes, imdsOutcomes, kinds, reasons []string

	mu     sync.Mutex
	allocs []string // allocation IDs with initialised series

	ready           prometheus.Gauge
	healthUp        prometheus.Gauge
	healthDuration  prometheus.Histogram
	healthFailures  prometheus.Counter
	peerProbeUp     *prometheus.GaugeVec
	isHolder        *prometheus.GaugeVec
	handoffBlocked  *prometheus.GaugeVec
	noFreeIP        *prometheus.GaugeVec
	forgotten       prometheus.Counter
	term            *prometheus.GaugeVec
	leaseAge        *prometheus.GaugeVec
	failovers       *prometheus.CounterVec
	failoverSeconds *prometheus.HistogramVec
	ec2Requests     *prometheus.CounterVec
	ec2Duration     *prometheus.HistogramVec
	imdsRequests    *prometheus.CounterVec
	notices         *prometheus.CounterVec
	lastReconcile   prometheus.Gauge
	asgReports      *prometheus.CounterVec
	awsReachable    prometheus.Gauge
	awsLastAnswer   prometheus.Gauge
}

// New builds the registry with the Go and process collectors and every eipd
// collector, and initialises each counter for every known label value so that
// rate() and increase() see the first event. The label sets come in as
// arguments because package eip owns them (eip.Operations, eip.Outcomes,
// eip.IMDSOutcomes); noticeKinds nil means NoticeKinds.
func New(build BuildInfo, allocationIDs []string, operations, outcomes, imdsOutcomes, noticeKinds []string) *Metrics {
	if build.GoVersion == "" {
		build.GoVersion = runtime.Version()
	}
	if noticeKinds == nil {
		noticeKinds = NoticeKinds
	}
	m := &Metrics{
		reg:          prometheus.NewRegistry(),
		operations:   dedupe(operations),
		outcomes:     dedupe(outcomes),
		imdsOutcomes: dedupe(imdsOutcomes),
		kinds:        dedupe(noticeKinds),
		reasons:      slices.Clone(Reasons),

		ready: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eipd_ready",
			Help: "1 when this daemon knows its identity and its own health check is up (what /readyz reports), else 0.",
		}),
		healthUp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eipd_health_up",
			Help: "1 when the local health check is up after rise/fall hysteresis, else 0.",
		}),
		healthDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "eipd_health_check_duration_seconds",
			Help:    "Duration of one run of the local health checks (all URLs), successful or not.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		healthFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eipd_health_check_failures_total",
			Help: "Runs of the local health checks that failed, before rise/fall hysteresis.",
		}),
		peerProbeUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_peer_probe_up",
			Help: "1 when this standby's probe of the instance holding the EIP succeeds after fall hysteresis, else 0. Absent until probed, and while this instance probes nobody for the EIP (it holds it, or the EIP is unassociated).",
		}, []string{"allocation_id"}),
		isHolder: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_is_holder",
			Help: "1 when this instance holds the EIP and AWS confirmed it within a lease duration (role holder on /status), else 0. Summed over instances it must be exactly 1.",
		}, []string{"allocation_id"}),
		handoffBlocked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_handoff_blocked",
			Help: "1 when this instance holds the EIP and should hand it off but no ready target exists, so it keeps it; else 0.",
		}, []string{"allocation_id"}),
		noFreeIP: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_no_free_private_ip",
			Help: "1 when the EIP should be claimed by or handed to a member but no private IP is free for it (EC2 allows one EIP per private IP), so it stays where it is; else 0.",
		}, []string{"allocation_id"}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eipd_eips_forgotten_total",
			Help: "EIPs this daemon stopped managing because the API no longer lists them (released, or no longer tagged for the group).",
		}),
		term: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_term",
			Help: "Lease term (eipd:term tag) of the EIP as last observed; +1 on every change of holder.",
		}, []string{"allocation_id"}),
		leaseAge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_lease_age_seconds",
			Help: "Age of the EIP's lease (now minus the eipd:renewed tag) as last observed. Absent until observed.",
		}, []string{"allocation_id"}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eipd_failovers_total",
			Help: "Moves of the EIP carried out by this instance, by reason (handoff-* from the old holder, takeover-* by the new one).",
		}, []string{"allocation_id", "reason"}),
		failoverSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eipd_failover_duration_seconds",
			Help:    "Time from the decision to move an EIP to the association being confirmed, by reason.",
			Buckets: []float64{.1, .25, .5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30},
		}, []string{"reason"}),
		ec2Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eipd_ec2_requests_total",
			Help: "EC2 API calls by operation and classified outcome, after the SDK's retries.",
		}, []string{"operation", "outcome"}),
		ec2Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "eipd_ec2_request_duration_seconds",
			Help:    "Duration of EC2 API calls including the SDK's retries and the client-side limiter's wait, by operation.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"operation"}),
		imdsRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eipd_imds_requests_total",
			Help: "Instance metadata (IMDSv2) requests by outcome.",
		}, []string{"outcome"}),
		notices: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eipd_lifecycle_notices_total",
			Help: "Lifecycle notices read from instance metadata (spot interruption, rebalance, ASG termination, maintenance), by kind.",
		}, []string{"kind"}),
		lastReconcile: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eipd_last_reconcile_timestamp_seconds",
			Help: "Unix time of the last successful reconcile pass (addresses read, decisions carried out, no EC2 call failed); 0 before the first.",
		}),
		awsReachable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eipd_aws_reachable",
			Help: "0 while the EC2 API does not answer this instance at all (DNS, connection, timeout: AWS state is unknown, so it claims nothing), 1 once it answers (an error included) and before the first call.",
		}),
		awsLastAnswer: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eipd_aws_last_answer_timestamp_seconds",
			Help: "Unix time of the last answer of the EC2 API to this instance (an error included); 0 before the first.",
		}),
		asgReports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eipd_asg_unhealthy_reports_total",
			Help: "Times this instance marked itself Unhealthy in its Auto Scaling group (--asg-health: own health check down for --asg-health-after, no EIP held), by outcome.",
		}, []string{"outcome"}),
	}

	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "eipd_build_info",
		Help: "Always 1; the labels say which eipd build is running.",
		ConstLabels: prometheus.Labels{
			"version":   build.Version,
			"revision":  build.Revision,
			"goversion": build.GoVersion,
		},
	})
	buildInfo.Set(1)

	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		buildInfo,
		m.ready, m.healthUp, m.healthDuration, m.healthFailures, m.peerProbeUp,
		m.isHolder, m.handoffBlocked, m.noFreeIP, m.forgotten, m.term, m.leaseAge,
		m.failovers, m.failoverSeconds,
		m.ec2Requests, m.ec2Duration, m.imdsRequests,
		m.notices, m.lastReconcile, m.asgReports, m.awsReachable, m.awsLastAnswer,
	)
	m.awsReachable.Set(1)

	for _, op := range m.operations {
		m.ec2Duration.WithLabelValues(op)
		for _, out := range m.outcomes {
			m.ec2Requests.WithLabelValues(op, out)
		}
	}
	for _, out := range m.imdsOutcomes {
		m.imdsRequests.WithLabelValues(out)
	}
	for _, k := range m.kinds {
		m.notices.WithLabelValues(k)
	}
	for _, r := range m.reasons {
		m.failoverSeconds.WithLabelValues(r)
	}
	for _, o := range ASGHealthOutcomes {
		m.asgReports.WithLabelValues(o)
	}
	for _, id := range allocationIDs {
		m.allocation(id)
	}
	return m
}

// Registry is what /metrics serves; tests gather from it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// allocation reports whether id may be used as a label value, initialising
// its series the first time. EIPs may be discovered after start (by group
// tag), so IDs are accepted lazily up to MaxAllocations.
func (m *Metrics) allocation(id string) bool {
	if id == "" {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if slices.Contains(m.allocs, id) {
		return true
	}
	if len(m.allocs) >= MaxAllocations {
		return false
	}
	m.allocs = append(m.allocs, id)
	// Zero, not absent: sum by (allocation_id) (eipd_is_holder) == 0 must
	// be able to fire for an EIP nobody holds.
	m.isHolder.WithLabelValues(id).Set(0)
	m.handoffBlocked.WithLabelValues(id).Set(0)
	m.noFreeIP.WithLabelValues(id).Set(0)
	m.term.WithLabelValues(id).Set(0)
	for _, r := range m.reasons {
		m.failovers.WithLabelValues(id, r)
	}
	return true
}

// known returns v if it is in set, else Other.
func known(set []string, v string) string {
	if slices.Contains(set, v) {
		return v
	}
	return Other
}

// ObserveEC2 records one EC2 call (part of eip.Observer).
func (m *Metrics) ObserveEC2(operation, outcome string, d time.Duration) {
	op := known(m.operations, operation)
	out := known(m.outcomes, outcome)
	m.ec2Requests.WithLabelValues(op, out).Inc()
	m.ec2Duration.WithLabelValues(op).Observe(d.Seconds())
}

// ObserveIMDS records one IMDS request (part of eip.Observer).
func (m *Metrics) ObserveIMDS(outcome string) {
	m.imdsRequests.WithLabelValues(known(m.imdsOutcomes, outcome)).Inc()
}

// ObserveHealthCheck records one run of the local checks; err != nil counts
// as a failure. The error text is logged elsewhere, never used as a label.
func (m *Metrics) ObserveHealthCheck(d time.Duration, err error) {
	m.healthDuration.Observe(d.Seconds())
	if err != nil {
		m.healthFailures.Inc()
	}
}

// SetHealthUp sets the own check's state after rise/fall.
func (m *Metrics) SetHealthUp(up bool) { m.healthUp.Set(b2f(up)) }

// SetReady mirrors /readyz.
func (m *Metrics) SetReady(ready bool) { m.ready.Set(b2f(ready)) }

// SetPeerProbeUp sets the standby's view of the holder of allocationID.
func (m *Metrics) SetPeerProbeUp(allocationID string, up bool) {
	if m.allocation(allocationID) {
		m.peerProbeUp.WithLabelValues(allocationID).Set(b2f(up))
	}
}

// ForgetPeerProbe drops eipd_peer_probe_up for allocationID: this instance
// no longer probes anyone for it, and a last value would go stale.
func (m *Metrics) ForgetPeerProbe(allocationID string) {
	m.peerProbeUp.DeleteLabelValues(allocationID)
}

// SetHolder says whether this instance holds allocationID.
func (m *Metrics) SetHolder(allocationID string, holder bool) {
	if m.allocation(allocationID) {
		m.isHolder.WithLabelValues(allocationID).Set(b2f(holder))
	}
}

// SetHandoffBlocked says whether this holder wants to hand allocationID off
// but has no ready target, so it keeps the EIP.
func (m *Metrics) SetHandoffBlocked(allocationID string, blocked bool) {
	if m.allocation(allocationID) {
		m.handoffBlocked.WithLabelValues(allocationID).Set(b2f(blocked))
	}
}

// SetNoFreePrivateIP says whether allocationID has no free private IP to go
// to, so it stays where it is.
func (m *Metrics) SetNoFreePrivateIP(allocationID string, blocked bool) {
	if m.allocation(allocationID) {
		m.noFreeIP.WithLabelValues(allocationID).Set(b2f(blocked))
	}
}

// Forgotten counts an EIP the daemon stopped managing and drops its series,
// so no alert keeps firing about an EIP that no longer exists.
func (m *Metrics) Forgotten(allocationID string) {
	m.forgotten.Inc()
	m.mu.Lock()
	defer m.mu.Unlock()
	i := slices.Index(m.allocs, allocationID)
	if i < 0 {
		return
	}
	m.allocs = slices.Delete(m.allocs, i, i+1)
	l := prometheus.Labels{"allocation_id": allocationID}
	for _, v := range []*prometheus.GaugeVec{m.isHolder, m.handoffBlocked, m.noFreeIP, m.term, m.leaseAge, m.peerProbeUp} {
		v.DeletePartialMatch(l)
	}
	m.failovers.DeletePartialMatch(l)
}

// SetLease records the lease of allocationID as last observed.
func (m *Metrics) SetLease(allocationID string, term int64, age time.Duration) {
	if m.allocation(allocationID) {
		m.term.WithLabelValues(allocationID).Set(float64(term))
		m.leaseAge.WithLabelValues(allocationID).Set(age.Seconds())
	}
}

// Failover records a completed move of allocationID: d runs from the decision
// to the association being confirmed. An unknown reason counts as "other".
func (m *Metrics) Failover(allocationID, reason string, d time.Duration) {
	r := known(m.reasons, reason)
	m.failoverSeconds.WithLabelValues(r).Observe(d.Seconds())
	if m.allocation(allocationID) {
		m.failovers.WithLabelValues(allocationID, r).Inc()
	}
}

// LifecycleNotice counts a lifecycle notice of the given kind.
func (m *Metrics) LifecycleNotice(kind string) {
	m.notices.WithLabelValues(known(m.kinds, kind)).Inc()
}

// SetAWSReachable says whether the EC2 API answered the last call, and when
// it last did (eip.ReachabilityObserver).
func (m *Metrics) SetAWSReachable(reachable bool, lastAnswer time.Time) {
	m.awsReachable.Set(b2f(reachable))
	if !lastAnswer.IsZero() {
		m.awsLastAnswer.Set(float64(lastAnswer.UnixNano()) / 1e9)
	}
}

// ASGUnhealthyReport counts one report of --asg-health (asghealth.Metrics).
func (m *Metrics) ASGUnhealthyReport(outcome string) {
	m.asgReports.WithLabelValues(known(ASGHealthOutcomes, outcome)).Inc()
}

// Reconciled records the end of a completed reconcile pass.
func (m *Metrics) Reconciled(t time.Time) {
	m.lastReconcile.Set(float64(t.UnixNano()) / 1e9)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// dedupe drops empty and repeated values, keeping order.
func dedupe(in []string) []string {
	out := make([]string, 0, len(in))
	for _, v := range in {
		if v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}
