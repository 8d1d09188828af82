// Package console is the SMP web console that `smp serve` serves at /: an
// admin logs in with an admin token and sees the store's capacity, its
// computers and records, and runs the admin actions (release or remove a
// record, associate computers, create and revoke client tokens, restore-
// only, gc).
//
// It reads the store through the same typed calls as the JSON API (repo's
// Stats, Usage and Records: the figures of GET /v1/stats and smp stats
// --json), so the two cannot disagree.
//
// Security (docs/SECURITY.md, "The web console"):
//   - The cookie holds a random 256-bit session ID, never the token; the
//     store keeps only its SHA-256 (SessionsFile), so every server process
//     of the store directory honours it. HttpOnly, SameSite=Strict, and
//     Secure with the __Host- prefix when the request came over TLS.
//   - A session ends after IdleTimeout unused, AbsoluteTimeout after login,
//     at logout, and as soon as its admin token is revoked or expires (the
//     token is checked against the access file on every request).
//   - Every POST carries the session's CSRF token in a form field and is
//     refused when the browser says it is cross-site (Sec-Fetch-Site,
//     Origin); the login form, before any session, is checked the latter
//     way only.
//   - Content-Security-Policy allows no script at all (the console needs
//     none), styles only from /static/, and no framing; every page is
//     Cache-Control: no-store.
//   - Everything shown comes through html/template: record, computer and
//     file names are data, escaped in their context.
package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"smp/cas"
	"smp/remote/access"
	"smp/repo"
	"smp/repo/report"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// CSP is the console's Content-Security-Policy: no script, no plugin, no
// framing; styles and images only from the console itself.
const CSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Capture is a capture session in progress, as the overview shows it.
type Capture struct {
	Computer string
	Started  time.Time
	Received int64 // stored bytes uploaded so far
	// Done are the plaintext bytes of the distinct chunks the session has
	// finished with (the store held them, or they were uploaded): its
	// progress against ExpectedBytes.
	Done uint64
	// ExpectedFiles and ExpectedBytes are the walk totals the client sent
	// at session start (wire.StartCapture.Expected: the files and bytes it
	// will read); 0 when it sent none (an older client).
	ExpectedFiles, ExpectedBytes uint64
}

// Restore is a record being restored: fetched from within the last
// minute.
type Restore struct {
	Record        string // record ID
	Started, Last time.Time
	// Served are the plaintext bytes of the record's chunks sent since the
	// restore began: its progress against the record's logical bytes (a
	// chunk the record holds twice is fetched once, so the figure may end
	// below them).
	Served uint64
}

// GCStatus is the last gc the server ran.
type GCStatus struct {
	At    time.Time
	Freed int64
	Err   string
}

// Options configure a Console. The funcs come from the server, which owns
// the capture sessions and the gc lock.
type Options struct {
	Repo   *repo.Repo
	Access *access.Store
	Log    *slog.Logger
	Now    func() time.Time
	// RestoreOnly reports the server's restore-only state (flag or file).
	RestoreOnly func(*access.Snapshot) bool
	// GC runs the server's maintenance (server.GC) as a dry run or for real.
	GC func(ctx context.Context, dryRun bool) (*repo.MaintainReport, error)
	// Reading holds off gc (it may repack) while the console reads trees,
	// as a fetch does; it returns the release. Nil: no lock.
	Reading func() (release func())
	// Remove drops a record the way DELETE /v1/records/{id} does.
	Remove func(id cas.ID) error
	// Captures lists the capture sessions in progress.
	Captures func() []Capture
	// Restores lists the records fetched recently.
	Restores func() []Restore
	// LastGC is the last gc the server ran (zero At: none since it started).
	LastGC func() GCStatus
	// Stats are the figures of GET /v1/stats (smp stats --json): the
	// store's and the server's capacity, from the one call both answer
	// with. Nil: the store's alone (Repo.Stats).
	Stats func() (*report.StatsReply, error)

	IdleTimeout     time.Duration // default 30 min
	AbsoluteTimeout time.Duration // default 12 h
	SampleEvery     time.Duration // history interval; default 1 h
	StaleAfter      time.Duration // a never-restored record older than this is stale; default 30 days
}

// Console is the web console; an http.Handler.
type Console struct {
	opts     Options
	mux      *http.ServeMux
	tmpl     map[string]*template.Template
	sessions *sessionStore
	hist     *history
}

// New returns the console of opts.Repo.
func New(opts Options) (*Console, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = 30 * time.Minute
	}
	if opts.AbsoluteTimeout <= 0 {
		opts.AbsoluteTimeout = 12 * time.Hour
	}
	if opts.SampleEvery <= 0 {
		opts.SampleEvery = time.Hour
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 30 * 24 * time.Hour
	}
	c := &Console{opts: opts, mux: http.NewServeMux(),
		sessions: newSessionStore(opts.Repo.Dir, opts.IdleTimeout, opts.AbsoluteTimeout),
		hist:     newHistory(opts.Repo.Dir, opts.SampleEvery)}
	if err := c.parseTemplates(); err != nil {
		return nil, err
	}
	static, _ := fs.Sub(staticFS, "static")
	c.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	c.mux.HandleFunc("GET /login", c.loginPage)
	c.mux.HandleFunc("POST /login", c.login)
	c.mux.HandleFunc("POST /logout", c.authed(c.logout))
	c.mux.HandleFunc("GET /{$}", c.authed(c.overview))
	c.mux.HandleFunc("GET /computers", c.authed(c.computers))
	c.mux.HandleFunc("GET /computer", c.authed(c.computer))
	c.mux.HandleFunc("GET /record", c.authed(c.record))
	c.mux.HandleFunc("GET /tokens", c.authed(c.tokens))
	c.mux.HandleFunc("GET /confirm", c.authed(c.confirm))
	c.mux.HandleFunc("POST /action", c.authed(c.action))
	c.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.headers(w)
		http.Error(w, "not found", http.StatusNotFound)
	})
	return c, nil
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// Run samples the store's figures for the history chart every interval
// until ctx ends (one sample at once when the newest is old enough).
func (c *Console) Run(ctx context.Context) {
	tick := time.NewTicker(min(c.opts.SampleEvery, 5*time.Minute))
	defer tick.Stop()
	for {
		if err := c.hist.maybeSample(c.opts.Now(), c.opts.Repo.Stats); err != nil {
			c.opts.Log.Warn("console history sample", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// headers sets what every console answer carries.
func (c *Console) headers(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer a browser sends
	// "Origin: null" on the console's own form posts, which crossSite
	// must refuse.
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
}

// cookieName is the session cookie's name: with TLS the __Host- prefix
// makes the browser insist on Secure, Path=/ and no Domain.
func cookieName(r *http.Request) string {
	if r.TLS != nil {
		return "__Host-smp_session"
	}
	return "smp_session"
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: cookieName(r), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
}

// page is what every page template gets.
type page struct {
	Title string
	CSRF  string
	Token string // the admin token's ID
	Data  any
}

// req is one authenticated console request.
type req struct {
	sess  sessionRecord
	sid   string
	tok   access.Token
	snap  *access.Snapshot
	title string
}

type authedFunc func(w http.ResponseWriter, r *http.Request, q *req) error

// authed checks the session and, for a POST, its CSRF token and the
// browser's cross-site signals, then runs h.
func (c *Console) authed(h authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c.headers(w)
		q, status, msg := c.check(r)
		if status == http.StatusSeeOther {
			http.Redirect(w, r, "/login", http.StatusSeeOther)
			return
		}
		if status != 0 {
			c.opts.Log.Warn("console", "method", r.Method, "path", r.URL.Path, "status", status, "error", msg)
			c.errorPage(w, status, msg)
			return
		}
		if err := h(w, r, q); err != nil {
			c.opts.Log.Warn("console", "method", r.Method, "path", r.URL.Path, "token", q.tok.ID, "error", err.Error())
			c.errorPage(w, http.StatusInternalServerError, err.Error())
		}
	}
}

func (c *Console) check(r *http.Request) (*req, int, string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead && crossSite(r) {
		return nil, http.StatusForbidden, "cross-site request refused"
	}
	ck, err := r.Cookie(cookieName(r))
	if err != nil {
		return nil, http.StatusSeeOther, ""
	}
	now := c.opts.Now()
	sess, ok, err := c.sessions.lookup(ck.Value, now)
	if err != nil {
		return nil, http.StatusInternalServerError, err.Error()
	}
	if !ok {
		return nil, http.StatusSeeOther, ""
	}
	snap, err := c.opts.Access.Snapshot()
	if err != nil {
		return nil, http.StatusInternalServerError, "read access file: " + err.Error()
	}
	tok, live := tokenByID(snap, sess.TokenID, now)
	if !live || tok.Role != access.RoleAdmin {
		// The token was revoked or expired: the session ends with it.
		_ = c.sessions.end("", sess.TokenID, now)
		return nil, http.StatusSeeOther, ""
	}
	if r.Method == http.MethodPost {
		if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(sess.CSRF)) != 1 {
			return nil, http.StatusForbidden, "missing or wrong CSRF token: reload the page and try again"
		}
	}
	return &req{sess: sess, sid: ck.Value, tok: tok, snap: snap}, 0, ""
}

// crossSite reports whether the browser marked the request as coming from
// another origin: Sec-Fetch-Site when the browser sends it, else Origin.
// A same-site but cross-origin page (another port of the same host) counts:
// SameSite=Strict lets the cookie through from it, the CSRF token does not.
func crossSite(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" {
		return s != "same-origin" && s != "none"
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return true
		}
	}
	return false
}

// tokenByID returns the token with id and whether it is live (not
// revoked, not expired).
func tokenByID(snap *access.Snapshot, id string, now time.Time) (access.Token, bool) {
	for _, t := range snap.Tokens() {
		if t.ID == id {
			return t, t.Revoked.IsZero() && (t.Expires.IsZero() || now.Before(t.Expires))
		}
	}
	return access.Token{}, false
}

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	c.headers(w)
	c.render(w, http.StatusOK, "login", page{Title: "Log in"})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	c.headers(w)
	if crossSite(r) {
		c.errorPage(w, http.StatusForbidden, "cross-site request refused")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	snap, err := c.opts.Access.Snapshot()
	if err != nil {
		c.errorPage(w, http.StatusInternalServerError, "read access file: "+err.Error())
		return
	}
	now := c.opts.Now()
	tok, err := snap.Authenticate(r.PostFormValue("token"), now)
	if errors.Is(err, access.ErrUnknownToken) && c.opts.Access.Shared() {
		// Another smp sharing the store may have just made it.
		if snap, err = c.opts.Access.Recheck(); err != nil {
			c.errorPage(w, http.StatusInternalServerError, "read access file: "+err.Error())
			return
		}
		tok, err = snap.Authenticate(r.PostFormValue("token"), now)
	}
	if err != nil {
		c.opts.Log.Warn("console login", "status", http.StatusUnauthorized, "token", tok.ID, "error", err.Error())
		c.render(w, http.StatusUnauthorized, "login", page{Title: "Log in", Data: "Not logged in: " + err.Error()})
		return
	}
	if tok.Role != access.RoleAdmin {
		c.opts.Log.Warn("console login", "status", http.StatusForbidden, "token", tok.ID, "error", "client token")
		c.render(w, http.StatusForbidden, "login", page{Title: "Log in", Data: "The console needs an admin token; this is a client token."})
		return
	}
	id, _, err := c.sessions.create(tok.ID, now)
	if err != nil {
		c.errorPage(w, http.StatusInternalServerError, err.Error())
		return
	}
	c.setCookie(w, r, id, int(c.opts.AbsoluteTimeout/time.Second))
	c.opts.Log.Info("console login", "token", tok.ID)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, q *req) error {
	if err := c.sessions.end(q.sid, "", c.opts.Now()); err != nil {
		return err
	}
	c.setCookie(w, r, "", -1)
	c.opts.Log.Info("console logout", "token", q.tok.ID)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}

func (c *Console) render(w http.ResponseWriter, status int, name string, p page) {
	t := c.tmpl[name]
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "layout", p); err != nil {
		c.opts.Log.Warn("console render", "page", name, "error", err)
	}
}

func (c *Console) show(w http.ResponseWriter, q *req, name, title string, data any) error {
	c.render(w, http.StatusOK, name, page{Title: title, CSRF: q.sess.CSRF, Token: q.tok.ID, Data: data})
	return nil
}

func (c *Console) errorPage(w http.ResponseWriter, status int, msg string) {
	c.render(w, status, "error", page{Title: http.StatusText(status), Data: msg})
}

// stats are the figures of GET /v1/stats, from the same call.
func (c *Console) stats() (*report.StatsReply, error) {
	if c.opts.Stats != nil {
		return c.opts.Stats()
	}
	st, err := c.opts.Repo.Stats()
	if err != nil {
		return nil, err
	}
	return &report.StatsReply{Stats: st}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b)
}
