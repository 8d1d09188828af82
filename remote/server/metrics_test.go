package server

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// metricsClock is a settable clock for Metrics.now.
type metricsClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *metricsClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *metricsClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// metricsGauges is a StoreGauges function counting its calls.
type metricsGauges struct {
	mu    sync.Mutex
	calls int
	g     StoreGauges
	err   error
}

func (f *metricsGauges) get() (StoreGauges, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return f.g, f.err
}

func (f *metricsGauges) Calls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func newTestMetrics(t *testing.T, g *metricsGauges) (*Metrics, *metricsClock) {
	t.Helper()
	clock := &metricsClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	m := NewMetrics(g.get)
	m.now = clock.Now
	return m, clock
}

// scrapeMetrics fetches the text exposition from m.Handler and returns its lines.
func scrapeMetrics(t *testing.T, m *Metrics) map[string]bool {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("scrape: Content-Type %q", ct)
	}
	lines := map[string]bool{}
	for l := range strings.SplitSeq(rec.Body.String(), "\n") {
		lines[l] = true
	}
	return lines
}

func wantMetricLines(t *testing.T, lines map[string]bool, want ...string) {
	t.Helper()
	for _, w := range want {
		if !lines[w] {
			t.Errorf("scrape lacks line %q", w)
		}
	}
	if t.Failed() {
		var smp []string
		for l := range lines {
			if strings.HasPrefix(l, "smp_") {
				smp = append(smp, l)
			}
		}
		t.Logf("smp lines scraped:\n%s", strings.Join(smp, "\n"))
	}
}

func hasMetricPrefix(lines map[string]bool, prefix string) bool {
	for l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestMetricsExposition(t *testing.T) {
	g := &metricsGauges{g: StoreGauges{StoredBytes: 1000, LogicalBytes: 50000, UniqueBytes: 2000, FreeBytes: 1234500, Records: 7, Released: 2}}
	m, _ := newTestMetrics(t, g)

	m.ObserveRequest("POST /v1/captures/{sid}/blobs", 200, 250*time.Millisecond)
	m.ObserveRequest("POST /v1/captures/{sid}/blobs", 200, 2*time.Second)
	m.ObserveRequest("GET /v1/records", 401, time.Millisecond)
	m.CaptureStarted()
	m.CaptureStarted()
	m.CaptureStarted()
	m.CaptureEnded("committed")
	m.CaptureEnded("abandoned")
	m.CaptureRefused("quota")
	m.CaptureRefused("quota")
	m.CaptureRefused("min_free")
	m.RestoreActivity("r1")
	m.RestoreActivity("r1")
	m.RestoreActivity("r2")
	m.RestoreCompleted()
	m.Received(100, true)
	m.Received(40, false)
	m.Received(-5, true) // ignored: a counter cannot go down
	m.Committed(1 << 20)
	m.Served(300)
	m.Served(0)
	m.GCRun(4096, 1500*time.Millisecond, nil)
	m.GCRun(0, 2*time.Second, errors.New("disk on fire"))

	lines := scrapeMetrics(t, m)
	wantMetricLines(t, lines,
		`smp_request_duration_seconds_count{code="200",endpoint="POST /v1/captures/{sid}/blobs"} 2`,
		`smp_request_duration_seconds_sum{code="200",endpoint="POST /v1/captures/{sid}/blobs"} 2.25`,
		`smp_request_duration_seconds_bucket{code="200",endpoint="POST /v1/captures/{sid}/blobs",le="0.25"} 1`,
		`smp_request_duration_seconds_bucket{code="200",endpoint="POST /v1/captures/{sid}/blobs",le="2.5"} 2`,
		`smp_request_duration_seconds_bucket{code="200",endpoint="POST /v1/captures/{sid}/blobs",le="+Inf"} 2`,
		`smp_request_duration_seconds_count{code="401",endpoint="GET /v1/records"} 1`,
		`smp_captures_in_flight 1`,
		`smp_captures_total{result="committed"} 1`,
		`smp_captures_total{result="abandoned"} 1`,
		`smp_captures_total{result="refused"} 0`,
		`smp_capture_refusals_total{reason="quota"} 2`,
		`smp_capture_refusals_total{reason="min_free"} 1`,
		`smp_capture_refusals_total{reason="max_records"} 0`,
		`smp_capture_refusals_total{reason="restore_only"} 0`,
		`smp_restores_in_flight 2`,
		`smp_restores_total 1`,
		`smp_received_bytes_total 140`,
		`smp_stored_new_bytes_total 100`,
		`smp_captured_logical_bytes_total 1.048576e+06`,
		`smp_served_bytes_total 300`,
		`smp_gc_runs_total{result="ok"} 1`,
		`smp_gc_runs_total{result="error"} 1`,
		`smp_gc_reclaimed_bytes_total 4096`,
		`smp_gc_last_seconds 2`,
		`smp_gc_last_run_timestamp_seconds 1.7723664e+09`,
		`smp_store_stored_bytes 1000`,
		`smp_store_logical_bytes 50000`,
		`smp_store_unique_bytes 2000`,
		`smp_store_free_bytes 1.2345e+06`,
		`smp_store_records{state="captured"} 5`,
		`smp_store_records{state="released"} 2`,
	)
	for _, name := range []string{
		"smp_request_duration_seconds", "smp_captures_in_flight", "smp_captures_total",
		"smp_capture_refusals_total", "smp_restores_in_flight", "smp_restores_total",
		"smp_received_bytes_total", "smp_stored_new_bytes_total", "smp_captured_logical_bytes_total",
		"smp_served_bytes_total", "smp_gc_runs_total", "smp_gc_reclaimed_bytes_total",
		"smp_gc_last_seconds", "smp_gc_last_run_timestamp_seconds",
		"smp_store_stored_bytes", "smp_store_logical_bytes", "smp_store_unique_bytes",
		"smp_store_free_bytes", "smp_store_records",
	} {
		if !hasMetricPrefix(lines, "# HELP "+name+" ") {
			t.Errorf("no HELP for %s", name)
		}
	}
	// The Go and process collectors share the registry.
	for _, p := range []string{"go_goroutines ", "process_cpu_seconds_total ", "process_resident_memory_bytes "} {
		if !hasMetricPrefix(lines, p) {
			t.Errorf("scrape lacks %s", p)
		}
	}
	if g.Calls() != 1 {
		t.Errorf("gauges called %d times in one scrape, want 1", g.Calls())
	}
}

// TestMetricsIndependentRegistries: two servers in one process do not
// share metrics (nor panic on registration).
func TestMetricsIndependentRegistries(t *testing.T) {
	a, _ := newTestMetrics(t, &metricsGauges{})
	b, _ := newTestMetrics(t, &metricsGauges{})
	a.CaptureStarted()
	wantMetricLines(t, scrapeMetrics(t, a), `smp_captures_in_flight 1`)
	wantMetricLines(t, scrapeMetrics(t, b), `smp_captures_in_flight 0`)
}

func TestMetricsGaugesCached(t *testing.T) {
	g := &metricsGauges{g: StoreGauges{FreeBytes: 10, Records: 1}}
	m, clock := newTestMetrics(t, g)

	wantMetricLines(t, scrapeMetrics(t, m), `smp_store_free_bytes 10`)
	g.mu.Lock()
	g.g.FreeBytes = 20
	g.mu.Unlock()
	clock.Advance(29 * time.Second)
	wantMetricLines(t, scrapeMetrics(t, m), `smp_store_free_bytes 10`) // cached
	if c := g.Calls(); c != 1 {
		t.Fatalf("gauges called %d times for two scrapes within 30 s, want 1", c)
	}
	clock.Advance(time.Second)
	wantMetricLines(t, scrapeMetrics(t, m), `smp_store_free_bytes 20`)
	if c := g.Calls(); c != 2 {
		t.Fatalf("gauges called %d times after 30 s, want 2", c)
	}

	// A failure: logged, the store gauges are left out, the rest of the
	// scrape still works, and the failure is cached like a success.
	var logBuf bytes.Buffer
	m.Log = slog.New(slog.NewTextHandler(&logBuf, nil))
	g.mu.Lock()
	g.err = errors.New("index unreadable")
	g.mu.Unlock()
	clock.Advance(31 * time.Second)
	lines := scrapeMetrics(t, m)
	if hasMetricPrefix(lines, "smp_store_free_bytes ") || hasMetricPrefix(lines, "smp_store_records{") {
		t.Error("store gauges exposed although the gauges function failed")
	}
	wantMetricLines(t, lines, `smp_captures_in_flight 0`, `smp_restores_in_flight 0`)
	if !strings.Contains(logBuf.String(), "index unreadable") {
		t.Errorf("gauges error not logged; log: %q", logBuf.String())
	}
	clock.Advance(10 * time.Second)
	scrapeMetrics(t, m)
	if c := g.Calls(); c != 3 {
		t.Fatalf("gauges called %d times, want 3 (failure cached)", c)
	}
	if n := strings.Count(logBuf.String(), "index unreadable"); n != 1 {
		t.Errorf("gauges error logged %d times, want once", n)
	}
}

func TestMetricsNilGauges(t *testing.T) {
	m := NewMetrics(nil)
	m.Log = slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil))
	lines := scrapeMetrics(t, m)
	if hasMetricPrefix(lines, "smp_store_free_bytes ") {
		t.Error("store gauges exposed without a gauges function")
	}
	wantMetricLines(t, lines, `smp_captures_in_flight 0`)
}

func TestMetricsRestoresInFlight(t *testing.T) {
	m, clock := newTestMetrics(t, &metricsGauges{})
	m.RestoreActivity("a")
	m.RestoreActivity("b")
	clock.Advance(30 * time.Second)
	m.RestoreActivity("c")
	m.RestoreActivity("a") // again: still one record
	wantMetricLines(t, scrapeMetrics(t, m), `smp_restores_in_flight 3`)

	clock.Advance(31 * time.Second) // b last fetched 61 s ago
	wantMetricLines(t, scrapeMetrics(t, m), `smp_restores_in_flight 2`)
	clock.Advance(30 * time.Second) // a and c 61 s ago
	wantMetricLines(t, scrapeMetrics(t, m), `smp_restores_in_flight 0`)
	m.restoreMu.Lock()
	n := len(m.restoreLast)
	m.restoreMu.Unlock()
	if n != 0 {
		t.Errorf("%d stale restore entries kept", n)
	}
}

func TestMetricsRestoresBounded(t *testing.T) {
	m, clock := newTestMetrics(t, &metricsGauges{})
	for i := range maxRestoreEntries + 5 {
		m.RestoreActivity(fmt.Sprintf("r%d", i))
		if i == 0 {
			clock.Advance(time.Millisecond) // r0 is the least recent
		}
	}
	m.restoreMu.Lock()
	n := len(m.restoreLast)
	_, r0 := m.restoreLast["r0"]
	_, last := m.restoreLast[fmt.Sprintf("r%d", maxRestoreEntries+4)]
	m.restoreMu.Unlock()
	if n != maxRestoreEntries || r0 || !last {
		t.Fatalf("map holds %d entries (r0 kept %v, newest kept %v), want %d without r0", n, r0, last, maxRestoreEntries)
	}
	wantMetricLines(t, scrapeMetrics(t, m), fmt.Sprintf("smp_restores_in_flight %d", maxRestoreEntries))
}

// TestMetricsConcurrent exercises every method while scraping, for -race.
func TestMetricsConcurrent(t *testing.T) {
	g := &metricsGauges{g: StoreGauges{Records: 3}}
	m, clock := newTestMetrics(t, g)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 200 {
				m.ObserveRequest("GET /v1/info", 200, time.Millisecond)
				m.CaptureStarted()
				m.Received(10, i%2 == 0)
				m.RestoreActivity(fmt.Sprintf("w%d-%d", w, i%7))
				m.Served(5)
				m.CaptureEnded("committed")
				m.Committed(100)
				m.RestoreCompleted()
				m.CaptureRefused("max_records")
				if i%50 == 0 {
					m.GCRun(1, time.Millisecond, nil)
					clock.Advance(time.Second)
				}
			}
		})
	}
	wg.Go(func() {
		for range 10 {
			rec := httptest.NewRecorder()
			m.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
		}
	})
	wg.Wait()
	wantMetricLines(t, scrapeMetrics(t, m),
		`smp_captures_in_flight 0`,
		`smp_captures_total{result="committed"} 800`,
		`smp_received_bytes_total 8000`,
		`smp_stored_new_bytes_total 4000`,
		`smp_served_bytes_total 4000`,
		`smp_restores_total 800`,
		`smp_capture_refusals_total{reason="max_records"} 800`,
		`smp_gc_runs_total{result="ok"} 16`,
	)
}
