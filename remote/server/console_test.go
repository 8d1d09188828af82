package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/server"
	"smp/remote/wire"
	"smp/repo"
)

// browser is a cookie-keeping HTTP client of the console that does not
// follow redirects, so a test sees each answer.
type browser struct {
	t      *testing.T
	base   string
	cookie *http.Cookie
	csrf   string
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, hdr map[string]string) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if b.cookie != nil {
		req.AddCookie(b.cookie)
	}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "smp_session" {
			b.cookie = c
		}
	}
	if m := csrfRE.FindStringSubmatch(string(raw)); m != nil {
		b.csrf = m[1]
	}
	return page{resp.StatusCode, resp.Header, string(raw)}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

func (b *browser) login(secret string) page {
	b.t.Helper()
	return b.do(http.MethodPost, "/login", url.Values{"token": {secret}}, nil)
}

// action posts a console action with the page's CSRF token.
func (b *browser) action(form url.Values) page {
	b.t.Helper()
	b.do(http.MethodGet, "/", nil, nil) // a page, for its CSRF token
	form.Set("csrf", b.csrf)
	return b.do(http.MethodPost, "/action", form, nil)
}

func wantPage(t *testing.T, what string, p page, status int, fragments ...string) {
	t.Helper()
	if p.status != status {
		t.Fatalf("%s: status %d, want %d\n%s", what, p.status, status, p.body)
	}
	for _, f := range fragments {
		if !strings.Contains(p.body, f) {
			t.Fatalf("%s: page lacks %q\n%s", what, f, p.body)
		}
	}
}

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestConsoleLoginAndSession(t *testing.T) {
	e := newEnv(t)
	b := &browser{t: t, base: e.hs.URL}
	// No session: pages send the browser to /login; the API keeps its JSON.
	if p := b.do(http.MethodGet, "/", nil, nil); p.status != http.StatusSeeOther || p.header.Get("Location") != "/login" {
		t.Fatalf("/ without a session: %d %s", p.status, p.header.Get("Location"))
	}
	wantPage(t, "bad token", b.login("smp_nonsense"), http.StatusUnauthorized, "unknown token")
	wantPage(t, "client token", b.login(e.token("PC01", access.RoleClient, 0)), http.StatusForbidden, "needs an admin token")
	if b.cookie != nil {
		t.Fatal("a refused login set a cookie")
	}
	p := b.login(e.admin)
	if p.status != http.StatusSeeOther || b.cookie == nil {
		t.Fatalf("admin login: %d, cookie %v", p.status, b.cookie)
	}
	c := b.cookie
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure || len(c.Value) != 64 || strings.Contains(e.admin, c.Value) {
		t.Fatalf("session cookie over plain HTTP %+v: want HttpOnly, SameSite=Strict, not Secure, a random ID", c)
	}
	p = b.do(http.MethodGet, "/", nil, nil)
	wantPage(t, "overview", p, http.StatusOK, `id="records">0<`)
	if p.header.Get("Content-Security-Policy") != "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'" ||
		p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("overview headers %v", p.header)
	}
	// The store keeps only the ID's hash, never the token.
	raw := readAll(t, e.dir+"/console-sessions.json")
	if strings.Contains(raw, c.Value) || strings.Contains(raw, e.admin) {
		t.Fatalf("sessions file holds the session ID or the token: %s", raw)
	}

	// A second server on the same store directory honours the session.
	other := httptest.NewServer(server.New(server.Options{Repo: e.repo, Access: e.acc, Now: e.clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	defer other.Close()
	b2 := &browser{t: t, base: other.URL, cookie: c}
	wantPage(t, "overview on another server", b2.do(http.MethodGet, "/", nil, nil), http.StatusOK, `id="records"`)

	// Idle expiry: use within 30 min keeps it, 30 min unused ends it.
	for range 3 {
		e.clock.Set(e.clock.Now().Add(29 * time.Minute))
		wantPage(t, "after 29 min", b.do(http.MethodGet, "/", nil, nil), http.StatusOK)
	}
	e.clock.Set(e.clock.Now().Add(31 * time.Minute))
	if p := b.do(http.MethodGet, "/", nil, nil); p.status != http.StatusSeeOther {
		t.Fatalf("after 31 idle minutes: status %d", p.status)
	}

	// Absolute expiry: 12 h after login, however busy.
	b.cookie = nil
	b.login(e.admin)
	start := e.clock.Now()
	for e.clock.Now().Sub(start) < 12*time.Hour-25*time.Minute {
		e.clock.Set(e.clock.Now().Add(25 * time.Minute))
		wantPage(t, "busy session", b.do(http.MethodGet, "/", nil, nil), http.StatusOK)
	}
	e.clock.Set(start.Add(12 * time.Hour))
	if p := b.do(http.MethodGet, "/", nil, nil); p.status != http.StatusSeeOther {
		t.Fatalf("12 h after login: status %d", p.status)
	}

	// Revoking the admin token ends its sessions at once.
	admin2 := e.token("", access.RoleAdmin, 0)
	b.cookie = nil
	b.login(admin2)
	wantPage(t, "second admin", b.do(http.MethodGet, "/", nil, nil), http.StatusOK)
	if err := e.acc.RevokeToken(tokenIDOf(t, e, admin2), e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if p := b.do(http.MethodGet, "/", nil, nil); p.status != http.StatusSeeOther {
		t.Fatalf("after revoking the token: status %d", p.status)
	}
}

func TestConsoleCSRF(t *testing.T) {
	e := newEnv(t)
	b := &browser{t: t, base: e.hs.URL}
	b.login(e.admin)
	b.do(http.MethodGet, "/", nil, nil)
	on := url.Values{"op": {"restore-only"}, "on": {"1"}}
	wantPage(t, "no CSRF token", b.do(http.MethodPost, "/action", on, nil), http.StatusForbidden, "CSRF")
	withToken := url.Values{"op": {"restore-only"}, "on": {"1"}, "csrf": {b.csrf}}
	wantPage(t, "cross-site fetch", b.do(http.MethodPost, "/action", withToken, map[string]string{"Sec-Fetch-Site": "same-site"}), http.StatusForbidden, "cross-site")
	wantPage(t, "foreign origin", b.do(http.MethodPost, "/action", withToken, map[string]string{"Origin": "https://evil.example"}), http.StatusForbidden, "cross-site")
	wantPage(t, "cross-site login", b.do(http.MethodPost, "/login", url.Values{"token": {e.admin}}, map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden)
	if snap, _ := e.acc.Snapshot(); snap.RestoreOnly() {
		t.Fatal("a refused request switched restore-only on")
	}
	wantPage(t, "with the CSRF token", b.do(http.MethodPost, "/action", withToken, map[string]string{"Sec-Fetch-Site": "same-origin"}), http.StatusOK, "Restore-only is now on")
	if snap, _ := e.acc.Snapshot(); !snap.RestoreOnly() {
		t.Fatal("restore-only is not on")
	}
	// Another session's CSRF token does not do.
	other := &browser{t: t, base: e.hs.URL}
	other.login(e.admin)
	withToken.Set("on", "0")
	wantPage(t, "another session's CSRF token", other.do(http.MethodPost, "/action", withToken, nil), http.StatusForbidden)
}

func TestConsoleActions(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, func(o *server.Options) { o.Log = slog.New(slog.NewTextHandler(logs, nil)) })
	chunks := e.makeChunks(1, 3)
	keep := e.directRecord("PC01", chunks[:1], t0)
	drop := e.directRecord("PC02", chunks[1:], t0)
	b := &browser{t: t, base: e.hs.URL}
	b.login(e.admin)
	adminID := tokenIDOf(t, e, e.admin)

	// Every action has a confirmation page that posts it.
	wantPage(t, "confirm remove", b.do(http.MethodGet, "/confirm?op=remove&id="+drop.String(), nil, nil), http.StatusOK,
		"Remove record "+drop.String(), `name="op" value="remove"`)
	wantPage(t, "remove", b.action(url.Values{"op": {"remove"}, "id": {drop.String()}}), http.StatusOK, "remove done")
	wantPage(t, "release", b.action(url.Values{"op": {"release"}, "id": {keep.String()}}), http.StatusOK, "release done")
	recs, err := e.repo.Records()
	if err != nil || len(recs) != 1 || recs[0].ID != keep {
		t.Fatalf("records after remove: %v %v", recs, err)
	}
	if rel, _ := e.repo.ReleasedAt(); rel[keep].IsZero() {
		t.Fatal("the record was not released")
	}
	wantPage(t, "remove again", b.action(url.Values{"op": {"remove"}, "id": {drop.String()}}), http.StatusNotFound, "no such record")

	// gc: a dry run shows what it would free and offers the real run.
	wantPage(t, "gc dry run", b.action(url.Values{"op": {"gc-dry-run"}}), http.StatusOK, "it would free", `value="gc"`)
	wantPage(t, "gc", b.action(url.Values{"op": {"gc"}}), http.StatusOK, "freed")

	wantPage(t, "associate", b.action(url.Values{"op": {"associate"}, "source": {"PC01"}, "dest": {"PC09"}}), http.StatusOK)
	snap, _ := e.acc.Snapshot()
	if as := snap.Associations(); len(as) != 1 || as[0].Source != "PC01" || as[0].Dest != "PC09" {
		t.Fatalf("associations %+v", as)
	}
	p := b.action(url.Values{"op": {"token-create"}, "computer": {"PC09"}})
	m := regexp.MustCompile(`id="secret">(smp_[A-Za-z0-9_-]+)<`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil || p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token create: %d %v\n%s", p.status, p.header, p.body)
	}
	snap, _ = e.acc.Snapshot()
	tok, err := snap.Authenticate(m[1], e.clock.Now())
	if err != nil || tok.Role != access.RoleClient || tok.Computer != "PC09" {
		t.Fatalf("the new secret authenticates as %+v, %v", tok, err)
	}
	wantPage(t, "revoke", b.action(url.Values{"op": {"token-revoke"}, "id": {tok.ID}}), http.StatusOK)
	snap, _ = e.acc.Snapshot()
	if _, err := snap.Authenticate(m[1], e.clock.Now()); err != access.ErrRevoked {
		t.Fatalf("revoked token authenticates: %v", err)
	}
	wantPage(t, "unknown action", b.action(url.Values{"op": {"format-disk"}}), http.StatusBadRequest)

	// Each action is one log line with the admin token's ID.
	for _, op := range []string{"remove", "release", "gc-dry-run", "gc", "associate", "token-create", "token-revoke"} {
		if !regexp.MustCompile(`msg="console action" action=` + op + ` token=` + adminID).MatchString(logs.String()) {
			t.Errorf("no log line for %s with token %s:\n%s", op, adminID, logs.String())
		}
	}
	// The overview shows the gc it ran.
	wantPage(t, "overview", b.do(http.MethodGet, "/", nil, nil), http.StatusOK, "Last gc: 2026-")
}

// TestConsoleSameFiguresAsStats: the overview's numbers are repo.Stats,
// which GET /v1/stats answers.
func TestConsoleSameFiguresAsStats(t *testing.T) {
	e := newEnv(t)
	chunks := e.makeChunks(2, 4)
	id := e.directRecord("PC01", chunks, t0)
	b := &browser{t: t, base: e.hs.URL}
	b.login(e.admin)
	wantPage(t, "overview before a restore", b.do(http.MethodGet, "/", nil, nil), http.StatusOK, `id="no-restores"`)
	// A record being fetched is a restore in progress.
	r, _ := e.fetchRaw(e.admin, id, []wire.FetchEntry{{Type: cas.BlobData, ID: chunks[0].id}})
	wantOK(t, "fetch", r, http.StatusOK)
	wantPage(t, "overview during a restore", b.do(http.MethodGet, "/", nil, nil), http.StatusOK, `id="restores"`, id.String(), "PC01")
	st, err := e.repo.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var api repo.Stats
	decode(t, wantOK(t, "stats", e.do(http.MethodGet, "/v1/stats", e.admin, nil), http.StatusOK), &api)
	if api.StoredBytes != st.StoredBytes || api.Records != st.Records {
		t.Fatalf("api %+v, repo %+v", api, st)
	}
	wantPage(t, "overview", b.do(http.MethodGet, "/", nil, nil), http.StatusOK,
		`id="records">1<`, `id="stored-bytes">`+itoa(api.StoredBytes)+`<`, `id="logical-bytes">`+itoa(api.LogicalBytes)+`<`)
}

func decode(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }

func readAll(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// tokenIDOf returns the ID of the token whose secret this is.
func tokenIDOf(t *testing.T, e *env, secret string) string {
	t.Helper()
	snap, err := e.acc.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := snap.Authenticate(secret, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok.ID
}

// TestConsoleEscapesNames: file and computer names are data; the pages
// carry them escaped (the browser test shows nothing runs).
func TestConsoleEscapesNames(t *testing.T) {
	e := newEnv(t)
	chunks := e.makeChunks(3, 1)
	for _, c := range chunks {
		if _, _, err := e.repo.PutBlob(cas.BlobData, c.plain); err != nil {
			t.Fatal(err)
		}
	}
	const evilFile = `<script>alert(1)<`
	const evilPC = `<img src=x onerror=alert(2)>`
	root, err := e.repo.PutTree(fileTree(map[string][]chunk{evilFile: chunks, "bad\xffname": chunks}))
	if err != nil {
		t.Fatal(err)
	}
	id, err := e.repo.CommitRecord(record(evilPC, root, t0))
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, base: e.hs.URL}
	b.login(e.admin)
	for _, path := range []string{"/computers", "/computer?name=" + url.QueryEscape(evilPC), "/record?id=" + id.String()} {
		p := b.do(http.MethodGet, path, nil, nil)
		wantPage(t, path, p, http.StatusOK)
		if strings.Contains(p.body, "<script>alert") || strings.Contains(p.body, "<img src=x") || strings.Contains(p.body, "\xff") {
			t.Errorf("%s carries a name unescaped:\n%s", path, p.body)
		}
	}
	wantPage(t, "record", b.do(http.MethodGet, "/record?id="+id.String(), nil, nil), http.StatusOK,
		"&lt;script&gt;alert(1)&lt;", "bad\ufffdname", "name not UTF-8")
	wantPage(t, "computers", b.do(http.MethodGet, "/computers", nil, nil), http.StatusOK, "&lt;img src=x onerror=alert(2)&gt;")
	wantPage(t, "unknown record", b.do(http.MethodGet, "/record?id="+strings.Repeat("0", 64), nil, nil), http.StatusNotFound, "no such record")
}

// TestConsoleRestoreOnlyFlag: the access file's switch cannot turn off a
// server started with --restore-only, and the console says so.
func TestConsoleRestoreOnlyFlag(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.RestoreOnly = true })
	b := &browser{t: t, base: e.hs.URL}
	b.login(e.admin)
	wantPage(t, "overview", b.do(http.MethodGet, "/", nil, nil), http.StatusOK, `id="restore-only"`)
	wantPage(t, "switch off", b.action(url.Values{"op": {"restore-only"}}), http.StatusOK, "stays on")
}
