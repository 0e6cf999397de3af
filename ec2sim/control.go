package ec2sim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// routes is the EC2 Query API on / and the control API under /_sim/.
func (s *Sim) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serveQuery)
	mux.HandleFunc("GET /_sim/info", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Info()) })
	mux.HandleFunc("GET /_sim/events", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Events()) })
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Stats()) })
	mux.HandleFunc("POST /_sim/instances/{id}/{op}", s.controlInstanceOp)
	mux.HandleFunc("PUT /_sim/instances/{id}/lifecycle-state", s.controlLifecycle)
	mux.HandleFunc("GET /_sim/lifecycle-actions", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.LifecycleActions()) })
	mux.HandleFunc("GET /_sim/faults", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.Faults()) })
	mux.HandleFunc("GET /_sim/instances/{id}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.Instance(r.PathValue("id"))
		if !ok {
			writeJSONError(w, 404, fmt.Errorf("instance %s: %w", r.PathValue("id"), ErrNotFound))
			return
		}
		writeJSON(w, 200, v)
	})
	mux.HandleFunc("GET /_sim/instances/{id}/faults", func(w http.ResponseWriter, r *http.Request) {
		f, err := s.InstanceFaults(r.PathValue("id"))
		if err != nil {
			writeOpError(w, err)
			return
		}
		writeJSON(w, 200, f)
	})
	mux.HandleFunc("PUT /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		f, err := readFaults(r)
		if err != nil {
			writeJSONError(w, 400, err)
			return
		}
		s.SetFaults(f)
		writeJSON(w, 200, f)
	})
	mux.HandleFunc("DELETE /_sim/faults", func(w http.ResponseWriter, r *http.Request) {
		s.ClearFaults()
		writeJSON(w, 200, map[string]bool{"cleared": true})
	})
	mux.HandleFunc("PUT /_sim/instances/{id}/faults", func(w http.ResponseWriter, r *http.Request) {
		f, err := readFaults(r)
		if err != nil {
			writeJSONError(w, 400, err)
			return
		}
		if err := s.SetInstanceFaults(r.PathValue("id"), f); err != nil {
			writeOpError(w, err)
			return
		}
		writeJSON(w, 200, f)
	})
	mux.HandleFunc("DELETE /_sim/instances/{id}/faults", func(w http.ResponseWriter, r *http.Request) {
		if err := s.SetInstanceFaults(r.PathValue("id"), Faults{}); err != nil {
			writeOpError(w, err)
			return
		}
		writeJSON(w, 200, map[string]bool{"cleared": true})
	})
	mux.HandleFunc("PUT /_sim/instances/{id}/target-port", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Port *int `json:"port"`
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err == nil {
			err = strictUnmarshal(b, &body)
		}
		if err != nil || body.Port == nil {
			writeJSONError(w, 400, errors.New(`want {"port":N} (0 restores the default target port)`))
			return
		}
		if err := s.SetTargetPort(r.PathValue("id"), *body.Port); err != nil {
			writeOpError(w, err)
			return
		}
		writeJSON(w, 200, map[string]any{"instance_id": r.PathValue("id"), "target_port": *body.Port})
	})
	mux.HandleFunc("GET /_sim/addresses/{alloc}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := s.Address(r.PathValue("alloc"))
		if !ok {
			writeJSONError(w, 404, fmt.Errorf("allocation %s: %w", r.PathValue("alloc"), ErrNotFound))
			return
		}
		writeJSON(w, 200, v)
	})
	mux.HandleFunc("POST /_sim/addresses/{alloc}/associate", func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			InstanceID string `json:"instance_id"`
			PrivateIP  string `json:"private_ip"`
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err == nil {
			err = strictUnmarshal(b, &body)
		}
		if err != nil || body.InstanceID == "" {
			writeJSONError(w, 400, errors.New(`want {"instance_id":"i-…"} or {"instance_id":"i-…","private_ip":"…"}`))
			return
		}
		alloc := r.PathValue("alloc")
		if err := s.AssociatePrivateIP(alloc, body.InstanceID, body.PrivateIP); err != nil {
			writeOpError(w, err)
			return
		}
		v, _ := s.Address(alloc)
		writeJSON(w, 200, v)
	})
	mux.HandleFunc("POST /_sim/addresses/{alloc}/disassociate", func(w http.ResponseWriter, r *http.Request) {
		alloc := r.PathValue("alloc")
		if err := s.Disassociate(alloc); err != nil {
			writeOpError(w, err)
			return
		}
		v, _ := s.Address(alloc)
		writeJSON(w, 200, v)
	})
	mux.HandleFunc("POST /_sim/addresses/{alloc}/release", func(w http.ResponseWriter, r *http.Request) {
		alloc := r.PathValue("alloc")
		if err := s.Release(alloc); err != nil {
			writeOpError(w, err)
			return
		}
		writeJSON(w, 200, map[string]string{"allocation_id": alloc, "done": "release"})
	})
	mux.HandleFunc("GET /_sim/tag-history", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, s.TagHistory(r.URL.Query().Get("resource_id")))
	})
	mux.HandleFunc("/_sim/", func(w http.ResponseWriter, r *http.Request) {
		writeJSONError(w, 404, fmt.Errorf("no control endpoint %s %s", r.Method, r.URL.Path))
	})
	return mux
}

func (s *Sim) controlInstanceOp(w http.ResponseWriter, r *http.Request) {
	id, op := r.PathValue("id"), r.PathValue("op")
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	var body struct {
		Action string `json:"action"`
		Code   string `json:"code"`
	}
	if len(bytes.TrimSpace(b)) > 0 {
		if err := strictUnmarshal(b, &body); err != nil {
			writeJSONError(w, 400, fmt.Errorf("body: %w", err))
			return
		}
	}
	var err error
	switch op {
	case "terminate":
		err = s.TerminateInstance(id)
	case "stop":
		err = s.StopInstance(id)
	case "start":
		err = s.StartInstance(id)
	case "spot-interruption":
		err = s.SpotInterruption(id, firstSet(body.Action, r.URL.Query().Get("action"), "terminate"))
	case "rebalance":
		err = s.Rebalance(id)
	case "maintenance":
		err = s.ScheduleMaintenance(id, firstSet(body.Code, r.URL.Query().Get("code"), "system-reboot"))
	default:
		writeJSONError(w, 404, fmt.Errorf("unknown instance operation %q", op))
		return
	}
	if err != nil {
		writeOpError(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"instance_id": id, "done": op})
}

// controlLifecycle accepts a plain-text state or {"state":"…"}.
func (s *Sim) controlLifecycle(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	state := strings.TrimSpace(string(b))
	if strings.HasPrefix(state, "{") {
		var body struct {
			State string `json:"state"`
		}
		if err := strictUnmarshal(b, &body); err != nil {
			writeJSONError(w, 400, fmt.Errorf("body: %w", err))
			return
		}
		state = body.State
	}
	if err := s.SetLifecycleState(r.PathValue("id"), state); err != nil {
		writeOpError(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"instance_id": r.PathValue("id"), "state": state})
}

func readFaults(r *http.Request) (Faults, error) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
	if err != nil {
		return Faults{}, err
	}
	var f Faults
	if len(bytes.TrimSpace(b)) == 0 {
		return f, nil
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return Faults{}, fmt.Errorf("faults: %w", err)
	}
	return f, nil
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = 500, []byte(`{"error":"encoding response"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeJSONError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, map[string]string{"error": err.Error()})
}

func writeOpError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSONError(w, 404, err)
	case errors.Is(err, ErrInvalidState):
		writeJSONError(w, 409, err)
	default:
		writeJSONError(w, 400, err)
	}
}

// firstSet returns the first non-empty value: the JSON body, then the
// query string, then the default.
func firstSet(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}
