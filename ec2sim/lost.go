package ec2sim

import (
	"net"
	"net/http"
	"time"
)

// Lost answers: on AWS a call can take effect and its answer never arrive
// (a connection reset on the way back, a timeout while the service was
// still working). The caller cannot tell that from a call that did not
// happen, so "failed" means "unknown" until a later read shows the
// outcome. The lost_answers fault (Faults.LostAnswers) makes that happen:
// the action runs as usual and its answer is thrown away.
//
// What the caller sees with the pinned aws-sdk-go-v2 (v1.47.7, smithy-go
// v1.28.8): every error from http.Client.Do is wrapped in
// smithyhttp.RequestSendError, whose ConnectionError() is true, so the
// standard retryer retries a reset (retry.RetryableConnectionError). A
// hang ends with the caller's context: smithy turns that into a
// CanceledError, which is never retried; an http.Client.Timeout instead
// is a RequestSendError and is retried. docs/ec2sim.md "Lost answers".

// loseLocked reports whether the answer of a successful call by caller of
// action is to be lost, and how. The caller's own rule is asked first,
// then the global one; a rule with a count loses the answer and is
// decremented, so one lost answer consumes one count of one rule.
func (s *Sim) loseLocked(caller, action string) (mode string, lost bool) {
	rules := []*LostAnswers{}
	if caller != "" {
		if f, ok := s.instFaults[caller]; ok && f.LostAnswers != nil {
			rules = append(rules, f.LostAnswers)
		}
	}
	if s.faults.LostAnswers != nil {
		rules = append(rules, s.faults.LostAnswers)
	}
	for _, l := range rules {
		if l.Action != "" && l.Action != action {
			continue
		}
		switch {
		case l.Count > 0:
			l.Count--
		case l.Ratio > 0 && s.rnd.Float64() < l.Ratio:
		default:
			continue
		}
		if l.Mode == "" {
			return LostReset, true
		}
		return l.Mode, true
	}
	return "", false
}

// loseAnswer sends no answer. reset: after the latency (the answer was on
// its way), the connection is reset. hang: nothing until the caller gives
// up or the simulator closes, then the connection is closed.
func (s *Sim) loseAnswer(w http.ResponseWriter, r *http.Request, mode string, latency time.Duration) {
	if mode == LostHang {
		s.hang(w, r)
		return
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		case <-s.closing:
		}
	}
	if conn := hijack(w); conn != nil {
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN: a reset, as the fault says
		}
		_ = conn.Close()
	}
}

// hang holds the request until the client gives up or the simulator
// closes, then drops the connection without an answer, as a black-holed
// network would: net/http would otherwise send an empty 200.
func (s *Sim) hang(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closing:
	}
	if conn := hijack(w); conn != nil {
		_ = conn.Close()
	}
}

func hijack(w http.ResponseWriter) net.Conn {
	hj, ok := w.(http.Hijacker)
	if !ok {
		return nil
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		return nil
	}
	return conn
}
