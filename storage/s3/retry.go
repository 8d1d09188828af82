package s3

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// Every request goes through one retry loop (retrier), this package's:
// minio-go's own retries are off (its client makes one attempt), so the
// attempts of a request, their classes and the time spent retrying are
// counted in one place and bounded by one rule.
//
// The bound: a request that fails transiently is tried again after a
// backoff (exponential from 50 ms, capped at 5 s, full jitter) up to
// Options.MaxRetries attempts in all, and no attempt starts later than
// Options.RetryFor after the request's first failure. Each attempt waits
// at most Options.Timeout for the answer's headers and Options.ReadIdle
// for each further byte of its body. So a request ends, answered or
// failed, at most RetryFor plus one attempt's time after it first failed.

// DefaultRetryFor is Options.RetryFor when it is zero.
const DefaultRetryFor = 30 * time.Second

// Class is the kind of a transient failure.
type Class int

const (
	// Class5xx is a 5xx answer other than SlowDown: the object store
	// (or a server behind its gateway) failed.
	Class5xx Class = iota
	// ClassThrottled is 429 Too Many Requests or an S3 SlowDown answer.
	ClassThrottled
	// ClassTimeout is an answer that did not come in time: no headers
	// within Options.Timeout, a body that stalled for Options.ReadIdle,
	// or the object store's 408 RequestTimeout.
	ClassTimeout
	// ClassConnection is a connection refused, reset or cut mid-answer.
	ClassConnection
	// ClassConflict is S3's 409 ConditionalRequestConflict: a
	// conditional write that raced another write of the same object.
	ClassConflict
	numClasses
)

var classNames = [numClasses]string{"5xx", "throttled", "timeout", "connection", "conflict"}

// String names the class as metrics and messages do.
func (c Class) String() string {
	if c < 0 || c >= numClasses {
		return "unknown"
	}
	return classNames[c]
}

// Classes lists every Class.
func Classes() []Class {
	cs := make([]Class, numClasses)
	for i := range cs {
		cs[i] = Class(i)
	}
	return cs
}

// RetryStats count the retries of requests.
type RetryStats struct {
	// Retried counts, by the class of the failure, the attempts that
	// failed and were tried again.
	Retried [numClasses]int64
	// GaveUp counts, by the class of the last failure, the requests that
	// still failed when the retry bound was reached.
	GaveUp [numClasses]int64
	// Longest is the longest time from a request's first failure to the
	// start of its last retry (at most Options.RetryFor).
	Longest time.Duration
}

// Total is the number of retried attempts, of every class.
func (r RetryStats) Total() int64 {
	var n int64
	for _, v := range r.Retried {
		n += v
	}
	return n
}

// TotalGaveUp is the number of requests that failed after retries.
func (r RetryStats) TotalGaveUp() int64 {
	var n int64
	for _, v := range r.GaveUp {
		n += v
	}
	return n
}

// String is one line: the retries by class, the longest, the requests
// given up.
func (r RetryStats) String() string {
	var parts []string
	for c, n := range r.Retried {
		parts = append(parts, fmt.Sprintf("%s %d", Class(c), n))
	}
	return fmt.Sprintf("%d retries (%s), the longest %.1fs after a request's first failure; %d requests failed after retries",
		r.Total(), strings.Join(parts, ", "), r.Longest.Seconds(), r.TotalGaveUp())
}

type retryCounters struct {
	mu sync.Mutex
	s  RetryStats
}

func (c *retryCounters) retried(class Class, since time.Duration) {
	c.mu.Lock()
	c.s.Retried[class]++
	c.s.Longest = max(c.s.Longest, since)
	c.mu.Unlock()
}

func (c *retryCounters) gaveUp(class Class) {
	c.mu.Lock()
	c.s.GaveUp[class]++
	c.mu.Unlock()
}

func (c *retryCounters) get() RetryStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.s
}

// process counts the retries of every Storage of this process: a store
// opens its bucket more than once (config, keys, packs), and a command
// reports them together (smp prints them, smp serve exports them).
var process retryCounters

// Retries returns the retries of every Storage of this process so far.
func Retries() RetryStats { return process.get() }

// Retries returns the retries of this Storage's requests so far.
func (s *Storage) Retries() RetryStats { return s.stats.get() }

// classify returns the class of a transient failure, false for an error
// that another attempt would not cure (or a canceled request).
func classify(err error) (Class, bool) {
	if err == nil || errors.Is(err, context.Canceled) {
		return 0, false
	}
	if errors.Is(err, errStalled) || errors.Is(err, context.DeadlineExceeded) {
		// An attempt's own limit; the caller's deadline ends the request
		// in again, which checks its context.
		return ClassTimeout, true
	}
	r := minio.ToErrorResponse(err)
	switch {
	case r.StatusCode == http.StatusConflict && r.Code == "ConditionalRequestConflict":
		return ClassConflict, true
	case r.StatusCode == http.StatusTooManyRequests || strings.HasPrefix(r.Code, "SlowDown") ||
		strings.HasPrefix(r.Code, "Throttl") || r.Code == "RequestLimitExceeded":
		return ClassThrottled, true
	case r.StatusCode == http.StatusRequestTimeout || r.Code == "RequestTimeout":
		return ClassTimeout, true
	case r.StatusCode >= 500 || r.Code == "InternalError":
		return Class5xx, true
	case r.StatusCode != 0:
		return 0, false
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return ClassTimeout, true
	}
	if permanentTransport(err) {
		return 0, false
	}
	return ClassConnection, true // no HTTP answer: a transport error
}

// permanentTransport reports a transport error that no retry mends: an
// endpoint name that does not exist, or a certificate the client rejects.
// Such a request fails at once with its own error, not after RetryFor.
func permanentTransport(err error) bool {
	var dns *net.DNSError
	if errors.As(err, &dns) && dns.IsNotFound {
		return true
	}
	var unknownCA x509.UnknownAuthorityError
	var badHost x509.HostnameError
	var invalid x509.CertificateInvalidError
	var verify *tls.CertificateVerificationError
	return errors.As(err, &unknownCA) || errors.As(err, &badHost) || errors.As(err, &invalid) || errors.As(err, &verify)
}

// retryable reports whether a failed request may be tried again.
func retryable(err error) bool {
	_, ok := classify(err)
	return ok
}

// retrier decides the attempts of one request.
type retrier struct {
	s         *Storage
	attempts  int
	firstFail time.Time
}

// again reports whether the request is tried once more after an attempt
// that failed with err: err is transient, attempts remain and the next
// one would start within RetryFor of the first failure. It sleeps the
// backoff first and counts the retry; a request it ends is counted as
// given up. A canceled ctx ends the request.
func (r *retrier) again(ctx context.Context, err error) bool {
	r.attempts++
	class, ok := classify(err)
	if !ok || ctx.Err() != nil {
		return false
	}
	now := time.Now()
	if r.firstFail.IsZero() {
		r.firstFail = now
	}
	d := backoff(r.attempts)
	if r.attempts >= r.s.retries || now.Add(d).Sub(r.firstFail) > r.s.retryFor {
		r.s.stats.gaveUp(class)
		process.gaveUp(class)
		return false
	}
	if sleep(ctx, d) != nil {
		return false
	}
	since := time.Since(r.firstFail)
	r.s.stats.retried(class, since)
	process.retried(class, since)
	return true
}

// idempotent runs a request that may be repeated (a read, a listing, an
// unconditional PUT or a DELETE) until it succeeds or the retrier ends
// it.
func (s *Storage) idempotent(ctx context.Context, req func() error) error {
	r := retrier{s: s}
	for {
		err := req()
		if err == nil || !r.again(ctx, err) {
			if err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			return err
		}
	}
}

// backoff is the delay before attempt n+1 (n >= 1): exponential from
// 50 ms up to 5 s, with full jitter.
func backoff(n int) time.Duration {
	d := 50 * time.Millisecond << min(n-1, 7)
	d = min(d, 5*time.Second)
	return time.Duration(jitter(int64(d)))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
