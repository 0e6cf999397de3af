package metrics

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sort"
	"strconv"
	"strings"
	"time"
)

// maxProfileSeconds bounds /debug/pprof/profile and /debug/pprof/trace:
// the response must fit in the server's write timeout (NewServer).
const maxProfileSeconds = 60

// pprofHandlers registers /debug/pprof/ on mux, served with runtime/pprof
// and runtime/trace: the index, every named profile (?debug=N as with
// net/http/pprof, ?gc=1 for heap), a CPU profile and an execution trace
// (?seconds=N), and the command line.
//
// Not net/http/pprof: importing it runs its package initialiser in every
// eipd process, which registers its handlers on http.DefaultServeMux (that
// nothing here serves) and builds its tables; `eipd healthcheck`, which a
// container runtime starts every few seconds, paid about 0.3 MiB of peak
// RSS for it (BenchmarkIdle). It also served delta profiles
// (?seconds=N on heap, mutex, …) and /debug/pprof/symbol, which only
// profiles without symbols need; Go's profiles carry theirs.
func pprofHandlers(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
		if name == "" {
			pprofIndex(w)
			return
		}
		p := pprof.Lookup(name)
		if p == nil {
			writeText(w, http.StatusNotFound, fmt.Sprintf("no profile %q (see /debug/pprof/)\n", name))
			return
		}
		debug, _ := strconv.Atoi(r.FormValue("debug"))
		if name == "heap" && r.FormValue("gc") != "" {
			runtime.GC()
		}
		pprofHeaders(w, name, debug)
		_ = p.WriteTo(w, debug)
	})
	mux.HandleFunc("/debug/pprof/profile", func(w http.ResponseWriter, r *http.Request) {
		d, ok := pprofSeconds(w, r, 30)
		if !ok {
			return
		}
		pprofHeaders(w, "profile", 0)
		if err := pprof.StartCPUProfile(w); err != nil {
			pprofFailed(w, "start the CPU profile", err)
			return
		}
		sleep(r, d)
		pprof.StopCPUProfile()
	})
	mux.HandleFunc("/debug/pprof/trace", func(w http.ResponseWriter, r *http.Request) {
		d, ok := pprofSeconds(w, r, 1)
		if !ok {
			return
		}
		pprofHeaders(w, "trace", 0)
		if err := trace.Start(w); err != nil {
			pprofFailed(w, "start the execution trace", err)
			return
		}
		sleep(r, d)
		trace.Stop()
	})
	mux.HandleFunc("/debug/pprof/cmdline", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, strings.Join(os.Args, "\x00"))
	})
}

func pprofIndex(w http.ResponseWriter) {
	ps := pprof.Profiles()
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name() < ps[j].Name() })
	var b strings.Builder
	b.WriteString("eipd /debug/pprof/\n\nprofiles (?debug=1 for text, ?debug=2 for goroutine stacks as in a panic):\n")
	for _, p := range ps {
		fmt.Fprintf(&b, "  %-13s %d\n", p.Name(), p.Count())
	}
	fmt.Fprintf(&b, "\nprofile?seconds=30  CPU profile (at most %d s)\ntrace?seconds=1     execution trace (at most %d s)\ncmdline             the command line\n",
		maxProfileSeconds, maxProfileSeconds)
	writeText(w, http.StatusOK, b.String())
}

// pprofSeconds reads ?seconds= (def when absent); false when it answered
// with the problem.
func pprofSeconds(w http.ResponseWriter, r *http.Request, def int) (time.Duration, bool) {
	s := def
	if v := r.FormValue("seconds"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxProfileSeconds {
			writeText(w, http.StatusBadRequest, fmt.Sprintf("seconds=%q: want a whole number of seconds from 1 to %d\n", v, maxProfileSeconds))
			return 0, false
		}
		s = n
	}
	return time.Duration(s) * time.Second, true
}

func pprofHeaders(w http.ResponseWriter, name string, debug int) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "no-store")
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
}

// pprofFailed answers 500; only before anything was written (the profile
// could not start), so the headers are still open.
func pprofFailed(w http.ResponseWriter, what string, err error) {
	w.Header().Del("Content-Disposition")
	writeText(w, http.StatusInternalServerError, fmt.Sprintf("cannot %s: %v\n", what, err))
}

// sleep waits d or until the client goes away.
func sleep(r *http.Request, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-r.Context().Done():
	}
}
