package eip

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/hashicorp/go-hclog"
)

// Metadata reads this instance's identity and lifecycle notices from IMDSv2.
type Metadata struct {
	api    IMDSAPI
	log    hclog.Logger
	obs    Observer
	warned onceSet
}

// NewMetadata returns a Metadata. obs may be nil. The api should be built
// with EnableFallback=aws.FalseTernary so that a token failure is an error
// rather than a silent IMDSv1 request.
func NewMetadata(api IMDSAPI, logger hclog.Logger, obs Observer) *Metadata {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if obs == nil {
		obs = nopObserver{}
	}
	return &Metadata{api: api, log: logger, obs: obs}
}

// maxMetadataBody bounds what is read from one metadata item; the largest
// eipd reads is the maintenance event list.
const maxMetadataBody = 1 << 20

// errNoItem is returned by get for a 404: the item is absent.
var errNoItem = errors.New("metadata item absent")

// get reads one metadata item. A 404 returns errNoItem.
func (m *Metadata) get(ctx context.Context, path string) (string, error) {
	out, err := m.api.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		if isNotFound(err) {
			m.obs.ObserveIMDS(IMDSOutcomeNotFound)
			return "", errNoItem
		}
		m.obs.ObserveIMDS(IMDSOutcomeError)
		return "", imdsError("read "+path, err)
	}
	defer out.Content.Close()
	b, err := io.ReadAll(io.LimitReader(out.Content, maxMetadataBody))
	if err != nil {
		m.obs.ObserveIMDS(IMDSOutcomeError)
		return "", imdsError("read "+path, err)
	}
	m.obs.ObserveIMDS(IMDSOutcomeSuccess)
	return strings.TrimSpace(string(b)), nil
}

func isNotFound(err error) bool {
	status, _ := imdsFailure(err)
	return status == 404
}

// imdsError wraps err with ErrIMDS and says what to fix.
func imdsError(what string, err error) error {
	var hint string
	switch status, unreachable := imdsFailure(err); {
	case status == 401:
		hint = "IMDSv2 token rejected (401): the session token is missing, invalid or expired"
	case status == 403:
		hint = "instance metadata refused (403): the metadata service is disabled on this instance (enable it: HttpEndpoint=enabled) or the request is not allowed"
	case status == 404:
		hint = "metadata item not found (404)"
	case errors.Is(err, context.Canceled):
		hint = "canceled"
	case unreachable:
		hint = "instance metadata endpoint unreachable: in a bridge-mode container set the instance metadata hop limit to 2 or run with host networking"
	default:
		hint = "instance metadata unreadable: if this runs in a bridge-mode container, set the instance metadata hop limit to 2 or run with host networking"
	}
	return fmt.Errorf("%s: %w: %s: %w", what, ErrIMDS, hint, err)
}

var statusRE = regexp.MustCompile(`StatusCode: (\d{3})`)

// imdsFailure finds the HTTP status of a failed IMDS call, or whether the
// endpoint could not be reached. The token fetch hides its cause behind an
// error type without Unwrap, so the message is the fallback.
func imdsFailure(err error) (status int, unreachable bool) {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode(), false
	}
	msg := err.Error()
	if m := statusRE.FindStringSubmatch(msg); m != nil {
		status, _ = strconv.Atoi(m[1])
		return status, false
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return 0, true
	}
	for _, s := range []string{"request send failed", "connection refused", "i/o timeout", "no route to host", "network is unreachable", "dial tcp", "deadline exceeded"} {
		if strings.Contains(msg, s) {
			return 0, true
		}
	}
	return 0, false
}

// Identity reads the instance ID, region and AZ (identity document), and the
// device-index-0 ENI (mac → interface-id) with its primary private IPv4.
func (m *Metadata) Identity(ctx context.Context) (Identity, error) {
	var id Identity
	doc, err := m.api.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
	if err != nil {
		m.obs.ObserveIMDS(IMDSOutcomeError)
		return id, imdsError("read instance identity document", err)
	}
	m.obs.ObserveIMDS(IMDSOutcomeSuccess)
	id.InstanceID = doc.InstanceID
	id.Region = doc.Region
	id.AvailabilityZone = doc.AvailabilityZone

	mac, err := m.get(ctx, "mac")
	if err != nil {
		return id, identityErr("mac", err)
	}
	if id.NetworkInterfaceID, err = m.get(ctx, "network/interfaces/macs/"+mac+"/interface-id"); err != nil {
		return id, identityErr("network/interfaces/macs/"+mac+"/interface-id", err)
	}
	if id.PrivateIP, err = m.get(ctx, "local-ipv4"); err != nil {
		return id, identityErr("local-ipv4", err)
	}
	if id.InstanceID == "" || id.Region == "" || id.NetworkInterfaceID == "" || id.PrivateIP == "" {
		return id, fmt.Errorf("read identity: incomplete (instance %q, region %q, interface %q, private IP %q): %w",
			id.InstanceID, id.Region, id.NetworkInterfaceID, id.PrivateIP, ErrIMDS)
	}
	m.log.Debug("read identity", "instance_id", id.InstanceID, "region", id.Region, "az", id.AvailabilityZone,
		"network_interface_id", id.NetworkInterfaceID, "private_ip", id.PrivateIP)
	return id, nil
}

func identityErr(path string, err error) error {
	if errors.Is(err, errNoItem) {
		return fmt.Errorf("read identity: metadata item %s absent: %w", path, ErrIMDS)
	}
	return fmt.Errorf("read identity: %w", err)
}

// maintenanceLayout is the date format of events/maintenance/scheduled.
const maintenanceLayout = "2 Jan 2006 15:04:05 GMT"

// Notices reads the lifecycle notices: spot interruption, rebalance
// recommendation, Auto Scaling target lifecycle state and scheduled
// maintenance. An absent item (404) is no notice. On error it still returns
// the notices it could read, with the error.
func (m *Metadata) Notices(ctx context.Context) ([]Notice, error) {
	var notices []Notice
	var errs []error

	if v, err := m.get(ctx, "spot/instance-action"); err == nil {
		var a struct {
			Action string `json:"action"`
			Time   string `json:"time"`
		}
		n := Notice{Kind: NoticeSpotInterruption, Detail: v}
		if jerr := json.Unmarshal([]byte(v), &a); jerr == nil {
			n.Detail = a.Action
			n.Time = parseTimeOr(a.Time)
		} else {
			m.warnOnce("spot/instance-action", v, jerr)
		}
		notices = append(notices, n)
	} else if !errors.Is(err, errNoItem) {
		errs = append(errs, err)
	}

	if v, err := m.get(ctx, "events/recommendations/rebalance"); err == nil {
		var r struct {
			NoticeTime string `json:"noticeTime"`
		}
		n := Notice{Kind: NoticeRebalance}
		if jerr := json.Unmarshal([]byte(v), &r); jerr == nil {
			n.Time = parseTimeOr(r.NoticeTime)
		} else {
			m.warnOnce("events/recommendations/rebalance", v, jerr)
		}
		notices = append(notices, n)
	} else if !errors.Is(err, errNoItem) {
		errs = append(errs, err)
	}

	if v, err := m.get(ctx, "autoscaling/target-lifecycle-state"); err == nil {
		// Every target state other than InService takes the instance out
		// of service: Terminated, Detached, Standby, Warmed:*.
		if v != "" && v != "InService" {
			notices = append(notices, Notice{Kind: NoticeASGTerminating, Detail: v})
		}
	} else if !errors.Is(err, errNoItem) {
		errs = append(errs, err)
	}

	if v, err := m.get(ctx, "events/maintenance/scheduled"); err == nil {
		ns, perr := parseMaintenance(v)
		if perr != nil {
			m.warnOnce("events/maintenance/scheduled", v, perr)
		}
		notices = append(notices, ns...)
	} else if !errors.Is(err, errNoItem) {
		errs = append(errs, err)
	}

	if len(errs) > 0 {
		return notices, fmt.Errorf("read lifecycle notices: %w", errors.Join(errs...))
	}
	return notices, nil
}

func (m *Metadata) warnOnce(path, value string, err error) {
	if m.warned.first(path + "|" + value) {
		m.log.Warn("unparseable metadata item; treating it as a notice without a time", "path", path, "value", value, "error", err)
	}
}

func parseTimeOr(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// parseMaintenance parses the scheduled events array. Events already
// completed or canceled are not notices. An unparseable list is one notice
// without a time: something is scheduled, when is unknown.
func parseMaintenance(v string) ([]Notice, error) {
	if v == "" {
		return nil, nil
	}
	var events []struct {
		NotBefore   string `json:"NotBefore"`
		Code        string `json:"Code"`
		Description string `json:"Description"`
		State       string `json:"State"`
	}
	if err := json.Unmarshal([]byte(v), &events); err != nil {
		return []Notice{{Kind: NoticeMaintenance, Detail: v}}, err
	}
	var out []Notice
	for _, e := range events {
		switch strings.ToLower(e.State) {
		case "completed", "canceled", "cancelled":
			continue
		}
		n := Notice{Kind: NoticeMaintenance, Detail: e.Code}
		if e.Description != "" {
			n.Detail += ": " + e.Description
		}
		if t, err := time.Parse(maintenanceLayout, e.NotBefore); err == nil {
			n.Time = t.UTC()
		}
		out = append(out, n)
	}
	return out, nil
}
