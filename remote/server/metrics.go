package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	// gaugesTTL is how long the result of the StoreGauges function is
	// reused: computing it may walk the store, and scrapers may be many.
	gaugesTTL = 30 * time.Second
	// restoreWindow is how recent a fetch must be for its record to count
	// as a restore in flight.
	restoreWindow = 60 * time.Second
	// maxRestoreEntries bounds the record -> last fetch map.
	maxRestoreEntries = 10000
)

// requestBuckets span quick JSON calls (milliseconds) to long blob uploads
// and fetch streams (minutes).
var requestBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// Metrics are the Prometheus metrics of one server, on their own registry (not the global one), so tests can create many.
//
// All methods are safe for concurrent use. Set Log, if at all, before the
// first scrape.
type Metrics struct {
	// Log receives errors of the StoreGauges function and of scrapes;
	// default slog.Default().
	Log *slog.Logger

	reg     *prometheus.Registry
	handler http.Handler
	now     func() time.Time // injectable clock for tests

	requests         *prometheus.HistogramVec
	capturesInFlight prometheus.Gauge
	captures         *prometheus.CounterVec
	refusals         *prometheus.CounterVec
	restores         prometheus.Counter
	received         prometheus.Counter
	storedNew        prometheus.Counter
	captured         prometheus.Counter
	served           prometheus.Counter
	gcRuns           *prometheus.CounterVec
	gcReclaimed      prometheus.Counter
	gcLast           prometheus.Gauge
	gcLastTime       prometheus.Gauge

	gauges    func() (StoreGauges, error)
	gaugesMu  sync.Mutex
	gaugesAt  time.Time // zero: never called
	gaugesVal StoreGauges
	gaugesErr error

	restoreMu   sync.Mutex
	restoreLast map[string]restoreState // record -> its fetches within restoreWindow of each other
}

// restoreState is a restore in progress as the fetches show it.
type restoreState struct {
	first, last time.Time
	plain       uint64 // plaintext bytes of data chunks served
}

// StoreGauges is what the scrape-time gauges read; called at most once per 30 s (cache the result), errors logged by the caller's logger function.
type StoreGauges struct {
	StoredBytes, LogicalBytes, UniqueBytes, FreeBytes uint64
	Records, Released                                 int
}

// NewMetrics returns the metrics of one server on a fresh registry that
// also holds the Go runtime and process collectors. gauges (may be nil) is
// called at scrape time, at most once per 30 s; while it fails the store
// gauges are left out of the scrape and the error is logged to m.Log.
func NewMetrics(gauges func() (StoreGauges, error)) *Metrics {
	m := &Metrics{
		reg:         prometheus.NewRegistry(),
		now:         time.Now,
		gauges:      gauges,
		restoreLast: map[string]restoreState{},

		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smp_request_duration_seconds",
			Help:    "Time taken to answer SMP protocol requests, by endpoint (method and route) and HTTP status code. Blob uploads and fetches include the transfer time.",
			Buckets: requestBuckets,
		}, []string{"endpoint", "code"}),
		capturesInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smp_captures_in_flight",
			Help: "Captures (backups from computers) currently open on this server: started and neither committed nor abandoned yet.",
		}),
		captures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smp_captures_total",
			Help: "Captures that ended, by result: committed (a new record is stored), abandoned (the client went away or the session expired) or refused (the server said no).",
		}, []string{"result"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smp_capture_refusals_total",
			Help: "Captures refused for lack of capacity, by reason: restore_only (the server is in restore-only mode), max_records (record limit reached), min_free (not enough free disk space would remain), max_store_bytes (the store would grow past its size limit), quota (the computer's quota is used up).",
		}, []string{"reason"}),
		restores: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smp_restores_total",
			Help: "Restores completed: records released by their computer after it fetched them.",
		}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smp_received_bytes_total",
			Help: "Bytes of blobs uploaded by clients during captures, as sent on the wire (compressed). Compare with smp_captured_logical_bytes_total to see what deduplication saves on the network.",
		}),
		storedNew: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smp_stored_new_bytes_total",
			Help: "Bytes of uploaded blobs that were new to the store and so took disk space (the rest were already stored).",
		}),
		captured: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smp_captured_logical_bytes_total",
			Help: "Logical (uncompressed, undeduplicated) size of the data in committed captures: what the computers backed up.",
		}),
		served: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smp_served_bytes_total",
			Help: "Bytes of blobs sent to clients in answer to restore fetches, as sent on the wire (compressed).",
		}),
		gcRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "smp_gc_runs_total",
			Help: "Garbage collections of the store (removal of data no record needs any more), by result: ok or error.",
		}, []string{"result"}),
		gcReclaimed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "smp_gc_reclaimed_bytes_total",
			Help: "Disk bytes freed by garbage collections of the store.",
		}),
		gcLast: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smp_gc_last_seconds",
			Help: "How long the latest garbage collection of the store took, in seconds.",
		}),
		gcLastTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "smp_gc_last_run_timestamp_seconds",
			Help: "When the latest garbage collection of the store ended, as a Unix time (0: none since the server started).",
		}),
	}
	// Show every known label value from the start, so rates and alerts
	// work before the first event.
	for _, r := range []string{"committed", "abandoned", "refused"} {
		m.captures.WithLabelValues(r)
	}
	for _, r := range []string{"restore_only", "max_records", "min_free", "max_store_bytes", "quota"} {
		m.refusals.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error"} {
		m.gcRuns.WithLabelValues(r)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.requests, m.capturesInFlight, m.captures, m.refusals, m.restores,
		m.received, m.storedNew, m.captured, m.served,
		m.gcRuns, m.gcReclaimed, m.gcLast, m.gcLastTime,
		storeCollector{m},
	)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger{m},
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg, // counts failed scrapes in promhttp_metric_handler_errors_total
	})
	return m
}

// Handler returns the promhttp handler for the registry (text or
// OpenMetrics exposition, as negotiated).
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry returns the registry, for tests or extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// ObserveRequest records one answered request. endpoint is the route
// pattern (e.g. "POST /v1/captures/{sid}/blobs"), never the raw path, so
// the number of series stays bounded.
func (m *Metrics) ObserveRequest(endpoint string, status int, d time.Duration) {
	m.requests.WithLabelValues(endpoint, strconv.Itoa(status)).Observe(d.Seconds())
}

// CaptureStarted counts a capture session as open.
func (m *Metrics) CaptureStarted() { m.capturesInFlight.Inc() }

// CaptureEnded closes a capture counted by CaptureStarted (call it exactly
// once per CaptureStarted) and counts it in smp_captures_total{result};
// result is "committed", "abandoned" or "refused".
func (m *Metrics) CaptureEnded(result string) {
	m.capturesInFlight.Dec()
	m.captures.WithLabelValues(result).Inc()
}

// CaptureRefused counts a refusal for lack of capacity; reason is
// "restore_only", "max_records", "min_free", "max_store_bytes" or "quota".
func (m *Metrics) CaptureRefused(reason string) { m.refusals.WithLabelValues(reason).Inc() }

// RestoreActivity notes a fetch for record: smp_restores_in_flight is the
// number of distinct records fetched in the last 60 s.
func (m *Metrics) RestoreActivity(record string) {
	now := m.now()
	m.restoreMu.Lock()
	defer m.restoreMu.Unlock()
	if _, ok := m.restoreLast[record]; !ok && len(m.restoreLast) >= maxRestoreEntries {
		m.pruneRestores(now)
		if len(m.restoreLast) >= maxRestoreEntries {
			// Still full of live entries: forget the least recent.
			var oldest string
			var oldestAt time.Time
			for r, st := range m.restoreLast {
				if oldest == "" || st.last.Before(oldestAt) {
					oldest, oldestAt = r, st.last
				}
			}
			delete(m.restoreLast, oldest)
		}
	}
	st, ok := m.restoreLast[record]
	if !ok || now.Sub(st.last) >= restoreWindow {
		st = restoreState{first: now}
	}
	st.last = now
	m.restoreLast[record] = st
}

// RestoreServed adds plainBytes of data chunks served for record to its
// restore in progress (one RestoreActivity noted).
func (m *Metrics) RestoreServed(record string, plainBytes uint64) {
	m.restoreMu.Lock()
	defer m.restoreMu.Unlock()
	if st, ok := m.restoreLast[record]; ok {
		st.plain += plainBytes
		m.restoreLast[record] = st
	}
}

// pruneRestores drops records not fetched within restoreWindow of now;
// m.restoreMu is held.
func (m *Metrics) pruneRestores(now time.Time) {
	for r, st := range m.restoreLast {
		if now.Sub(st.last) >= restoreWindow {
			delete(m.restoreLast, r)
		}
	}
}

// restoresInFlight prunes and counts the records fetched recently.
func (m *Metrics) restoresInFlight() int {
	now := m.now()
	m.restoreMu.Lock()
	defer m.restoreMu.Unlock()
	m.pruneRestores(now)
	return len(m.restoreLast)
}

// RestoreCompleted counts a finished restore (called on release).
func (m *Metrics) RestoreCompleted() { m.restores.Inc() }

// Received counts storedBytes of an uploaded blob as received on the wire
// and, when newBlob, as newly stored.
func (m *Metrics) Received(storedBytes int64, newBlob bool) {
	if storedBytes <= 0 {
		return
	}
	m.received.Add(float64(storedBytes))
	if newBlob {
		m.storedNew.Add(float64(storedBytes))
	}
}

// Committed counts the logical bytes of a committed record.
func (m *Metrics) Committed(logicalBytes uint64) { m.captured.Add(float64(logicalBytes)) }

// Served counts storedBytes sent in a fetch answer.
func (m *Metrics) Served(storedBytes int64) {
	if storedBytes > 0 {
		m.served.Add(float64(storedBytes))
	}
}

// GCRun records one garbage collection: its result, the bytes it freed and
// how long it took.
func (m *Metrics) GCRun(reclaimedBytes int64, d time.Duration, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.gcRuns.WithLabelValues(result).Inc()
	if reclaimedBytes > 0 {
		m.gcReclaimed.Add(float64(reclaimedBytes))
	}
	m.gcLast.Set(d.Seconds())
	m.gcLastTime.Set(float64(m.now().UnixNano()) / 1e9)
}

// storeGauges returns the cached StoreGauges, calling m.gauges when the
// cache is older than gaugesTTL. A failure is cached too, so a broken
// store is not hammered by every scrape.
func (m *Metrics) storeGauges() (StoreGauges, error) {
	if m.gauges == nil {
		return StoreGauges{}, errNoGauges
	}
	now := m.now()
	m.gaugesMu.Lock()
	defer m.gaugesMu.Unlock()
	if m.gaugesAt.IsZero() || now.Sub(m.gaugesAt) >= gaugesTTL || now.Before(m.gaugesAt) {
		m.gaugesVal, m.gaugesErr = m.gauges()
		m.gaugesAt = now
		if m.gaugesErr != nil {
			m.log().Error("metrics: reading store gauges", "err", m.gaugesErr)
		}
	}
	return m.gaugesVal, m.gaugesErr
}

var errNoGauges = fmt.Errorf("no store gauges function")

func (m *Metrics) log() *slog.Logger {
	if m.Log != nil {
		return m.Log
	}
	return slog.Default()
}

// storeCollector exposes the scrape-time gauges: the store's sizes from
// StoreGauges and the restores in flight.
type storeCollector struct{ m *Metrics }

var (
	descStored = prometheus.NewDesc("smp_store_stored_bytes",
		"Disk space used by the store's pack files (deduplicated, compressed data), in bytes.", nil, nil)
	descLogical = prometheus.NewDesc("smp_store_logical_bytes",
		"Sum of the file sizes of every record in the store, as if each were a full copy (divide by smp_store_stored_bytes for the deduplication ratio), in bytes.", nil, nil)
	descUnique = prometheus.NewDesc("smp_store_unique_bytes",
		"Uncompressed size of the distinct data chunks in the store (shared data counted once), in bytes.", nil, nil)
	descFree = prometheus.NewDesc("smp_store_free_bytes",
		"Free space an unprivileged writer can still use on the store's file system, in bytes.", nil, nil)
	descRecords = prometheus.NewDesc("smp_store_records",
		"Records in the store, by state: captured (not restored yet) or released (restored; their retention period is running, then gc removes them).", []string{"state"}, nil)
	descRestoresInFlight = prometheus.NewDesc("smp_restores_in_flight",
		"Restores in progress: distinct records fetched from in the last 60 seconds.", nil, nil)
)

func (c storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStored, descLogical, descUnique, descFree, descRecords, descRestoresInFlight} {
		ch <- d
	}
}

func (c storeCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descRestoresInFlight, prometheus.GaugeValue, float64(c.m.restoresInFlight()))
	g, err := c.m.storeGauges()
	if err != nil {
		return // logged by storeGauges; the store gauges are absent from this scrape
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descStored, float64(g.StoredBytes))
	gauge(descLogical, float64(g.LogicalBytes))
	gauge(descUnique, float64(g.UniqueBytes))
	gauge(descFree, float64(g.FreeBytes))
	gauge(descRecords, float64(max(g.Records-g.Released, 0)), "captured")
	gauge(descRecords, float64(g.Released), "released")
}

// promLogger sends promhttp's errors to m.Log.
type promLogger struct{ m *Metrics }

func (l promLogger) Println(v ...any) {
	l.m.log().Error("metrics: " + strings.TrimSuffix(fmt.Sprintln(v...), "\n"))
}
