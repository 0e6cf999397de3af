package ec2sim

// Fuzz tests for the EC2 Query front end: the pure parser and the whole
// handler. Seeds are real aws-sdk-go-v2 request bodies captured on loopback
// (testdata/sdk-requests) plus hand-written edge cases.

import (
	"context"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// confFuzzSeeds returns the captured SDK bodies and edge cases.
func confFuzzSeeds(f *testing.F) [][]byte {
	f.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "sdk-requests", "*.form"))
	if err != nil || len(files) == 0 {
		f.Fatalf("seed corpus testdata/sdk-requests: %v (%d files)", err, len(files))
	}
	var seeds [][]byte
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatalf("read seed %s: %v", p, err)
		}
		seeds = append(seeds, b)
	}
	for _, s := range []string{
		"",
		"Action=",
		"Action=DescribeAddresses&Version=2016-11-15&AllocationId=",                         // empty list (Ec2EmptyQueryLists)
		"Action=DescribeAddresses&Version=2016-11-15&Filter.1.Name=tag:x&Filter.1.Value.1=", // empty value
		"Action=DescribeAddresses&Version=2016-11-15&Filter.0.Name=x",
		"Action=DescribeAddresses&Version=2016-11-15&Filter.99999999999999999999.Name=x",
		"Action=DescribeAddresses&Version=2016-11-15&Filter.1.Value.1=a",
		"Action=DescribeInstances&Version=2016-11-15&MaxResults=-1",
		"Action=DescribeInstances&Version=2016-11-15&MaxResults=99999999999999999999",
		"Action=DescribeInstances&Version=2016-11-15&NextToken=%00%ff",
		"Action=AssociateAddress&Version=2016-11-15&AllowReassociation=maybe",
		"Action=AssociateAddress&Version=2016-11-15&AllocationId=eipalloc-&InstanceId=i-",
		"Action=CreateTags&Version=2016-11-15&ResourceId.1=&Tag.1.Key=",
		"Action=DescribeTags&Version=2016-11-15&Filter.1.Name=tag:%2A&Filter.1.Value.1=%2A%3F%2A",
		"Action=Nope&Version=2016-11-15",
		"Action=DescribeAddresses&Version=1999-01-01",
		"Action=DescribeAddresses&Action=ReleaseAddress",
		"%zz=1&Action=DescribeAddresses",
		"Action=DescribeAddresses;Version=2016-11-15",
		"Action=DescribeAddresses&PublicIp.1=999.1.1.1",
		"Action=DescribeAddresses&" + strings.Repeat("AllocationId.1=x&", 200),
	} {
		seeds = append(seeds, []byte(s))
	}
	return seeds
}

func FuzzParseQuery(f *testing.F) {
	for _, s := range confFuzzSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseQuery(body)
		if err != nil {
			var ae *apiError
			if !errors.As(err, &ae) {
				t.Fatalf("parseQuery(%q): error %T %v is not an *apiError", body, err, err)
			}
			if ae.Status < 400 || ae.Status > 499 || ae.Code == "" || ae.Message == "" {
				t.Fatalf("parseQuery(%q): want a 4xx with code and message, got %+v", body, ae)
			}
			return
		}
		if req.Action == "" {
			t.Fatalf("parseQuery(%q): success without an Action", body)
		}
		if _, ok := req.Params["Action"]; ok {
			t.Fatalf("parseQuery(%q): Action left in Params", body)
		}
		if _, ok := req.Params["Version"]; ok {
			t.Fatalf("parseQuery(%q): Version left in Params", body)
		}
		// Pure: the same body parses the same way.
		again, err2 := parseQuery(body)
		if err2 != nil || again.Action != req.Action || len(again.Params) != len(req.Params) {
			t.Fatalf("parseQuery(%q) not deterministic: %+v / %+v, %v", body, req, again, err2)
		}
		for k, v := range req.Params {
			if again.Params[k] != v {
				t.Fatalf("parseQuery(%q) not deterministic at %s", body, k)
			}
		}
		// The accessors must not panic whatever the values are.
		_, _ = req.boolean("DryRun", false)
		_, _, _ = req.integer("MaxResults")
		_, _ = req.list("AllocationId")
		_, _ = req.structs("Tag")
		_, _ = req.filters()
	})
}

// confErrorBody is the EC2 error document (AWS-PROTOCOL §1.3).
type confErrorBody struct {
	XMLName xml.Name `xml:"Response"`
	Errors  []struct {
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	} `xml:"Errors>Error"`
	RequestID string `xml:"RequestID"`
}

func FuzzHandler(f *testing.F) {
	for _, s := range confFuzzSeeds(f) {
		f.Add(s)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := Start(ctx, Options{Instances: 2, EIPs: 2, Listen: "127.0.0.1:0"})
	if err != nil {
		cancel()
		f.Fatalf("start ec2sim: %v", err)
	}
	f.Cleanup(func() {
		_ = s.Close()
		cancel()
	})
	h := s.routes()
	const auth = "AWS4-HMAC-SHA256 Credential=AKIAFUZZ/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host;x-amz-date, Signature=00"
	f.Fuzz(func(t *testing.T, body []byte) {
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(body))).WithContext(rctx)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		r.Header.Set("Authorization", auth)
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			h.ServeHTTP(w, r)
		}()
		timer := time.NewTimer(10 * time.Second)
		defer timer.Stop()
		select {
		case <-done:
		case <-timer.C:
			t.Fatalf("handler did not answer %q within 10s", body)
		}
		res := w.Result()
		out := w.Body.Bytes()
		switch {
		case res.StatusCode == http.StatusOK:
			if !strings.HasPrefix(res.Header.Get("Content-Type"), "text/xml") {
				t.Fatalf("%q: 200 with Content-Type %q", body, res.Header.Get("Content-Type"))
			}
			if err := confWellFormed(out); err != nil {
				t.Fatalf("%q: 200 with malformed XML: %v\n%s", body, err, out)
			}
		case res.StatusCode >= 400 && res.StatusCode < 500:
			var eb confErrorBody
			if err := xml.Unmarshal(out, &eb); err != nil || len(eb.Errors) != 1 || eb.Errors[0].Code == "" || eb.RequestID == "" {
				t.Fatalf("%q: HTTP %d without an EC2 error document (%v):\n%s", body, res.StatusCode, err, out)
			}
		default:
			// No faults are set: a 5xx here is a bug (an internal error).
			t.Fatalf("%q: HTTP %d:\n%s", body, res.StatusCode, out)
		}
	})
}

// confWellFormed checks that b is one well-formed XML document.
func confWellFormed(b []byte) error {
	d := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		_, err := d.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}
