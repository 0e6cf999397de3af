package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
// moves to or from it: the member is asked (/status?fresh=1) to read its
// own ENI's associations from instance metadata before it answers.
func WithFreshStatus(ctx context.Context) context.Context {
	return context.WithValue(ctx, freshKey{}, true)
}

// FreshStatusWanted reports whether ctx was marked by WithFreshStatus.
func FreshStatusWanted(ctx context.Context) bool {
	v, _ := ctx.Value(freshKey{}).(bool)
	return v
}

type coordinatorKey struct{}

type coordinatorClaim struct {
	id, ip string
	epoch  int64
}

// WithCoordinator marks a probe as made by the coordinator id at epoch:
// the member asked (/status?coordinator=id&epoch=n) follows it if it comes
// before the one it follows, and says whom it follows.
func WithCoordinator(ctx context.Context, id string, epoch int64) context.Context {
	return WithCoordinatorAt(ctx, id, "", epoch)
}

// WithCoordinatorAt is WithCoordinator that also tells the member the
// coordinator's private IP (coordinator_ip=), so that it can probe the
// coordinator back without listing the group's instances.
func WithCoordinatorAt(ctx context.Context, id, ip string, epoch int64) context.Context {
	return context.WithValue(ctx, coordinatorKey{}, coordinatorClaim{id: id, ip: ip, epoch: epoch})
}

type fromKey struct{}

// WithFrom marks a probe with the instance ID of the member making it
// (from=): a coordinator probed by a member knows that member holds its
// latest word, and waits for that word to run out before it names another
// holder of an EIP the member held.
func WithFrom(ctx context.Context, instanceID string) context.Context {
	return context.WithValue(ctx, fromKey{}, instanceID)
}

// FromOf is the instance ID WithFrom gave, or "".
func FromOf(ctx context.Context) string {
	v, _ := ctx.Value(fromKey{}).(string)
	return v
}

// CoordinatorIP is the private IP WithCoordinatorAt gave, or "".
func CoordinatorIP(ctx context.Context) string {
	c, _ := ctx.Value(coordinatorKey{}).(coordinatorClaim)
	return c.ip
}

// CoordinatorOf returns the coordinator a probe was marked with
// (WithCoordinator).
func CoordinatorOf(ctx context.Context) (id string, epoch int64, ok bool) {
	c, ok := ctx.Value(coordinatorKey{}).(coordinatorClaim)
	return c.id, c.epoch, ok
}

// peerView is the part of the peer's /status the prober reads itself.
type peerView struct {
	Health string `json:"health"`
}

// PeerReport is what a peer's eipd said on /status, when it answered.
type PeerReport struct {
	// Answered: /status answered with a JSON document.
	Answered bool
	// Status is that document, for the caller to read.
	Status json.RawMessage
	// Health is its "health" field.
	Health string
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
	q := url.Values{}
	if FreshStatusWanted(ctx) {
		q.Set("fresh", "1")
	}
	if from := FromOf(ctx); from != "" {
		q.Set("from", from)
	}
	if id, epoch, ok := CoordinatorOf(ctx); ok {
		q.Set("coordinator", id)
		q.Set("epoch", strconv.FormatInt(epoch, 10))
		if ip := CoordinatorIP(ctx); ip != "" {
			q.Set("coordinator_ip", ip)
		}
	}
	u := "http://" + net.JoinHostPort(ip, strconv.Itoa(p.statusPort)) + "/status"
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	body, err := p.get(ctx, http.MethodGet, u)
	if err != nil {
		return PeerReport{}, err
	}
	var v peerView
	if err := json.Unmarshal(body, &v); err != nil {
		return PeerReport{}, fmt.Errorf("GET %s: decode: %w", u, err)
	}
	return PeerReport{Answered: true, Status: body, Health: v.Health}, nil
}

// maxStatus bounds a peer's answer: a /status of a large group is a few
// KiB.
const maxStatus = 1 << 20

func (p *PeerProber) get(ctx context.Context, method, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStatus))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read: %w", method, u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: status %s: %s", method, u, resp.Status, firstLine(body))
	}
	return body, nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(string(b), "\n")
	return s
}

// CheckVia asks the member at via (its status listener's /probe) to probe
// the member instanceID: a coordinator confirms this way a failed probe
// before it moves an EIP off a member it cannot reach, and learns whether
// that member's eipd still answers others (and what it says it holds).
// answered is false when via itself did not answer usefully (err says
// why); otherwise the answer says what via saw.
func (p *PeerProber) CheckVia(ctx context.Context, via, instanceID string) (a ProbeAnswer, answered bool, err error) {
	if p.statusPort <= 0 {
		return a, false, errors.New("probe via a member: the status port is off")
	}
	u := "http://" + net.JoinHostPort(via, strconv.Itoa(p.statusPort)) + "/probe?" + url.Values{"instance": {instanceID}}.Encode()
	body, err := p.get(ctx, http.MethodGet, u)
	if err != nil {
		return a, false, err
	}
	if err := json.Unmarshal(body, &a); err != nil {
		return a, false, fmt.Errorf("GET %s: decode: %w", u, err)
	}
	return a, true, nil
}

// ProbeAnswer is what /probe answers: whether the member was reachable as
// healthy from the member asked, whether its eipd answered, and the EIPs
// its /status said it holds.
type ProbeAnswer struct {
	InstanceID   string   `json:"instance_id"`
	Reachable    bool     `json:"reachable"`
	Error        string   `json:"error,omitempty"`
	EIPDAnswered bool     `json:"eipd_answered"`
	Holding      []string `json:"holding,omitempty"`
}

// Notify tells the member at ip (POST /notice) that the member from
// changed: it probes that member now. A notice carries no authority.
func (p *PeerProber) Notify(ctx context.Context, ip, from string) error {
	if p.statusPort <= 0 {
		return errors.New("notify: the status port is off")
	}
	u := "http://" + net.JoinHostPort(ip, strconv.Itoa(p.statusPort)) + "/notice?" + url.Values{"from": {from}}.Encode()
	_, err := p.get(ctx, http.MethodPost, u)
	return err
}
