package s3_test

import (
	"net/http"
	"sync"
	"testing"

	"smp/internal/seaweedtest"
	"smp/storage"
	"smp/storage/s3"
)

// recorder is a transport in front of the real SeaweedFS that notes each
// request's method and answer.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err == nil {
		r.mu.Lock()
		r.seen = append(r.seen, req.Method+" "+resp.Status)
		r.mu.Unlock()
	}
	return resp, err
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen
	r.seen = nil
	return s
}

// TestGetIfChangedNotModified: polling an unchanged object (the shared
// access file, every second on every server) is one HEAD that SeaweedFS
// answers 304 Not Modified, with no GET; a changed one is read.
func TestGetIfChangedNotModified(t *testing.T) {
	srv := seaweedtest.Shared(t)
	rec := &recorder{}
	st := open(t, srv, func(o *s3.Options) { o.Transport = rec })
	v1, err := st.Swap(ctx, "access.json", storage.NoVersion, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	rec.take()
	if _, _, changed, err := st.GetIfChanged(ctx, "access.json", v1, 1<<20); err != nil || changed {
		t.Fatalf("unchanged object: changed %v, %v", changed, err)
	}
	if got := rec.take(); len(got) != 1 || got[0] != "HEAD 304 Not Modified" {
		t.Fatalf("a poll of an unchanged object sent %q, want one HEAD answered 304", got)
	}
	if _, err := st.Swap(ctx, "access.json", v1, []byte("two")); err != nil {
		t.Fatal(err)
	}
	b, _, changed, err := st.GetIfChanged(ctx, "access.json", v1, 1<<20)
	if err != nil || !changed || string(b) != "two" {
		t.Fatalf("changed object: %q, %v, %v", b, changed, err)
	}
}
