package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/server"
	"smp/remote/wire"
	"smp/repo"
)

func TestMaxRecords(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.MaxRecords = 2 })
	tok := e.token("PC01", access.RoleClient, 0)
	chunks := e.makeChunks(1, 3)
	e.directRecord("PC01", chunks[:1], t0)
	// One open session plus one record reach the limit.
	e.session(tok, "PC01")
	r := e.postJSON("/v1/captures", tok, wire.StartCapture{Computer: "PC01"})
	wantError(t, "third capture", r, http.StatusServiceUnavailable, true, "--max-records 2", "another SMP")
}

func TestMinFreeAtStartAndMidway(t *testing.T) {
	var free atomic.Uint64
	free.Store(10 << 20)
	e := newEnv(t, func(o *server.Options) {
		o.MinFree = 8 << 20
		o.FreeBytes = func() (uint64, error) { return free.Load(), nil }
	})
	tok := e.token("PC01", access.RoleClient, 0)
	tok2 := e.token("PC02", access.RoleClient, 0)
	chunks := e.makeChunks(2, 10) // about 650 KB plaintext

	// Two sessions start; the first reserves 1.3 MB of its 2 MB margin...
	s1 := e.session(tok, "PC01")
	s2 := e.session(tok2, "PC02")
	var entries []wire.HaveEntry
	for _, c := range append(chunks, e.makeChunks(3, 10)...) {
		entries = append(entries, c.have(s1.Nonce))
	}
	e.haveQuery(tok, s1.ID, entries)
	// ...so the second cannot also take 1.3 MB: the reservation is real.
	var entries2 []wire.HaveEntry
	for _, c := range append(e.makeChunks(4, 10), e.makeChunks(5, 10)...) {
		entries2 = append(entries2, c.have(s2.Nonce))
	}
	r := e.do(http.MethodPost, "/v1/captures/"+s2.ID+"/have", tok2, wire.EncodeHave(entries2))
	wantError(t, "second reservation", r, http.StatusInsufficientStorage, true, "below its free-space floor", "nothing of this capture was committed")

	// Below the floor, a new capture is refused before it uploads.
	free.Store(7 << 20)
	r = e.postJSON("/v1/captures", tok, wire.StartCapture{Computer: "PC01"})
	wantError(t, "start below floor", r, http.StatusInsufficientStorage, true, "--min-free", "another SMP")

	// Through the client, a capture crossing the floor mid-way fails with
	// the server's reason and commits nothing.
	free.Store(10 << 20)
	before, _ := e.repo.Records()
	c := e.client(tok2)
	cp, err := c.StartCapture(context.Background(), "PC02", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var got error
	for _, ch := range e.makeChunks(6, 40) {
		if _, got = cp.ReserveData(cas.BlobData, ch.id, ch.plain); got != nil {
			break
		}
	}
	clientError(t, "mid-way", got, http.StatusInsufficientStorage, "free-space floor")
	after, _ := e.repo.Records()
	if len(after) != len(before) {
		t.Fatalf("records %d -> %d after a refused capture", len(before), len(after))
	}
}

func TestQuota(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.Quota = 400_000 })
	tok := e.token("PC01", access.RoleClient, 0)
	c := e.client(tok)
	small := e.makeChunks(7, 3) // 100 + 4096 + 4097 bytes
	e.captureAll(c, "PC01", map[string][]chunk{"a": small}, t0)
	cp, err := c.StartCapture(context.Background(), "PC01", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	var got error
	for _, ch := range e.makeChunks(8, 10) {
		if _, got = cp.ReserveData(cas.BlobData, ch.id, ch.plain); got != nil {
			break
		}
	}
	clientError(t, "over quota", got, http.StatusInsufficientStorage, `computer "PC01"`, "quota")
}

// TestGCKeepsPinnedChunks: a session is told a chunk is held; the only
// record using it is removed and gc runs before the session commits; the
// commit still succeeds and the record verifies.
func TestGCKeepsPinnedChunks(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.GCGrace = time.Nanosecond })
	tok := e.token("PC02", access.RoleClient, 0)
	chunks := e.makeChunks(9, 4)
	old := e.directRecord("PC01", chunks, t0)

	c := e.client(tok)
	cp, err := c.StartCapture(context.Background(), "PC02", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	for _, ch := range chunks {
		send, err := cp.ReserveData(cas.BlobData, ch.id, ch.plain)
		if err != nil || send {
			t.Fatalf("chunk of a live record: send=%v err=%v", send, err)
		}
	}
	rec, err := e.repo.FindRecord(old.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.repo.Drop(rec); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(t0.Add(time.Hour))
	res, err := e.srv.GC(context.Background(), repo.MaintainOptions{GCOptions: repo.GCOptions{RepackBelow: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, ch := range chunks {
		if !e.has(ch.id) {
			t.Fatalf("gc deleted pinned chunk %s (report %+v)", ch.id.Short(), res.GCReport)
		}
	}
	root, err := cp.PutTree(fileTree(map[string][]chunk{"f": chunks}))
	if err != nil {
		t.Fatal(err)
	}
	id, err := cp.CommitRecord(record("PC02", root, t0))
	if err != nil {
		t.Fatalf("commit after gc: %v", err)
	}
	readBack(t, c, id, chunks)
}

// TestGCRacesCaptures runs gc over and over while computers capture
// overlapping data and records are removed; no committed record may ever
// reference a deleted chunk.
func TestGCRacesCaptures(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.GCGrace = time.Nanosecond })
	e.clock.Set(t0.Add(time.Hour)) // every pack is past the grace period
	shared := e.makeChunks(10, 6)
	const computers, rounds = 4, 3
	var wg sync.WaitGroup
	var mu sync.Mutex
	committed := map[cas.ID][]chunk{}
	stop, gcDone := make(chan struct{}), make(chan struct{})
	var gcRuns atomic.Int64
	go func() {
		defer close(gcDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := e.srv.GC(context.Background(), repo.MaintainOptions{GCOptions: repo.GCOptions{RepackBelow: 0.9}}); err != nil {
				t.Errorf("gc: %v", err)
				return
			}
			gcRuns.Add(1)
		}
	}()
	for i := range computers {
		name := fmt.Sprintf("PC%02d", i)
		c := e.client(e.token(name, access.RoleClient, 0))
		wg.Go(func() {
			for round := range rounds {
				chunks := append(e.makeChunks(uint64(100+10*i+round), 3), shared[round:round+3]...)
				id := e.captureAllErr(c, name, chunks)
				if id.IsZero() {
					return
				}
				mu.Lock()
				committed[id] = chunks
				mu.Unlock()
				// Drop every other record so gc has garbage to collect.
				if round%2 == 0 {
					if r := e.do(http.MethodDelete, "/v1/records/"+id.String(), e.admin, nil); r.status != http.StatusNoContent {
						t.Errorf("remove: HTTP %d %s", r.status, r.body)
					}
					mu.Lock()
					delete(committed, id)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	<-gcDone
	if t.Failed() {
		return
	}
	if _, err := e.srv.GC(context.Background(), repo.MaintainOptions{GCOptions: repo.GCOptions{RepackBelow: 0.9}}); err != nil {
		t.Fatal(err)
	}
	recs, err := e.repo.Records()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := e.repo.Verify(recs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) != 0 || len(recs) != len(committed) {
		t.Fatalf("after %d gc runs: %d records (want %d), damaged %+v", gcRuns.Load(), len(recs), len(committed), rep.Damaged)
	}
	admin := e.client(e.admin)
	for id, chunks := range committed {
		readBack(t, admin, id, chunks)
	}
	t.Logf("%d gc runs raced %d captures", gcRuns.Load(), computers*rounds)
}

func TestGCEndpointAndRetention(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	r := e.postJSON("/v1/gc", tok, wire.GCRequest{})
	wantError(t, "client gc", r, http.StatusForbidden, false, "admin token")
	chunks := e.makeChunks(11, 3)
	id := e.directRecord("PC01", chunks, t0)
	if err := e.repo.Release(id, t0); err != nil {
		t.Fatal(err)
	}
	e.clock.Set(t0.Add(8 * 24 * time.Hour))
	r = e.postJSON("/v1/gc", e.admin, wire.GCRequest{RetentionSeconds: (7 * 24 * time.Hour).Seconds(), NoGrace: true, RepackBelow: 0.5})
	b := wantOK(t, "admin gc", r, http.StatusOK)
	var res repo.MaintainReport
	if err := jsonUnmarshal(b, &res); err != nil {
		t.Fatal(err)
	}
	if len(res.Expired) != 1 || res.Expired[0] != id.String() || res.GCReport == nil || res.BlobsRemoved == 0 {
		t.Fatalf("gc result %s", b)
	}
	for _, ch := range chunks {
		if e.has(ch.id) {
			t.Fatalf("chunk %s of the expired record survived gc", ch.id.Short())
		}
	}
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	chunks := e.makeChunks(12, 5)
	e.captureAll(e.client(tok), "PC01", map[string][]chunk{"f": chunks}, t0)
	wantError(t, "client scrape", e.do(http.MethodGet, "/metrics", tok, nil), http.StatusForbidden, false, "admin token")
	body := string(wantOK(t, "admin scrape", e.do(http.MethodGet, "/metrics", e.admin, nil), http.StatusOK))
	for _, want := range []string{
		`smp_captures_total{result="committed"} 1`,
		`smp_captures_in_flight 0`,
		`smp_store_records{state="captured"} 1`,
		`smp_request_duration_seconds_count{code="200",endpoint="POST /v1/captures/{sid}/commit"} 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !strings.Contains(body, "smp_received_bytes_total ") || strings.Contains(body, "smp_received_bytes_total 0\n") {
		t.Errorf("received bytes not counted")
	}
}

// TestQuotaCountsConcurrentSessions: two captures of one computer at once
// cannot both fit in what is left of its quota.
func TestQuotaCountsConcurrentSessions(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.Quota = 1 << 20 })
	tok := e.token("PC01", access.RoleClient, 0)
	s1 := e.session(tok, "PC01")
	s2 := e.session(tok, "PC01")
	offer := func(sess wire.Session, seed uint64) []wire.HaveEntry {
		var entries []wire.HaveEntry
		for _, c := range e.makeChunks(seed, 10) { // about 650 KB plaintext
			entries = append(entries, c.have(sess.Nonce))
		}
		return entries
	}
	e.haveQuery(tok, s1.ID, offer(s1, 11))
	r := e.do(http.MethodPost, "/v1/captures/"+s2.ID+"/have", tok, wire.EncodeHave(offer(s2, 12)))
	wantError(t, "second session of PC01", r, http.StatusInsufficientStorage, true, `computer "PC01"`, "quota")
	// The refusal ended the session; the client's other requests still in
	// flight get its reason, not "no open session".
	r = e.do(http.MethodPost, "/v1/captures/"+s2.ID+"/have", tok, wire.EncodeHave(offer(s2, 13)))
	wantError(t, "request after the refusal", r, http.StatusInsufficientStorage, true, `computer "PC01"`, "quota")
	// Another token learns nothing about the session.
	other := e.token("PC02", access.RoleClient, 0)
	r = e.do(http.MethodPost, "/v1/captures/"+s2.ID+"/have", other, wire.EncodeHave(offer(s2, 13)))
	wantError(t, "other token", r, http.StatusNotFound, false, "no open capture session")
}

// TestReservationOncePerBlob: a blob offered again in the same session (a
// --reserve-first capture offers everything twice) is reserved once, so a
// capture that fits is not refused by its own second offer.
func TestReservationOncePerBlob(t *testing.T) {
	e := newEnv(t, func(o *server.Options) { o.Quota = 1 << 20 })
	tok := e.token("PC01", access.RoleClient, 0)
	c := e.client(tok)
	cp, err := c.StartCapture(context.Background(), "PC01", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	chunks := e.makeChunks(13, 10) // about 650 KB: fits once, not twice
	plan := cp.Plan()
	for _, ch := range chunks {
		if send, err := plan.ReserveData(cas.BlobData, ch.id, ch.plain); err != nil || send {
			t.Fatalf("plan: send=%v err=%v", send, err)
		}
	}
	var want int64
	for _, ch := range chunks {
		want += int64(len(ch.plain))
	}
	if got := plan.NewBytes.Load(); got != want {
		t.Fatalf("plan counted %d new bytes, want %d", got, want)
	}
	for _, ch := range chunks {
		send, err := cp.ReserveData(cas.BlobData, ch.id, ch.plain)
		if err != nil || !send {
			t.Fatalf("capture after plan: send=%v err=%v", send, err)
		}
	}
	// Over the quota in the plan: refused before anything is uploaded.
	cp2, err := c.StartCapture(context.Background(), "PC01", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp2.Close()
	plan2 := cp2.Plan()
	var got error
	for _, ch := range e.makeChunks(14, 10) {
		if _, got = plan2.ReserveData(cas.BlobData, ch.id, ch.plain); got != nil {
			break
		}
	}
	clientError(t, "plan over quota", got, http.StatusInsufficientStorage, "quota")
	if cp2.SentBytes.Load() != 0 {
		t.Fatalf("a plan sent %d bytes", cp2.SentBytes.Load())
	}
}

// TestGCRemovesOrphanLinkSets: the server's gc is the store's one
// maintenance routine, so like smp gc on a directory it removes the link
// sets no record names (left by a hard-link capture killed before its
// commit, before the server started) and keeps those a record names.
func TestGCRemovesOrphanLinkSets(t *testing.T) {
	e := newEnv(t)
	chunks := e.makeChunks(13, 2)
	for _, c := range chunks {
		if _, _, err := e.repo.PutBlob(cas.BlobData, c.plain); err != nil {
			t.Fatal(err)
		}
	}
	root, err := e.repo.PutTree(fileTree(map[string][]chunk{"f": chunks}))
	if err != nil {
		t.Fatal(err)
	}
	rec := record("PC01", root, t0)
	rec.LinkSet = "live-set"
	if _, err := e.repo.CommitRecord(rec); err != nil {
		t.Fatal(err)
	}
	for _, set := range []string{"live-set", "orphan-set"} {
		if err := os.MkdirAll(filepath.Join(e.repo.LinkDir(), set, "0"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(set string) bool {
		_, err := os.Stat(filepath.Join(e.repo.LinkDir(), set))
		return err == nil
	}
	gc := func(dry bool) repo.MaintainReport {
		b := wantOK(t, "admin gc", e.postJSON("/v1/gc", e.admin, wire.GCRequest{DryRun: dry}), http.StatusOK)
		var res repo.MaintainReport
		if err := jsonUnmarshal(b, &res); err != nil {
			t.Fatal(err)
		}
		if len(res.OrphanLinkSets) != 1 || res.OrphanLinkSets[0] != "orphan-set" || res.GCReport == nil {
			t.Fatalf("gc (dry run %v) result %s", dry, b)
		}
		return res
	}
	gc(true)
	if !exists("orphan-set") || !exists("live-set") {
		t.Fatal("a dry run removed a link set")
	}
	gc(false)
	if exists("orphan-set") {
		t.Fatal("the orphan link set survived the server's gc")
	}
	if !exists("live-set") {
		t.Fatal("the server's gc removed the link set of a live record")
	}
}
