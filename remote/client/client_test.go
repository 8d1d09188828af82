package client_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/client"
	"smp/remote/wire"
)

var hashKey = bytes.Repeat([]byte{0x42}, 32)

func hasher() *cas.Hasher {
	var k [32]byte
	copy(k[:], hashKey)
	return cas.NewHasher(k)
}

// fake is a scripted SMP: /info answers info, every other path calls the
// handler set for it.
type fake struct {
	info     wire.Info
	mu       sync.Mutex
	handlers map[string]http.HandlerFunc
	hs       *httptest.Server
}

func newFake(t *testing.T) *fake {
	t.Helper()
	f := &fake{
		info: wire.Info{Protocol: wire.Version, StoreID: "s", Chunker: cas.DefaultChunkerParams(), HashKey: hashKey,
			Computer: "PC01", Role: "client"},
		handlers: map[string]http.HandlerFunc{},
	}
	f.hs = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(wire.Error{Error: "unknown token"})
			return
		}
		if r.URL.Path == "/v1/info" {
			json.NewEncoder(w).Encode(f.info)
			return
		}
		f.mu.Lock()
		h := f.handlers[r.Method+" "+r.URL.Path]
		f.mu.Unlock()
		if h == nil {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(wire.Error{Error: "no such endpoint " + r.URL.Path})
			return
		}
		h(w, r)
	}))
	t.Cleanup(f.hs.Close)
	return f
}

func (f *fake) handle(pattern string, h http.HandlerFunc) {
	f.mu.Lock()
	f.handlers[pattern] = h
	f.mu.Unlock()
}

func (f *fake) dial(t *testing.T) *client.Client {
	t.Helper()
	c, err := client.Dial(context.Background(), client.Options{URL: f.hs.URL, Token: "tok", Streams: 2})
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestDialChecks(t *testing.T) {
	f := newFake(t)
	c := f.dial(t)
	if c.Info().Computer != "PC01" || c.Sum([]byte("x")) != hasher().Sum([]byte("x")) {
		t.Fatal("client does not use the server's info and key")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		opts client.Options
		want string
	}{
		{"no scheme", client.Options{URL: "smp.example:8443"}, "want https"},
		{"ftp", client.Options{URL: "ftp://smp.example"}, "want https"},
		{"no host", client.Options{URL: "https://"}, "want https"},
		{"bad fingerprint", client.Options{URL: f.hs.URL, Fingerprint: "abc"}, "tls-fingerprint"},
		{"missing CA file", client.Options{URL: f.hs.URL, CAFile: "/nonexistent/ca.pem"}, "--ca"},
	} {
		if _, err := client.Dial(ctx, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Dial error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
	_, err := client.Dial(ctx, client.Options{URL: f.hs.URL, Token: "wrong"})
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized || !strings.Contains(err.Error(), "unknown token") {
		t.Fatalf("wrong token: %v", err)
	}

	f.info.Protocol = 2
	if _, err := client.Dial(ctx, client.Options{URL: f.hs.URL, Token: "tok"}); err == nil || !strings.Contains(err.Error(), "protocol v2") {
		t.Errorf("protocol 2: %v", err)
	}
	f.info.Protocol = wire.Version
	f.info.HashKey = hashKey[:16]
	if _, err := client.Dial(ctx, client.Options{URL: f.hs.URL, Token: "tok"}); !errors.Is(err, wire.ErrMalformed) {
		t.Errorf("short hash key: %v", err)
	}
	f.info.HashKey = hashKey
	f.info.Chunker = cas.ChunkerParams{}
	if _, err := client.Dial(ctx, client.Options{URL: f.hs.URL, Token: "tok"}); err == nil {
		t.Error("invalid chunker accepted")
	}
}

// serveFetch answers every fetch with frames made from the request by fn.
func (f *fake) serveFetch(rec cas.ID, fn func([]wire.FetchEntry) []wire.Blob) {
	f.handle("POST /v1/records/"+rec.String()+"/fetch", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		entries, err := wire.DecodeFetch(b)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, bl := range fn(entries) {
			wire.WriteBlob(w, bl)
		}
	})
}

func TestReaderVerifiesBlobs(t *testing.T) {
	f := newFake(t)
	c := f.dial(t)
	h := hasher()
	good := []byte("the chunk the reader asked for, verbatim")
	other := []byte("some other bytes under a borrowed name")
	goodID, badID, strayID := h.Sum(good), h.Sum([]byte("the real bytes of bad")), h.Sum([]byte("stray"))
	rec := h.Sum([]byte("record"))
	f.serveFetch(rec, func(entries []wire.FetchEntry) []wire.Blob {
		var out []wire.Blob
		for _, e := range entries {
			switch e.ID {
			case goodID:
				out = append(out, wire.Blob{Type: e.Type, ID: e.ID, RawLen: len(good), Stored: good})
			case badID:
				out = append(out, wire.Blob{Type: e.Type, ID: e.ID, RawLen: len(other), Stored: other})
			case strayID:
				out = append(out, wire.Blob{Type: cas.BlobData, ID: h.Sum([]byte("never asked")), RawLen: 1, Stored: []byte("x")})
			}
		}
		return out
	})
	r := c.Reader(rec)
	defer r.Close()
	got, err := r.ReadChunk(goodID, nil)
	if err != nil || !bytes.Equal(got, good) {
		t.Fatalf("good chunk: %q, %v", got, err)
	}
	if _, err := r.ReadChunk(badID, nil); !errors.Is(err, cas.ErrCorrupt) {
		t.Fatalf("chunk with wrong bytes: %v, want ErrCorrupt", err)
	}
	if _, err := r.ReadChunk(strayID, nil); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("answer with a blob not asked for: %v, want ErrMalformed", err)
	}
	if _, err := r.ReadChunk(h.Sum([]byte("not sent")), nil); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("answer without the blob: %v, want ErrMalformed", err)
	}
	// A tree is verified as a tree.
	tr := &manifest.Tree{Entries: []manifest.Entry{{Name: "a", Type: manifest.TypeSymlink, Target: "b"}}}
	tb, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	treeID := h.SumBlob(cas.BlobTree, tb)
	f.serveFetch(rec, func(entries []wire.FetchEntry) []wire.Blob {
		return []wire.Blob{{Type: cas.BlobTree, ID: treeID, RawLen: len(tb), Stored: tb}}
	})
	if got, err := r.LoadTree(treeID); err != nil || len(got.Entries) != 1 || got.Entries[0].Target != "b" {
		t.Fatalf("LoadTree: %+v, %v", got, err)
	}
	if _, err := r.LoadTree(h.Sum(tb)); err == nil {
		t.Fatal("a tree named by its data-chunk ID was accepted")
	}
}

func TestReaderRefusal(t *testing.T) {
	f := newFake(t)
	c := f.dial(t)
	rec := hasher().Sum([]byte("record"))
	f.handle("POST /v1/records/"+rec.String()+"/fetch", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(wire.Error{Error: "token x may not restore record y"})
	})
	r := c.Reader(rec)
	defer r.Close()
	_, err := r.ReadChunk(rec, nil)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != http.StatusForbidden || !strings.Contains(err.Error(), "not allowed: token x may not restore") {
		t.Fatalf("refused fetch: %v", err)
	}
}

// A read on a closed reader fails at once; it never waits for an answer no
// fetcher will send.
func TestReaderAfterClose(t *testing.T) {
	f := newFake(t)
	c := f.dial(t)
	rec := hasher().Sum([]byte("record"))
	var fetches atomic.Int64
	f.serveFetch(rec, func(entries []wire.FetchEntry) []wire.Blob {
		fetches.Add(1)
		return nil
	})
	for i := range 50 {
		r := c.Reader(rec)
		r.Close()
		done := make(chan error, 1)
		go func() {
			_, err := r.ReadChunk(rec, nil)
			done <- err
		}()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("read %d on a closed reader succeeded", i)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("read %d on a closed reader hangs", i)
		}
	}
}

func TestCaptureHaveAnswerChecked(t *testing.T) {
	f := newFake(t)
	c := f.dial(t)
	f.handle("POST /v1/captures", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(wire.Session{ID: "s1", Nonce: bytes.Repeat([]byte{1}, 32)})
	})
	f.handle("POST /v1/captures/s1/have", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte{0xff, 0xff}) // two bytes for at most a few entries
	})
	cp, err := c.StartCapture(context.Background(), "PC01", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	plain := []byte("chunk")
	if _, err := cp.ReserveData(cas.BlobData, cp.Sum(plain), plain); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("ReserveData with a malformed have answer: %v", err)
	}

	// A session answer without a proper nonce is refused.
	f.handle("POST /v1/captures", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(wire.Session{ID: "s2", Nonce: []byte{1, 2, 3}})
	})
	if _, err := c.StartCapture(context.Background(), "PC01", cas.ID{}); !errors.Is(err, wire.ErrMalformed) {
		t.Fatalf("StartCapture with a short nonce: %v", err)
	}
	// Capacity refusals are marked for the fallback list.
	f.handle("POST /v1/captures", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(wire.Error{Error: "restore-only", Capacity: true})
	})
	if _, err := c.StartCapture(context.Background(), "PC01", cas.ID{}); !errors.Is(err, client.ErrCapacity) {
		t.Fatalf("capacity refusal: %v", err)
	}
}

// TestOffersWaitWithinBound: offers answered later hold their plaintext
// until the SMP answers; while it does not, OfferData returns for at most
// client.OfferBytes of it (by buffer capacity) and then waits. Once the
// SMP answers, every offer is answered (not held: needed), and
// WaitOffers returns.
func TestOffersWaitWithinBound(t *testing.T) {
	f := newFake(t)
	c := f.dial(t)
	f.handle("POST /v1/captures", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(wire.Session{ID: "s1", Nonce: bytes.Repeat([]byte{1}, 32)})
	})
	release := make(chan struct{})
	f.handle("POST /v1/captures/s1/have", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		entries, err := wire.DecodeHave(body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		<-release
		w.Write(wire.NewHaveBitmap(len(entries))) // nothing held
	})
	cp, err := c.StartCapture(context.Background(), "PC01", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()

	const chunk = 1 << 20
	bound := client.OfferBytes / chunk
	total := bound + 8
	var offered, needed atomic.Int64
	go func() {
		for i := range total {
			plain := make([]byte, chunk)
			plain[0], plain[1] = byte(i), byte(i>>8)
			cp.OfferData(cas.BlobData, cp.Sum(plain), plain, func(need bool, err error) {
				if need && err == nil {
					needed.Add(1)
				}
			})
			offered.Add(1)
		}
	}()
	// Wait until the offers stop returning.
	last, stable := int64(-1), 0
	for stable < 5 {
		time.Sleep(50 * time.Millisecond)
		if n := offered.Load(); n == last {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	if last != int64(bound) {
		t.Errorf("%d offers of 1 MiB returned while the SMP did not answer, want %d (client.OfferBytes)", last, bound)
	}
	close(release)
	deadline := time.Now().Add(30 * time.Second)
	for offered.Load() < int64(total) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cp.WaitOffers()
	if n := needed.Load(); n != int64(total) {
		t.Errorf("%d offers answered as needed, want %d", n, total)
	}
}
