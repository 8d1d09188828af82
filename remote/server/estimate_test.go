package server_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"smp/remote/access"
	"smp/remote/server"
	"smp/remote/wire"
)

// TestEstimateSession: an estimate session answers have-queries as a
// capture session does (held only with the right proof), but names, pins
// and reserves nothing: under a quota far below what it offers it is not
// refused, and an upload or a commit on it is refused (403) without
// storing anything.
func TestEstimateSession(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.Quota = 5000 })
	tok := e.token("PC01", access.RoleClient, 0)
	chunks := e.makeChunks(1, 10)
	// Store the first half with a real session.
	cs := e.session(tok, "PC01")
	var entries []wire.HaveEntry
	for _, c := range chunks[:2] {
		entries = append(entries, c.have(cs.Nonce))
	}
	e.haveQuery(tok, cs.ID, entries)
	wantOK(t, "upload", e.upload(tok, cs.ID, chunks[0].frame(), chunks[1].frame()), http.StatusOK)

	b := wantOK(t, "start estimate", e.postJSON("/v1/captures", tok, wire.StartCapture{Computer: "PC01", Estimate: true}), http.StatusOK)
	var s wire.Session
	if err := json.Unmarshal(b, &s); err != nil || !s.Estimate || len(s.Nonce) != 32 {
		t.Fatalf("estimate session %q: %v", b, err)
	}
	entries = nil
	for _, c := range chunks {
		entries = append(entries, c.have(s.Nonce))
	}
	wrong := chunks[1].have(s.Nonce)
	wrong.Proof[0] ^= 1
	entries = append(entries, wrong)
	bm := e.haveQuery(tok, s.ID, entries)
	for i := range entries {
		if want := i < 2; bm.Has(i) != want {
			t.Errorf("entry %d: held %v, want %v", i, bm.Has(i), want)
		}
	}
	if n, p := e.srv.SessionBlobs(s.ID), e.srv.SessionPinned(s.ID); n != 0 || p != 0 {
		t.Errorf("the estimate session names %d blobs, pins %d", n, p)
	}
	wantError(t, "upload on an estimate", e.upload(tok, s.ID, chunks[5].frame()), http.StatusForbidden, false, "estimate session")
	if e.has(chunks[5].id) {
		t.Error("an upload on an estimate session was stored")
	}
	wantError(t, "commit on an estimate", e.do(http.MethodPost, "/v1/captures/"+s.ID+"/commit", tok, []byte("{}")), http.StatusForbidden, false, "estimate session")
}
