package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/console"
	"smp/remote/wire"
	"smp/repo"
)

// Options configure a Server.
type Options struct {
	Repo   *repo.Repo
	Access *access.Store
	Log    *slog.Logger
	// RestoreOnly refuses new captures (also switched on at run time by
	// `smp admin restore-only on`, read from the access file).
	RestoreOnly bool
	// SessionIdle is how long a capture session may stay unused before it
	// is forgotten (its uploaded blobs stay in the store). Default 1 h.
	SessionIdle time.Duration
	Now         func() time.Time // injectable clock; default time.Now

	// Capacity limits, checked before a capture uploads anything and, for
	// space, again on every have-query, which reserves the bytes it asks
	// for: two captures cannot both pass a check that only one fits.
	// The store's shared limits (access.Limits, smp admin limits) apply
	// too: the stricter of each pair counts.
	MaxRecords int    // live records plus open captures; 0 = no limit
	MinFree    uint64 // refuse captures that would leave less free space
	Quota      uint64 // new stored bytes per computer (its live records plus open captures)
	// MaxStoreBytes refuses captures that would take the store's stored
	// bytes plus this server's reservations over it: the limit of a
	// store on S3, where free space means nothing. Each server reserves
	// for its own captures only, so several servers sharing a store may
	// together exceed it by what they reserved (docs/FORMAT.md).
	MaxStoreBytes uint64
	// FreeBytes reports the store filesystem's free space (default: statfs
	// of the store directory); injectable for tests.
	FreeBytes func() (uint64, error)
	// StoredBytes reports the store's stored bytes (default: the sizes of
	// the index's packs, which a store on S3 refreshes from the bucket).
	StoredBytes func() (uint64, error)
	// GCGrace is the grace period of a gc run by the server when the
	// request gives none (default 1 h).
	GCGrace time.Duration
}

// Server serves one store. Create it with New; it is an http.Handler.
type Server struct {
	opts    Options
	mux     *http.ServeMux
	reach   *reachCache
	metrics *Metrics

	// work bounds the have-queries and upload frames processed at once:
	// each holds multi-MiB buffers and a core, so memory and CPU stay
	// bounded however many clients upload; the others wait their turn. A
	// request takes a slot only once its bytes have arrived (an upload
	// per run of arrived frames), so a slow client cannot hold one while
	// it sends; a freed slot goes to the oldest request waiting.
	work *workSlots
	// tokens bounds each token's have and upload requests in progress.
	tokens tokenLimits

	mu       sync.Mutex
	sessions map[string]*session
	// stopped remembers why a session was ended by a refusal, so that the
	// client's other requests still in flight get that reason rather than
	// "no open session". Guarded by mu; pruned with idle sessions.
	stopped  map[string]stoppedSession
	reserved uint64 // bytes reserved by open sessions' have-queries; guarded by mu

	// gcMu lets a gc run beside the server: requests that read or write
	// blobs hold it shared, gc exclusively, so gc never deletes a pack a
	// request is reading or a chunk a session was just told is held.
	gcMu sync.RWMutex

	// maxBlobs is maxSessionBlobs (a test lowers it).
	maxBlobs int

	// console is the web console at / (console.go); lastGC its "last gc".
	console        *console.Console
	consoleHandler http.Handler
	lastGC         atomic.Pointer[gcStatus]

	// Counters for logs and tests.
	BlobsReceived, BytesReceived, BlobsStored atomic.Int64
}

type session struct {
	id, computer, tokenID string
	nonce                 []byte
	prover                *wire.Prover
	mu                    sync.Mutex
	last                  time.Time
	received              atomic.Int64 // stored bytes uploaded in this session
	stored                atomic.Int64 // of which new to the store
	limited               bool         // a client token's session: counts against maxTokenSessions
	estimate              bool         // an estimate session: answers have-queries, keeps nothing
	started               time.Time
	// expected are the client's walk totals (checked, shown only), or nil;
	// set at start or later (setExpected), guarded by Server.mu.
	expected *wire.CaptureTotals
	// done are the plaintext bytes of the distinct data chunks the session
	// has finished with: proved held (the store had them) or uploaded.
	// They are its progress against expected.Bytes (a chunk met twice in
	// one capture counts once, so a capture may end short of the total).
	done atomic.Uint64
	// Guarded by Server.mu:
	reserved  uint64 // bytes asked for and not yet uploaded
	quotaBase uint64 // stored bytes of the computer's live records at start
	// blobs is what the session did with each blob it named, one entry per
	// (type, ID) however often it is offered, at most maxSessionBlobs. A
	// held blob (proved in a have-query or uploaded) is one the commit may
	// reference and gc keeps; an offered one the store lacked is expected
	// next (its bytes reserved when limits are set) and not reserved twice.
	blobs map[blobKey]blobState
}

// blobKey names a blob with its type: proving a chunk is no right to
// reference a tree of the same ID.
type blobKey = cas.BlobKey

// blobState is what a session did with a blob.
type blobState uint8

const (
	blobOffered blobState = 1 << iota // offered, the store lacked it: the client will upload it
	blobHeld                          // proved or uploaded: the commit may reference it, gc keeps it
)

// maxSessionBlobs bounds the distinct blobs one capture session may name
// (offer, prove or upload): 60 to 80 bytes of server memory each, 80 MiB
// for a session at the limit. A profile of 200,000 files and 50,000
// directories uses a quarter of it, leaving the rest for the chunks of
// large files (docs/PROTOCOL.md gives the bytes at the default chunk
// size). A capture past it is
// stopped with a one-line error (docs/PROTOCOL.md, Limits).
const maxSessionBlobs = 1 << 20

// maxTokenSessions bounds the capture sessions one client token has open,
// so that with maxSessionBlobs it bounds the memory a token can hold. A
// new session past it ends the token's least recently active one: a
// client token is one computer, which captures one at a time, and the
// session of a run that was killed is the one to go.
const maxTokenSessions = 2

// New returns a server for opts.Repo.
func New(opts Options) *Server {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionIdle <= 0 {
		opts.SessionIdle = time.Hour
	}
	if opts.GCGrace <= 0 {
		opts.GCGrace = time.Hour
	}
	if opts.FreeBytes == nil {
		dir := opts.Repo.Dir
		opts.FreeBytes = func() (uint64, error) { return repo.FreeBytes(dir) }
	}
	if opts.StoredBytes == nil {
		opts.StoredBytes = cachedFor(opts.Repo.PackBytes)
	}
	s := &Server{opts: opts, mux: http.NewServeMux(), sessions: map[string]*session{}, stopped: map[string]stoppedSession{}, reach: newReachCache(opts.Repo, 4),
		work: newWorkSlots(2 * runtime.GOMAXPROCS(0)), maxBlobs: maxSessionBlobs}
	s.metrics = NewMetrics(func() (StoreGauges, error) {
		st, err := opts.Repo.Stats()
		if err != nil {
			return StoreGauges{}, err
		}
		return StoreGauges{StoredBytes: st.StoredBytes, LogicalBytes: st.LogicalBytes, UniqueBytes: st.UniqueBytes,
			FreeBytes: st.FreeBytes, Records: st.Records, Released: st.Released}, nil
	})
	s.metrics.Log = opts.Log
	s.metrics.now = opts.Now // restores in progress are timed by the server's clock, as sessions are
	p := wire.Prefix
	s.handle("GET "+p+"/info", s.info)
	s.handle("POST "+p+"/captures", s.startCapture)
	s.handle("POST "+p+"/captures/{sid}/have", s.perToken(s.have))
	s.handle("POST "+p+"/captures/{sid}/blobs", s.perToken(s.upload))
	s.handle("POST "+p+"/captures/{sid}/commit", s.commit)
	s.handle("POST "+p+"/captures/{sid}/expected", s.setExpected)
	s.handle("GET "+p+"/records", s.records)
	s.handle("GET "+p+"/record", s.findRecord)
	s.handle("POST "+p+"/records/{id}/fetch", s.fetch)
	s.handle("POST "+p+"/records/{id}/release", s.release)
	s.handle("DELETE "+p+"/records/{id}", s.remove)
	s.handle("GET "+p+"/stats", s.stats)
	s.handle("POST "+p+"/gc", s.gcHandler)
	s.handle("GET /metrics", func(w http.ResponseWriter, r *http.Request, c *call) error {
		if c.tok.Role != access.RoleAdmin {
			return fail(http.StatusForbidden, "metrics need an admin token (Prometheus: authorization credentials), or serve them apart with --metrics-listen")
		}
		s.metrics.Handler().ServeHTTP(w, r)
		return nil
	})
	s.consoleHandler = s.newConsole()
	s.mux.HandleFunc("/", s.serveRoot)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// call is one authenticated request on its way through a handler; the
// handler fills in what the log line should say.
type call struct {
	tok      access.Token
	snap     *access.Snapshot
	computer string
	record   string
	bytesIn  int64
	bytesOut int64
}

// httpError is an error with the status to answer it with.
type httpError struct {
	status   int
	msg      string
	capacity bool
}

func (e *httpError) Error() string { return e.msg }

func fail(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, c *call) error

// handle wraps h with authentication, error mapping and one structured log
// line per request.
func (s *Server) handle(pattern string, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		c := &call{}
		err := s.authenticate(r, c)
		if err == nil {
			err = h(sw, r, c)
		}
		if err != nil {
			var he *httpError
			var mbe *http.MaxBytesError
			switch {
			case errors.As(err, &he):
			case errors.As(err, &mbe):
				he = &httpError{status: http.StatusRequestEntityTooLarge, msg: fmt.Sprintf("request body over %d bytes: split it (docs/PROTOCOL.md limits)", mbe.Limit)}
			case errors.Is(err, syscall.ENOSPC):
				he = &httpError{status: http.StatusInsufficientStorage, capacity: true,
					msg: "this SMP's disk is full (" + err.Error() + "); nothing of this capture was committed: capture to another SMP, or ask its admin to free space (smp gc) and run it again"}
			case errors.Is(err, wire.ErrMalformed):
				he = &httpError{status: http.StatusBadRequest, msg: err.Error()}
			case errors.Is(err, context.Canceled) || r.Context().Err() != nil:
				he = &httpError{status: 499, msg: "client went away"}
			default:
				he = &httpError{status: http.StatusInternalServerError, msg: "server error: " + err.Error()}
			}
			if sw.status == 0 {
				writeErrorCap(sw, he.status, he.msg, he.capacity)
			}
			err = he
		}
		s.metrics.ObserveRequest(pattern, sw.code(), time.Since(start))
		attrs := []any{
			"method", r.Method, "path", r.URL.Path, "status", sw.code(),
			"duration_ms", time.Since(start).Milliseconds(),
			"bytes_in", c.bytesIn, "bytes_out", sw.n,
		}
		if c.tok.ID != "" {
			attrs = append(attrs, "token", c.tok.ID)
		}
		if c.computer != "" {
			attrs = append(attrs, "computer", c.computer)
		}
		if c.record != "" {
			attrs = append(attrs, "record", c.record)
		}
		if err != nil {
			attrs = append(attrs, "error", err.Error())
			s.opts.Log.Warn("request", attrs...)
		} else {
			s.opts.Log.Info("request", attrs...)
		}
	})
}

func (s *Server) authenticate(r *http.Request, c *call) error {
	snap, err := s.opts.Access.Snapshot()
	if err != nil {
		return fmt.Errorf("read access file: %w", err)
	}
	secret := ""
	if h := r.Header.Get("Authorization"); len(h) > 7 && h[:7] == "Bearer " {
		secret = h[7:]
	}
	tok, err := snap.Authenticate(secret, s.opts.Now())
	if errors.Is(err, access.ErrUnknownToken) && s.opts.Access.Shared() {
		// Another smp sharing the store may have just made it.
		if snap, err = s.opts.Access.Recheck(); err != nil {
			return fmt.Errorf("read access file: %w", err)
		}
		tok, err = snap.Authenticate(secret, s.opts.Now())
	}
	if err != nil {
		return fail(http.StatusUnauthorized, "%v", err)
	}
	c.tok, c.snap, c.computer = tok, snap, tok.Computer
	return nil
}

func (s *Server) restoreOnly(snap *access.Snapshot) bool {
	return s.opts.RestoreOnly || snap.RestoreOnly()
}

func (s *Server) info(w http.ResponseWriter, r *http.Request, c *call) error {
	cfg := s.opts.Repo.Config
	return writeJSON(w, wire.Info{
		Protocol: wire.Version, StoreID: cfg.StoreID, Chunker: cfg.Chunker, HashKey: s.opts.Repo.HashKey(),
		RestoreOnly: s.restoreOnly(c.snap), Computer: c.tok.Computer, Role: string(c.tok.Role),
		Features: []string{wire.FeatureCaptureTotals, wire.FeatureTotalsLater},
	})
}

func (s *Server) startCapture(w http.ResponseWriter, r *http.Request, c *call) error {
	var req wire.StartCapture
	if err := readJSON(w, r, wire.MaxJSONBytes, &req); err != nil {
		return err
	}
	c.computer = req.Computer
	if req.Computer == "" {
		return fail(http.StatusBadRequest, "capture needs a computer name")
	}
	if !c.snap.MayCapture(c.tok, req.Computer) {
		return fail(http.StatusForbidden, "token %s belongs to computer %q and may not capture as %q", c.tok.ID, c.tok.Computer, req.Computer)
	}
	if s.restoreOnly(c.snap) {
		s.metrics.CaptureRefused("restore_only")
		return &httpError{status: http.StatusServiceUnavailable, capacity: true,
			msg: "this SMP is in restore-only mode and refuses new captures: capture to another SMP or ask its admin"}
	}
	sess := &session{computer: req.Computer, tokenID: c.tok.ID, nonce: randomBytes(32), last: s.opts.Now(), started: s.opts.Now(),
		limited: c.tok.Role != access.RoleAdmin, blobs: map[blobKey]blobState{}, estimate: req.Estimate}
	if req.Expected != nil {
		if err := req.Expected.Check(); err != nil {
			return fail(http.StatusBadRequest, "%v", err)
		}
		sess.expected = req.Expected
	}
	sess.prover = wire.NewProver(sess.nonce)
	sess.id = hex.EncodeToString(randomBytes(16))
	if err := s.admit(sess); err != nil {
		return err
	}
	s.metrics.CaptureStarted()
	return writeJSON(w, wire.Session{ID: sess.id, Nonce: sess.nonce, Estimate: sess.estimate})
}

// expireSessions forgets idle sessions and their reservations. Caller
// holds s.mu.
func (s *Server) expireSessions() {
	now := s.opts.Now()
	for id, st := range s.stopped {
		if now.Sub(st.at) > s.opts.SessionIdle {
			delete(s.stopped, id)
		}
	}
	for id, sess := range s.sessions {
		sess.mu.Lock()
		idle := now.Sub(sess.last)
		sess.mu.Unlock()
		if idle > s.opts.SessionIdle {
			s.endSession(id, "abandoned")
		}
	}
}

// endSession forgets a session and returns its reservation. Caller holds
// s.mu.
func (s *Server) endSession(id, result string) {
	if sess := s.sessions[id]; sess != nil {
		s.reserved -= sess.reserved
		delete(s.sessions, id)
		s.metrics.CaptureEnded(result)
	}
}

// stoppedSession is a session ended by a refusal.
type stoppedSession struct {
	tokenID string
	err     error
	at      time.Time
}

// maxStopped bounds Server.stopped: past it the oldest reasons are
// forgotten (their clients then read "no open session").
const maxStopped = 1024

// stopSession ends a session because of err and remembers why; it returns
// err. Caller holds s.mu.
func (s *Server) stopSession(sess *session, err error) error {
	s.endSession(sess.id, "refused")
	if len(s.stopped) >= maxStopped {
		var oldest string
		for id, st := range s.stopped {
			if oldest == "" || st.at.Before(s.stopped[oldest].at) {
				oldest = id
			}
		}
		delete(s.stopped, oldest)
	}
	s.stopped[sess.id] = stoppedSession{tokenID: sess.tokenID, err: err, at: s.opts.Now()}
	return err
}

// acquireWork waits for a processing slot for the request that took
// ticket (workSlots.ticket) when it arrived; the returned func frees it.
func (s *Server) acquireWork(r *http.Request, ticket uint64) (func(), error) {
	return s.work.acquire(r.Context(), ticket)
}

// Metrics returns the server's Prometheus metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// session returns the caller's open session named in the path.
func (s *Server) session(r *http.Request, c *call) (*session, error) {
	s.mu.Lock()
	sess := s.sessions[r.PathValue("sid")]
	stopped, wasStopped := s.stopped[r.PathValue("sid")]
	s.mu.Unlock()
	if sess == nil && wasStopped && stopped.tokenID == c.tok.ID {
		return nil, stopped.err
	}
	if sess == nil || sess.tokenID != c.tok.ID {
		return nil, fail(http.StatusNotFound, "no open capture session %q for this token (expired after %v idle, or committed): start the capture again", r.PathValue("sid"), s.opts.SessionIdle)
	}
	c.computer = sess.computer
	return sess, nil
}

// touch refreshes the session's idle timer. Only a request that adds to
// the session (a blob newly offered, proved or uploaded) calls it: re-
// offering what it already named must not keep a session alive for free.
func (s *Server) touch(sess *session) {
	sess.mu.Lock()
	sess.last = s.opts.Now()
	sess.mu.Unlock()
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return b
}

func parseID(s string) (cas.ID, error) {
	id, err := cas.ParseID(s)
	if err != nil {
		return cas.ID{}, fail(http.StatusBadRequest, "record ID %q: %v", s, err)
	}
	return id, nil
}

func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return fail(http.StatusBadRequest, "bad JSON body: %v", err)
	}
	// One value is the whole body: anything after it is a client bug or a
	// smuggling attempt, never something to ignore.
	if _, err := dec.Token(); err != io.EOF {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return fail(http.StatusBadRequest, "bad JSON body: data after the JSON value: send one value")
	}
	return nil
}

func writeJSON(w http.ResponseWriter, v any) error {
	w.Header().Set("Content-Type", "application/json")
	return json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) { writeErrorCap(w, status, msg, false) }

func writeErrorCap(w http.ResponseWriter, status int, msg string, capacity bool) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(wire.Error{Error: msg, Capacity: capacity})
}

// statusWriter remembers the status and counts the body bytes written.
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}
