package s3_test

import (
	"bytes"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"smp/internal/seaweedtest"
	"smp/storage"
	"smp/storage/s3"
)

// faulty returns a storage reaching the shared SeaweedFS through a fault
// proxy, and a direct storage on the same bucket and prefix to check what
// really is there.
func faulty(t *testing.T, mod func(*s3.Options)) (*s3.Storage, *s3.Storage, *seaweedtest.FaultProxy) {
	t.Helper()
	srv := seaweedtest.Shared(t)
	p, err := seaweedtest.NewFaultProxy(srv.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	bucket := srv.NewBucket(t)
	creds := credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")
	o := s3.Options{Endpoint: p.Addr, Bucket: bucket, Prefix: "s/", Insecure: true, Creds: creds, ReadIdle: 2 * time.Second}
	if mod != nil {
		mod(&o)
	}
	via, err := s3.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := s3.Open(ctx, s3.Options{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "s/", Insecure: true, Creds: creds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { via.Close(); direct.Close() })
	return via, direct, p
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>9)
	}
	return b
}

// firstN faults the first n requests of each method and path with f.
func firstN(n int, f seaweedtest.Fault) func(*http.Request) seaweedtest.Fault {
	var mu sync.Mutex
	seen := map[string]int{}
	return func(r *http.Request) seaweedtest.Fault {
		mu.Lock()
		defer mu.Unlock()
		k := r.Method + " " + r.URL.Path
		seen[k]++
		if seen[k] <= n {
			return f
		}
		return seaweedtest.Fault{}
	}
}

// TestRetry503: every request first meets two 503 SlowDown answers; each
// operation retries through them and succeeds.
func TestRetry503(t *testing.T) {
	via, direct, p := faulty(t, nil)
	p.SetDecide(firstN(2, seaweedtest.Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"}))
	want := payload(300 << 10)
	if err := via.Put(ctx, "packs/aa/x.pack", want); err != nil {
		t.Fatalf("Put through 503s: %v", err)
	}
	got, err := via.Get(ctx, "packs/aa/x.pack", 1000, 5000, nil)
	if err != nil || !bytes.Equal(got, want[1000:6000]) {
		t.Fatalf("Get through 503s: %d bytes, %v", len(got), err)
	}
	if err := via.PutIfAbsent(ctx, "records/r1", []byte("r1")); err != nil {
		t.Fatalf("PutIfAbsent through 503s: %v", err)
	}
	v, err := via.Swap(ctx, "settings.json", storage.NoVersion, []byte("s1"))
	if err != nil {
		t.Fatalf("Swap through 503s: %v", err)
	}
	if _, err := via.Swap(ctx, "settings.json", v, []byte("s2")); err != nil {
		t.Fatalf("second Swap through 503s: %v", err)
	}
	if page, _, err := via.List(ctx, "", "", 0); err != nil || len(page) != 3 {
		t.Fatalf("List through 503s = %v, %v", page, err)
	}
	if b, _ := direct.Get(ctx, "settings.json", 0, -1, nil); string(b) != "s2" {
		t.Fatalf("settings.json = %q after the swaps", b)
	}
	if p.Faults.Load() < 10 {
		t.Fatalf("only %d faults injected", p.Faults.Load())
	}
	t.Logf("%d requests, %d answered 503", p.Requests.Load(), p.Faults.Load())
}

// TestPersistent503: an object store that keeps failing gives a clear
// error in bounded time, and nothing is stored.
func TestPersistent503(t *testing.T) {
	via, direct, p := faulty(t, func(o *s3.Options) { o.MaxRetries = 3 })
	p.SetDecide(func(r *http.Request) seaweedtest.Fault {
		return seaweedtest.Fault{Status: http.StatusServiceUnavailable}
	})
	start := time.Now()
	err := via.Put(ctx, "packs/bb/y.pack", payload(1000))
	if err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "packs/bb/y.pack") {
		t.Fatalf("Put against a failing store = %v, want a 503 error naming the object", err)
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Fatalf("gave up after %v", el)
	}
	if _, err := via.Get(ctx, "packs/bb/y.pack", 0, -1, nil); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get against a failing store = %v, want a 503 error (not 'not found')", err)
	}
	if _, err := direct.Stat(ctx, "packs/bb/y.pack"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a failed Put left an object: %v", err)
	}
	t.Logf("failed after %v: %v", time.Since(start), err)
}

// TestResetMidBody: a GET whose connection is reset halfway through the
// body is resumed from where it broke and returns the exact bytes.
func TestResetMidBody(t *testing.T) {
	via, direct, p := faulty(t, nil)
	want := payload(1 << 20)
	if err := direct.Put(ctx, "packs/cc/z.pack", want); err != nil {
		t.Fatal(err)
	}
	p.SetDecide(firstN(1, seaweedtest.Fault{Reset: true}))
	got, err := via.Get(ctx, "packs/cc/z.pack", 0, -1, nil)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Get over a reset = %d bytes, %v", len(got), err)
	}
	got, err = via.Get(ctx, "packs/cc/z.pack", 4096, 500000, nil)
	if err != nil || !bytes.Equal(got, want[4096:504096]) {
		t.Fatalf("ranged Get over a reset = %d bytes, %v", len(got), err)
	}
	if p.Faults.Load() != 1 {
		t.Fatalf("%d faults, want 1", p.Faults.Load())
	}
	// Always reset: a clean error, no partial bytes.
	p.SetDecide(func(*http.Request) seaweedtest.Fault { return seaweedtest.Fault{Reset: true} })
	got, err = via.Get(ctx, "packs/cc/z.pack", 0, -1, nil)
	if err == nil || got != nil || !strings.Contains(err.Error(), "packs/cc/z.pack") {
		t.Fatalf("Get over resets every time = %d bytes, %v; want an error naming the object", len(got), err)
	}
	t.Logf("error: %v", err)
}

// TestSlowRead: a body that stalls longer than ReadIdle is abandoned and
// read again; the Get returns the exact bytes well before the stall ends.
func TestSlowRead(t *testing.T) {
	via, direct, p := faulty(t, func(o *s3.Options) { o.ReadIdle = 300 * time.Millisecond })
	want := payload(512 << 10)
	if err := direct.Put(ctx, "packs/dd/w.pack", want); err != nil {
		t.Fatal(err)
	}
	p.SetDecide(firstN(1, seaweedtest.Fault{Stall: 20 * time.Second}))
	start := time.Now()
	got, err := via.Get(ctx, "packs/dd/w.pack", 0, -1, nil)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Get over a stall = %d bytes, %v", len(got), err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("Get over a stall took %v", el)
	}
	// Slow but moving (delayed answers): no retry needed.
	p.SetDecide(func(*http.Request) seaweedtest.Fault { return seaweedtest.Fault{Delay: 100 * time.Millisecond} })
	if got, err := via.Get(ctx, "packs/dd/w.pack", 0, -1, nil); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Get with delays = %d bytes, %v", len(got), err)
	}
}

// TestLostConditionalResponse: a PutIfAbsent or Swap whose request took
// effect but whose answer was lost is retried, meets its own object, and
// is reported as done; a competitor's object is still ErrExists.
func TestLostConditionalResponse(t *testing.T) {
	via, direct, p := faulty(t, nil)
	p.SetDecide(firstN(1, seaweedtest.Fault{Drop: true}))
	if err := via.PutIfAbsent(ctx, "records/lost", []byte("mine")); err != nil {
		t.Fatalf("PutIfAbsent with a lost answer = %v", err)
	}
	if b, _ := direct.Get(ctx, "records/lost", 0, -1, nil); string(b) != "mine" {
		t.Fatalf("object = %q", b)
	}
	if err := direct.Put(ctx, "records/theirs", []byte("theirs")); err != nil {
		t.Fatal(err)
	}
	if err := via.PutIfAbsent(ctx, "records/theirs", []byte("mine")); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("PutIfAbsent over another's object with a lost answer = %v, want ErrExists", err)
	}
	v, err := direct.Swap(ctx, "access.json", storage.NoVersion, []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := via.Swap(ctx, "access.json", v, []byte("v2"))
	if err != nil {
		t.Fatalf("Swap with a lost answer = %v", err)
	}
	if b, cur, _ := direct.GetVersioned(ctx, "access.json"); string(b) != "v2" || cur != v2 {
		t.Fatalf("after the swap: %q %q, want v2 %q", b, cur, v2)
	}
	if p.Faults.Load() < 3 {
		t.Fatalf("only %d answers dropped", p.Faults.Load())
	}
}

// TestListOverReset: a listing whose answer is cut by a reset is asked
// again (minio-go does not retry a body it already started reading) and
// returns every object; a reset on every attempt gives a clear error.
func TestListOverReset(t *testing.T) {
	via, direct, p := faulty(t, func(o *s3.Options) { o.MaxRetries = 3 })
	for _, n := range []string{"packs/ee/a.pack", "packs/ee/b.pack", "packs/ef/c.pack"} {
		if err := direct.Put(ctx, n, payload(100)); err != nil {
			t.Fatal(err)
		}
	}
	isList := func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Query().Has("list-type") }
	var cut atomic.Int32
	p.SetDecide(func(r *http.Request) seaweedtest.Fault {
		if isList(r) && cut.Add(1) == 1 {
			return seaweedtest.Fault{Reset: true}
		}
		return seaweedtest.Fault{}
	})
	page, _, err := via.List(ctx, "packs/", "", 0)
	if err != nil || len(page) != 3 {
		t.Fatalf("List over one reset = %d objects, %v; want 3", len(page), err)
	}
	if p.Faults.Load() != 1 {
		t.Fatalf("%d faults, want 1 (the listing was not cut)", p.Faults.Load())
	}
	p.SetDecide(func(r *http.Request) seaweedtest.Fault {
		if isList(r) {
			return seaweedtest.Fault{Reset: true}
		}
		return seaweedtest.Fault{}
	})
	if _, _, err := via.List(ctx, "packs/", "", 0); err == nil || !strings.Contains(err.Error(), "list") {
		t.Fatalf("List over resets every time = %v, want an error", err)
	}
}

// TestRetry429: answers 429 Too Many Requests (S3's throttling, as
// SlowDown) are retried like 503s; a store that keeps throttling gives an
// error naming it, and nothing is stored.
func TestRetry429(t *testing.T) {
	// Six attempts: a client's first request also looks up the bucket's
	// region, which meets its own two 429s.
	via, direct, p := faulty(t, func(o *s3.Options) { o.MaxRetries = 6 })
	p.SetDecide(firstN(2, seaweedtest.Fault{Status: http.StatusTooManyRequests, Code: "SlowDown"}))
	want := payload(100 << 10)
	if err := via.Put(ctx, "packs/cc/z.pack", want); err != nil {
		t.Fatalf("Put through 429s: %v", err)
	}
	if got, err := via.Get(ctx, "packs/cc/z.pack", 0, -1, nil); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("Get through 429s: %d bytes, %v", len(got), err)
	}
	if err := via.PutIfAbsent(ctx, "records/r2", []byte("r2")); err != nil {
		t.Fatalf("PutIfAbsent through 429s: %v (%d requests, %d faults)", err, p.Requests.Load(), p.Faults.Load())
	}
	p.SetDecide(func(*http.Request) seaweedtest.Fault {
		return seaweedtest.Fault{Status: http.StatusTooManyRequests, Code: "SlowDown"}
	})
	err := via.Put(ctx, "packs/dd/w.pack", want)
	if err == nil || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "SlowDown") {
		t.Fatalf("Put against a store that keeps throttling = %v, want an error naming 429 SlowDown", err)
	}
	p.SetDecide(nil)
	if _, err := direct.Stat(ctx, "packs/dd/w.pack"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a throttled Put left an object: %v", err)
	}
}

// TestVanishedBucket: once the bucket is deleted, every operation says so
// (ErrNoBucket, naming the bucket), never "not found" of the object, which
// would read as a store that lost its packs.
func TestVanishedBucket(t *testing.T) {
	srv := seaweedtest.Shared(t)
	bucket := srv.NewBucket(t)
	creds := credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")
	st, err := s3.Open(ctx, s3.Options{Endpoint: srv.Endpoint, Bucket: bucket, Prefix: "v/", Insecure: true, Creds: creds})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Put(ctx, "packs/ee/p.pack", payload(1000)); err != nil {
		t.Fatal(err)
	}
	c, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveObject(ctx, bucket, "v/packs/ee/p.pack", minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.RemoveBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	check := func(op string, err error) {
		t.Helper()
		t.Logf("%s after %v: %v", op, time.Since(began), err)
		if !errors.Is(err, s3.ErrNoBucket) || errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), bucket) {
			t.Errorf("%s in a deleted bucket = %v, want ErrNoBucket naming %s", op, err, bucket)
		}
	}
	_, err = st.Get(ctx, "packs/ee/p.pack", 0, -1, nil)
	check("Get", err)
	_, err = st.Stat(ctx, "packs/ee/p.pack")
	check("Stat", err)
	check("Delete", st.Delete(ctx, "packs/ee/p.pack"))
	_, _, err = st.List(ctx, "packs/", "", 0)
	t.Logf("List after %v: %v", time.Since(began), err)
	if err == nil || !strings.Contains(err.Error(), "bucket") {
		t.Errorf("List of a deleted bucket = %v, want it to name the missing bucket", err)
	}
	if _, err := s3.Open(ctx, s3.Options{Endpoint: srv.Endpoint, Bucket: bucket, Insecure: true, Creds: creds}); !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), bucket) {
		t.Errorf("Open of a deleted bucket = %v", err)
	}
	// A write is not checked: SeaweedFS makes the bucket again for a PUT
	// into it (AWS S3 answers NoSuchBucket). A store's commands read its
	// config first, which fails as Get does above.
}
