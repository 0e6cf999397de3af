package ec2sim

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// MetadataSnapshot is everything one instance's IMDS can answer, taken at the
// moment of a request. The EC2 side builds it from its state under its own
// lock, so the handler never sees a half-updated instance.
type MetadataSnapshot struct {
	InstanceID, AccountID, ImageID, InstanceType, Region, AvailabilityZone, AvailabilityZoneID string
	// PrivateIP is the primary IP of the primary ENI; PublicIP is the EIP
	// associated with it, or "" (then public-ipv4 is a 404, as on AWS).
	PrivateIP, PublicIP string
	PendingTime         time.Time
	// Interfaces in device index order; the first one's MAC is `mac`.
	Interfaces  []InterfaceMetadata
	Role        string // "" → no iam/ tree at all, like an instance without a profile
	Credentials Credentials
	// SpotAction nil → spot/instance-action is a 404 ("not preparing to stop").
	SpotAction *SpotAction
	// Rebalance nil → events/recommendations/rebalance is a 404.
	Rebalance *time.Time
	// TargetLifecycleState "" → 404; otherwise served as plain text.
	TargetLifecycleState string
	// Maintenance holds every event; events whose State is "completed" or
	// "canceled" are served under events/maintenance/history, the others
	// under events/maintenance/scheduled. A list with nothing in it is a 404,
	// not "[]": AWS-PROTOCOL §3.2 could not confirm which one AWS serves, so
	// clients must accept both, and a 404 is the stricter case to test them
	// against (it is also what spot and rebalance do when there is nothing).
	Maintenance []MaintenanceEvent
}

// InterfaceMetadata is one ENI as IMDS lists it under network/interfaces/macs/.
type InterfaceMetadata struct {
	MAC, InterfaceID string
	DeviceIndex      int
	PrivateIPs       []string          // primary first
	PublicIPs        map[string]string // private IP → associated public IP
}

// Credentials are the instance profile's temporary credentials.
type Credentials struct {
	AccessKeyID, SecretAccessKey, Token string
	Expiration                          time.Time
}

// SpotAction is a spot interruption notice.
type SpotAction struct {
	Action string // hibernate, stop or terminate
	Time   time.Time
}

// MaintenanceEvent is one scheduled (or past) maintenance event.
type MaintenanceEvent struct {
	Code, Description, EventID, State string
	NotBefore, NotAfter               time.Time
}

const (
	imdsTokenPath      = "/latest/api/token"
	imdsTTLHeader      = "X-Aws-Ec2-Metadata-Token-Ttl-Seconds"
	imdsTokenHeader    = "X-Aws-Ec2-Metadata-Token"
	imdsMaxTTLSeconds  = 21600
	imdsTimeLayout     = "2006-01-02T15:04:05Z"
	imdsEventLayout    = "2 Jan 2006 15:04:05 GMT"
	imdsCredentialsAge = 6 * time.Hour // how long AWS instance-profile credentials live
)

// imdsVersionSegment matches the dated API versions IMDS accepts besides
// "latest" (e.g. /2021-03-23/meta-data/…).
var imdsVersionSegment = lazyRegexp(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)

type imdsHandler struct {
	src    func() (MetadataSnapshot, bool)
	logger hclog.Logger
	now    func() time.Time

	mu sync.Mutex
	// tokens maps each issued session token to its expiry. The map lives in
	// the handler, so a token is only good at the IMDS of the instance that
	// issued it, as AWS ties the session to the instance.
	tokens map[string]time.Time
}

// newIMDSHandler serves one instance's IMDS in IMDSv2-only ("tokens
// required") mode. src is called once per request; it returns false while the
// instance is not running.
func newIMDSHandler(src func() (MetadataSnapshot, bool), logger hclog.Logger) http.Handler {
	return &imdsHandler{
		src:    src,
		logger: logger,
		now:    time.Now,
		tokens: make(map[string]time.Time),
	}
}

func (h *imdsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	snap, running := h.src()
	if !running {
		h.dropConnection(w, r)
		return
	}
	switch r.Method {
	case http.MethodPut:
		h.serveToken(w, r)
	case http.MethodGet, http.MethodHead:
		if !h.validToken(r.Header.Get(imdsTokenHeader)) {
			writeIMDSError(w, http.StatusUnauthorized)
			return
		}
		h.serveMetadata(w, r, snap)
	default:
		w.Header().Set("Allow", "GET, HEAD, PUT")
		writeIMDSError(w, http.StatusMethodNotAllowed)
	}
}

// dropConnection answers for an instance that is stopped or terminated. On AWS
// no process of such an instance exists to ask; the nearest thing a client
// that is still running can observe is a transport failure, not an HTTP
// status. Closing the connection without a reply gives the SDK a send error
// (retried, then surfaced), exactly the "IMDS unreachable" path a daemon must
// handle; a 503 would instead look like a live but unhealthy IMDS.
func (h *imdsHandler) dropConnection(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2 or a test recorder): the closest stand-in.
		writeIMDSError(w, http.StatusServiceUnavailable)
		return
	}
	h.logger.Debug("imds request while instance not running; dropping connection", "path", r.URL.Path)
	_ = conn.Close()
}

func (h *imdsHandler) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != imdsTokenPath {
		// Versioned token paths (/2021-03-23/api/token) are refused with 403
		// by AWS; any other PUT is not something IMDS allows either.
		writeIMDSError(w, http.StatusForbidden)
		return
	}
	// AWS refuses token requests that went through a proxy, so that a
	// misconfigured reverse proxy on the instance cannot hand out tokens.
	if len(r.Header.Values("X-Forwarded-For")) > 0 {
		writeIMDSError(w, http.StatusForbidden)
		return
	}
	raw := r.Header.Get(imdsTTLHeader)
	ttl, err := strconv.Atoi(strings.TrimSpace(raw))
	if err != nil || ttl < 1 || ttl > imdsMaxTTLSeconds {
		writeIMDSError(w, http.StatusBadRequest)
		return
	}
	token, err := newIMDSToken()
	if err != nil {
		h.logger.Error("generate imds token", "error", err)
		writeIMDSError(w, http.StatusInternalServerError)
		return
	}
	now := h.now()
	h.mu.Lock()
	for t, exp := range h.tokens {
		if !now.Before(exp) {
			delete(h.tokens, t)
		}
	}
	h.tokens[token] = now.Add(time.Duration(ttl) * time.Second)
	h.mu.Unlock()

	// The SDK fails to parse a token reply without the TTL echo and then
	// silently falls back to IMDSv1, so the echo is not optional.
	w.Header().Set(imdsTTLHeader, strconv.Itoa(ttl))
	writeIMDSText(w, token)
}

func (h *imdsHandler) validToken(token string) bool {
	if token == "" {
		return false
	}
	h.mu.Lock()
	exp, ok := h.tokens[token]
	h.mu.Unlock()
	return ok && h.now().Before(exp)
}

func newIMDSToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (h *imdsHandler) serveMetadata(w http.ResponseWriter, r *http.Request, snap MetadataSnapshot) {
	p := strings.TrimPrefix(r.URL.Path, "/")
	if p == "" {
		writeIMDSText(w, "latest")
		return
	}
	version, rest, _ := strings.Cut(p, "/")
	if version != "latest" && !imdsVersionSegment().MatchString(version) {
		writeIMDSError(w, http.StatusNotFound)
		return
	}
	tree := buildIMDSTree(snap, h.now())
	body, ok := tree.lookup(rest)
	if !ok {
		writeIMDSError(w, http.StatusNotFound)
		return
	}
	writeIMDSText(w, body)
}

// imdsTree is the metadata of one snapshot as an ordered list of leaves;
// directories exist only as prefixes of leaves, so a directory with nothing
// in it disappears (a 404), as empty trees do on AWS.
type imdsTree struct {
	leaves []imdsLeaf
	index  map[string]string
}

type imdsLeaf struct{ path, value string }

func (t *imdsTree) add(path, value string) {
	t.leaves = append(t.leaves, imdsLeaf{path, value})
	t.index[path] = value
}

// lookup resolves a path relative to /latest/. A leaf answers with its value;
// a directory (with or without the trailing slash, as AWS accepts both)
// answers with its children, one per line, subdirectories ending in "/".
func (t *imdsTree) lookup(p string) (string, bool) {
	if !strings.HasSuffix(p, "/") {
		if v, ok := t.index[p]; ok {
			return v, true
		}
	}
	dir := strings.TrimSuffix(p, "/")
	if dir != "" {
		dir += "/"
	}
	var children []string
	seen := make(map[string]bool)
	for _, l := range t.leaves {
		rest, ok := strings.CutPrefix(l.path, dir)
		if !ok || rest == "" {
			continue
		}
		child := rest
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			child = rest[:i+1]
		}
		if !seen[child] {
			seen[child] = true
			children = append(children, child)
		}
	}
	if len(children) == 0 {
		return "", false
	}
	return strings.Join(children, "\n"), true
}

func buildIMDSTree(s MetadataSnapshot, now time.Time) *imdsTree {
	t := &imdsTree{index: make(map[string]string)}
	md := func(path, value string) { t.add("meta-data/"+path, value) }

	md("ami-id", s.ImageID)
	md("ami-launch-index", "0")
	if len(s.Interfaces) > 0 {
		md("mac", s.Interfaces[0].MAC)
	}
	md("instance-action", "none")
	md("instance-id", s.InstanceID)
	md("instance-type", s.InstanceType)
	md("local-hostname", privateDNSName(s.PrivateIP, s.Region))
	md("hostname", privateDNSName(s.PrivateIP, s.Region))
	md("local-ipv4", s.PrivateIP)
	if s.PublicIP != "" {
		md("public-ipv4", s.PublicIP)
	}
	md("placement/availability-zone", s.AvailabilityZone)
	md("placement/availability-zone-id", s.AvailabilityZoneID)
	md("placement/region", s.Region)
	md("services/domain", "amazonaws.com")
	md("services/partition", "aws")

	for _, ifc := range s.Interfaces {
		base := "network/interfaces/macs/" + ifc.MAC + "/"
		md(base+"device-number", strconv.Itoa(ifc.DeviceIndex))
		md(base+"interface-id", ifc.InterfaceID)
		md(base+"local-ipv4s", strings.Join(ifc.PrivateIPs, "\n"))
		md(base+"mac", ifc.MAC)
		md(base+"owner-id", s.AccountID)
		var publics []string
		for _, priv := range ifc.PrivateIPs {
			if pub, ok := ifc.PublicIPs[priv]; ok && pub != "" {
				publics = append(publics, pub)
				md(base+"ipv4-associations/"+pub, priv)
			}
		}
		if len(publics) > 0 {
			md(base+"public-ipv4s", strings.Join(publics, "\n"))
		}
	}

	if s.Role != "" {
		c := s.Credentials
		// AWS rotates credentials well before expiry; LastUpdated is when this
		// set was issued, which the snapshot does not carry, so derive it.
		updated := now
		if issued := c.Expiration.Add(-imdsCredentialsAge); !c.Expiration.IsZero() && issued.Before(now) {
			updated = issued
		}
		md("iam/info", mustIMDSJSON(struct {
			Code               string
			LastUpdated        string
			InstanceProfileArn string
			InstanceProfileId  string
		}{
			Code:               "Success",
			LastUpdated:        imdsTime(updated),
			InstanceProfileArn: "arn:aws:iam::" + s.AccountID + ":instance-profile/" + s.Role,
			InstanceProfileId:  "AIPA" + strings.ToUpper(strings.ReplaceAll(s.InstanceID, "-", "")),
		}))
		md("iam/security-credentials/"+s.Role, mustIMDSJSON(struct {
			Code            string
			LastUpdated     string
			Type            string
			AccessKeyId     string
			SecretAccessKey string
			Token           string
			Expiration      string
		}{
			Code:            "Success",
			LastUpdated:     imdsTime(updated),
			Type:            "AWS-HMAC",
			AccessKeyId:     c.AccessKeyID,
			SecretAccessKey: c.SecretAccessKey,
			Token:           c.Token,
			Expiration:      imdsTime(c.Expiration),
		}))
	}

	if a := s.SpotAction; a != nil {
		md("spot/instance-action", mustIMDSJSON(struct {
			Action string `json:"action"`
			Time   string `json:"time"`
		}{a.Action, imdsTime(a.Time)}))
		// The legacy item carries a time only when the instance is to be
		// terminated (user guide, "termination-time").
		if a.Action == "terminate" {
			md("spot/termination-time", imdsTime(a.Time))
		}
	}
	if s.Rebalance != nil {
		md("events/recommendations/rebalance", mustIMDSJSON(struct {
			NoticeTime string `json:"noticeTime"`
		}{imdsTime(*s.Rebalance)}))
	}
	var scheduled, history []MaintenanceEvent
	for _, e := range s.Maintenance {
		if e.State == "completed" || e.State == "canceled" {
			history = append(history, e)
		} else {
			scheduled = append(scheduled, e)
		}
	}
	if len(history) > 0 {
		md("events/maintenance/history", maintenanceJSON(history))
	}
	if len(scheduled) > 0 {
		md("events/maintenance/scheduled", maintenanceJSON(scheduled))
	}
	if s.TargetLifecycleState != "" {
		md("autoscaling/target-lifecycle-state", s.TargetLifecycleState)
	}

	t.add("dynamic/instance-identity/document", mustIMDSJSON(identityDocument{
		AccountID:        s.AccountID,
		Architecture:     "x86_64",
		AvailabilityZone: s.AvailabilityZone,
		ImageID:          s.ImageID,
		InstanceID:       s.InstanceID,
		InstanceType:     s.InstanceType,
		PendingTime:      imdsTime(s.PendingTime),
		PrivateIP:        s.PrivateIP,
		Region:           s.Region,
		Version:          "2017-09-30",
	}))
	return t
}

// identityDocument has the field order and the nulls of the real document
// (AWS-PROTOCOL §3.2).
type identityDocument struct {
	AccountID               string   `json:"accountId"`
	Architecture            string   `json:"architecture"`
	AvailabilityZone        string   `json:"availabilityZone"`
	BillingProducts         []string `json:"billingProducts"`
	DevpayProductCodes      []string `json:"devpayProductCodes"`
	MarketplaceProductCodes []string `json:"marketplaceProductCodes"`
	ImageID                 string   `json:"imageId"`
	InstanceID              string   `json:"instanceId"`
	InstanceType            string   `json:"instanceType"`
	KernelID                *string  `json:"kernelId"`
	PendingTime             string   `json:"pendingTime"`
	PrivateIP               string   `json:"privateIp"`
	RamdiskID               *string  `json:"ramdiskId"`
	Region                  string   `json:"region"`
	Version                 string   `json:"version"`
}

func maintenanceJSON(events []MaintenanceEvent) string {
	type item struct {
		NotBefore   string
		Code        string
		Description string
		EventId     string
		NotAfter    string
		State       string
	}
	items := make([]item, 0, len(events))
	for _, e := range events {
		items = append(items, item{
			NotBefore:   e.NotBefore.UTC().Format(imdsEventLayout),
			Code:        e.Code,
			Description: e.Description,
			EventId:     e.EventID,
			NotAfter:    e.NotAfter.UTC().Format(imdsEventLayout),
			State:       e.State,
		})
	}
	return mustIMDSJSON(items)
}

// mustIMDSJSON marshals values built here from strings only, which cannot
// fail; an error would be a bug in this file, so it yields an empty object
// rather than a panic.
func mustIMDSJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return "{}"
	}
	return string(b)
}

func imdsTime(t time.Time) string { return t.UTC().Format(imdsTimeLayout) }

func privateDNSName(ip, region string) string {
	host := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if region == "us-east-1" {
		return host + ".ec2.internal"
	}
	return host + "." + region + ".compute.internal"
}

func writeIMDSText(w http.ResponseWriter, body string) {
	w.Header().Set("Content-Type", "text/plain")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(body))
}

// writeIMDSError answers with the small XHTML page IMDS uses for errors
// (with its text/html type: only metadata itself is text/plain).
func writeIMDSError(w http.ResponseWriter, code int) {
	title := strconv.Itoa(code) + " - " + http.StatusText(code)
	body := `<?xml version="1.0" encoding="iso-8859-1"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
	"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
 <head>
  <title>` + title + `</title>
 </head>
 <body>
  <h1>` + title + `</h1>
 </body>
</html>
`
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
