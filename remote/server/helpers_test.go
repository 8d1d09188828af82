package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/access"
	"smp/remote/client"
	"smp/remote/server"
	"smp/remote/wire"
	"smp/repo"
)

// t0 is the injected time at which tokens are made and the server starts.
var t0 = time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)

// clock is the server's injected clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// env is one store served by one server over loopback HTTP.
type env struct {
	t     testing.TB
	dir   string
	repo  *repo.Repo
	acc   *access.Store
	srv   *server.Server
	hs    *httptest.Server
	clock *clock
	admin string // an admin token's secret
}

func newEnv(t testing.TB, configure ...func(*server.Options)) *env {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := repo.Init(dir, cas.DefaultChunkerParams()); err != nil {
		t.Fatalf("repo.Init: %v", err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatalf("repo.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("repo.Close: %v", err)
		}
	})
	acc, err := access.Open(dir)
	if err != nil {
		t.Fatalf("access.Open: %v", err)
	}
	e := &env{t: t, dir: dir, repo: r, acc: acc, clock: &clock{now: t0}}
	opts := server.Options{
		Repo: r, Access: acc, Now: e.clock.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	for _, f := range configure {
		f(&opts)
	}
	e.srv = server.New(opts)
	e.hs = httptest.NewServer(e.srv)
	t.Cleanup(e.hs.Close) // runs before the repo closes
	e.admin = e.token("", access.RoleAdmin, 0)
	return e
}

// token creates a token at t0 and returns its secret.
func (e *env) token(computer string, role access.Role, expires time.Duration) string {
	e.t.Helper()
	secret, _, err := e.acc.CreateToken(computer, role, expires, t0)
	if err != nil {
		e.t.Fatalf("CreateToken: %v", err)
	}
	return secret
}

func (e *env) client(tok string) *client.Client {
	e.t.Helper()
	c, err := client.Dial(context.Background(), client.Options{URL: e.hs.URL, Token: tok, Streams: 2})
	if err != nil {
		e.t.Fatalf("client.Dial: %v", err)
	}
	e.t.Cleanup(c.Close)
	return c
}

// reply is a raw HTTP answer.
type reply struct {
	status int
	body   []byte
}

// do sends a raw request; tok "" sends no Authorization header.
func (e *env) do(method, path, tok string, body []byte) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.hs.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read answer: %v", method, path, err)
	}
	return reply{resp.StatusCode, b}
}

func (e *env) postJSON(path, tok string, v any) reply {
	e.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(http.MethodPost, path, tok, b)
}

// wantOK fails unless the answer has status want; it returns the body.
func wantOK(t testing.TB, what string, r reply, want int) []byte {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: HTTP %d %s, want %d", what, r.status, r.body, want)
	}
	return r.body
}

// wantError checks an error answer: the status, a JSON body holding one
// non-empty line containing every fragment, and the capacity flag.
func wantError(t testing.TB, what string, r reply, status int, capacity bool, fragments ...string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: HTTP %d %s, want %d", what, r.status, r.body, status)
	}
	var e wire.Error
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		t.Fatalf("%s: error body %q is not wire.Error JSON: %v", what, r.body, err)
	}
	checkLine(t, what, e.Error, fragments...)
	if e.Capacity != capacity {
		t.Fatalf("%s: capacity = %v, want %v (%q)", what, e.Capacity, capacity, e.Error)
	}
}

// sameReply fails unless two answers are byte for byte the same: a probe
// must not tell "not yours" from "not there".
func sameReply(t testing.TB, what string, got, want reply) {
	t.Helper()
	if got.status != want.status || !bytes.Equal(got.body, want.body) {
		t.Fatalf("%s: HTTP %d %q, but for a missing one HTTP %d %q", what, got.status, got.body, want.status, want.body)
	}
}

// checkLine checks that msg is one printable line with every fragment.
func checkLine(t testing.TB, what, msg string, fragments ...string) {
	t.Helper()
	if msg == "" || strings.ContainsAny(msg, "\r\n") || len(msg) > 400 {
		t.Fatalf("%s: error %q is not one short line", what, msg)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Fatalf("%s: error %q does not say %q", what, msg, f)
		}
	}
}

// clientError checks an error from remote/client: a *client.Error with the
// status and the server's line.
func clientError(t *testing.T, what string, err error, status int, fragments ...string) *client.Error {
	t.Helper()
	var ce *client.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%s: error %v (%T), want a *client.Error with HTTP %d", what, err, err, status)
	}
	if ce.Status != status {
		t.Fatalf("%s: HTTP %d (%q), want %d", what, ce.Status, ce.Msg, status)
	}
	checkLine(t, what, ce.Msg, fragments...)
	return ce
}

// session starts a capture session with a raw request.
func (e *env) session(tok, computer string) wire.Session {
	e.t.Helper()
	b := wantOK(e.t, "start capture", e.postJSON("/v1/captures", tok, wire.StartCapture{Computer: computer}), http.StatusOK)
	var s wire.Session
	if err := json.Unmarshal(b, &s); err != nil || len(s.Nonce) != 32 || s.ID == "" {
		e.t.Fatalf("session answer %q: %v", b, err)
	}
	return s
}

// chunk is a data chunk as a client prepares it.
type chunk struct {
	plain  []byte
	id     cas.ID
	stored []byte
	comp   cas.Compression
}

func (c chunk) frame() wire.Blob {
	return wire.Blob{Type: cas.BlobData, Compression: c.comp, ID: c.id, RawLen: len(c.plain), Stored: c.stored}
}

func (c chunk) have(nonce []byte) wire.HaveEntry {
	return wire.HaveEntry{Type: cas.BlobData, ID: c.id, Len: uint32(len(c.plain)), Proof: wire.Proof(nonce, cas.BlobData, c.id, c.plain)}
}

// makeChunks returns n distinct chunks, named by the store's key: small and
// large (sampled proofs), compressible and random.
func (e *env) makeChunks(seed uint64, n int) []chunk {
	rng := rand.New(rand.NewPCG(seed, 99))
	out := make([]chunk, n)
	for i := range out {
		size := []int{100, 4096, 4097, 50_000, 300_000}[i%5]
		plain := make([]byte, size)
		if i%2 == 0 {
			for j := range plain {
				plain[j] = byte(rng.Uint32())
			}
		} else {
			line := []byte("compressible line " + string(rune('a'+i%26)) + " of seed ")
			line = append(line, byte(seed), byte(seed>>8), byte(i), '\n')
			for j := range plain {
				plain[j] = line[j%len(line)]
			}
			copy(plain, []byte{byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32()), byte(rng.Uint32())})
		}
		stored, comp := cas.Compress(nil, plain)
		out[i] = chunk{plain: plain, id: e.repo.Hasher.Sum(plain), stored: bytes.Clone(stored), comp: comp}
	}
	return out
}

// haveQuery sends a have-query and returns the bitmap.
func (e *env) haveQuery(tok, sid string, entries []wire.HaveEntry) wire.HaveBitmap {
	e.t.Helper()
	b := wantOK(e.t, "have", e.do(http.MethodPost, "/v1/captures/"+sid+"/have", tok, wire.EncodeHave(entries)), http.StatusOK)
	if len(b) != (len(entries)+7)/8 {
		e.t.Fatalf("have answer of %d bytes for %d entries", len(b), len(entries))
	}
	return wire.HaveBitmap(b)
}

// upload sends frames as one raw upload body.
func (e *env) upload(tok, sid string, blobs ...wire.Blob) reply {
	e.t.Helper()
	var body []byte
	for _, b := range blobs {
		body = wire.AppendBlob(body, b)
	}
	return e.do(http.MethodPost, "/v1/captures/"+sid+"/blobs", tok, body)
}

func (e *env) has(id cas.ID) bool {
	e.t.Helper()
	ok, err := e.repo.Has(cas.BlobData, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return ok
}

// fileTree is a root tree of one file per chunk list.
func fileTree(files map[string][]chunk) *manifest.Tree {
	t := &manifest.Tree{}
	for name, chunks := range files {
		en := manifest.Entry{Name: name, Type: manifest.TypeFile, Mode: 0o644, UID: 1000, GID: 1000, MTimeNs: t0.UnixNano()}
		for _, c := range chunks {
			en.Chunks = append(en.Chunks, manifest.Chunk{ID: c.id, Size: uint32(len(c.plain))})
			en.Size += uint64(len(c.plain))
		}
		t.Entries = append(t.Entries, en)
	}
	return t
}

func record(computer string, tree cas.ID, created time.Time) *manifest.Record {
	return &manifest.Record{
		Computer: computer, Users: []string{"alice"}, Created: created, ToolVersion: "test",
		SourceRoot: "/", Paths: []string{"/home/alice"}, Tree: tree, Files: 1, Dirs: 1,
	}
}

// captureAll runs a whole capture through remote/client: every chunk is
// offered and uploaded when not held, then the tree and the record. It
// returns the record ID and the capture (for its counters).
func (e *env) captureAll(c *client.Client, computer string, files map[string][]chunk, created time.Time) (cas.ID, *client.Capture) {
	e.t.Helper()
	ctx := context.Background()
	cp, err := c.StartCapture(ctx, computer, cas.ID{})
	if err != nil {
		e.t.Fatalf("StartCapture(%s): %v", computer, err)
	}
	for _, chunks := range files {
		for _, ch := range chunks {
			if id := cp.Sum(ch.plain); id != ch.id {
				e.t.Fatalf("client names a chunk %s, store %s", id.Short(), ch.id.Short())
			}
			send, err := cp.ReserveData(cas.BlobData, ch.id, ch.plain)
			if err != nil {
				e.t.Fatalf("ReserveData: %v", err)
			}
			if send {
				if err := cp.AddBlob(cas.BlobData, ch.id, ch.comp, ch.stored, len(ch.plain)); err != nil {
					e.t.Fatalf("AddBlob: %v", err)
				}
			}
		}
	}
	root, err := cp.PutTree(fileTree(files))
	if err != nil {
		e.t.Fatalf("PutTree: %v", err)
	}
	id, err := cp.CommitRecord(record(computer, root, created))
	if err != nil {
		e.t.Fatalf("CommitRecord: %v", err)
	}
	cp.Close()
	return id, cp
}
