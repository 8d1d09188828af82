package console

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smp/repo/report"
)

// FuzzSessionsFile: whatever the sessions file holds, reading it returns a
// bounded list or an error, never a panic.
func FuzzSessionsFile(f *testing.F) {
	f.Add([]byte(`{"v":1,"sessions":[{"id_sha256":"ab","token":"t","csrf":"c","created":"2026-01-01T00:00:00Z","last":"2026-01-01T00:00:00Z"}]}`))
	f.Add([]byte(`{"v":2}`))
	f.Add([]byte(`{"v":1,"sessions":null,"x":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, SessionsFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		s := newSessionStore(dir, time.Hour, time.Hour)
		sf, err := s.read()
		if err == nil && (sf.Version != 1 || len(sf.Sessions) > maxSessions) {
			t.Fatalf("accepted version %d with %d sessions", sf.Version, len(sf.Sessions))
		}
		if _, ok, _ := s.lookup("x", time.Now()); ok {
			t.Fatal("a fuzzed file let an unknown ID in")
		}
	})
}

// FuzzHistoryFile: a damaged history file starts a new history.
func FuzzHistoryFile(f *testing.F) {
	f.Add([]byte(`{"v":1,"samples":[{"t":1,"stored_bytes":2,"logical_bytes":3,"records":4}]}`))
	f.Add([]byte(`{"v":1,"samples":[`))
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, HistoryFile), b, 0o600); err != nil {
			t.Fatal(err)
		}
		h := newHistory(dir, time.Hour)
		if n := len(h.samples()); n > maxHistory {
			t.Fatalf("%d samples kept", n)
		}
		buildChart(h.samples())
	})
}

func TestHistoryBounded(t *testing.T) {
	dir := t.TempDir()
	const limit = 50
	h := newHistory(dir, time.Hour)
	h.limit = limit
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	n := 0
	stats := func() (*report.Stats, error) { n++; return &report.Stats{Records: n, StoredBytes: uint64(n)}, nil }
	for i := range limit + 10 {
		if err := h.maybeSample(at.Add(time.Duration(i)*time.Hour), stats); err != nil {
			t.Fatal(err)
		}
		// Within the interval no second sample is taken.
		if err := h.maybeSample(at.Add(time.Duration(i)*time.Hour+time.Minute), stats); err != nil {
			t.Fatal(err)
		}
	}
	ss := newHistory(dir, time.Hour).samples() // read back from the file
	if len(ss) != limit || ss[len(ss)-1].Records != limit+10 || ss[0].Records != 11 {
		t.Fatalf("%d samples, first %+v last %+v", len(ss), ss[0], ss[len(ss)-1])
	}
	c := buildChart(ss)
	if c.Empty || c.MaxRecords != limit+10 || strings.Count(c.Stored, ",") != limit {
		t.Fatalf("chart of %d samples: max %d, %d points", len(ss), c.MaxRecords, strings.Count(c.Stored, ","))
	}
}

// TestSessionsFileBounded: past maxSessions logins the least recently
// used sessions end; the file never grows past the bound.
func TestSessionsFileBounded(t *testing.T) {
	dir := t.TempDir()
	s := newSessionStore(dir, time.Hour, 12*time.Hour)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	first, _, err := s.create("tok", now)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	for i := range maxSessions {
		if last, _, err = s.create("tok", now.Add(time.Duration(i+1)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	sf, err := s.read()
	if err != nil || len(sf.Sessions) != maxSessions {
		t.Fatalf("%d sessions kept, %v", len(sf.Sessions), err)
	}
	at := now.Add(time.Hour - time.Second)
	if _, ok, _ := s.lookup(first, at); ok {
		t.Fatal("the oldest session survived the bound")
	}
	if _, ok, _ := s.lookup(last, at); !ok {
		t.Fatal("the newest session was dropped")
	}
}
