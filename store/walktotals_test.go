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

// startBodies is a proxy in front of a real SMP that keeps the body of
// every POST /v1/captures and, with old set, answers /v1/info without
// features, as a server that predates them.
type startBodies struct {
	next   http.Handler
	old    bool
	mu     sync.Mutex
	bodies []wire.StartCapture
}

func (p *startBodies) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/v1/captures" {
		b, _ := io.ReadAll(r.Body)
		var req wire.StartCapture
		if err := json.Unmarshal(b, &req); err == nil {
			p.mu.Lock()
			p.bodies = append(p.bodies, req)
			p.mu.Unlock()
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
	}
	if p.old && r.URL.Path == "/v1/info" {
		rec := httptest.NewRecorder()
		p.next.ServeHTTP(rec, r)
		var info wire.Info
		if err := json.Unmarshal(rec.Body.Bytes(), &info); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		info.Features = nil
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(info)
		return
	}
	p.next.ServeHTTP(w, r)
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

func smpBehind(t *testing.T, old bool) (*startBodies, string, string) {
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
	p := &startBodies{next: server.New(server.Options{Repo: r, Access: acc, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}), old: old}
	hs := httptest.NewServer(p)
	t.Cleanup(func() { hs.Close(); r.Close() })
	return p, hs.URL, token
}

// A capture to an SMP that lists capture-totals sends what it will read:
// every file the first time, only what changed since its parent record
// the next; to an SMP that predates the feature it sends none, and both
// captures succeed.
func TestRemoteCaptureSendsWalkTotals(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	home := filepath.Join(src, "home", "alice")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]int{"a": 1000, "b": 200_000, "c": 5} {
		if err := os.WriteFile(filepath.Join(home, name), bytes.Repeat([]byte{byte(n)}, n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, old := range []bool{false, true} {
		p, url, token := smpBehind(t, old)
		st, err := Open(ctx, url, Options{Token: token})
		if err != nil {
			t.Fatal(err)
		}
		co := CaptureOptions{Options: capture.Options{Computer: "PC01", Root: src}}
		if _, err := st.Capture(ctx, co); err != nil {
			t.Fatalf("capture (old server %v): %v", old, err)
		}
		got := p.last(t).Expected
		if old {
			if got != nil {
				t.Fatalf("sent totals %+v to a server without the feature", *got)
			}
			st.Close()
			continue
		}
		if got == nil || *got != (wire.CaptureTotals{Files: 3, Bytes: 201_005}) {
			t.Fatalf("first capture sent totals %+v, want 3 files, 201005 bytes", got)
		}
		// b changes; a and c are unchanged since the parent record.
		if err := os.WriteFile(filepath.Join(home, "b"), bytes.Repeat([]byte{7}, 300_000), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Capture(ctx, co); err != nil {
			t.Fatal(err)
		}
		if got := p.last(t).Expected; got == nil || *got != (wire.CaptureTotals{Files: 1, Bytes: 300_000}) {
			t.Fatalf("second capture sent totals %+v, want 1 file, 300000 bytes", got)
		}
		st.Close()
	}
}
