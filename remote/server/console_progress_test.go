package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/server"
	"smp/remote/wire"
	"smp/repo/report"
)

// The server lists the capture-totals feature, checks the totals a
// client sends, and the overview shows a capture's progress, throughput
// and ETA against them (and an older client's capture without them), and
// the capacity figures of GET /v1/stats: reserved and quota-committed
// bytes and the free-space floor.
func TestConsoleCaptureProgressAndCapacity(t *testing.T) {
	const free = 1 << 40
	e := newEnv(t, func(o *server.Options) {
		o.MinFree, o.Quota = 1<<30, 1<<35
		o.FreeBytes = func() (uint64, error) { return free, nil }
	})
	pc01 := e.token("PC01", access.RoleClient, 0)
	var info wire.Info
	decode(t, wantOK(t, "info", e.do(http.MethodGet, "/v1/info", pc01, nil), http.StatusOK), &info)
	if !info.HasFeature(wire.FeatureCaptureTotals) {
		t.Fatalf("info lists features %q, want %q", info.Features, wire.FeatureCaptureTotals)
	}
	for _, bad := range []wire.CaptureTotals{{Files: wire.MaxExpectedFiles + 1}, {Bytes: wire.MaxExpectedBytes + 1}} {
		wantError(t, "totals past the bounds", e.postJSON("/v1/captures", pc01, wire.StartCapture{Computer: "PC01", Expected: &bad}),
			http.StatusBadRequest, false, "expected totals")
	}

	chunks := e.makeChunks(7, 4)
	up := uint64(len(chunks[0].plain) + len(chunks[3].plain)) // uploaded below
	b := wantOK(t, "start", e.postJSON("/v1/captures", pc01, wire.StartCapture{Computer: "PC01", Expected: &wire.CaptureTotals{Files: 4, Bytes: 2 * up}}), http.StatusOK)
	var sess wire.Session
	decode(t, b, &sess)
	e.session(e.admin, "PC02") // an older client: no totals

	// The client has offered four chunks the store lacks and uploaded two
	// of them, half its total, in 10 s: 50%, 10 s to go at that rate; the
	// other two are reserved.
	var have []wire.HaveEntry
	for _, c := range chunks {
		have = append(have, c.have(sess.Nonce))
	}
	if bm := e.haveQuery(pc01, sess.ID, have); bm.Has(0) {
		t.Fatal("a new store holds a chunk")
	}
	wantOK(t, "upload", e.upload(pc01, sess.ID, chunks[0].frame(), chunks[3].frame()), http.StatusOK)
	e.clock.Set(t0.Add(10 * time.Second))

	var st wire.StatsReply
	decode(t, wantOK(t, "stats", e.do(http.MethodGet, "/v1/stats", e.admin, nil), http.StatusOK), &st)
	stored := uint64(len(chunks[0].stored) + len(chunks[3].stored))
	reserved := uint64(len(chunks[1].plain) + len(chunks[2].plain))
	want := report.Capacity{Captures: 2, ReservedBytes: reserved, QuotaCommittedBytes: stored + reserved, MinFreeBytes: 1 << 30, QuotaBytes: 1 << 35}
	if st.Capacity == nil || *st.Capacity != want {
		t.Fatalf("GET /v1/stats capacity %+v, want %+v", st.Capacity, want)
	}

	br := &browser{t: t, base: e.hs.URL}
	br.login(e.admin)
	p := br.do(http.MethodGet, "/", nil, nil)
	wantPage(t, "overview", p, http.StatusOK,
		`id="used-bytes">`+itoa(st.StoredBytes)+`<`, `id="free-bytes">`+itoa(st.FreeBytes)+`<`,
		`id="reserved-bytes">`+itoa(st.Capacity.ReservedBytes)+`<`,
		`id="quota-committed-bytes">`+itoa(st.Capacity.QuotaCommittedBytes)+`<`,
		`id="min-free-bytes">`+itoa(st.Capacity.MinFreeBytes)+`<`,
		`<progress max="100" value="50.0">`, "in 4 files", `<td class="eta">10s</td>`,
		"no walk total (older client)")
	rate := fmt.Sprintf("%.1f KiB/s done", float64(up)/10/1024)
	if !strings.Contains(p.body, rate) {
		t.Fatalf("overview lacks the read rate %q\n%s", rate, p.body)
	}
}

// A restore in progress shows the share of its record's bytes sent, the
// rate and the ETA.
func TestConsoleRestoreProgress(t *testing.T) {
	e := newEnv(t)
	chunks := e.makeChunks(3, 4)
	var logical uint64
	for _, c := range chunks {
		if _, _, err := e.repo.PutBlob(cas.BlobData, c.plain); err != nil {
			t.Fatal(err)
		}
		logical += uint64(len(c.plain))
	}
	root, err := e.repo.PutTree(fileTree(map[string][]chunk{"f": chunks}))
	if err != nil {
		t.Fatal(err)
	}
	rec := record("PC01", root, t0)
	rec.Bytes = logical
	id, err := e.repo.CommitRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	// Half of the bytes (chunks 0..3 are 100, 4096, 4097 and 50000 bytes:
	// send the last), then 5 s later the overview.
	r, _ := e.fetchRaw(e.admin, id, []wire.FetchEntry{{Type: cas.BlobData, ID: chunks[3].id}})
	wantOK(t, "fetch", r, http.StatusOK)
	e.clock.Set(t0.Add(5 * time.Second))
	pct := fmt.Sprintf("%.1f", float64(len(chunks[3].plain))*100/float64(logical))
	left := time.Duration(float64(logical-uint64(len(chunks[3].plain))) / (float64(len(chunks[3].plain)) / 5) * float64(time.Second)).Round(time.Second)
	br := &browser{t: t, base: e.hs.URL}
	br.login(e.admin)
	wantPage(t, "overview during a restore", br.do(http.MethodGet, "/", nil, nil), http.StatusOK,
		`id="restores"`, id.String(), `<progress max="100" value="`+pct+`">`, `<td class="eta">`+left.String()+`</td>`)
}

// TestCapacityStoreLimit: with a store-size limit (a store on S3 has no
// disk to fill), GET /v1/stats gives the limit in force, the stricter of
// the server's flag and the shared one, and the console shows it and
// draws its bar against it.
func TestCapacityStoreLimit(t *testing.T) {
	e := newEnv(t, func(o *server.Options) {
		o.MaxStoreBytes = 8 << 30
		o.StoredBytes = func() (uint64, error) { return 1 << 30, nil }
	})
	stats := func() *report.Capacity {
		var st wire.StatsReply
		decode(t, wantOK(t, "stats", e.do(http.MethodGet, "/v1/stats", e.admin, nil), http.StatusOK), &st)
		if st.Capacity == nil {
			t.Fatal("GET /v1/stats has no capacity")
		}
		return st.Capacity
	}
	if c := stats(); c.MaxStoreBytes != 8<<30 {
		t.Fatalf("capacity max_store_bytes %d, want the flag's %d", c.MaxStoreBytes, 8<<30)
	}
	if err := e.acc.SetLimits(access.Limits{MaxStoreBytes: 4 << 30, Quota: 1 << 30}); err != nil {
		t.Fatal(err)
	}
	c := stats()
	if c.MaxStoreBytes != 4<<30 || c.QuotaBytes != 1<<30 {
		t.Fatalf("capacity %+v, want the shared limits (stricter): 4 GiB stored, 1 GiB quota", c)
	}
	br := &browser{t: t, base: e.hs.URL}
	br.login(e.admin)
	wantPage(t, "overview", br.do(http.MethodGet, "/", nil, nil), http.StatusOK,
		`id="max-store-bytes">`+itoa(4<<30)+`<`, "the bar is drawn against it")
}

// A client that counts alongside its capture sends the walk totals during
// the session (capture-totals-later): the server lists the feature, bounds
// the totals as at the start, answers another token's session as one that
// does not exist, and the overview shows the progress against them.
func TestCaptureTotalsLater(t *testing.T) {
	e := newEnv(t)
	pc01 := e.token("PC01", access.RoleClient, 0)
	other := e.token("PC02", access.RoleClient, 0)
	var info wire.Info
	decode(t, wantOK(t, "info", e.do(http.MethodGet, "/v1/info", pc01, nil), http.StatusOK), &info)
	if !info.HasFeature(wire.FeatureTotalsLater) {
		t.Fatalf("info lists features %q, want %q", info.Features, wire.FeatureTotalsLater)
	}
	sess := e.session(pc01, "PC01")
	path := "/v1/captures/" + sess.ID + "/expected"
	for _, bad := range []wire.CaptureTotals{{Files: wire.MaxExpectedFiles + 1}, {Bytes: wire.MaxExpectedBytes + 1}} {
		wantError(t, "totals past the bounds", e.postJSON(path, pc01, bad), http.StatusBadRequest, false, "expected totals")
	}
	wantError(t, "unknown field", e.do(http.MethodPost, path, pc01, []byte(`{"files":1,"bytes":2,"x":3}`)), http.StatusBadRequest, false, "bad JSON body")
	wantError(t, "two values", e.do(http.MethodPost, path, pc01, []byte(`{"files":1} {"files":2}`)), http.StatusBadRequest, false)
	theirs := e.postJSON(path, other, wire.CaptureTotals{Files: 1, Bytes: 1})
	none := e.postJSON("/v1/captures/"+strings.Repeat("0", len(sess.ID))+"/expected", other, wire.CaptureTotals{Files: 1, Bytes: 1})
	wantError(t, "another token's session", theirs, http.StatusNotFound, false, "no open capture session")
	wantError(t, "no such session", none, http.StatusNotFound, false, "no open capture session")
	if a, b := strings.ReplaceAll(string(theirs.body), sess.ID, ""), strings.ReplaceAll(string(none.body), strings.Repeat("0", len(sess.ID)), ""); a != b {
		t.Fatalf("another token's session answered %q, a missing one %q: they must read alike", a, b)
	}

	chunks := e.makeChunks(3, 2)
	up := uint64(len(chunks[0].plain))
	total := uint64(len(chunks[0].plain) + len(chunks[1].plain))
	wantOK(t, "totals", e.postJSON(path, pc01, wire.CaptureTotals{Files: 2, Bytes: total}), http.StatusNoContent)
	var have []wire.HaveEntry
	for _, c := range chunks {
		have = append(have, c.have(sess.Nonce))
	}
	e.haveQuery(pc01, sess.ID, have)
	wantOK(t, "upload", e.upload(pc01, sess.ID, chunks[0].frame()), http.StatusOK)
	e.clock.Set(t0.Add(10 * time.Second))
	br := &browser{t: t, base: e.hs.URL}
	br.login(e.admin)
	pct := fmt.Sprintf("%.1f", float64(up)*100/float64(total))
	wantPage(t, "overview", br.do(http.MethodGet, "/", nil, nil), http.StatusOK,
		`<progress max="100" value="`+pct+`">`, "in 2 files")
}
