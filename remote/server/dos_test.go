package server_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"smp/cas"
	"smp/remote/access"
	"smp/remote/wire"
	"smp/repo"
)

// TestTrailingJSONRefused: a JSON body is one value; bytes after it are
// refused, not ignored.
func TestTrailingJSONRefused(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	for _, body := range []string{
		`{"computer":"PC01"}{"computer":"PC02"}`,
		`{"computer":"PC01"} x`,
		`{"computer":"PC01"}]`,
		`{"computer":"PC01"} {`,
	} {
		r := e.do(http.MethodPost, "/v1/captures", tok, []byte(body))
		wantError(t, "start capture "+body, r, http.StatusBadRequest, false, "after the JSON value")
	}
	// Trailing white space (the newline json.Encoder writes) is no value.
	r := e.do(http.MethodPost, "/v1/captures", tok, []byte("{\"computer\":\"PC01\"}\n \t\n"))
	wantOK(t, "start capture with a trailing newline", r, http.StatusOK)
}

// TestAssociationSeenNextRequest: `smp associate` writes the access file
// from another process while the server runs; the server honours the
// association on the very next request, with no wait.
func TestAssociationSeenNextRequest(t *testing.T) {
	e := newEnv(t)
	pc01 := e.client(e.token("PC01", access.RoleClient, 0))
	pc02tok := e.token("PC02", access.RoleClient, 0)
	e.captureAll(pc01, "PC01", map[string][]chunk{"a": e.makeChunks(3, 2)}, t0)
	if r := e.do(http.MethodGet, "/v1/record?computer=PC01", pc02tok, nil); r.status == http.StatusOK {
		t.Fatalf("PC02 finds PC01's record before any association: %s", r.body)
	}
	// Another Store on the same directory, as the smp associate process has.
	cli, err := access.Open(e.dir)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 3 {
		if err := cli.Associate("PC01", "PC02", t0); err != nil {
			t.Fatal(err)
		}
		r := e.do(http.MethodGet, "/v1/record?computer=PC01", pc02tok, nil)
		wantOK(t, "PC02 finds PC01's record right after smp associate", r, http.StatusOK)
		if err := cli.Dissociate("PC01", "PC02"); err != nil {
			t.Fatal(err)
		}
		if r := e.do(http.MethodGet, "/v1/record?computer=PC01", pc02tok, nil); r.status == http.StatusOK {
			t.Fatalf("round %d: PC02 still finds PC01's record right after smp dissociate", round)
		}
	}
}

// trickle opens an upload whose Content-Length announces a whole frame and
// then sends its bytes one at a time, one every period, until stop closes.
// It returns once the headers and the first byte are sent.
func (e *env) trickle(tok, sid string, frame []byte, period time.Duration, stop <-chan struct{}) net.Conn {
	e.t.Helper()
	conn, err := net.Dial("tcp", e.hs.Listener.Addr().String())
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST /v1/captures/%s/blobs HTTP/1.1\r\nHost: smp\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", sid, tok, len(frame))
	if _, err := conn.Write(frame[:1]); err != nil {
		e.t.Fatal(err)
	}
	go func() {
		t := time.NewTicker(period)
		defer t.Stop()
		for i := 1; i < len(frame)-1; i++ { // never the last byte
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if _, err := conn.Write(frame[i : i+1]); err != nil {
				return
			}
		}
	}()
	return conn
}

// TestTricklersHoldNoSlot: uploads sending one byte at a time (as many as
// the server has work slots, and more) must not keep a normal client from
// capturing. The bound is generous (a capture of a few chunks takes well
// under a second); before the fix the capture waited for the tricklers.
func TestTricklersHoldNoSlot(t *testing.T) {
	e := newEnv(t)
	stop := make(chan struct{})
	defer close(stop)
	n := max(4, 2*runtime.GOMAXPROCS(0)+2)
	frame := wire.AppendBlob(nil, e.makeChunks(40, 2)[1].frame())
	for i := range n {
		computer := fmt.Sprintf("ATT%02d", i)
		tok := e.token(computer, access.RoleClient, 0)
		s := e.session(tok, computer)
		e.trickle(tok, s.ID, frame, 200*time.Millisecond, stop)
	}
	time.Sleep(500 * time.Millisecond) // let every trickler reach its handler

	pc := e.client(e.token("PC01", access.RoleClient, 0))
	chunks := e.makeChunks(41, 6)
	done := make(chan cas.ID, 1)
	go func() {
		id, _ := e.captureAll(pc, "PC01", map[string][]chunk{"f": chunks}, t0)
		done <- id
	}()
	select {
	case id := <-done:
		readBack(t, pc, id, chunks)
	case <-time.After(60 * time.Second):
		t.Fatalf("a capture of %d chunks did not finish in 60 s while %d uploads trickle", len(chunks), n)
	}
	if got := e.srv.BlobsReceived.Load(); got != int64(len(chunks))+1 {
		t.Errorf("server received %d blobs, want %d: a trickler's frame was completed?", got, len(chunks)+1)
	}
}

// TestPerTokenLimit: one token's requests beyond maxPerToken wait, while
// another token's go through.
func TestPerTokenLimit(t *testing.T) {
	e := newEnv(t)
	stop := make(chan struct{})
	defer close(stop)
	tok := e.token("ATT", access.RoleClient, 0)
	s := e.session(tok, "ATT")
	frame := wire.AppendBlob(nil, e.makeChunks(42, 1)[0].frame())
	for range 8 {
		e.trickle(tok, s.ID, frame, time.Hour, stop)
	}
	time.Sleep(300 * time.Millisecond)
	// The ninth request of the same token waits...
	ch := e.makeChunks(43, 1)[0]
	got := make(chan reply, 1)
	go func() { got <- e.upload(tok, s.ID, ch.frame()) }()
	select {
	case r := <-got:
		t.Fatalf("a ninth upload of one token was answered (HTTP %d %s) while 8 were in progress", r.status, r.body)
	case <-time.After(500 * time.Millisecond):
	}
	// ...while another token's capture goes through.
	pc := e.client(e.token("PC01", access.RoleClient, 0))
	done := make(chan struct{})
	go func() {
		e.captureAll(pc, "PC01", map[string][]chunk{"f": e.makeChunks(44, 3)}, t0)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatalf("another token's capture did not finish in 60 s")
	}
}

// zstdBomb returns a zstd frame of 4 bytes per 128 KiB of output: no
// content size in its header, then n RLE blocks of 128 KiB.
func zstdBomb(n int) []byte {
	b := []byte{0x28, 0xb5, 0x2f, 0xfd, 0x00, (17 - 10) << 3}
	for i := range n {
		h := uint32(128<<10)<<3 | 1<<1 // RLE block of 128 KiB
		if i == n-1 {
			h |= 1
		}
		b = append(b, byte(h), byte(h>>8), byte(h>>16), 'A')
	}
	return b
}

// TestUploadBomb: upload frames of 8 KiB that claim a small plaintext (or
// a large tree) and expand to 256 MiB are refused having cost the server
// about what they claim, four at once.
func TestUploadBomb(t *testing.T) {
	e := newEnv(t)
	bomb := zstdBomb(2048)
	frames := []wire.Blob{
		{Type: cas.BlobData, Compression: cas.CompressionZstd, RawLen: 64, Stored: bomb},
		{Type: cas.BlobData, Compression: cas.CompressionZstd, RawLen: 1 << 20, Stored: bomb},
		{Type: cas.BlobTree, Compression: cas.CompressionZstd, RawLen: 64, Stored: bomb},
		{Type: cas.BlobTree, Compression: cas.CompressionZstd, RawLen: 2 << 20, Stored: bomb},
	}
	toks := make([]string, len(frames))
	sids := make([]string, len(frames))
	for i := range frames {
		computer := fmt.Sprintf("PC%02d", i)
		toks[i] = e.token(computer, access.RoleClient, 0)
		sids[i] = e.session(toks[i], computer).ID
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	var wg sync.WaitGroup
	replies := make([]reply, len(frames))
	for i, f := range frames {
		wg.Go(func() { replies[i] = e.upload(toks[i], sids[i], f) })
	}
	wg.Wait()
	runtime.ReadMemStats(&after)
	for i, r := range replies {
		wantError(t, fmt.Sprintf("bomb %d", i), r, http.StatusBadRequest, false, "does not decompress")
	}
	// The frames claim 3 MiB in all; the test's own requests and buffers
	// take a few MiB more. Unbounded, the four expand to 1 GiB.
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Errorf("four bomb uploads made the server allocate %d MiB", got>>20)
	}

	// Claims over what the store takes are refused before decoding.
	tooBig := []wire.Blob{
		{Type: cas.BlobData, Compression: cas.CompressionZstd, RawLen: e.repo.Config.Chunker.Max + 1, Stored: bomb},
		{Type: cas.BlobTree, Compression: cas.CompressionZstd, RawLen: cas.MaxBlobSize, Stored: bomb},
	}
	for i, f := range tooBig {
		wantError(t, fmt.Sprintf("claim %d", i), e.upload(toks[0], e.session(toks[0], "PC00").ID, f), http.StatusBadRequest, false, "over what this store takes")
	}
}

// TestHaveRepeatedEntries: a have-query repeating one entry answers every
// copy alike, reading the blob once.
func TestHaveRepeatedEntries(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	ch := e.makeChunks(50, 2)
	s := e.session(tok, "PC01")
	wantOK(t, "upload", e.upload(tok, s.ID, ch[0].frame()), http.StatusOK)
	held, lacking := ch[0].have(s.Nonce), ch[1].have(s.Nonce)
	bad := held
	bad.Proof[0] ^= 1
	entries := []wire.HaveEntry{held, lacking, held, bad, lacking, held, bad}
	bm := e.haveQuery(tok, s.ID, entries)
	for i, want := range []bool{true, false, true, false, false, true, false} {
		if bm.Has(i) != want {
			t.Errorf("entry %d: held = %v, want %v", i, bm.Has(i), want)
		}
	}
	many := make([]wire.HaveEntry, wire.MaxHaveEntries)
	for i := range many {
		many[i] = held
	}
	start := time.Now()
	bm = e.haveQuery(tok, s.ID, many)
	for i := range many {
		if !bm.Has(i) {
			t.Fatalf("copy %d of a held entry not held", i)
		}
	}
	t.Logf("a query of %d copies of one entry took %v", len(many), time.Since(start))
}

// TestGCBesideSlowUpload: gc runs while an upload waits for its client in
// the middle of a body: it neither waits for the upload nor loses the
// frame the upload already stored (committed by gc, pinned by the
// session), and the upload finishes afterwards.
func TestGCBesideSlowUpload(t *testing.T) {
	e := newEnv(t)
	tok := e.token("PC01", access.RoleClient, 0)
	s := e.session(tok, "PC01")
	ch := e.makeChunks(60, 2)
	first, second := wire.AppendBlob(nil, ch[0].frame()), wire.AppendBlob(nil, ch[1].frame())
	conn, err := net.Dial("tcp", e.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/captures/%s/blobs HTTP/1.1\r\nHost: smp\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n", s.ID, tok, len(first)+len(second))
	if _, err := conn.Write(append(first, second[:10]...)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); e.srv.BlobsReceived.Load() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first frame was not stored within 30 s")
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := e.srv.GC(context.Background(), repo.MaintainOptions{GCOptions: repo.GCOptions{}}) // no grace: only pins keep young packs
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("gc beside a slow upload: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("gc waited 60 s for an upload stalled by its client")
	}
	if !e.has(ch[0].id) {
		t.Fatal("gc lost the frame a slow upload had stored")
	}
	if _, err := conn.Write(second[10:]); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !e.has(ch[1].id) {
		t.Fatalf("upload after gc: HTTP %d, second blob stored %v", resp.StatusCode, e.has(ch[1].id))
	}
}
