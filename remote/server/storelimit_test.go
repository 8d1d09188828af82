package server_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/server"
	"smp/remote/wire"
)

// TestMaxStoreBytes: the store's stored bytes plus the reservations of
// captures in progress may not cross --max-store-bytes: a capture is
// refused at its start once the store is at the limit, and one whose
// have-queries would cross it is stopped, committing nothing. The limit
// set in the access file (smp admin limits) applies beside the flag, the
// stricter counting.
func TestMaxStoreBytes(t *testing.T) {
	var stored atomic.Uint64
	stored.Store(1 << 20)
	e := newEnv(t, func(o *server.Options) {
		o.MaxStoreBytes = 3 << 20
		o.StoredBytes = func() (uint64, error) { return stored.Load(), nil }
	})
	tok := e.token("PC01", access.RoleClient, 0)

	// Through the client, a capture crossing the limit mid-way fails
	// with the server's reason and commits nothing.
	before, _ := e.repo.Records()
	c := e.client(tok)
	cp, err := c.StartCapture(context.Background(), "PC01", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	var got error
	for _, ch := range e.makeChunks(6, 80) { // about 2.6 MB plaintext
		if _, got = cp.ReserveData(cas.BlobData, ch.id, ch.plain); got != nil {
			break
		}
	}
	cp.Close()
	clientError(t, "mid-way", got, http.StatusInsufficientStorage, "--max-store-bytes", "nothing of this capture was committed")
	if after, _ := e.repo.Records(); len(after) != len(before) {
		t.Fatalf("records %d -> %d after a refused capture", len(before), len(after))
	}

	// At the limit, a capture is refused before it uploads.
	stored.Store(3 << 20)
	r := e.postJSON("/v1/captures", tok, wire.StartCapture{Computer: "PC01"})
	wantError(t, "start at the limit", r, http.StatusInsufficientStorage, true, "--max-store-bytes", "another SMP")

	// Below the flag's limit but at the store's shared one: refused too.
	stored.Store(2 << 20)
	if err := e.acc.SetLimits(access.Limits{MaxStoreBytes: 2 << 20}); err != nil {
		t.Fatal(err)
	}
	r = e.postJSON("/v1/captures", tok, wire.StartCapture{Computer: "PC01"})
	wantError(t, "start at the shared limit", r, http.StatusInsufficientStorage, true, "--max-store-bytes")
	// A looser shared limit does not lift the flag's.
	if err := e.acc.SetLimits(access.Limits{MaxStoreBytes: 1 << 40}); err != nil {
		t.Fatal(err)
	}
	stored.Store(3 << 20)
	r = e.postJSON("/v1/captures", tok, wire.StartCapture{Computer: "PC01"})
	wantError(t, "start at the flag's limit under a looser shared one", r, http.StatusInsufficientStorage, true, "--max-store-bytes")
	stored.Store(1 << 20)
	e.session(tok, "PC01")
}

// TestSharedMaxRecords: the shared record limit of the access file
// applies to a server started without --max-records.
func TestSharedMaxRecords(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	e.directRecord("PC01", e.makeChunks(1, 1), t0)
	if err := e.acc.SetLimits(access.Limits{MaxRecords: 1}); err != nil {
		t.Fatal(err)
	}
	r := e.postJSON("/v1/captures", tok, wire.StartCapture{Computer: "PC01"})
	wantError(t, "capture over the shared record limit", r, http.StatusServiceUnavailable, true, "--max-records 1")
}
