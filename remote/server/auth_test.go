package server_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/access"
	"smp/remote/server"
	"smp/remote/wire"
)

// absentPrefix returns a prefix of the same length as of that no record
// in the store starts with.
func (e *env) absentPrefix(of string) string {
	e.t.Helper()
	recs, err := e.repo.Records()
	if err != nil {
		e.t.Fatal(err)
	}
	for _, d := range "0123456789abcdef" {
		p := of[:len(of)-1] + string(d)
		taken := false
		for _, r := range recs {
			taken = taken || strings.HasPrefix(r.ID.String(), p)
		}
		if !taken {
			return p
		}
	}
	e.t.Fatalf("every extension of %s names a record", of[:len(of)-1])
	return ""
}

// A client token probing another computer's record, by prefix, full ID,
// fetch, release or computer, gets byte for byte the answer it gets for a
// record that does not exist, and no answer names the record.
func TestRecordProbesLookAlike(t *testing.T) {
	e := newEnv(t)
	tokA := e.token("PC-A", access.RoleClient, 0)
	tokB := e.token("PC-B", access.RoleClient, 0)
	rb, _ := e.captureAll(e.client(tokB), "PC-B", map[string][]chunk{"secret": e.makeChunks(20, 2)}, t0)
	ra, _ := e.captureAll(e.client(tokA), "PC-A", map[string][]chunk{"mine": e.makeChunks(21, 2)}, t0)
	full, absent := rb.String(), e.repo.Sum([]byte("no record")).String()

	for n := 4; n <= len(full); n++ {
		foreign := e.do(http.MethodGet, "/v1/record?ref="+full[:n], tokA, nil)
		missing := e.do(http.MethodGet, "/v1/record?ref="+e.absentPrefix(full[:n]), tokA, nil)
		wantError(t, "foreign prefix", foreign, http.StatusNotFound, false, "no such record")
		sameReply(t, "prefix "+full[:n], foreign, missing)
		if bytes.Contains(foreign.body, []byte(full[:12])) || bytes.Contains(foreign.body, []byte("PC-B")) {
			t.Fatalf("answer %s names the other computer's record", foreign.body)
		}
	}
	for _, p := range []string{"/fetch", "/release"} {
		body := wire.EncodeFetch([]wire.FetchEntry{{Type: cas.BlobTree, ID: rb}})
		sameReply(t, p, e.do(http.MethodPost, "/v1/records/"+full+p, tokA, body), e.do(http.MethodPost, "/v1/records/"+absent+p, tokA, body))
	}
	sameReply(t, "computer", e.do(http.MethodGet, "/v1/record?computer=PC-B", tokA, nil), e.do(http.MethodGet, "/v1/record?computer=PC-Z", tokA, nil))
	// Its own record still resolves by a short prefix, which another
	// computer's records cannot make ambiguous.
	var got wire.RecordEntry
	if err := json.Unmarshal(wantOK(t, "own prefix", e.do(http.MethodGet, "/v1/record?ref="+ra.String()[:4], tokA, nil), http.StatusOK), &got); err != nil || got.ID != ra.String() {
		t.Fatalf("own record by prefix: %+v, %v", got, err)
	}
	// An associated destination finds the source's record.
	tokC := e.token("PC-C", access.RoleClient, 0)
	if err := e.acc.Associate("PC-B", "PC-C", t0); err != nil {
		t.Fatal(err)
	}
	wantOK(t, "associated lookup", e.do(http.MethodGet, "/v1/record?ref="+full[:6], tokC, nil), http.StatusOK)
}

// attack is a capture session of one computer crafting records by hand.
type attack struct {
	e    *env
	tok  string
	sess wire.Session
}

// tree uploads a tree as this session and returns its ID.
func (a *attack) tree(tr *manifest.Tree) cas.ID {
	a.e.t.Helper()
	b, err := tr.Encode()
	if err != nil {
		a.e.t.Fatal(err)
	}
	id := a.e.repo.Hasher.SumBlob(cas.BlobTree, b)
	wantOK(a.e.t, "upload tree", a.e.upload(a.tok, a.sess.ID, wire.Blob{Type: cas.BlobTree, ID: id, RawLen: len(b), Stored: b}), http.StatusOK)
	return id
}

func (a *attack) commit(computer string, root cas.ID) reply {
	a.e.t.Helper()
	b, err := record(computer, root, t0).Encode()
	if err != nil {
		a.e.t.Fatal(err)
	}
	return a.e.do(http.MethodPost, "/v1/captures/"+a.sess.ID+"/commit", a.tok, b)
}

func fileEntry(name string, ids ...cas.ID) manifest.Entry {
	en := manifest.Entry{Name: name, Type: manifest.TypeFile, Mode: 0o644, UID: 1000, GID: 1000, MTimeNs: t0.UnixNano()}
	for _, id := range ids {
		en.Chunks = append(en.Chunks, manifest.Chunk{ID: id, Size: 100})
		en.Size += 100
	}
	return en
}

func dirEntry(name string, sub cas.ID) manifest.Entry {
	return manifest.Entry{Name: name, Type: manifest.TypeDir, Mode: 0o755, Subtree: sub}
}

// sameRefusal checks that a commit naming a blob the store holds is refused
// exactly like one naming a blob it lacks, up to the ID each names: the
// answer is no oracle for "the store holds this".
func sameRefusal(t *testing.T, what string, held, lacking reply, heldID, lackingID cas.ID) {
	t.Helper()
	wantError(t, what, held, http.StatusConflict, false, heldID.Short())
	wantError(t, what+" (lacking)", lacking, http.StatusConflict, false, lackingID.Short())
	got := bytes.ReplaceAll(held.body, []byte(heldID.Short()), []byte("ID"))
	want := bytes.ReplaceAll(lacking.body, []byte(lackingID.Short()), []byte("ID"))
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: refusal %s differs from that for an absent blob %s", what, held.body, lacking.body)
	}
}

// A commit names only blobs its session uploaded or proved it holds, or
// that a record its token may restore reaches, each of the type the
// reference says: the chain of issue 14 (a chunk that is another
// computer's record, a directory that is another computer's root tree, a
// foreign chunk known by ID only) fails at every step.
func TestCommitNamesOnlyItsBlobs(t *testing.T) {
	e := newEnv(t)
	tokA := e.token("PC-A", access.RoleClient, 0)
	tokB := e.token("PC-B", access.RoleClient, 0)
	secret := e.makeChunks(30, 3)
	rb, _ := e.captureAll(e.client(tokB), "PC-B", map[string][]chunk{"secret": secret}, t0)
	recB, err := e.repo.Record(rb)
	if err != nil {
		t.Fatal(err)
	}
	mine := e.makeChunks(31, 2)
	a := &attack{e: e, tok: tokA, sess: e.session(tokA, "PC-A")}
	wantOK(t, "upload own chunks", e.upload(tokA, a.sess.ID, mine[0].frame(), mine[1].frame()), http.StatusOK)
	absent := e.repo.Sum([]byte("a chunk nobody has"))
	absentTree := e.repo.Hasher.SumBlob(cas.BlobTree, []byte("a tree nobody has"))
	refuse := func(what string, held, lacking *manifest.Tree, heldID, lackingID cas.ID) {
		t.Helper()
		got := a.commit("PC-A", a.tree(held))
		wantError(t, what, got, http.StatusConflict, false, heldID.Short())
		sameRefusal(t, what, got, a.commit("PC-A", a.tree(lacking)), heldID, lackingID)
	}

	refuse("file chunk that is a record", &manifest.Tree{Entries: []manifest.Entry{fileEntry("x", mine[0].id, rb)}},
		&manifest.Tree{Entries: []manifest.Entry{fileEntry("x", mine[0].id, absent)}}, rb, absent)
	refuse("directory that is a foreign root tree", &manifest.Tree{Entries: []manifest.Entry{dirEntry("stolen", recB.Tree)}},
		&manifest.Tree{Entries: []manifest.Entry{dirEntry("stolen", absentTree)}}, recB.Tree, absentTree)
	refuse("foreign chunk without proof", &manifest.Tree{Entries: []manifest.Entry{fileEntry("x", secret[1].id)}},
		&manifest.Tree{Entries: []manifest.Entry{fileEntry("x", absent)}}, secret[1].id, absent)
	wantError(t, "foreign root tree as the record's root", a.commit("PC-A", recB.Tree), http.StatusConflict, false, recB.Tree.Short())
	// Types count: an uploaded tree is no chunk, an uploaded chunk no tree.
	own := a.tree(&manifest.Tree{Entries: []manifest.Entry{fileEntry("f", mine[0].id)}})
	wantError(t, "own tree as a chunk", a.commit("PC-A", a.tree(&manifest.Tree{Entries: []manifest.Entry{fileEntry("x", own)}})), http.StatusConflict, false, own.Short())
	wantError(t, "own chunk as a directory", a.commit("PC-A", a.tree(&manifest.Tree{Entries: []manifest.Entry{dirEntry("d", mine[1].id)}})), http.StatusConflict, false, mine[1].id.Short())
	wantError(t, "own chunk as the root", a.commit("PC-A", mine[1].id), http.StatusConflict, false, mine[1].id.Short())
	if recs, err := e.repo.Records(); err != nil || len(recs) != 1 {
		t.Fatalf("refused commits stored records: %d, %v", len(recs), err)
	}

	// Proof of possession is what lets it name a foreign chunk: a
	// have-query hit, as when two computers share a file.
	if bm := e.haveQuery(tokA, a.sess.ID, []wire.HaveEntry{secret[1].have(a.sess.Nonce)}); !bm.Has(0) {
		t.Fatal("a proved chunk is not held")
	}
	ra := wantOK(t, "commit with a proved chunk", a.commit("PC-A", a.tree(&manifest.Tree{Entries: []manifest.Entry{
		fileEntry("mine", mine[0].id, mine[1].id), fileEntry("shared", secret[1].id), dirEntry("d", own)}})), http.StatusOK)
	var committed wire.Committed
	if err := json.Unmarshal(ra, &committed); err != nil {
		t.Fatal(err)
	}

	// The next capture reuses its parent's chunks unread, and a computer
	// associated with PC-A may name PC-A's chunks the same way.
	next := &attack{e: e, tok: tokA, sess: e.session(tokA, "PC-A")}
	wantOK(t, "commit reusing the parent's chunks", next.commit("PC-A", next.tree(&manifest.Tree{Entries: []manifest.Entry{
		fileEntry("mine", mine[0].id, mine[1].id), dirEntry("d", own)}})), http.StatusOK)
	tokC := e.token("PC-C", access.RoleClient, 0)
	if err := e.acc.Associate("PC-A", "PC-C", t0); err != nil {
		t.Fatal(err)
	}
	c := &attack{e: e, tok: tokC, sess: e.session(tokC, "PC-C")}
	wantOK(t, "associated computer reuses the source's chunks", c.commit("PC-C", c.tree(&manifest.Tree{Entries: []manifest.Entry{
		fileEntry("from-a", mine[0].id)}})), http.StatusOK)
	// ...but not PC-B's, which it may not restore.
	c = &attack{e: e, tok: tokC, sess: e.session(tokC, "PC-C")}
	wantError(t, "associated computer names a third computer's chunk", c.commit("PC-C", c.tree(&manifest.Tree{Entries: []manifest.Entry{
		fileEntry("from-b", secret[0].id)}})), http.StatusConflict, false, secret[0].id.Short())
}

// A fetch checks the type the store holds, not only the type the record
// says: a record whose tree names a record blob as a chunk (made here
// straight in the store, since a commit refuses it) reads it as missing.
func TestFetchChecksStoredType(t *testing.T) {
	e := newEnv(t)
	tokA := e.token("PC-A", access.RoleClient, 0)
	rb := e.directRecord("PC-B", e.makeChunks(40, 2), t0)
	absent := e.repo.Sum([]byte("never stored"))
	root, err := e.repo.PutTree(&manifest.Tree{Entries: []manifest.Entry{fileEntry("rec", rb), fileEntry("gone", absent)}})
	if err != nil {
		t.Fatal(err)
	}
	ra, err := e.repo.CommitRecord(record("PC-A", root, t0))
	if err != nil {
		t.Fatal(err)
	}
	asRecord, blobs := e.fetchRaw(tokA, ra, []wire.FetchEntry{{Type: cas.BlobData, ID: rb}})
	if len(blobs) != 0 {
		t.Fatalf("fetch of a record blob as data answered %d frames", len(blobs))
	}
	missing, _ := e.fetchRaw(tokA, ra, []wire.FetchEntry{{Type: cas.BlobData, ID: absent}})
	sameRefusal404(t, asRecord, missing, rb, absent)
	// The tree itself, asked for as data, is not part of the record.
	r, _ := e.fetchRaw(tokA, ra, []wire.FetchEntry{{Type: cas.BlobData, ID: root}})
	wantError(t, "tree as data", r, http.StatusForbidden, false, "not part of record")
}

func sameRefusal404(t *testing.T, got, missing reply, gotID, missingID cas.ID) {
	t.Helper()
	wantError(t, "record blob fetched as data", got, http.StatusNotFound, false, "missing")
	a := bytes.ReplaceAll(got.body, []byte(gotID.Short()), []byte("ID"))
	b := bytes.ReplaceAll(missing.body, []byte(missingID.Short()), []byte("ID"))
	if !bytes.Equal(a, b) {
		t.Fatalf("fetch of a record blob as data: %s, of a missing chunk: %s", got.body, missing.body)
	}
}

// Re-offering one blob takes one entry of session memory however often it
// comes, and does not keep an idle session alive.
func TestHaveReofferTakesOneEntry(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.SessionIdle = time.Hour })
	tok := e.token("PC01", access.RoleClient, 0)
	ch := e.makeChunks(50, 2)
	e.directRecord("PC02", ch[:1], t0)
	s := e.session(tok, "PC01")
	for i := range 420 {
		e.clock.Set(t0.Add(time.Duration(i) * 10 * time.Second)) // 70 min of re-offers
		entries := []wire.HaveEntry{ch[0].have(s.Nonce), ch[0].have(s.Nonce), ch[1].have(s.Nonce)}
		if bm := e.haveQuery(tok, s.ID, entries); !bm.Has(0) || !bm.Has(1) || bm.Has(2) {
			t.Fatalf("query %d: bitmap %08b", i, bm)
		}
		if n, p := e.srv.SessionBlobs(s.ID), e.srv.SessionPinned(s.ID); n != 2 || p != 1 {
			t.Fatalf("after %d re-offers the session names %d blobs and pins %d, want 2 and 1", i+1, n, p)
		}
	}
	// The session was last used for something new at t0: past the idle
	// time it is forgotten (a new session's start prunes idle ones).
	e.session(tok, "PC01")
	if n := e.srv.SessionBlobs(s.ID); n != -1 {
		t.Fatalf("re-offers kept an idle session open (%d blobs)", n)
	}
}

// A session naming more blobs than the limit is stopped with one line,
// whether it offers or uploads them.
func TestSessionBlobLimit(t *testing.T) {
	e := newEnv(t)
	e.srv.SetMaxSessionBlobs(10)
	tok := e.token("PC01", access.RoleClient, 0)
	ch := e.makeChunks(60, 14)
	s := e.session(tok, "PC01")
	var entries []wire.HaveEntry
	for _, c := range ch[:8] {
		entries = append(entries, c.have(s.Nonce))
	}
	e.haveQuery(tok, s.ID, entries)
	e.haveQuery(tok, s.ID, entries) // the same again: nothing new
	wantOK(t, "upload of offered blobs", e.upload(tok, s.ID, ch[0].frame(), ch[1].frame()), http.StatusOK)
	over := []wire.HaveEntry{ch[8].have(s.Nonce), ch[9].have(s.Nonce), ch[10].have(s.Nonce)}
	r := e.do(http.MethodPost, "/v1/captures/"+s.ID+"/have", tok, wire.EncodeHave(over))
	wantError(t, "have past the limit", r, http.StatusRequestEntityTooLarge, false, "capture stopped", "10 distinct")
	wantError(t, "the stopped session", e.upload(tok, s.ID, ch[0].frame()), http.StatusRequestEntityTooLarge, false, "capture stopped")

	s2 := e.session(tok, "PC01")
	var frames []wire.Blob
	for _, c := range ch[:11] {
		frames = append(frames, c.frame())
	}
	wantError(t, "upload past the limit", e.upload(tok, s2.ID, frames...), http.StatusRequestEntityTooLarge, false, "capture stopped")
	if e.has(ch[10].id) || e.srv.SessionBlobs(s2.ID) != -1 {
		t.Fatal("the blob past the limit was stored, or the session is still open")
	}
}

// A client token keeps at most two capture sessions open: a third ends its
// least recently used one. Admin sessions are not limited.
func TestSessionsPerToken(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	var ss []wire.Session
	for i := range 3 {
		e.clock.Set(t0.Add(time.Duration(i) * time.Second))
		ss = append(ss, e.session(tok, "PC01"))
	}
	wantError(t, "superseded session", e.do(http.MethodPost, "/v1/captures/"+ss[0].ID+"/have", tok, wire.EncodeHave([]wire.HaveEntry{{Type: cas.BlobData}})),
		http.StatusConflict, false, "capture stopped", "2 were open")
	for _, s := range ss[1:] {
		e.haveQuery(tok, s.ID, []wire.HaveEntry{{Type: cas.BlobData}})
	}
	var admin []wire.Session
	for range 6 {
		admin = append(admin, e.session(e.admin, "PC09"))
	}
	for _, s := range admin {
		e.haveQuery(e.admin, s.ID, []wire.HaveEntry{{Type: cas.BlobData}})
	}
}
