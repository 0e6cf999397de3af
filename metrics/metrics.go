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
	isCoordinator   prometheus.Gauge
	members         prometheus.Gauge
	membersReach    prometheus.Gauge
	disagreements   prometheus.Counter
	isHolder        *prometheus.GaugeVec
	handoffBlocked  *prometheus.GaugeVec
	noFreeIP        *prometheus.GaugeVec
	forgotten       prometheus.Counter
	term            *prometheus.GaugeVec
	leaseAge        prometheus.Gauge
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
		isCoordinator: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eipd_is_coordinator",
			Help: "1 when this instance coordinates its group (holds the group lease and may act: it makes every move), else 0. Summed over a group's instances it must be exactly 1.",
		}),
		members: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eipd_members",
			Help: "On the coordinator: running members of the group (itself included) as its last member list shows them; 0 elsewhere.",
		}),
		membersReach: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eipd_members_reachable",
			Help: "On the coordinator: members its probes reach (itself included); with fewer than half it moves nothing off the ones it cannot reach. 0 elsewhere.",
		}),
		disagreements: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eipd_metadata_disagreements_total",
			Help: "Times this instance's metadata and the coordinator's dated reads disagreed about an EIP on it past a lease duration; the reads won.",
		}),
		isHolder: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_is_holder",
			Help: "1 when the EIP is on this instance and a trusted coordinator confirms it (role holder on /status), else 0. Summed over instances it must be exactly 1.",
		}, []string{"allocation_id"}),
		handoffBlocked: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_handoff_blocked",
			Help: "On the coordinator: 1 when the EIP should leave the member it is on but no member is ready with a free private IP, so it stays; else 0.",
		}, []string{"allocation_id"}),
		noFreeIP: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_no_free_private_ip",
			Help: "On the coordinator: 1 when the EIP should move but no ready member has a private IP free for it (EC2 allows one EIP per private IP), so it stays where it is; else 0.",
		}, []string{"allocation_id"}),
		forgotten: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "eipd_eips_forgotten_total",
			Help: "EIPs this daemon stopped managing because the API no longer lists them (released, or no longer tagged for the group).",
		}),
		term: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "eipd_term",
			Help: "Term of the EIP's last move (eipd:term, epoch.seq) as this instance last learnt it, as epoch × 1000000 + seq: it grows with every move and every new coordinator.",
		}, []string{"allocation_id"}),
		leaseAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "eipd_lease_age_seconds",
			Help: "On the coordinator: time since the start of its last successful renewal of the group lease; 0 elsewhere.",
		}),
		failovers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "eipd_failovers_total",
			Help: "Moves of the EIP to this instance, by reason, counted by the instance the EIP moved to once the coordinator confirms it there (handoff-*: the member it left wanted it gone; takeover-*: it was lost or unassociated).",
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
		m.ready, m.healthUp, m.healthDuration, m.healthFailures, m.isCoordinator, m.members, m.membersReach, m.disagreements,
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

// SetCoordinator says whether this instance coordinates its group.
func (m *Metrics) SetCoordinator(on bool) { m.isCoordinator.Set(b2f(on)) }

// SetMembers records, on the coordinator, how many members its probes
// reach and how many run.
func (m *Metrics) SetMembers(reachable, total int) {
	m.membersReach.Set(float64(reachable))
	m.members.Set(float64(total))
}

// MetadataDisagreement counts a disagreement between instance metadata and
// the coordinator's reads.
func (m *Metrics) MetadataDisagreement() { m.disagreements.Inc() }

// SetLeaseAge records the age of the group lease's last renewal.
func (m *Metrics) SetLeaseAge(d time.Duration) { m.leaseAge.Set(d.Seconds()) }

// SetTerm records the term (epoch.seq) of allocationID's last move.
func (m *Metrics) SetTerm(allocationID string, epoch, seq int64) {
	if m.allocation(allocationID) {
		m.term.WithLabelValues(allocationID).Set(float64(epoch)*1e6 + float64(seq))
	}
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
	for _, v := range []*prometheus.GaugeVec{m.isHolder, m.handoffBlocked, m.noFreeIP, m.term} {
		v.DeletePartialMatch(l)
	}
	m.failovers.DeletePartialMatch(l)
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
