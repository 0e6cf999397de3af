package ec2sim

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// xmlw builds an EC2 response body. Absent values are omitted rather than
// written empty: the Go SDK turns <x/> into aws.String("") and fails on empty
// numbers (as the EC2 API documents them).
type xmlw struct{ bytes.Buffer }

func (x *xmlw) open(name string)  { x.WriteString("<" + name + ">") }
func (x *xmlw) close(name string) { x.WriteString("</" + name + ">") }

func (x *xmlw) el(name, value string) {
	x.open(name)
	_ = xml.EscapeText(&x.Buffer, []byte(value))
	x.close(name)
}

// opt writes the element only when value is not empty.
func (x *xmlw) opt(name, value string) {
	if value != "" {
		x.el(name, value)
	}
}

func (x *xmlw) num(name string, n int) { x.el(name, strconv.Itoa(n)) }

func (x *xmlw) boolean(name string, b bool) { x.el(name, strconv.FormatBool(b)) }

func (x *xmlw) time(name string, t time.Time) {
	if !t.IsZero() {
		x.el(name, ec2Time(t))
	}
}

// tagSet writes <tagSet> with key/value items; nothing when there are none.
func (x *xmlw) tagSet(tags [][2]string) {
	if len(tags) == 0 {
		return
	}
	x.open("tagSet")
	for _, kv := range tags {
		x.open("item")
		x.el("key", kv[0])
		x.el("value", kv[1])
		x.close("item")
	}
	x.close("tagSet")
}

func ec2Time(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

// newRequestID returns a random UUID (version 4), the form of EC2 request IDs.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func writeCommonHeaders(w http.ResponseWriter, requestID string) {
	h := w.Header()
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Server", "AmazonEC2")
	h.Set("X-Amzn-Requestid", requestID)
}

// writeSuccess wraps body in <{Action}Response xmlns=…><requestId>.
func writeSuccess(w http.ResponseWriter, action, requestID string, body []byte) {
	var x xmlw
	x.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.WriteString("<" + action + `Response xmlns="` + ec2Namespace + `">`)
	x.el("requestId", requestID)
	x.Write(body)
	x.close(action + "Response")
	writeCommonHeaders(w, requestID)
	w.Header().Set("Content-Length", strconv.Itoa(x.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(x.Bytes())
}

// writeError writes the EC2 error document: no namespace, RequestID in
// capitals (the EC2 error format).
func writeError(w http.ResponseWriter, requestID string, e *apiError) {
	var x xmlw
	x.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.WriteString("<Response><Errors><Error>")
	x.el("Code", e.Code)
	x.el("Message", e.Message)
	x.WriteString("</Error></Errors>")
	x.el("RequestID", requestID)
	x.WriteString("</Response>")
	writeCommonHeaders(w, requestID)
	w.Header().Set("Content-Length", strconv.Itoa(x.Len()))
	w.WriteHeader(e.Status)
	_, _ = w.Write(x.Bytes())
}
