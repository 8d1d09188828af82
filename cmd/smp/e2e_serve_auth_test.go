package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/wire"
)

// rawAPI speaks the protocol by hand, as a hostile client would.
type rawAPI struct {
	t        *testing.T
	url, tok string
}

type rawReply struct {
	status int
	body   []byte
}

func (a rawAPI) do(method, path string, body []byte) rawReply {
	a.t.Helper()
	req, err := http.NewRequest(method, a.url+wire.Prefix+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return rawReply{resp.StatusCode, b}
}

func (a rawAPI) json(method, path string, in, out any) {
	a.t.Helper()
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			a.t.Fatal(err)
		}
	}
	r := a.do(method, path, body)
	if r.status != http.StatusOK {
		a.t.Fatalf("%s %s: HTTP %d %s", method, path, r.status, r.body)
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		a.t.Fatalf("%s %s: %v", method, path, err)
	}
}

// hostileCapture is a capture session driven by rawAPI.
type hostileCapture struct {
	api    rawAPI
	hasher *cas.Hasher
	sess   wire.Session
}

func (h *hostileCapture) putTree(entries ...manifest.Entry) cas.ID {
	h.api.t.Helper()
	b, err := (&manifest.Tree{Entries: entries}).Encode()
	if err != nil {
		h.api.t.Fatal(err)
	}
	id := h.hasher.SumBlob(cas.BlobTree, b)
	frame := wire.AppendBlob(nil, wire.Blob{Type: cas.BlobTree, ID: id, RawLen: len(b), Stored: b})
	if r := h.api.do(http.MethodPost, "/captures/"+h.sess.ID+"/blobs", frame); r.status != http.StatusOK {
		h.api.t.Fatalf("upload tree: HTTP %d %s", r.status, r.body)
	}
	return id
}

func (h *hostileCapture) commit(root cas.ID) rawReply {
	h.api.t.Helper()
	b, err := (&manifest.Record{Computer: "pc-a", Users: []string{"alice"}, Created: time.Now(), ToolVersion: "hostile",
		SourceRoot: "/", Paths: []string{"/home/alice"}, Tree: root, Files: 1, Dirs: 1}).Encode()
	if err != nil {
		h.api.t.Fatal(err)
	}
	return h.api.do(http.MethodPost, "/captures/"+h.sess.ID+"/commit", b)
}

func fileWithChunk(name string, id cas.ID) manifest.Entry {
	return manifest.Entry{Name: name, Type: manifest.TypeFile, Mode: 0o644, UID: 1000, GID: 1000,
		Size: 64, Chunks: []manifest.Chunk{{ID: id, Size: 64}}}
}

func dirWithTree(name string, id cas.ID) manifest.Entry {
	return manifest.Entry{Name: name, Type: manifest.TypeDir, Mode: 0o755, UID: 1000, GID: 1000, Subtree: id}
}

// mustBeRefused fails unless r is a refusal that carries none of pc-b's
// bytes.
func mustBeRefused(t *testing.T, what string, r rawReply, status int, secret []byte) {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: HTTP %d %s, want %d", what, r.status, r.body, status)
	}
	if bytes.Contains(r.body, secret) || bytes.Contains(r.body, []byte("pc-b")) {
		t.Fatalf("%s: the answer carries pc-b's data: %s", what, r.body)
	}
}

// TestE2EServeCrossComputerChain replays issue 14's cross-computer chain
// against smp serve with pc-a's token: probe pc-b's record ID by prefix,
// commit a tree whose file chunk is that record, fetch the record blob as
// data, commit a tree whose directory is pc-b's root tree and restore it;
// and the variations (a foreign tree as the root, a foreign chunk known by
// ID only). Every step fails with nothing of pc-b's reaching pc-a, while
// pc-a's own captures and restores, and an associated computer's restore,
// still work.
func TestE2EServeCrossComputerChain(t *testing.T) {
	t.Parallel()
	store := newStore(t)
	srv := startServer(t, store)
	tokA := newToken(t, store, "--computer", "pc-a")
	tokB := newToken(t, store, "--computer", "pc-b")
	tokC := newToken(t, store, "--computer", "pc-c")
	admin := newToken(t, store, "--role", "admin")
	srcA, srcB := tmpDir(t), tmpDir(t)
	serveProfile(t, srcA, 21, 1)
	serveProfile(t, srcB, 22, 1)
	secret := []byte(fmt.Sprintf("pc-b's secret %x\n", rnd(23, 16)))
	writeFile(t, filepath.Join(srcB, "home", "alice", "secret.txt"), secret, 0o600)
	outB := remoteCapture(t, exitOK, srv.url, tokB, "pc-b", "--root", srcB)
	outA := remoteCapture(t, exitOK, srv.url, tokA, "pc-a", "--root", srcA)
	rb := outB.Record

	a := rawAPI{t, srv.url, tokA}
	var info wire.Info
	a.json(http.MethodGet, "/info", nil, &info)
	var key [32]byte
	copy(key[:], info.HashKey)
	hasher := cas.NewHasher(key)

	// 1. Prefix probing: every extension of a prefix of pc-b's record ID
	// gets the same answer, so no digit can be told right.
	for n := 4; n <= len(rb); n++ {
		var first rawReply
		for i, d := range "0123456789abcdef" {
			p := rb[:n-1] + string(d)
			if strings.HasPrefix(outA.Record, p) {
				continue // pc-a's own record answers, as it should
			}
			r := a.do(http.MethodGet, "/record?ref="+p, nil)
			mustBeRefused(t, "probe "+p, r, http.StatusNotFound, secret)
			if bytes.Contains(r.body, []byte(rb[:12])) {
				t.Fatalf("probe %s: the answer names pc-b's record: %s", p, r.body)
			}
			if i > 0 && first.status != 0 && (r.status != first.status || !bytes.Equal(r.body, first.body)) {
				t.Fatalf("probe %s: HTTP %d %q differs from HTTP %d %q for another digit", p, r.status, r.body, first.status, first.body)
			}
			if first.status == 0 {
				first = r
			}
		}
	}
	foreign, none := a.do(http.MethodGet, "/record?computer=pc-b", nil), a.do(http.MethodGet, "/record?computer=pc-z", nil)
	if foreign.status != none.status || !bytes.Equal(foreign.body, none.body) {
		t.Fatalf("computer lookup: pc-b answers HTTP %d %s, a computer without records HTTP %d %s", foreign.status, foreign.body, none.status, none.body)
	}

	var recB wire.RecordEntry
	rawAPI{t, srv.url, admin}.json(http.MethodGet, "/record?ref="+rb, nil, &recB)
	rbID, err := cas.ParseID(rb)
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileCapture{api: a, hasher: hasher}
	a.json(http.MethodPost, "/captures", wire.StartCapture{Computer: "pc-a"}, &h.sess)

	// 2. A tree whose file chunk is pc-b's record ID.
	mustBeRefused(t, "commit of a chunk that is pc-b's record", h.commit(h.putTree(fileWithChunk("loot", rbID))), http.StatusConflict, secret)
	// 3. The record blob fetched as data, through pc-a's own record and
	// through pc-b's.
	fetch := wire.EncodeFetch([]wire.FetchEntry{{Type: cas.BlobData, ID: rbID}})
	mustBeRefused(t, "fetch of pc-b's record as data", a.do(http.MethodPost, "/records/"+outA.Record+"/fetch", fetch), http.StatusForbidden, secret)
	mustBeRefused(t, "fetch through pc-b's record", a.do(http.MethodPost, "/records/"+rb+"/fetch", fetch), http.StatusNotFound, secret)
	// 4. A tree whose directory is pc-b's root tree, and pc-b's root tree
	// as the record's root.
	mustBeRefused(t, "commit of pc-b's root tree as a directory", h.commit(h.putTree(dirWithTree("stolen", recB.Record.Tree))), http.StatusConflict, secret)
	mustBeRefused(t, "commit of pc-b's root tree as the root", h.commit(recB.Record.Tree), http.StatusConflict, secret)
	// 5. A file pointing at pc-b's chunk known by its ID only: refused
	// exactly as a chunk the store lacks (no "does it hold this" oracle).
	secretID := hasher.Sum(secret)
	absentID := hasher.Sum([]byte("nobody has this"))
	held := h.commit(h.putTree(fileWithChunk("secret.txt", secretID)))
	lacking := h.commit(h.putTree(fileWithChunk("secret.txt", absentID)))
	mustBeRefused(t, "commit of pc-b's chunk without proof", held, http.StatusConflict, secret)
	if held.status != lacking.status || !bytes.Equal(bytes.ReplaceAll(held.body, []byte(secretID.Short()), nil), bytes.ReplaceAll(lacking.body, []byte(absentID.Short()), nil)) {
		t.Fatalf("commit of a held chunk answers HTTP %d %s, of an absent one HTTP %d %s", held.status, held.body, lacking.status, lacking.body)
	}
	// Guessing a proof does not help either.
	guess := wire.EncodeHave([]wire.HaveEntry{{Type: cas.BlobData, ID: secretID, Len: uint32(len(secret))}})
	if r := a.do(http.MethodPost, "/captures/"+h.sess.ID+"/have", guess); r.status != http.StatusOK || r.body[0] != 0 {
		t.Fatalf("have-query with a guessed proof: HTTP %d %x", r.status, r.body)
	}
	mustBeRefused(t, "commit after a failed proof", h.commit(h.putTree(fileWithChunk("secret.txt", secretID))), http.StatusConflict, secret)

	// Nothing was committed: pc-a still has one record, and restoring its
	// newest gives pc-a's files, none of pc-b's.
	var recsA recordsOut
	smpJSON(t, exitOK, &recsA, "records", "--store", srv.url, "--token", tokA, "--json")
	if got := recsA.ids(); len(got) != 1 || got[0] != outA.Record {
		t.Fatalf("pc-a's records after the attacks: %v, want [%s]", got, outA.Record)
	}
	dst := tmpDir(t)
	restoreJSON(t, exitOK, srv.url, "--token", tokA, "--computer", "pc-a", "--root", dst)
	compareTrees(t, srcA, dst, compareOpts{})
	noSecret(t, dst, secret)
	r := smp(t, "restore", "--store", srv.url, "--token", tokA, "--record", rb, "--root", tmpDir(t))
	if r.code != exitError || !strings.Contains(r.stderr, "no such record") || strings.Contains(r.stderr, rb[:12]) {
		t.Fatalf("pc-a restores pc-b's record: want one refusal not naming it\n%s", r)
	}

	// The normal paths still work: pc-a's next capture (reusing its
	// parent's chunks), pc-b's restore, and an associated computer's.
	writeFile(t, filepath.Join(srcA, "home", "alice", "new.txt"), []byte("changed\n"), 0o644)
	outA2 := remoteCapture(t, exitOK, srv.url, tokA, "pc-a", "--root", srcA)
	if outA2.UnchangedFiles == 0 {
		t.Fatalf("pc-a's second capture reused nothing: %+v", outA2)
	}
	dst = tmpDir(t)
	restoreJSON(t, exitOK, srv.url, "--token", tokA, "--computer", "pc-a", "--root", dst)
	compareTrees(t, srcA, dst, compareOpts{})
	dst = tmpDir(t)
	restoreJSON(t, exitOK, srv.url, "--token", tokB, "--computer", "pc-b", "--root", dst)
	compareTrees(t, srcB, dst, compareOpts{})
	mustSMP(t, "associate", "--store", store, "--source", "pc-a", "--dest", "pc-c")
	time.Sleep(250 * time.Millisecond) // the server re-reads the access file at most every 200 ms
	dst = tmpDir(t)
	restoreJSON(t, exitOK, srv.url, "--token", tokC, "--computer", "pc-a", "--root", dst)
	compareTrees(t, srcA, dst, compareOpts{})
	noSecret(t, dst, secret)
}

// noSecret fails if any regular file below root holds secret.
func noSecret(t *testing.T, root string, secret []byte) {
	t.Helper()
	for _, p := range regularFiles(t, root) {
		b, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, secret) {
			t.Fatalf("%s holds pc-b's secret", p)
		}
	}
}
