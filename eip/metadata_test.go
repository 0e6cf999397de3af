package eip

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/hashicorp/go-hclog"
)

const testToken = "tok-123"

// imdsServer speaks IMDSv2: a token from PUT /latest/api/token (TTL header
// echoed, as the SDK requires), then GETs carrying it. Items not in the map
// are 404.
type imdsServer struct {
	mu        sync.Mutex
	items     map[string]string // path under /latest/ → body
	tokenCode int               // status for the token PUT; 0 = 200
}

func (s *imdsServer) set(path, body string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.items[path] = body
}

func (s *imdsServer) del(path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.items, path)
}

func (s *imdsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/latest/api/token" {
		ttl := r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds")
		if r.Method != http.MethodPut || ttl == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if s.tokenCode != 0 {
			w.WriteHeader(s.tokenCode)
			return
		}
		w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", ttl)
		w.Write([]byte(testToken))
		return
	}
	if r.Header.Get("X-Aws-Ec2-Metadata-Token") != testToken {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	body, ok := s.items[strings.TrimPrefix(r.URL.Path, "/latest/")]
	if !ok {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte("<html><body><h1>404 - Not Found</h1></body></html>"))
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write([]byte(body))
}

const identityDoc = `{"accountId":"123456789012","architecture":"x86_64","availabilityZone":"us-east-1a",
 "billingProducts":null,"devpayProductCodes":null,"marketplaceProductCodes":null,
 "imageId":"ami-0b69ea66ff7391e80","instanceId":"i-1234567890abcdef0","instanceType":"m5.large",
 "kernelId":null,"pendingTime":"2019-10-31T07:02:24Z","privateIp":"10.0.7.10",
 "ramdiskId":null,"region":"us-east-1","version":"2017-09-30"}`

func startIMDS(t *testing.T) (*imdsServer, *imds.Client) {
	t.Helper()
	s := &imdsServer{items: map[string]string{
		"dynamic/instance-identity/document": identityDoc,
		"meta-data/mac":                      "0e:49:61:0f:c3:11",
		"meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/interface-id": "eni-0123456789abcdef0",
		"meta-data/local-ipv4":                         "10.0.7.10",
		"meta-data/autoscaling/target-lifecycle-state": "InService",
	}}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return s, newIMDSClient(t, srv.URL)
}

func newIMDSClient(t *testing.T, url string) *imds.Client {
	return imds.New(imds.Options{Endpoint: url, EnableFallback: aws.FalseTernary})
}

func TestIdentity(t *testing.T) {
	_, api := startIMDS(t)
	obs := &fakeObserver{}
	m := NewMetadata(api, hclog.NewNullLogger(), obs)
	id, err := m.Identity(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{InstanceID: "i-1234567890abcdef0", Region: "us-east-1", AvailabilityZone: "us-east-1a",
		NetworkInterfaceID: "eni-0123456789abcdef0", PrivateIP: "10.0.7.10"}
	if id != want {
		t.Fatalf("got %+v, want %+v", id, want)
	}
	if got := obs.imdsCalls(); !reflect.DeepEqual(got, []string{"success", "success", "success", "success"}) {
		t.Errorf("observed %v", got)
	}
}

func TestIdentityMissingItem(t *testing.T) {
	s, api := startIMDS(t)
	s.del("meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/interface-id")
	_, err := NewMetadata(api, nil, nil).Identity(context.Background())
	if !errors.Is(err, ErrIMDS) || !strings.Contains(err.Error(), "interface-id") {
		t.Fatalf("got %v", err)
	}
}

func TestIdentityUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	obs := &fakeObserver{}
	_, err = NewMetadata(newIMDSClient(t, url), nil, obs).Identity(ctx)
	if !errors.Is(err, ErrIMDS) {
		t.Fatalf("want ErrIMDS, got %v", err)
	}
	for _, want := range []string{"unreachable", "set the instance metadata hop limit to 2 or run with host networking"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if got := obs.imdsCalls(); !reflect.DeepEqual(got, []string{"error"}) {
		t.Errorf("observed %v", got)
	}
}

func TestIdentityForbidden(t *testing.T) {
	s, api := startIMDS(t)
	s.tokenCode = http.StatusForbidden
	_, err := NewMetadata(api, nil, nil).Identity(context.Background())
	if !errors.Is(err, ErrIMDS) || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("got %v", err)
	}
}

func TestNoticesAbsent(t *testing.T) {
	_, api := startIMDS(t)
	obs := &fakeObserver{}
	n, err := NewMetadata(api, nil, obs).Notices(context.Background())
	if err != nil || len(n) != 0 {
		t.Fatalf("notices %+v err %v", n, err)
	}
	want := []string{"not_found", "not_found", "success", "not_found"}
	if got := obs.imdsCalls(); !reflect.DeepEqual(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
}

func TestNoticesPresent(t *testing.T) {
	s, api := startIMDS(t)
	s.set("meta-data/spot/instance-action", `{"action": "terminate", "time": "2017-09-18T08:22:00Z"}`)
	s.set("meta-data/events/recommendations/rebalance", `{"noticeTime": "2020-10-27T08:22:00Z"}`)
	s.set("meta-data/autoscaling/target-lifecycle-state", "Terminated")
	s.set("meta-data/events/maintenance/scheduled", `[{"NotBefore":"21 Jan 2019 09:00:43 GMT","Code":"system-reboot",
	  "Description":"scheduled reboot","EventId":"instance-event-0d59937288b749b32","NotAfter":"21 Jan 2019 09:17:23 GMT","State":"active"},
	  {"NotBefore":"22 Jan 2019 09:00:43 GMT","Code":"system-reboot","Description":"old","State":"canceled"}]`)
	n, err := NewMetadata(api, nil, nil).Notices(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Notice{
		{Kind: NoticeSpotInterruption, Time: time.Date(2017, 9, 18, 8, 22, 0, 0, time.UTC), Detail: "terminate"},
		{Kind: NoticeRebalance, Time: time.Date(2020, 10, 27, 8, 22, 0, 0, time.UTC)},
		{Kind: NoticeASGTerminating, Detail: "Terminated"},
		{Kind: NoticeMaintenance, Time: time.Date(2019, 1, 21, 9, 0, 43, 0, time.UTC), Detail: "system-reboot: scheduled reboot"},
	}
	if !reflect.DeepEqual(n, want) {
		t.Fatalf("got %+v\nwant %+v", n, want)
	}
}

func TestNoticesLifecycleStates(t *testing.T) {
	s, api := startIMDS(t)
	m := NewMetadata(api, nil, nil)
	for state, notice := range map[string]bool{
		"InService": false, "Terminated": true, "Detached": true, "Standby": true,
		"Warmed:Hibernated": true, "Warmed:Running": true, "Warmed:Stopped": true, "Warmed:Terminated": true,
	} {
		s.set("meta-data/autoscaling/target-lifecycle-state", state)
		n, err := m.Notices(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := len(n) == 1 && n[0].Kind == NoticeASGTerminating && n[0].Detail == state; got != notice || (!notice && len(n) != 0) {
			t.Errorf("state %s: notices %+v", state, n)
		}
	}
}

func TestNoticesEmptyMaintenanceAndBadJSON(t *testing.T) {
	s, api := startIMDS(t)
	s.set("meta-data/events/maintenance/scheduled", "[]")
	m := NewMetadata(api, nil, nil)
	if n, err := m.Notices(context.Background()); err != nil || len(n) != 0 {
		t.Fatalf("empty list: %+v %v", n, err)
	}
	// An unparseable spot notice is still a notice: something is coming.
	s.set("meta-data/spot/instance-action", "garbage")
	n, err := m.Notices(context.Background())
	if err != nil || len(n) != 1 || n[0].Kind != NoticeSpotInterruption || !n[0].Time.IsZero() {
		t.Fatalf("bad JSON: %+v %v", n, err)
	}
}

func TestNoticesError(t *testing.T) {
	s, api := startIMDS(t)
	s.set("meta-data/spot/instance-action", `{"action": "stop", "time": "2017-09-18T08:22:00Z"}`)
	s.set("meta-data/autoscaling/target-lifecycle-state", "Detached")
	// Once a token is held, a 403 on an item is an error, not "no notice".
	m := NewMetadata(api, nil, nil)
	if _, err := m.Notices(context.Background()); err != nil {
		t.Fatal(err)
	}
	srvErr := &forbidPath{inner: s, path: "/latest/meta-data/events/recommendations/rebalance"}
	srv := httptest.NewServer(srvErr)
	t.Cleanup(srv.Close)
	n, err := NewMetadata(newIMDSClient(t, srv.URL), nil, nil).Notices(context.Background())
	if !errors.Is(err, ErrIMDS) || !strings.Contains(err.Error(), "rebalance") {
		t.Fatalf("want ErrIMDS naming the item, got %v", err)
	}
	if len(n) != 2 {
		t.Errorf("notices read despite the error: %+v", n)
	}
}

type forbidPath struct {
	inner http.Handler
	path  string
}

func (f *forbidPath) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == f.path {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	f.inner.ServeHTTP(w, r)
}

func TestIdentityTokenRejected(t *testing.T) {
	s, _ := startIMDS(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	_, err := NewMetadata(newIMDSClient(t, srv.URL), nil, nil).Identity(context.Background())
	if !errors.Is(err, ErrIMDS) || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "token") {
		t.Fatalf("got %v", err)
	}
}
