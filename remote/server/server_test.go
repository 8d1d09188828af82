package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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
)

func TestTokens(t *testing.T) {
	e := newEnv(t)
	good := e.token("PC01", access.RoleClient, 0)
	revoked, revokedTok, err := e.acc.CreateToken("PC01", access.RoleClient, 0, t0)
	if err != nil {
		t.Fatal(err)
	}
	expiring := e.token("PC01", access.RoleClient, time.Hour)
	wantOK(t, "token before its revocation", e.do(http.MethodGet, "/v1/info", revoked, nil), http.StatusOK)
	if err := e.acc.RevokeToken(revokedTok.ID, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}

	wantOK(t, "good token", e.do(http.MethodGet, "/v1/info", good, nil), http.StatusOK)
	wantOK(t, "expiring token before expiry", e.do(http.MethodGet, "/v1/info", expiring, nil), http.StatusOK)
	wantError(t, "no token", e.do(http.MethodGet, "/v1/info", "", nil), http.StatusUnauthorized, false, "no token")
	wantError(t, "wrong token", e.do(http.MethodGet, "/v1/info", "smp_notatokenatall", nil), http.StatusUnauthorized, false, "unknown token")
	wantError(t, "revoked token", e.do(http.MethodGet, "/v1/info", revoked, nil), http.StatusUnauthorized, false, "revoked")

	// A token sent without the Bearer scheme is no token.
	req, _ := http.NewRequest(http.MethodGet, e.hs.URL+"/v1/info", nil)
	req.Header.Set("Authorization", "Basic "+good)
	resp, err := e.hs.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantError(t, "Basic scheme", reply{resp.StatusCode, b}, http.StatusUnauthorized, false, "no token")

	// Every endpoint authenticates, not only /info.
	for _, ep := range []struct{ method, path string }{
		{http.MethodPost, "/v1/captures"},
		{http.MethodPost, "/v1/captures/abc/have"},
		{http.MethodPost, "/v1/captures/abc/blobs"},
		{http.MethodPost, "/v1/captures/abc/commit"},
		{http.MethodGet, "/v1/records"},
		{http.MethodGet, "/v1/record?computer=PC01"},
		{http.MethodPost, "/v1/records/" + strings.Repeat("ab", 32) + "/fetch"},
		{http.MethodPost, "/v1/records/" + strings.Repeat("ab", 32) + "/release"},
		{http.MethodDelete, "/v1/records/" + strings.Repeat("ab", 32)},
		{http.MethodGet, "/v1/stats"},
	} {
		wantError(t, ep.method+" "+ep.path, e.do(ep.method, ep.path, "smp_wrong", []byte("{}")), http.StatusUnauthorized, false, "unknown token")
	}

	// The injected clock reaches the expiry: refused from that instant on.
	e.clock.Set(t0.Add(time.Hour - time.Nanosecond))
	wantOK(t, "expiring token just before expiry", e.do(http.MethodGet, "/v1/info", expiring, nil), http.StatusOK)
	e.clock.Set(t0.Add(time.Hour))
	wantError(t, "expired token", e.do(http.MethodGet, "/v1/info", expiring, nil), http.StatusUnauthorized, false, "expired")
	wantOK(t, "token without expiry later", e.do(http.MethodGet, "/v1/info", good, nil), http.StatusOK)

	// The client reports the refusal with the server's line.
	_, err = client.Dial(context.Background(), client.Options{URL: e.hs.URL, Token: expiring})
	ce := clientError(t, "Dial with an expired token", err, http.StatusUnauthorized, "expired")
	if !strings.Contains(ce.Error(), "refused the token") {
		t.Errorf("client error %q does not say the token was refused", ce.Error())
	}
}

func TestInfo(t *testing.T) {
	e := newEnv(t)
	c := e.client(e.token("PC01", access.RoleClient, 0))
	info := c.Info()
	cfg := e.repo.Config
	if info.Protocol != wire.Version || info.StoreID != cfg.StoreID || !bytes.Equal(info.HashKey, cfg.HashKey) ||
		info.Chunker != cfg.Chunker || info.Computer != "PC01" || info.Role != "client" || info.RestoreOnly {
		t.Fatalf("info %+v does not describe the store and token", info)
	}
	if id := c.Sum([]byte("x")); id != e.repo.Sum([]byte("x")) {
		t.Fatal("the client names chunks differently from the store")
	}
	if a := e.client(e.admin).Info(); a.Role != "admin" || a.Computer != "" {
		t.Fatalf("admin info %+v", a)
	}
}

func TestUnknownEndpoint(t *testing.T) {
	e := newEnv(t)
	wantError(t, "v2 path", e.do(http.MethodGet, "/v2/info", e.admin, nil), http.StatusNotFound, false, "no such endpoint", "v1")
	wantError(t, "no path", e.do(http.MethodGet, "/", e.admin, nil), http.StatusNotFound, false, "no such endpoint")
}

func TestCaptureAsOtherComputer(t *testing.T) {
	e := newEnv(t)
	pc01 := e.token("PC01", access.RoleClient, 0)
	wantError(t, "PC01 captures as PC02", e.postJSON("/v1/captures", pc01, wire.StartCapture{Computer: "PC02"}),
		http.StatusForbidden, false, "PC01", "PC02")
	wantError(t, "no computer", e.postJSON("/v1/captures", pc01, wire.StartCapture{}), http.StatusBadRequest, false, "computer")
	wantError(t, "not JSON", e.do(http.MethodPost, "/v1/captures", pc01, []byte("computer=PC01")), http.StatusBadRequest, false, "JSON")
	wantError(t, "unknown field", e.do(http.MethodPost, "/v1/captures", pc01, []byte(`{"computer":"PC01","admin":true}`)), http.StatusBadRequest, false, "JSON")
	e.session(pc01, "PC01")
	e.session(e.admin, "PC02")
	e.session(e.admin, "PC01")

	_, err := e.client(pc01).StartCapture(context.Background(), "PC02", cas.ID{})
	ce := clientError(t, "client StartCapture as PC02", err, http.StatusForbidden, "PC02")
	if errors.Is(ce, client.ErrCapacity) {
		t.Fatal("a 403 marked as capacity")
	}

	// A session belongs to the token that opened it.
	s := e.session(pc01, "PC01")
	other := e.token("PC01", access.RoleClient, 0)
	body := wire.EncodeHave([]wire.HaveEntry{{Type: cas.BlobData}})
	wantError(t, "other token's session", e.do(http.MethodPost, "/v1/captures/"+s.ID+"/have", other, body), http.StatusNotFound, false, "no open capture session")
	wantError(t, "admin on a client's session", e.do(http.MethodPost, "/v1/captures/"+s.ID+"/have", e.admin, body), http.StatusNotFound, false, "no open capture session")
	wantError(t, "unknown session", e.do(http.MethodPost, "/v1/captures/nosuch/blobs", pc01, nil), http.StatusNotFound, false, "no open capture session")
	e.haveQuery(pc01, s.ID, []wire.HaveEntry{{Type: cas.BlobData}})
}

func TestSessionIdle(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.SessionIdle = time.Minute })
	pc01 := e.token("PC01", access.RoleClient, 0)
	s := e.session(pc01, "PC01")
	e.clock.Set(t0.Add(30 * time.Second))
	e.haveQuery(pc01, s.ID, []wire.HaveEntry{{Type: cas.BlobData}}) // use keeps it alive
	e.clock.Set(t0.Add(80 * time.Second))
	e.session(pc01, "PC01") // forgets sessions idle for over a minute: s was used 50 s ago
	e.haveQuery(pc01, s.ID, []wire.HaveEntry{{Type: cas.BlobData}})
	e.clock.Set(t0.Add(200 * time.Second))
	e.session(pc01, "PC01")
	wantError(t, "idle session", e.do(http.MethodPost, "/v1/captures/"+s.ID+"/have", pc01, wire.EncodeHave([]wire.HaveEntry{{Type: cas.BlobData}})),
		http.StatusNotFound, false, "no open capture session")
}

// directRecord stores chunks, a tree and a record straight into the repo,
// as a local capture beside the server would.
func (e *env) directRecord(computer string, chunks []chunk, created time.Time) cas.ID {
	e.t.Helper()
	for _, c := range chunks {
		if _, _, err := e.repo.PutBlob(cas.BlobData, c.plain); err != nil {
			e.t.Fatal(err)
		}
	}
	root, err := e.repo.PutTree(fileTree(map[string][]chunk{"f": chunks}))
	if err != nil {
		e.t.Fatal(err)
	}
	id, err := e.repo.CommitRecord(record(computer, root, created))
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

func TestRestoreOnlyOption(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.RestoreOnly = true })
	pc01 := e.token("PC01", access.RoleClient, 0)
	chunks := e.makeChunks(1, 3)
	rec := e.directRecord("PC01", chunks, t0)

	wantError(t, "capture in restore-only mode", e.postJSON("/v1/captures", pc01, wire.StartCapture{Computer: "PC01"}),
		http.StatusServiceUnavailable, true, "restore-only")
	c := e.client(pc01)
	if !c.Info().RestoreOnly {
		t.Error("info does not say restore-only")
	}
	_, err := c.StartCapture(context.Background(), "PC01", cas.ID{})
	clientError(t, "client StartCapture", err, http.StatusServiceUnavailable, "restore-only")
	if !errors.Is(err, client.ErrCapacity) {
		t.Fatalf("restore-only refusal %v is not ErrCapacity", err)
	}
	// Refusing another computer's capture is a 403, not a capacity matter.
	wantError(t, "PC01 as PC02 in restore-only mode", e.postJSON("/v1/captures", pc01, wire.StartCapture{Computer: "PC02"}),
		http.StatusForbidden, false, "PC02")

	// Listing and restoring still work.
	list, err := c.Records(context.Background(), "")
	if err != nil || len(list) != 1 || list[0].ID != rec.String() {
		t.Fatalf("Records = %+v, %v", list, err)
	}
	readBack(t, c, rec, chunks)
}

// readBack reads every chunk of record rec through the client.
func readBack(t *testing.T, c *client.Client, rec cas.ID, chunks []chunk) {
	t.Helper()
	r := c.Reader(rec)
	defer r.Close()
	var wg sync.WaitGroup
	errs := make([]error, len(chunks))
	for i, ch := range chunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := r.ReadChunk(ch.id, nil)
			if err == nil && !bytes.Equal(got, ch.plain) {
				err = fmt.Errorf("chunk %d: read %d bytes that differ from the %d captured", i, len(got), len(ch.plain))
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("read back record %s: %v", rec.Short(), err)
	}
}

func TestRestoreOnlyAtRunTime(t *testing.T) {
	e := newEnv(t)
	pc01 := e.token("PC01", access.RoleClient, 0)
	e.session(pc01, "PC01")
	if err := e.acc.SetRestoreOnly(true); err != nil {
		t.Fatal(err)
	}
	wantError(t, "capture after SetRestoreOnly(true)", e.postJSON("/v1/captures", pc01, wire.StartCapture{Computer: "PC01"}),
		http.StatusServiceUnavailable, true, "restore-only")
	wantError(t, "admin capture after SetRestoreOnly(true)", e.postJSON("/v1/captures", e.admin, wire.StartCapture{Computer: "PC01"}),
		http.StatusServiceUnavailable, true, "restore-only")
	var info wire.Info
	if err := json.Unmarshal(wantOK(t, "info", e.do(http.MethodGet, "/v1/info", pc01, nil), http.StatusOK), &info); err != nil || !info.RestoreOnly {
		t.Fatalf("info %+v (%v) does not say restore-only", info, err)
	}
	wantOK(t, "records in restore-only mode", e.do(http.MethodGet, "/v1/records", pc01, nil), http.StatusOK)
	if err := e.acc.SetRestoreOnly(false); err != nil {
		t.Fatal(err)
	}
	e.session(pc01, "PC01")
}

func TestCaptureEndToEnd(t *testing.T) {
	e := newEnv(t)
	c := e.client(e.token("PC01", access.RoleClient, 0))
	chunks := e.makeChunks(2, 6)
	// Chunk 0 is in both files: the session offers and sends it once.
	files := map[string][]chunk{
		"a.txt": {chunks[0], chunks[1], chunks[2]},
		"b.bin": {chunks[3], chunks[0], chunks[4], chunks[5]},
	}
	id, cp := e.captureAll(c, "PC01", files, t0)
	if err := cp.Err(); err != nil {
		t.Fatal(err)
	}
	if got := cp.SentBlobs.Load(); got != int64(len(chunks)+1) {
		t.Errorf("SentBlobs = %d, want %d chunks and 1 tree", got, len(chunks)+1)
	}
	if got := cp.HeldBlobs.Load(); got != 0 {
		t.Errorf("HeldBlobs = %d in an empty store", got)
	}
	var storedChunks int64
	for _, ch := range chunks {
		if !e.has(ch.id) {
			t.Fatalf("chunk %s not in the store", ch.id.Short())
		}
		storedChunks += int64(len(ch.stored))
	}
	if e.srv.BlobsStored.Load() != int64(len(chunks)+1) {
		t.Errorf("server stored %d blobs", e.srv.BlobsStored.Load())
	}

	recs, err := e.repo.Records()
	if err != nil || len(recs) != 1 || recs[0].ID != id {
		t.Fatalf("repo records %+v, %v", recs, err)
	}
	if recs[0].Computer != "PC01" || recs[0].StoredBytes <= uint64(storedChunks) {
		t.Errorf("record computer %q, stored bytes %d (chunks alone %d)", recs[0].Computer, recs[0].StoredBytes, storedChunks)
	}

	list, err := c.Records(context.Background(), "PC01")
	if err != nil || len(list) != 1 || list[0].ID != id.String() || list[0].Record.Tree != recs[0].Tree || list[0].Released != nil {
		t.Fatalf("Records = %+v, %v", list, err)
	}
	if list, err := c.Records(context.Background(), "PC02"); err != nil || len(list) != 0 {
		t.Fatalf("Records(PC02) = %+v, %v", list, err)
	}
	found, _, err := c.FindRecord(context.Background(), "", "PC01")
	if err != nil || found != id {
		t.Fatalf("FindRecord(newest of PC01) = %s, %v", found.Short(), err)
	}
	found, _, err = c.FindRecord(context.Background(), id.String()[:8], "")
	if err != nil || found != id {
		t.Fatalf("FindRecord(prefix) = %s, %v", found.Short(), err)
	}

	wantError(t, "newest of a computer without records", e.do(http.MethodGet, "/v1/record?computer=PC09", e.admin, nil), http.StatusNotFound, false, "PC09", "no record")
	wantError(t, "unknown record ID", e.do(http.MethodGet, "/v1/record?ref=ffff0000", e.admin, nil), http.StatusNotFound, false, "no such record")

	readBack(t, c, id, chunks)
	r := c.Reader(id)
	defer r.Close()
	tree, err := r.LoadTree(recs[0].Tree)
	if err != nil || len(tree.Entries) != 2 || tree.Entries[1].Name != "b.bin" || len(tree.Entries[1].Chunks) != 4 {
		t.Fatalf("LoadTree = %+v, %v", tree, err)
	}
}

func TestSecondComputerSendsNothing(t *testing.T) {
	e := newEnv(t)
	pc01 := e.client(e.token("PC01", access.RoleClient, 0))
	pc02 := e.client(e.token("PC02", access.RoleClient, 0))
	chunks := e.makeChunks(3, 10)
	files := map[string][]chunk{"x": chunks[:4], "y": chunks[4:]}
	id1, _ := e.captureAll(pc01, "PC01", files, t0)

	received := e.srv.BytesReceived.Load()
	id2, cp := e.captureAll(pc02, "PC02", files, t0.Add(time.Hour))
	if got := cp.SentBytes.Load(); got != 0 {
		t.Errorf("second computer uploaded %d bytes", got)
	}
	if got := cp.SentBlobs.Load(); got != 0 {
		t.Errorf("second computer uploaded %d blobs", got)
	}
	if got := cp.HeldBlobs.Load(); got != int64(len(chunks)+1) {
		t.Errorf("HeldBlobs = %d, want %d chunks and the tree", got, len(chunks)+1)
	}
	if got := e.srv.BytesReceived.Load(); got != received {
		t.Errorf("server received %d bytes for the second capture", got-received)
	}
	if id1 == id2 {
		t.Fatal("two computers' records share an ID")
	}
	readBack(t, pc02, id2, chunks)
	recs, err := e.repo.Records()
	if err != nil || len(recs) != 2 {
		t.Fatalf("records %v, %v", recs, err)
	}
	if recs[1].StoredBytes != 0 {
		t.Errorf("second record says it stored %d bytes", recs[1].StoredBytes)
	}
}

func TestHaveNeedsProof(t *testing.T) {
	e := newEnv(t)
	chunks := e.makeChunks(4, 5)
	pc01 := e.client(e.token("PC01", access.RoleClient, 0))
	rec, _ := e.captureAll(pc01, "PC01", map[string][]chunk{"f": chunks}, t0)
	ri, err := e.repo.FindRecord(rec.String(), "")
	if err != nil {
		t.Fatal(err)
	}

	pc02 := e.token("PC02", access.RoleClient, 0)
	s := e.session(pc02, "PC02")
	other := e.session(pc02, "PC02") // another nonce
	absent := e.makeChunks(5, 1)[0]
	// chunks[3] is 4097 bytes (sampled), chunks[4] 300 000.
	entries := []wire.HaveEntry{
		chunks[0].have(s.Nonce), // 0: right proof: held
		{Type: cas.BlobData, ID: chunks[1].id, Len: uint32(len(chunks[1].plain)),
			Proof: wire.Proof(s.Nonce, cas.BlobData, chunks[1].id, make([]byte, len(chunks[1].plain)))}, // 1: proof over other bytes
		{Type: cas.BlobData, ID: chunks[2].id, Len: uint32(len(chunks[2].plain))}, // 2: zero proof
		chunks[3].have(other.Nonce), // 3: another session's proof
		{Type: cas.BlobData, ID: chunks[4].id, Len: uint32(len(chunks[4].plain)),
			Proof: wire.Proof(s.Nonce, cas.BlobData, chunks[4].id, chunks[3].plain)}, // 4: proof over another chunk
		absent.have(s.Nonce), // 5: the store lacks it
		{Type: cas.BlobData, ID: chunks[1].id, Len: uint32(len(chunks[1].plain)) + 1,
			Proof: wire.Proof(s.Nonce, cas.BlobData, chunks[1].id, append(bytes.Clone(chunks[1].plain), 0))}, // 6: wrong length
		{Type: cas.BlobTree, ID: chunks[2].id, Len: uint32(len(chunks[2].plain)),
			Proof: wire.Proof(s.Nonce, cas.BlobTree, chunks[2].id, chunks[2].plain)}, // 7: wrong type
		chunks[4].have(s.Nonce), // 8: right proof of a big chunk: held
		{Type: cas.BlobData, ID: ri.Tree, Len: 10, Proof: [32]byte{1}}, // 9: a tree as data
	}
	bm := e.haveQuery(pc02, s.ID, entries)
	for i := range entries {
		if want := i == 0 || i == 8; bm.Has(i) != want {
			t.Errorf("entry %d: held = %v, want %v", i, bm.Has(i), want)
		}
	}
	for _, ch := range chunks {
		if !e.has(ch.id) {
			t.Fatalf("the store lost chunk %s", ch.id.Short())
		}
	}
	// The same proofs are right in their own session only.
	if bm := e.haveQuery(pc02, other.ID, []wire.HaveEntry{chunks[3].have(other.Nonce), chunks[3].have(s.Nonce)}); !bm.Has(0) || bm.Has(1) {
		t.Fatalf("proofs across sessions: bitmap %08b", bm[0])
	}
	// A tree is proven like a chunk, with its own type.
	tb := e.readTree(ri.Tree)
	tree := wire.HaveEntry{Type: cas.BlobTree, ID: ri.Tree, Len: uint32(len(tb)), Proof: wire.Proof(s.Nonce, cas.BlobTree, ri.Tree, tb)}
	if bm := e.haveQuery(pc02, s.ID, []wire.HaveEntry{tree}); !bm.Has(0) {
		t.Fatal("a tree with a right proof is not held")
	}
}

func (e *env) readTree(id cas.ID) []byte {
	e.t.Helper()
	b, err := e.repo.ReadBlob(cas.BlobTree, id, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return b
}

func TestForgedUpload(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	s := e.session(tok, "PC01")
	chunks := e.makeChunks(6, 6)
	forged := chunks[1].frame()
	forged.Stored, forged.Compression, forged.RawLen = chunks[2].stored, chunks[2].comp, len(chunks[2].plain)
	r := e.upload(tok, s.ID, chunks[0].frame(), forged, chunks[3].frame())
	wantError(t, "forged chunk", r, http.StatusBadRequest, false, "does not match its ID", chunks[1].id.Short())
	if e.has(chunks[1].id) {
		t.Fatal("the forged ID is in the store")
	}
	if !e.has(chunks[0].id) {
		t.Error("the good blob before the forged one was not kept")
	}
	if e.has(chunks[3].id) {
		t.Error("the blob after the forged one was stored: the rest of the body must not be read")
	}
	if e.has(chunks[2].id) {
		t.Error("the forged frame's bytes were stored under their own ID")
	}

	// A data chunk sent as a tree does not match: IDs are per type.
	asTree := chunks[4].frame()
	asTree.Type = cas.BlobTree
	wantError(t, "chunk as tree", e.upload(tok, s.ID, asTree), http.StatusBadRequest, false, "does not match its ID")
	if e.has(chunks[4].id) {
		t.Fatal("a chunk sent as a tree is in the store")
	}

	// Bytes that do not decompress, or to another length.
	bad := chunks[5].frame()
	if bad.Compression != cas.CompressionZstd {
		t.Fatal("test chunk 5 is not compressed")
	}
	bad.Stored = bytes.Clone(bad.Stored)
	bad.Stored[len(bad.Stored)/2] ^= 0xff
	bad.Stored = bad.Stored[:len(bad.Stored)-3]
	wantError(t, "corrupt zstd", e.upload(tok, s.ID, bad), http.StatusBadRequest, false, "does not decompress")
	short := chunks[5].frame()
	short.RawLen--
	wantError(t, "wrong raw length", e.upload(tok, s.ID, short), http.StatusBadRequest, false, "does not decompress")
	if e.has(chunks[5].id) {
		t.Fatal("a blob that did not decompress is in the store")
	}

	// The session still works, and the good blobs go in.
	var res wire.UploadResult
	body := wantOK(t, "good upload", e.upload(tok, s.ID, chunks[0].frame(), chunks[5].frame(), chunks[5].frame()), http.StatusOK)
	if err := json.Unmarshal(body, &res); err != nil {
		t.Fatal(err)
	}
	if res.Stored != 1 || res.Duplicate != 2 || res.Bytes != int64(len(chunks[0].stored)+2*len(chunks[5].stored)) {
		t.Fatalf("upload result %+v", res)
	}
	if !e.has(chunks[5].id) {
		t.Fatal("good blob not stored")
	}
	// An empty body is an empty upload.
	wantOK(t, "empty upload", e.upload(tok, s.ID), http.StatusOK)
}

func TestCommitChecks(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	s := e.session(tok, "PC01")
	commit := func(rec *manifest.Record) reply {
		t.Helper()
		b, err := rec.Encode()
		if err != nil {
			t.Fatal(err)
		}
		return e.do(http.MethodPost, "/v1/captures/"+s.ID+"/commit", tok, b)
	}
	chunks := e.makeChunks(7, 3)
	for _, ch := range chunks[:2] {
		wantOK(t, "upload", e.upload(tok, s.ID, ch.frame()), http.StatusOK)
	}
	putTree := func(tr *manifest.Tree) cas.ID {
		t.Helper()
		b, err := tr.Encode()
		if err != nil {
			t.Fatal(err)
		}
		id := e.repo.Hasher.SumBlob(cas.BlobTree, b)
		wantOK(t, "upload tree", e.upload(tok, s.ID, wire.Blob{Type: cas.BlobTree, ID: id, RawLen: len(b), Stored: b}), http.StatusOK)
		return id
	}
	good := putTree(fileTree(map[string][]chunk{"f": chunks[:2]}))
	lacking := putTree(fileTree(map[string][]chunk{"f": chunks})) // chunks[2] never uploaded
	sub := putTree(&manifest.Tree{Entries: []manifest.Entry{{Name: "d", Type: manifest.TypeDir, Mode: 0o755, Subtree: lacking}}})
	absentTree := e.repo.Hasher.SumBlob(cas.BlobTree, []byte("never uploaded"))

	wantError(t, "malformed JSON", e.do(http.MethodPost, "/v1/captures/"+s.ID+"/commit", tok, []byte(`{"v":1,"computer":`)), http.StatusBadRequest, false, "record")
	wantError(t, "not a record", e.do(http.MethodPost, "/v1/captures/"+s.ID+"/commit", tok, []byte(`{"v":1,"computer":"PC01"}`)), http.StatusBadRequest, false, "record")
	wantError(t, "missing tree", commit(record("PC01", absentTree, t0)), http.StatusConflict, false, "does not hold", absentTree.Short())
	wantError(t, "missing chunk", commit(record("PC01", lacking, t0)), http.StatusConflict, false, "does not hold", chunks[2].id.Short())
	wantError(t, "missing chunk below a subtree", commit(record("PC01", sub, t0)), http.StatusConflict, false, "does not hold", chunks[2].id.Short())
	wantError(t, "chunk as the root tree", commit(record("PC01", chunks[0].id, t0)), http.StatusConflict, false)
	wantError(t, "other computer", commit(record("PC02", good, t0)), http.StatusForbidden, false, "PC02", "PC01")
	hl := record("PC01", good, t0)
	hl.LinkSet, hl.LinkedFiles = "set1", 1
	wantError(t, "hard-link record", commit(hl), http.StatusBadRequest, false, "hard-link")
	linked := putTree(&manifest.Tree{Entries: []manifest.Entry{{Name: "l", Type: manifest.TypeFile, Mode: 0o644, Link: &manifest.Link{Method: manifest.LinkHard, Object: "set/0/1"}}}})
	wantError(t, "hard-linked entry", commit(record("PC01", linked, t0)), http.StatusBadRequest, false, "hard link")
	over := make([]byte, wire.MaxRecordBytes+1)
	wantError(t, "record over the limit", e.do(http.MethodPost, "/v1/captures/"+s.ID+"/commit", tok, over), http.StatusRequestEntityTooLarge, false, "over")
	if recs, err := e.repo.Records(); err != nil || len(recs) != 0 {
		t.Fatalf("refused commits left records: %v, %v", recs, err)
	}

	// After every refusal the session still commits a good record, once.
	var res wire.Committed
	if err := json.Unmarshal(wantOK(t, "good commit", commit(record("PC01", good, t0)), http.StatusOK), &res); err != nil {
		t.Fatal(err)
	}
	if recs, err := e.repo.Records(); err != nil || len(recs) != 1 || recs[0].ID.String() != res.ID {
		t.Fatalf("records after commit: %v, %v (answer %q)", recs, err, res.ID)
	}
	wantError(t, "commit on a committed session", commit(record("PC01", good, t0)), http.StatusNotFound, false, "no open capture session")

	// The client reports a refused commit.
	c := e.client(tok)
	cp, err := c.StartCapture(context.Background(), "PC01", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	_, err = cp.CommitRecord(record("PC01", lacking, t0))
	clientError(t, "client commit of a dangling record", err, http.StatusConflict, "does not hold")
}

// fetchRaw sends a fetch request and returns the status and the frames.
func (e *env) fetchRaw(tok string, rec cas.ID, entries []wire.FetchEntry) (reply, []wire.Blob) {
	e.t.Helper()
	r := e.do(http.MethodPost, "/v1/records/"+rec.String()+"/fetch", tok, wire.EncodeFetch(entries))
	if r.status != http.StatusOK {
		return r, nil
	}
	br := wire.NewBlobReader(bytes.NewReader(r.body), 1<<20, 1<<40)
	var out []wire.Blob
	for {
		b, err := br.Next()
		if err == io.EOF {
			return r, out
		}
		if err != nil {
			e.t.Fatalf("fetch answer: %v", err)
		}
		b.Stored = bytes.Clone(b.Stored)
		out = append(out, b)
	}
}

func TestFetchAuthorization(t *testing.T) {
	e := newEnv(t)
	pc01tok := e.token("PC01", access.RoleClient, 0)
	pc02tok := e.token("PC02", access.RoleClient, 0)
	pc03tok := e.token("PC03", access.RoleClient, 0)
	pc01, pc02, pc03 := e.client(pc01tok), e.client(pc02tok), e.client(pc03tok)
	a := e.makeChunks(8, 3)
	b := e.makeChunks(9, 2)
	r1, _ := e.captureAll(pc01, "PC01", map[string][]chunk{"a": a}, t0)
	r3, _ := e.captureAll(pc03, "PC03", map[string][]chunk{"b": b}, t0)
	want := []wire.FetchEntry{{Type: cas.BlobData, ID: a[0].id}, {Type: cas.BlobData, ID: a[2].id}}

	// PC02 has no association with PC01: PC01's record is answered exactly
	// like one that does not exist.
	absent := e.repo.Sum([]byte("no such record"))
	r, _ := e.fetchRaw(pc02tok, r1, want)
	gone, _ := e.fetchRaw(pc02tok, absent, want)
	wantError(t, "PC02 fetches PC01's record", r, http.StatusNotFound, false, "no such record")
	sameReply(t, "PC02 fetches PC01's record", r, gone)
	rd := pc02.Reader(r1)
	_, err := rd.ReadChunk(a[0].id, nil)
	rd.Close()
	clientError(t, "PC02 client reads PC01's record", err, http.StatusNotFound, "no such record")
	wantError(t, "PC02 looks up PC01's newest", e.do(http.MethodGet, "/v1/record?computer=PC01", pc02tok, nil), http.StatusNotFound, false, "associate")
	sameReply(t, "PC02 looks up PC01's newest", e.do(http.MethodGet, "/v1/record?computer=PC01", pc02tok, nil),
		e.do(http.MethodGet, "/v1/record?computer=PC99", pc02tok, nil))
	sameReply(t, "PC02 looks up r1 by ID", e.do(http.MethodGet, "/v1/record?ref="+r1.String(), pc02tok, nil),
		e.do(http.MethodGet, "/v1/record?ref="+absent.String(), pc02tok, nil))
	if list, err := pc02.Records(context.Background(), ""); err != nil || len(list) != 0 {
		t.Fatalf("PC02 lists %+v, %v", list, err)
	}

	if err := e.acc.Associate("PC01", "PC02", t0); err != nil {
		t.Fatal(err)
	}
	r, blobs := e.fetchRaw(pc02tok, r1, want)
	wantOK(t, "PC02 fetches PC01's record after associate", r, http.StatusOK)
	if len(blobs) != 2 {
		t.Fatalf("fetched %d blobs, want 2", len(blobs))
	}
	for _, bl := range blobs {
		if bl.ID != a[0].id && bl.ID != a[2].id {
			t.Fatalf("fetched blob %s that was not asked for", bl.ID.Short())
		}
	}
	readBack(t, pc02, r1, a)
	if list, err := pc02.Records(context.Background(), ""); err != nil || len(list) != 1 || list[0].ID != r1.String() {
		t.Fatalf("PC02 lists %+v, %v", list, err)
	}
	if _, _, err := pc02.FindRecord(context.Background(), "", "PC01"); err != nil {
		t.Fatalf("PC02 finds PC01's newest: %v", err)
	}
	// The association goes one way.
	r, _ = e.fetchRaw(pc01tok, r3, []wire.FetchEntry{{Type: cas.BlobData, ID: b[0].id}})
	wantError(t, "PC01 fetches PC03's record", r, http.StatusNotFound, false, "no such record")

	// Knowing an ID is no right to read it: b[0] is in the store, but not
	// in r1.
	if !e.has(b[0].id) {
		t.Fatal("b[0] not stored")
	}
	r, _ = e.fetchRaw(pc02tok, r1, []wire.FetchEntry{{Type: cas.BlobData, ID: a[0].id}, {Type: cas.BlobData, ID: b[0].id}})
	wantError(t, "fetch of a blob outside the record", r, http.StatusForbidden, false, "not part of record", b[0].id.Short())
	r, _ = e.fetchRaw(pc01tok, r1, []wire.FetchEntry{{Type: cas.BlobData, ID: r3}})
	wantError(t, "fetch of another record's blob", r, http.StatusForbidden, false, "not part of record")
	r, _ = e.fetchRaw(pc01tok, r1, []wire.FetchEntry{{Type: cas.BlobTree, ID: a[0].id}})
	wantError(t, "fetch of a chunk as a tree", r, http.StatusForbidden, false, "not part of record")
	// The admin may read anything reachable, nothing else either.
	r, _ = e.fetchRaw(e.admin, r1, []wire.FetchEntry{{Type: cas.BlobData, ID: b[1].id}})
	wantError(t, "admin fetch outside the record", r, http.StatusForbidden, false, "not part of record")
	r, blobs = e.fetchRaw(e.admin, r3, []wire.FetchEntry{{Type: cas.BlobData, ID: b[1].id}})
	wantOK(t, "admin fetch", r, http.StatusOK)
	if len(blobs) != 1 {
		t.Fatalf("admin fetched %d blobs", len(blobs))
	}

	// Malformed fetches.
	r = e.do(http.MethodPost, "/v1/records/"+r1.String()+"/fetch", pc01tok, []byte("garbage"))
	wantError(t, "garbage fetch", r, http.StatusBadRequest, false)
	r = e.do(http.MethodPost, "/v1/records/xyz/fetch", pc01tok, wire.EncodeFetch(want))
	wantError(t, "bad record ID", r, http.StatusBadRequest, false, "xyz")
	r, _ = e.fetchRaw(pc01tok, e.repo.Sum([]byte("no record")), want)
	wantError(t, "unknown record", r, http.StatusNotFound, false, "no such record")
}

// The fetch answer carries one frame per distinct requested blob.
func TestFetchDistinct(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	a := e.makeChunks(10, 2)
	rec, _ := e.captureAll(e.client(tok), "PC01", map[string][]chunk{"a": a}, t0)
	req := []wire.FetchEntry{{Type: cas.BlobData, ID: a[1].id}, {Type: cas.BlobData, ID: a[0].id}, {Type: cas.BlobData, ID: a[1].id}, {Type: cas.BlobData, ID: a[1].id}}
	r, blobs := e.fetchRaw(tok, rec, req)
	wantOK(t, "fetch with duplicates", r, http.StatusOK)
	if len(blobs) != 2 {
		t.Fatalf("fetch of 2 distinct blobs answered %d frames", len(blobs))
	}
	for _, bl := range blobs {
		i := 0
		if bl.ID == a[1].id {
			i = 1
		}
		plain, err := cas.Decompress(nil, bl.Stored, bl.Compression, bl.RawLen)
		if err != nil || !bytes.Equal(plain, a[i].plain) || bl.Type != cas.BlobData {
			t.Fatalf("fetched blob %s: %v", bl.ID.Short(), err)
		}
	}
}

func TestOversizedAndGarbageBodies(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	s := e.session(tok, "PC01")
	havePath := "/v1/captures/" + s.ID + "/have"
	haveMax := 4 + wire.MaxHaveEntries*69

	// Exactly the limit is a valid query.
	entries := make([]wire.HaveEntry, wire.MaxHaveEntries)
	for i := range entries {
		entries[i].Type = cas.BlobData
		entries[i].ID[0], entries[i].ID[1] = byte(i), byte(i>>8)
	}
	full := wire.EncodeHave(entries)
	if len(full) != haveMax {
		t.Fatalf("full query %d bytes, want %d", len(full), haveMax)
	}
	e.haveQuery(tok, s.ID, entries)
	wantError(t, "have over the limit", e.do(http.MethodPost, havePath, tok, append(full, 0)), http.StatusRequestEntityTooLarge, false, "over")
	wantError(t, "have of 8 MiB", e.do(http.MethodPost, havePath, tok, make([]byte, 8<<20)), http.StatusRequestEntityTooLarge, false, "over")
	garbage := []byte("GET / HTTP/1.1\r\n\r\n and other bytes that are no have-query at all")
	wantError(t, "garbage have", e.do(http.MethodPost, havePath, tok, garbage), http.StatusBadRequest, false, "malformed")
	wantError(t, "empty have", e.do(http.MethodPost, havePath, tok, nil), http.StatusBadRequest, false, "malformed")
	tooMany := binary.LittleEndian.AppendUint32(nil, wire.MaxHaveEntries+1)
	wantError(t, "have count over max", e.do(http.MethodPost, havePath, tok, tooMany), http.StatusBadRequest, false, "count")

	// Uploads: frames over the batch limit, too many, unknown types.
	up := "/v1/captures/" + s.ID + "/blobs"
	hdr := func(typ, comp byte, raw, stored uint32) []byte {
		b := make([]byte, wire.BlobHeaderLen)
		b[0], b[1] = typ, comp
		binary.LittleEndian.PutUint32(b[34:], raw)
		binary.LittleEndian.PutUint32(b[38:], stored)
		return b
	}
	wantError(t, "frame over the batch size", e.do(http.MethodPost, up, tok, hdr(1, 1, 100, wire.MaxBatchBytes)), http.StatusBadRequest, false, "over")
	wantError(t, "frame over MaxBlobSize", e.do(http.MethodPost, up, tok, hdr(1, 1, cas.MaxBlobSize+1, 10)), http.StatusBadRequest, false, "over")
	wantError(t, "record frame", e.do(http.MethodPost, up, tok, hdr(3, 0, 0, 0)), http.StatusBadRequest, false, "type")
	wantError(t, "garbage upload", e.do(http.MethodPost, up, tok, garbage), http.StatusBadRequest, false, "malformed")
	var many []byte
	small := e.makeChunks(17, 1)[0] // 100 bytes: every frame is valid
	for range wire.MaxBatchBlobs + 1 {
		many = wire.AppendBlob(many, small.frame())
	}
	wantError(t, "too many blobs", e.do(http.MethodPost, up, tok, many), http.StatusBadRequest, false, "more than")

	// JSON bodies.
	big := append([]byte(`{"computer":"`), bytes.Repeat([]byte("a"), wire.MaxJSONBytes)...)
	big = append(big, `"}`...)
	wantError(t, "start capture over the JSON limit", e.do(http.MethodPost, "/v1/captures", tok, big), http.StatusRequestEntityTooLarge, false, "over")
	fetchMax := 4 + wire.MaxFetchEntries*33
	rec := e.directRecord("PC01", e.makeChunks(11, 1), t0)
	wantError(t, "fetch over the limit", e.do(http.MethodPost, "/v1/records/"+rec.String()+"/fetch", tok, make([]byte, fetchMax+1)), http.StatusRequestEntityTooLarge, false, "over")

	// The server keeps answering, and the session still works.
	wantOK(t, "info after bad bodies", e.do(http.MethodGet, "/v1/info", tok, nil), http.StatusOK)
	e.haveQuery(tok, s.ID, entries[:3])
	ch := e.makeChunks(12, 1)[0]
	wantOK(t, "upload after bad bodies", e.upload(tok, s.ID, ch.frame()), http.StatusOK)
}

// rawUpload writes an upload request that announces all of body but sends
// only body[:cut], then ends the connection: half-closed (the answer is
// read and returned) or closed outright (status 0).
func (e *env) rawUpload(tok, sid string, body []byte, cut int, halfClose bool) reply {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.hs.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/captures/%s/blobs HTTP/1.1\r\nHost: smp\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", sid, tok, len(body))
	if _, err := conn.Write(body[:cut]); err != nil {
		e.t.Fatal(err)
	}
	if !halfClose {
		return reply{}
	}
	if err := conn.(*net.TCPConn).CloseWrite(); err != nil {
		e.t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		e.t.Fatalf("answer to a cut upload: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, b}
}

func TestInterruptedUpload(t *testing.T) {
	for _, halfClose := range []bool{true, false} {
		name := "closed"
		if halfClose {
			name = "half-closed"
		}
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			tok := e.token("PC01", access.RoleClient, 0)
			s := e.session(tok, "PC01")
			chunks := e.makeChunks(13, 7)
			var body []byte
			ends := []int{}
			for _, ch := range chunks {
				body = wire.AppendBlob(body, ch.frame())
				ends = append(ends, len(body))
			}
			const n = 4 // whole frames sent, then half of the fifth
			cut := ends[n-1] + (ends[n]-ends[n-1])/2
			r := e.rawUpload(tok, s.ID, body, cut, halfClose)
			if halfClose {
				wantError(t, "cut upload", r, http.StatusBadRequest, false, "truncated")
			}

			entries := make([]wire.HaveEntry, len(chunks))
			for i, ch := range chunks {
				entries[i] = ch.have(s.Nonce)
			}
			// Closed outright, the server answers no one: wait until its
			// handler has stored what it had read.
			var bm wire.HaveBitmap
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				bm = e.haveQuery(tok, s.ID, entries)
				if bm.Has(n-1) || time.Now().After(deadline) {
					break
				}
			}
			for i := range chunks {
				if want := i < n; bm.Has(i) != want {
					t.Errorf("chunk %d: held = %v, want %v", i, bm.Has(i), want)
				}
			}

			// A re-run through the client sends only the rest.
			cp, err := e.client(tok).StartCapture(context.Background(), "PC01", cas.ID{})
			if err != nil {
				t.Fatal(err)
			}
			defer cp.Close()
			var rest int64
			for i, ch := range chunks {
				send, err := cp.ReserveData(cas.BlobData, ch.id, ch.plain)
				if err != nil {
					t.Fatal(err)
				}
				if send != (i >= n) {
					t.Fatalf("re-run: chunk %d send = %v", i, send)
				}
				if send {
					rest += int64(wire.BlobHeaderLen + len(ch.stored))
					if err := cp.AddBlob(cas.BlobData, ch.id, ch.comp, ch.stored, len(ch.plain)); err != nil {
						t.Fatal(err)
					}
				}
			}
			root, err := cp.PutTree(fileTree(map[string][]chunk{"f": chunks}))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := cp.CommitRecord(record("PC01", root, t0)); err != nil {
				t.Fatal(err)
			}
			tb := e.readTree(root)
			stored, _ := cas.Compress(nil, tb)
			if got, want := cp.SentBytes.Load(), rest+int64(wire.BlobHeaderLen+len(stored)); got != want {
				t.Errorf("re-run sent %d bytes, want %d (the chunks never received and the tree)", got, want)
			}
		})
	}
}

func TestReleaseAndRemove(t *testing.T) {
	e := newEnv(t)
	pc01tok := e.token("PC01", access.RoleClient, 0)
	pc01 := e.client(pc01tok)
	rec, _ := e.captureAll(pc01, "PC01", map[string][]chunk{"f": e.makeChunks(14, 2)}, t0)

	pc02tok := e.token("PC02", access.RoleClient, 0)
	wantError(t, "release by an unassociated computer", e.do(http.MethodPost, "/v1/records/"+rec.String()+"/release", pc02tok, nil),
		http.StatusNotFound, false, "no such record")

	at := t0.Add(48 * time.Hour)
	e.clock.Set(at)
	if err := pc01.Release(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	rel, err := e.repo.ReleasedAt()
	if err != nil || !rel[rec].Equal(at) {
		t.Fatalf("ReleasedAt = %v, %v; want %s at %v", rel, err, rec.Short(), at)
	}
	e.clock.Set(at.Add(time.Hour))
	wantOK(t, "second release", e.do(http.MethodPost, "/v1/records/"+rec.String()+"/release", pc01tok, nil), http.StatusNoContent)
	if rel, _ := e.repo.ReleasedAt(); !rel[rec].Equal(at) {
		t.Fatalf("a second release moved the release time to %v", rel[rec])
	}
	list, err := pc01.Records(context.Background(), "")
	if err != nil || len(list) != 1 || list[0].Released == nil || !list[0].Released.Equal(at) {
		t.Fatalf("Records = %+v, %v", list, err)
	}

	err = pc01.Remove(context.Background(), rec)
	clientError(t, "client removes its record", err, http.StatusForbidden, "admin")
	wantError(t, "raw DELETE by a client", e.do(http.MethodDelete, "/v1/records/"+rec.String(), pc01tok, nil), http.StatusForbidden, false, "admin")
	if recs, _ := e.repo.Records(); len(recs) != 1 {
		t.Fatal("a refused DELETE removed the record")
	}
	wantOK(t, "DELETE by the admin", e.do(http.MethodDelete, "/v1/records/"+rec.String(), e.admin, nil), http.StatusNoContent)
	if recs, err := e.repo.Records(); err != nil || len(recs) != 0 {
		t.Fatalf("records after DELETE: %v, %v", recs, err)
	}
	if rel, _ := e.repo.ReleasedAt(); len(rel) != 0 {
		t.Fatalf("release marks after DELETE: %v", rel)
	}
	wantError(t, "DELETE again", e.do(http.MethodDelete, "/v1/records/"+rec.String(), e.admin, nil), http.StatusNotFound, false, "no such record")
	wantError(t, "fetch of a removed record", e.do(http.MethodPost, "/v1/records/"+rec.String()+"/fetch", pc01tok, wire.EncodeFetch([]wire.FetchEntry{{Type: cas.BlobData, ID: rec}})),
		http.StatusNotFound, false, "no such record")
}

func TestStats(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	e.captureAll(e.client(tok), "PC01", map[string][]chunk{"f": e.makeChunks(15, 2)}, t0)
	wantError(t, "stats by a client", e.do(http.MethodGet, "/v1/stats", tok, nil), http.StatusForbidden, false, "admin")
	st, err := e.client(e.admin).Stats(context.Background(), true, time.Hour)
	if err != nil || st.Records != 1 || st.Chunks != 2 || st.Expired == nil || *st.Expired != 0 ||
		len(st.Computers) != 1 || st.Computers[0].Computer != "PC01" || len(st.PerRecord) != 1 {
		t.Fatalf("admin stats %+v, %v", st, err)
	}
}

// Captures of several computers with overlapping chunks at once: every
// record commits and reads back whole.
func TestConcurrentCaptures(t *testing.T) {
	e := newEnv(t)
	shared := e.makeChunks(16, 6)
	const n = 4
	ids := make([]cas.ID, n)
	chunks := make([][]chunk, n)
	var wg sync.WaitGroup
	for i := range n {
		computer := fmt.Sprintf("PC%02d", i+1)
		c := e.client(e.token(computer, access.RoleClient, 0))
		chunks[i] = append(append([]chunk{}, shared...), e.makeChunks(uint64(100+i), 3)...)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = e.captureAllErr(c, computer, chunks[i])
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i := range n {
		readBack(t, e.client(e.admin), ids[i], chunks[i])
	}
}

// captureAllErr is captureAll for another goroutine: it reports with
// t.Errorf.
func (e *env) captureAllErr(c *client.Client, computer string, chunks []chunk) cas.ID {
	cp, err := c.StartCapture(context.Background(), computer, cas.ID{})
	if err != nil {
		e.t.Errorf("%s: StartCapture: %v", computer, err)
		return cas.ID{}
	}
	defer cp.Close()
	for _, ch := range chunks {
		send, err := cp.ReserveData(cas.BlobData, ch.id, ch.plain)
		if err == nil && send {
			err = cp.AddBlob(cas.BlobData, ch.id, ch.comp, ch.stored, len(ch.plain))
		}
		if err != nil {
			e.t.Errorf("%s: %v", computer, err)
			return cas.ID{}
		}
	}
	root, err := cp.PutTree(fileTree(map[string][]chunk{"f": chunks}))
	if err != nil {
		e.t.Errorf("%s: PutTree: %v", computer, err)
		return cas.ID{}
	}
	id, err := cp.CommitRecord(record(computer, root, t0))
	if err != nil {
		e.t.Errorf("%s: CommitRecord: %v", computer, err)
	}
	return id
}
