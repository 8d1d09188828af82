package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"smp/cas"
	"smp/remote/console"
	"smp/remote/wire"
	"smp/repo"
)

// gcStatus is the last gc this server ran, for the console.
type gcStatus = console.GCStatus

// newConsole builds the web console served at / (package console); the
// server hands it its capture sessions, gc and record removal so the
// console acts exactly as the JSON API does.
func (s *Server) newConsole() http.Handler {
	c, err := console.New(console.Options{
		Repo: s.opts.Repo, Access: s.opts.Access, Log: s.opts.Log, Now: s.opts.Now,
		RestoreOnly: s.restoreOnly,
		GC: func(ctx context.Context, dryRun bool) (*repo.MaintainReport, error) {
			return s.GC(ctx, repo.MaintainOptions{GCOptions: repo.GCOptions{DryRun: dryRun, RepackBelow: 0.5, Grace: s.opts.GCGrace}})
		},
		Reading: func() func() {
			s.gcMu.RLock()
			return s.gcMu.RUnlock
		},
		Remove:   s.removeRecord,
		Captures: s.captures,
		Restores: s.metrics.recentRestores,
		LastGC: func() console.GCStatus {
			if g := s.lastGC.Load(); g != nil {
				return *g
			}
			return console.GCStatus{}
		},
		Stats: s.statsReply,
	})
	if err != nil {
		// The templates are embedded: this is a build defect, not a
		// runtime condition. The JSON API goes on; / says why.
		s.opts.Log.Error("console disabled", "error", err)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			writeError(w, http.StatusNotFound, "console disabled: "+err.Error())
		})
	}
	s.console = c
	return c
}

// RunConsole keeps the console's history samples until ctx ends.
func (s *Server) RunConsole(ctx context.Context) {
	if s.console != nil {
		s.console.Run(ctx)
	}
}

// serveRoot sends what is not the JSON API or /metrics to the console.
// An API client's request (it carries a bearer token, or names a protocol
// version, /vN/...) to an unknown endpoint keeps its JSON error; the
// console never reads a bearer token.
func (s *Server) serveRoot(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "" || apiPath(r.URL.Path) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s %s: this server speaks protocol v%d (docs/PROTOCOL.md)", r.Method, r.URL.Path, wire.Version))
		return
	}
	s.consoleHandler.ServeHTTP(w, r)
}

// removeRecord drops a record as DELETE /v1/records/{id} does.
func (s *Server) removeRecord(id cas.ID) error {
	recs, err := s.opts.Repo.Records()
	if err != nil {
		return err
	}
	for _, rec := range recs {
		if rec.ID == id {
			s.gcMu.RLock()
			defer s.gcMu.RUnlock()
			if err := s.opts.Repo.Drop(rec); err != nil {
				return err
			}
			s.reach.forget(rec.ID)
			return nil
		}
	}
	return fail(http.StatusNotFound, "no such record")
}

// captures lists the open capture sessions (an estimate is not one).
func (s *Server) captures() []console.Capture {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]console.Capture, 0, len(s.sessions))
	for _, sess := range s.sessions {
		if sess.estimate {
			continue
		}
		cp := console.Capture{Computer: sess.computer, Started: sess.started,
			Received: sess.received.Load(), Done: sess.done.Load()}
		if sess.expected != nil {
			cp.ExpectedFiles, cp.ExpectedBytes = sess.expected.Files, sess.expected.Bytes
		}
		out = append(out, cp)
	}
	return out
}

// noteGC remembers a gc run for the console.
func (s *Server) noteGC(at time.Time, rep *repo.MaintainReport, err error) {
	g := &gcStatus{At: at}
	if rep != nil && rep.GCReport != nil {
		g.Freed = rep.BytesFreed
	}
	if err != nil {
		g.Err = err.Error()
	}
	s.lastGC.Store(g)
}

// apiPath reports whether p is below /vN/ (N digits): a JSON API path of
// some protocol version.
func apiPath(p string) bool {
	rest, ok := strings.CutPrefix(p, "/v")
	if !ok {
		return false
	}
	digits, _, _ := strings.Cut(rest, "/")
	if digits == "" {
		return false
	}
	for _, ch := range digits {
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return true
}

// recentRestores lists the records fetched within restoreWindow: the
// restores in progress (smp_restores_in_flight counts the same set).
func (m *Metrics) recentRestores() []console.Restore {
	now := m.now()
	m.restoreMu.Lock()
	defer m.restoreMu.Unlock()
	m.pruneRestores(now)
	out := make([]console.Restore, 0, len(m.restoreLast))
	for rec, st := range m.restoreLast {
		out = append(out, console.Restore{Record: rec, Started: st.first, Last: st.last, Served: st.plain})
	}
	return out
}
