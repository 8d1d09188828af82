package store

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/remote/access"
	"smp/remote/server"
	"smp/remote/wire"
	"smp/repo"
)

// serverKind is what a test SMP lists in /v1/info.
type serverKind int

const (
	serverNow       serverKind = iota // as this build: totals at the start or later
	serverStartOnly                   // capture-totals only: totals at the start
	serverOld                         // no features: no totals
)

// startBodies is a proxy in front of a real SMP that keeps the body of
// every POST /v1/captures and the totals of every POST
// /v1/captures/{sid}/expected, and answers /v1/info with the features of
// kind. A commit waits (up to a minute) for the totals of a capture that
// sends them later, so a capture too small to outlast its count still
// shows what it sent.
type startBodies struct {
	next   http.Handler
	kind   serverKind
	mu     sync.Mutex
	bodies []wire.StartCapture
	later  []wire.CaptureTotals
	sent   chan struct{} // a value per POST .../expected
}

func (p *startBodies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/v1/captures":
		b, _ := io.ReadAll(r.Body)
		var req wire.StartCapture
		if err := json.Unmarshal(b, &req); err == nil {
			p.mu.Lock()
			p.bodies = append(p.bodies, req)
			p.mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/expected"):
		b, _ := io.ReadAll(r.Body)
		var t wire.CaptureTotals
		if err := json.Unmarshal(b, &t); err == nil {
			p.mu.Lock()
			p.later = append(p.later, t)
			p.mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		defer func() { p.sent <- struct{}{} }()
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/commit") && p.kind == serverNow:
		select {
		case <-p.sent:
		case <-time.After(time.Minute):
		}
	}
	if p.kind != serverNow && r.URL.Path == "/v1/info" {
		rec := httptest.NewRecorder()
		p.next.ServeHTTP(rec, r)
		var info wire.Info
		if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		info.Features = nil
		if p.kind == serverStartOnly {
			info.Features = []string{wire.FeatureCaptureTotals}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(info)
		return
	}
	p.next.ServeHTTP(w, r)
}

// totals returns the walk totals the last capture sent, at its start or
// later, and fails when it sent them both ways.
func (p *startBodies) totals(t *testing.T) *wire.CaptureTotals {
	t.Helper()
	start := p.last(t).Expected
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.later) == 0 {
		return start
	}
	if start != nil {
		t.Fatalf("totals sent at the start (%+v) and later (%+v)", *start, p.later)
	}
	later := p.later[len(p.later)-1]
	p.later = nil
	return &later
}

func (p *startBodies) last(t *testing.T) wire.StartCapture {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.bodies) == 0 {
		t.Fatal("no capture session was started")
	}
	return p.bodies[len(p.bodies)-1]
}

func smpBehind(t *testing.T, kind serverKind) (*startBodies, string, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := repo.Init(dir, cas.DefaultChunkerParams()); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	acc, err := access.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	token, _, err := acc.CreateToken("PC01", access.RoleClient, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := &startBodies{next: server.New(server.Options{Repo: r, Access: acc, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}), kind: kind, sent: make(chan struct{}, 16)}
	hs := httptest.NewServer(p)
	t.Cleanup(func() { hs.Close(); r.Close() })
	return p, hs.URL, token
}

// A capture to an SMP that lists capture-totals sends what it will read:
// every file the first time, only what changed since its parent record
// the next. To an SMP that takes them later (capture-totals-later) the
// count runs alongside the capture and the totals follow the session's
// start; to one that takes them only at the start they come with it; to
// an SMP that predates the feature it sends none. Every capture succeeds.
func TestRemoteCaptureSendsWalkTotals(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	home := filepath.Join(src, "home", "alice")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, kind := range []serverKind{serverNow, serverStartOnly, serverOld} {
		for name, n := range map[string]int{"a": 1000, "b": 200_000, "c": 5} {
			if err := os.WriteFile(filepath.Join(home, name), bytes.Repeat([]byte{byte(n)}, n), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		p, url, token := smpBehind(t, kind)
		st, err := Open(ctx, url, Options{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		co := CaptureOptions{Options: capture.Options{Computer: "PC01", Root: src}}
		if _, err := st.Capture(ctx, co); err != nil {
			t.Fatalf("capture (server kind %d): %v", kind, err)
		}
		if kind == serverNow && p.last(t).Expected != nil {
			t.Fatal("sent the totals at the start to a server that takes them later")
		}
		got := p.totals(t)
		if kind == serverOld {
			if got != nil {
				t.Fatalf("sent totals %+v to a server without the feature", *got)
			}
			st.Close()
			continue
		}
		if got == nil || *got != (wire.CaptureTotals{Files: 3, Bytes: 201_005}) {
			t.Fatalf("first capture (server kind %d) sent totals %+v, want 3 files, 201005 bytes", kind, got)
		}
		// b changes; a and c are unchanged since the parent record.
		if err := os.WriteFile(filepath.Join(home, "b"), bytes.Repeat([]byte{byte(kind)}, 300_000), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Capture(ctx, co); err != nil {
			t.Fatal(err)
		}
		if got := p.totals(t); got == nil || *got != (wire.CaptureTotals{Files: 1, Bytes: 300_000}) {
			t.Fatalf("second capture (server kind %d) sent totals %+v, want 1 file, 300000 bytes", kind, got)
		}
		st.Close()
	}
}
