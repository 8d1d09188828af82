package s3_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"smp/internal/seaweedtest"
	"smp/storage/s3"
)

// TestRetryClasses: each kind of transient failure, injected by a proxy in
// front of SeaweedFS on the first attempt of each request, is retried
// through and counted in its class: a 503, a 429 SlowDown, an answer
// slower than Options.Timeout, a connection reset mid-answer; the process
// counters (Retries) add them up too.
func TestRetryClasses(t *testing.T) {
	via, direct, p := faulty(t, func(o *s3.Options) { o.Timeout = 500 * time.Millisecond })
	want := payload(200 << 10)
	if err := direct.Put(ctx, "packs/aa/r.pack", want); err != nil {
		t.Fatal(err)
	}
	procBefore := s3.Retries()
	for _, c := range []struct {
		class s3.Class
		fault seaweedtest.Fault
	}{
		{s3.Class5xx, seaweedtest.Fault{Status: http.StatusServiceUnavailable, Code: "ServiceUnavailable"}},
		{s3.Class5xx, seaweedtest.Fault{Status: http.StatusInternalServerError, Code: "InternalError"}},
		{s3.ClassThrottled, seaweedtest.Fault{Status: http.StatusTooManyRequests, Code: "SlowDown"}},
		{s3.ClassThrottled, seaweedtest.Fault{Status: http.StatusServiceUnavailable, Code: "SlowDown"}},
		{s3.ClassTimeout, seaweedtest.Fault{Delay: 2 * time.Second}},
		{s3.ClassConnection, seaweedtest.Fault{Reset: true}},
	} {
		before := via.Retries()
		p.SetDecide(firstN(1, c.fault))
		got, err := via.Get(ctx, "packs/aa/r.pack", 0, -1, nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v: Get = %d bytes, %v", c.fault, len(got), err)
		}
		after := via.Retries()
		if d := after.Retried[c.class] - before.Retried[c.class]; d != 1 || after.Total()-before.Total() != 1 {
			t.Fatalf("%v: retries %v -> %v, want one more of class %v", c.fault, before, after, c.class)
		}
		p.SetDecide(nil)
		t.Logf("%v: %v", c.class, after)
	}
	got := via.Retries()
	if got.TotalGaveUp() != 0 || got.Longest <= 0 || got.Longest > s3.DefaultRetryFor {
		t.Fatalf("retries %v: want none given up, the longest within %v", got, s3.DefaultRetryFor)
	}
	if proc := s3.Retries(); proc.Total()-procBefore.Total() < got.Total() {
		t.Fatalf("process counters %v -> %v do not count this storage's %d", procBefore, proc, got.Total())
	}
	if s := got.String(); !strings.Contains(s, "5xx 2") || !strings.Contains(s, "throttled 2") || !strings.Contains(s, "timeout 1") {
		t.Fatalf("String() = %q", s)
	}
}

// TestRetryBound: against an object store that answers 503 to everything,
// a request is retried for no longer than Options.RetryFor after its first
// failure (however many attempts MaxRetries would allow), then fails with
// an error naming the status, counted as given up.
func TestRetryBound(t *testing.T) {
	const bound = 2 * time.Second
	via, _, p := faulty(t, func(o *s3.Options) { o.RetryFor = bound; o.MaxRetries = 1000 })
	if err := via.Put(ctx, "packs/bb/ok.pack", payload(10)); err != nil { // the region lookup, before the outage
		t.Fatal(err)
	}
	p.SetDecide(func(*http.Request) seaweedtest.Fault { return seaweedtest.Fault{Status: http.StatusServiceUnavailable} })
	start := time.Now()
	err := via.Put(ctx, "packs/bb/x.pack", payload(1000))
	el := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Put against a failing store = %v", err)
	}
	st := via.Retries()
	// One attempt's time (a loopback 503) and the timer's lateness past
	// the bound.
	if el > bound+time.Second || st.Longest > bound || st.GaveUp[s3.Class5xx] != 1 || st.Retried[s3.Class5xx] < 3 {
		t.Fatalf("gave up after %v with %v: want at least 3 retries, none started after %v, one request given up", el, st, bound)
	}
	t.Logf("gave up after %v (%d requests): %v", el.Round(time.Millisecond), p.Requests.Load(), st)
}
