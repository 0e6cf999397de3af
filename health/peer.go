package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// PeerProber answers "is this peer reachable as healthy?" for a standby
// deciding whether the holder has failed (docs/design.md, takeover condition 3).
// It runs the peer forms of the local checks against the peer's private IP
// and asks the peer's eipd for its own view on /status.
//
// A peer counts as healthy when every check that can be aimed at it passes
// and its /status does not say "down". An unreachable /status alone does not
// condemn a peer whose proxy serves: a holder whose daemon died but whose
// HAProxy still serves keeps the EIP. When no check can be aimed at a peer
// (only unix-socket HAProxy checks), /status must answer "up".
type PeerProber struct {
	checks     []Checker // templates; aimed at the peer on each Probe
	statusPort int
	timeout    time.Duration
	client     *http.Client
}

// NewPeerProber returns a prober for checks (the local checks; those that
// cannot be aimed at a peer are skipped). statusPort is the peer eipd's
// status listener port; 0 skips /status. timeout bounds a whole Probe.
func NewPeerProber(checks []Checker, statusPort int, timeout time.Duration) *PeerProber {
	if timeout <= 0 {
		timeout = 500 * time.Millisecond
	}
	var aimable []Checker
	for _, c := range checks {
		if _, ok := ForPeer(c, "127.0.0.1"); ok {
			aimable = append(aimable, c)
		}
	}
	return &PeerProber{checks: aimable, statusPort: statusPort, timeout: timeout, client: newStatusClient()}
}

// newStatusClient is newHTTPClient with keep-alives, for the peers'
// /status. Every standby reads the holder's /status each probe interval: a
// fresh connection per read cost the holder an accept, a goroutine and a
// close a second per standby, a good part of its idle CPU (BenchmarkIdle).
// The checks keep fresh connections, which is what they test; /status is
// the peer's word, and a kept connection to a peer that died or hangs
// fails as a new one would (reset, or the probe timeout). Idle connections
// close well before the status listener's own idle timeout (60 s), so a
// reused one is not being closed by the server at the same moment.
func newStatusClient() *http.Client {
	c := newHTTPClient()
	t := c.Transport.(*http.Transport)
	t.DisableKeepAlives = false
	t.MaxIdleConnsPerHost = 1
	t.IdleConnTimeout = 30 * time.Second
	return c
}

type freshKey struct{}

// WithFreshStatus marks a probe as the last look at a member before an EIP
// is handed to it: the member is asked (/status?fresh=1) to read its own
// ENI's associations from instance metadata before it answers.
func WithFreshStatus(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// FreshStatusWanted reports whether ctx was marked by WithFreshStatus.
func FreshStatusWanted(ctx context.Context) bool {
	v, _ := ctx.Value(freshKey{}).(bool)
	return v
}

// peerView is the part of the peer's /status that the prober reads.
type peerView struct {
	Health         string            `json:"health"`
	Draining       string            `json:"draining"`
	SlotsInUse     []string          `json:"private_ips_in_use"`
	ENIPublicIPs   map[string]string `json:"eni_public_ips"`
	UpForSeconds   float64           `json:"up_for_seconds"`
	DownAgoSeconds *float64          `json:"down_ago_seconds"`
	EIPs           []struct {
		AllocationID string    `json:"allocation_id"`
		Role         string    `json:"role"`
		HandingOff   bool      `json:"handing_off"`
		Term         int64     `json:"term"`
		LeaseRenewed time.Time `json:"lease_renewed"`
	} `json:"eips"`
}

// PeerReport is what a peer's eipd said about itself on /status, when it
// answered: a standby that sees the instance an EIP points at report it as
// holder, healthy, needs no API read to know the same (docs/design.md).
type PeerReport struct {
	// Answered: /status answered with a document the prober could read.
	Answered bool
	Health   string
	// Draining is why the peer is giving its EIPs away, "" when it is not.
	Draining string
	// SlotsInUse are the peer's private IPs that carry an EIP it holds.
	SlotsInUse []string
	// ENIPublicIPs maps the peer's private IPs to the public IP on each,
	// as its instance metadata lists them (nil when it did not say).
	ENIPublicIPs map[string]string
	// Roles maps allocation ID to the peer's role for it ("holder", …).
	Roles map[string]string
	// HandingOff: the EIPs the peer is handing off right now (its call to
	// move one is under way; it writes the lease right after).
	HandingOff map[string]bool
	// Terms maps allocation ID to the term the peer reports.
	Terms map[string]int64
	// Renewed maps allocation ID to the stamp of the peer's last lease
	// renewal, for the EIPs it holds.
	Renewed map[string]time.Time
	// UpFor is how long the peer's own check has been up; DownAgo how
	// long ago it was last down (negative when it never was since start).
	UpFor   time.Duration
	DownAgo time.Duration
}

// Holds reports whether the peer said it holds allocationID.
func (r PeerReport) Holds(allocationID string) bool {
	return r.Answered && r.Roles[allocationID] == "holder"
}

// Probe returns nil when the peer at ip is reachable as healthy, else an
// error saying why not.
func (p *PeerProber) Probe(ctx context.Context, ip string) error {
	_, err := p.Check(ctx, ip)
	return err
}

// Check is Probe that also returns what the peer's /status said.
func (p *PeerProber) Check(ctx context.Context, ip string) (PeerReport, error) {
	if ip == "" {
		return PeerReport{}, errors.New("probe peer: no IP")
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	peerChecks := make([]Checker, 0, len(p.checks))
	for _, c := range p.checks {
		if pc, ok := ForPeer(c, ip); ok {
			peerChecks = append(peerChecks, pc)
		}
	}

	var (
		wg        sync.WaitGroup
		checksErr error
		report    PeerReport
		statusErr error
	)
	wg.Go(func() { checksErr = RunAll(ctx, peerChecks, p.timeout) })
	if p.statusPort > 0 {
		wg.Go(func() { report, statusErr = p.status(ctx, ip) })
	}
	wg.Wait()
	health := report.Health

	if checksErr != nil {
		return report, fmt.Errorf("probe peer %s: %w", ip, checksErr)
	}
	if p.statusPort > 0 && statusErr == nil && health == Down.String() {
		return report, fmt.Errorf("probe peer %s: its eipd reports health down", ip)
	}
	if len(peerChecks) > 0 {
		return report, nil
	}
	// Nothing could be checked directly: only the peer's own word counts.
	switch {
	case p.statusPort == 0:
		return report, fmt.Errorf("probe peer %s: no check can be aimed at a peer and the status port is off", ip)
	case statusErr != nil:
		return report, fmt.Errorf("probe peer %s: %w", ip, statusErr)
	case health != Up.String():
		return report, fmt.Errorf("probe peer %s: its eipd reports health %q, want \"up\"", ip, health)
	}
	return report, nil
}

// status GETs the peer's /status and returns what it says.
func (p *PeerProber) status(ctx context.Context, ip string) (PeerReport, error) {
	u := "http://" + net.JoinHostPort(ip, strconv.Itoa(p.statusPort)) + "/status"
	if FreshStatusWanted(ctx) {
		u += "?fresh=1"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return PeerReport{}, fmt.Errorf("GET %s: %w", u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return PeerReport{}, fmt.Errorf("GET %s: %w", u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return PeerReport{}, fmt.Errorf("GET %s: status %s", u, resp.Status)
	}
	var v peerView
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&v); err != nil {
		return PeerReport{}, fmt.Errorf("GET %s: decode: %w", u, err)
	}
	// Read to the end, so that the connection is reused even if the
	// decoder stopped short of it.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	r := PeerReport{Answered: true, Health: v.Health, Draining: v.Draining, SlotsInUse: v.SlotsInUse, ENIPublicIPs: v.ENIPublicIPs, Roles: map[string]string{}, Terms: map[string]int64{},
		Renewed: map[string]time.Time{}, UpFor: seconds(v.UpForSeconds), DownAgo: -1}
	if v.DownAgoSeconds != nil {
		r.DownAgo = seconds(*v.DownAgoSeconds)
	}
	for _, e := range v.EIPs {
		r.Roles[e.AllocationID] = e.Role
		if e.HandingOff {
			if r.HandingOff == nil {
				r.HandingOff = map[string]bool{}
			}
			r.HandingOff[e.AllocationID] = true
		}
		r.Terms[e.AllocationID] = e.Term
		if !e.LeaseRenewed.IsZero() {
			r.Renewed[e.AllocationID] = e.LeaseRenewed
		}
	}
	return r, nil
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
