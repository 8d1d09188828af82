// Package s3 is a storage.Storage on S3-compatible object storage (AWS S3,
// SeaweedFS, Ceph RGW, MinIO, Garage), through github.com/minio/minio-go/v7.
//
// # Objects
//
// A storage is a bucket and a key prefix: the object named "packs/ab/x.pack"
// is the key PREFIX + "packs/ab/x.pack". Every object is written by one
// PUT request (never a multipart upload), which S3 makes visible whole or
// not at all, so a half-uploaded pack is never an object and never listed.
// A PUT of up to 5 GiB is allowed; packs are at most 1 GiB.
//
// # Conditional writes
//
// PutIfAbsent is a PUT with "If-None-Match: *" and Swap a PUT with
// "If-Match: <ETag>" (or "If-None-Match: *" from NoVersion): the object
// store checks the condition and writes under one lock, so of concurrent
// writers exactly one succeeds (AWS S3 since 2024, SeaweedFS under its
// per-object write lock, MinIO, Ceph RGW). A store that ignores these
// headers breaks the create-if-absent and compare-and-swap contract;
// Open refuses one (checkConditional) rather than run on it.
//
// A conditional write whose response was lost (the connection reset after
// the request was sent) is ambiguous: retried, it meets its own object and
// fails its condition. The retry then reads the object back: if it holds
// exactly the bytes written, the write is taken as done. Two writers of
// identical bytes cannot be told apart this way, and may both be told they
// won; the object then holds exactly what each wrote, so no write is lost.
//
// # Versions and time
//
// A version is the object's ETag (for a single PUT, the MD5 of its
// contents). Info.Created is the object's Last-Modified and Now the Date
// header of a response from the object store: both the object store's
// clock, to the second.
//
// # Failures
//
// Requests are retried with exponential backoff and full jitter by this
// package's one retry loop (retry.go; minio-go's own retries are off):
// 5xx, 429 and SlowDown, timeouts, connection errors, up to
// Options.MaxRetries attempts and no later than Options.RetryFor after a
// request's first failure. A Get whose body breaks off or stalls
// (Options.ReadIdle without a byte) is retried from where it failed. What
// still fails returns an error naming the object and the cause. The
// retries are counted by class (Storage.Retries, and Retries for the
// whole process) so a command can report them.
package s3

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"smp/storage"
)

// Options locate a bucket and say how to reach it.
type Options struct {
	// Endpoint is host[:port] of the S3 service.
	Endpoint string
	Bucket   string
	// Prefix is prepended to every object name ("" or ending in "/").
	Prefix string
	// Insecure speaks plain http instead of https; only allowed when the
	// endpoint is a loopback address (the project's rule for http).
	Insecure bool
	// Region is sent in signatures; "" lets minio-go find it.
	Region string
	// Creds signs requests; nil takes them from the environment
	// (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or the AWS credentials
	// file (EnvCredentials); with none found requests are anonymous.
	Creds *credentials.Credentials
	// MaxRetries bounds the attempts of one request (0: 10).
	MaxRetries int
	// RetryFor bounds the time a request is retried: no attempt starts
	// later than this after the request's first failure (0:
	// DefaultRetryFor).
	RetryFor time.Duration
	// Timeout is how long an attempt waits for the answer's headers
	// before it is abandoned and retried (0: 60 s).
	Timeout time.Duration
	// ReadIdle is how long a Get's body may stall before the read is
	// abandoned and retried (0: 30 s).
	ReadIdle time.Duration
	// Create makes the bucket when it does not exist (smp init).
	Create bool
	// Transport replaces the HTTP transport (tests).
	Transport http.RoundTripper
}

// EnvCredentials are the credentials of the environment: AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY, else the AWS credentials file
// (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials, profile AWS_PROFILE
// or "default").
func EnvCredentials() *credentials.Credentials {
	return credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{},
	})
}

// Storage is an open bucket prefix.
type Storage struct {
	c        *minio.Client // one attempt per request: retries are the retrier's
	core     minio.Core
	bucket   string
	prefix   string
	base     *url.URL // endpoint, for Now
	http     *http.Client
	readIdle time.Duration
	retries  int
	retryFor time.Duration
	stats    retryCounters
}

var _ storage.Storage = (*Storage)(nil)

// ErrInsecureRemote is returned for plain http to a non-loopback host.
var ErrInsecureRemote = errors.New("plain http (--s3-insecure) is only allowed to a loopback address; use https")

// IsLoopback reports whether host (without port) names this machine:
// "localhost" or a loopback IP.
func IsLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Open connects to the bucket of o, checking that it exists (or making it
// with o.Create).
func Open(ctx context.Context, o Options) (*Storage, error) {
	if o.Endpoint == "" || o.Bucket == "" {
		return nil, errors.New("s3: an endpoint and a bucket are required")
	}
	if o.Prefix != "" && (!strings.HasSuffix(o.Prefix, "/") || storage.CheckName(strings.TrimSuffix(o.Prefix, "/")) != nil) {
		return nil, fmt.Errorf("s3: invalid key prefix %q", o.Prefix)
	}
	host := o.Endpoint
	if h, _, err := net.SplitHostPort(o.Endpoint); err == nil {
		host = h
	}
	if o.Insecure && !IsLoopback(host) {
		return nil, fmt.Errorf("s3 endpoint %s: %w", o.Endpoint, ErrInsecureRemote)
	}
	creds := o.Creds
	if creds == nil {
		creds = EnvCredentials()
	}
	if _, err := creds.GetWithContext(nil); err != nil {
		creds = credentials.NewStaticV4("", "", "") // anonymous
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	tr := o.Transport
	if tr == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = timeout
		t.MaxIdleConnsPerHost = 32
		tr = t
	}
	s := &Storage{
		bucket: o.Bucket, prefix: o.Prefix,
		http:     &http.Client{Transport: tr, Timeout: timeout},
		readIdle: cmp.Or(o.ReadIdle, 30*time.Second),
		retries:  cmp.Or(max(o.MaxRetries, 0), 10),
		retryFor: cmp.Or(o.RetryFor, DefaultRetryFor),
	}
	// minio-go makes one attempt (MaxRetries 1): a request's retries
	// are the retrier's, counted and bounded in one place.
	c, err := minio.New(o.Endpoint, &minio.Options{
		Creds:        creds,
		Secure:       !o.Insecure,
		Region:       o.Region,
		Transport:    tr,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   1,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 endpoint %s: %w", o.Endpoint, err)
	}
	s.c, s.core = c, minio.Core{Client: c}
	scheme := "https"
	if o.Insecure {
		scheme = "http"
	}
	s.base = &url.URL{Scheme: scheme, Host: o.Endpoint, Path: "/" + o.Bucket}
	var ok bool
	err = s.idempotent(ctx, func() (err error) {
		ok, err = c.BucketExists(ctx, o.Bucket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("s3 bucket %s at %s: %w", o.Bucket, o.Endpoint, describe(err))
	}
	if !ok && !o.Create {
		return nil, fmt.Errorf("s3 bucket %s at %s: %w", o.Bucket, o.Endpoint, storage.ErrNotFound)
	}
	if !ok {
		err := s.idempotent(ctx, func() error { return c.MakeBucket(ctx, o.Bucket, minio.MakeBucketOptions{Region: o.Region}) })
		if err != nil {
			if code := minio.ToErrorResponse(err).Code; code != "BucketAlreadyOwnedByYou" && code != "BucketAlreadyExists" {
				return nil, fmt.Errorf("s3: make bucket %s: %w", o.Bucket, describe(err))
			}
		}
	}
	return s, nil
}

// String names the storage for messages: s3://endpoint/bucket/prefix.
func (s *Storage) String() string {
	return "s3://" + s.base.Host + s.base.Path + "/" + s.prefix
}

func (s *Storage) key(name string) (string, error) {
	if err := storage.CheckName(name); err != nil {
		return "", err
	}
	return s.prefix + name, nil
}

// describe turns a minio-go error into one with a readable text: the S3
// code and message, or the transport error as is.
func describe(err error) error {
	r := minio.ToErrorResponse(err)
	if r.StatusCode == 0 && r.Code == "" {
		return err
	}
	msg := r.Message
	if msg == "" {
		msg = http.StatusText(r.StatusCode)
	}
	return fmt.Errorf("%s (HTTP %d %s)", msg, r.StatusCode, r.Code)
}

func isNotFound(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusNotFound || r.Code == "NoSuchKey"
}

func isPrecondition(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusPreconditionFailed || r.Code == "PreconditionFailed"
}

// isConditionalConflict is S3's answer to a conditional write that raced
// another write of the same key: retry it.
func isConditionalConflict(err error) bool {
	r := minio.ToErrorResponse(err)
	return r.StatusCode == http.StatusConflict && r.Code == "ConditionalRequestConflict"
}

func (s *Storage) opErr(op, name string, err error) error {
	if isNotFound(err) {
		if gone := s.bucketGone(err); gone != nil {
			return fmt.Errorf("s3 %s %s: %w", op, name, gone)
		}
		return fmt.Errorf("s3 %s %s: %w", op, name, storage.ErrNotFound)
	}
	return fmt.Errorf("s3 %s %s: %w", op, name, describe(err))
}

// ErrNoBucket is the error of a request to a bucket that no longer
// exists: never an object's "not found", which would make a store whose
// bucket was deleted look like a store that lost its packs.
var ErrNoBucket = errors.New("the bucket does not exist")

// bucketGone returns an error wrapping ErrNoBucket when a "not found"
// answer (err) was about the bucket, not the object: S3 says NoSuchBucket
// in the body, but the answer to a HEAD has none, so the bucket is then
// looked up.
func (s *Storage) bucketGone(err error) error {
	gone := minio.ToErrorResponse(err).Code == "NoSuchBucket"
	if !gone {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var ok bool
		berr := s.idempotent(ctx, func() (err error) {
			ok, err = s.c.BucketExists(ctx, s.bucket)
			return err
		})
		gone = berr == nil && !ok
	}
	if !gone {
		return nil
	}
	return fmt.Errorf("bucket %s at %s: %w (deleted, or the store's location names another): recreate it from a copy of the store, or give the right --store", s.bucket, s.base.Host, ErrNoBucket)
}

// Put stores data under name by one PUT, replacing any object there.
func (s *Storage) Put(ctx context.Context, name string, data []byte) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	err = s.idempotent(ctx, func() error {
		_, err := s.put(ctx, key, data, minio.PutObjectOptions{})
		return err
	})
	if err != nil {
		return s.opErr("put", name, err)
	}
	return nil
}

func (s *Storage) put(ctx context.Context, key string, data []byte, opts minio.PutObjectOptions) (minio.UploadInfo, error) {
	opts.ContentType = "application/octet-stream"
	opts.DisableMultipart = true
	return s.core.PutObject(ctx, s.bucket, key, bytes.NewReader(data), int64(len(data)), "", "", opts)
}

// PutIfAbsent stores data under name unless an object is there.
func (s *Storage) PutIfAbsent(ctx context.Context, name string, data []byte) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	var opts minio.PutObjectOptions
	opts.SetMatchETagExcept("*")
	_, err = s.conditionalPut(ctx, name, key, data, opts)
	switch {
	case err == nil:
		return nil
	case isPrecondition(err):
		return fmt.Errorf("s3 put %s: %w", name, storage.ErrExists)
	default:
		return s.opErr("put", name, err)
	}
}

// conditionalPut PUTs with a condition, retrying transport errors and
// write conflicts: after an ambiguous attempt (one whose answer may have
// been lost), a failed condition over an object holding exactly data is
// this write's own (see the package comment), and its ETag is returned.
func (s *Storage) conditionalPut(ctx context.Context, name, key string, data []byte, opts minio.PutObjectOptions) (string, error) {
	ambiguous := false
	r := retrier{s: s}
	for {
		info, err := s.put(ctx, key, data, opts)
		switch {
		case err == nil:
			return info.ETag, nil
		case isPrecondition(err) && ambiguous:
			b, v, gerr := s.GetVersioned(ctx, name)
			if gerr == nil && bytes.Equal(b, data) {
				return string(v), nil
			}
			return "", err
		case r.again(ctx, err):
			ambiguous = ambiguous || !isConditionalConflict(err)
		default:
			return "", err
		}
	}
}

// Delete removes name; a missing name is ErrNotFound (S3's DELETE succeeds
// on a missing key, so the object is looked up first).
func (s *Storage) Delete(ctx context.Context, name string) error {
	key, err := s.key(name)
	if err != nil {
		return err
	}
	if _, err := s.Stat(ctx, name); err != nil {
		return err
	}
	err = s.idempotent(ctx, func() error { return s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}) })
	if err != nil {
		return s.opErr("delete", name, err)
	}
	return nil
}

// Stat describes name; Created is its Last-Modified.
func (s *Storage) Stat(ctx context.Context, name string) (storage.Info, error) {
	key, err := s.key(name)
	if err != nil {
		return storage.Info{}, err
	}
	var oi minio.ObjectInfo
	err = s.idempotent(ctx, func() (err error) {
		oi, err = s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return storage.Info{}, s.opErr("stat", name, err)
	}
	if strings.HasSuffix(oi.Key, "/") || oi.ContentType == "application/x-directory" {
		// A "directory" some object stores answer for a key prefix.
		return storage.Info{}, fmt.Errorf("s3 stat %s: %w", name, storage.ErrNotFound)
	}
	return storage.Info{Name: name, Size: oi.Size, Created: oi.LastModified}, nil
}

// List returns a page of the objects under prefix after cursor.
func (s *Storage) List(ctx context.Context, prefix, cursor string, limit int) ([]storage.Info, string, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	startAfter := ""
	if cursor != "" {
		startAfter = s.prefix + cursor
	}
	var page []storage.Info
	token := ""
	for {
		res, err := s.listPage(ctx, prefix, startAfter, token, limit-len(page))
		if err != nil {
			return nil, "", err
		}
		for _, o := range res.Contents {
			name := strings.TrimPrefix(o.Key, s.prefix)
			if !strings.HasPrefix(o.Key, s.prefix) || storage.CheckName(name) != nil {
				continue // a directory marker or a key this storage never writes
			}
			if cursor != "" && name <= cursor {
				continue
			}
			page = append(page, storage.Info{Name: name, Size: o.Size, Created: o.LastModified})
		}
		if !res.IsTruncated {
			return page, "", nil
		}
		if len(page) >= limit {
			return page, page[len(page)-1].Name, nil
		}
		token = res.NextContinuationToken
		if token == "" {
			return nil, "", fmt.Errorf("s3 list %s: a truncated listing without a continuation token", prefix)
		}
	}
}

// listPage asks for one page of keys; a listing changes nothing, so it is
// retried as every read is (idempotent).
func (s *Storage) listPage(ctx context.Context, prefix, startAfter, token string, n int) (minio.ListBucketV2Result, error) {
	var res minio.ListBucketV2Result
	err := s.idempotent(ctx, func() (err error) {
		res, err = s.core.ListObjectsV2(s.bucket, s.prefix+prefix, startAfter, token, "", n)
		return err
	})
	if err != nil {
		return minio.ListBucketV2Result{}, fmt.Errorf("s3 list %s: %w", prefix, describe(err))
	}
	return res, nil
}

// GetVersioned returns the whole of name and its ETag.
func (s *Storage) GetVersioned(ctx context.Context, name string) ([]byte, storage.Version, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, storage.NoVersion, err
	}
	b, etag, err := s.get(ctx, name, key, 0, -1, nil)
	if err != nil {
		return nil, storage.NoVersion, err
	}
	return b, storage.Version(etag), nil
}

// Swap replaces name with data if its ETag is old (NoVersion: if absent).
func (s *Storage) Swap(ctx context.Context, name string, old storage.Version, data []byte) (storage.Version, error) {
	key, err := s.key(name)
	if err != nil {
		return storage.NoVersion, err
	}
	var opts minio.PutObjectOptions
	if old == storage.NoVersion {
		opts.SetMatchETagExcept("*")
	} else {
		opts.SetMatchETag(string(old))
	}
	etag, err := s.conditionalPut(ctx, name, key, data, opts)
	switch {
	case err == nil:
		return storage.Version(etag), nil
	case isNotFound(err) && s.bucketGone(err) != nil:
		return storage.NoVersion, s.opErr("swap", name, err)
	case isPrecondition(err) || isNotFound(err):
		return storage.NoVersion, fmt.Errorf("s3 swap %s: %w", name, storage.ErrConflict)
	default:
		return storage.NoVersion, s.opErr("swap", name, err)
	}
}

// Now is the object store's clock: the Date header of a request to the
// bucket (answered whether or not the request is authorized).
func (s *Storage) Now(ctx context.Context) (time.Time, error) {
	var t time.Time
	err := s.idempotent(ctx, func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodHead, s.base.String(), nil)
		if err != nil {
			return err
		}
		resp, err := s.http.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if t, err = http.ParseTime(resp.Header.Get("Date")); err != nil {
			// Without a Date, a failing gateway's answer is worth another
			// attempt; any other answer is not.
			return minio.ErrorResponse{StatusCode: resp.StatusCode, Message: "no Date header in the answer"}
		}
		return nil
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("s3 clock of %s: %w", s.base.Host, describe(err))
	}
	return t.UTC(), nil
}

// Close releases idle connections.
func (s *Storage) Close() error {
	s.http.CloseIdleConnections()
	return nil
}

// Scheme is the prefix of an S3 location.
const Scheme = "s3://"

// IsURL reports whether location names an S3 store (s3://...).
func IsURL(location string) bool { return strings.HasPrefix(location, Scheme) }

// ParseURL reads s3://ENDPOINT/BUCKET[/PREFIX] into the Endpoint, Bucket
// and Prefix of Options. ENDPOINT is host[:port]; the prefix is any
// valid object name path (the store's keys go under PREFIX/).
func ParseURL(location string) (Options, error) {
	rest, ok := strings.CutPrefix(location, Scheme)
	if !ok {
		return Options{}, fmt.Errorf("%q is not an s3://ENDPOINT/BUCKET/PREFIX location", location)
	}
	endpoint, path, _ := strings.Cut(rest, "/")
	bucket, prefix, _ := strings.Cut(path, "/")
	prefix = strings.TrimSuffix(prefix, "/")
	switch {
	case endpoint == "" || strings.ContainsAny(endpoint, "@?#"):
		return Options{}, fmt.Errorf("%q: give s3://ENDPOINT/BUCKET/PREFIX with ENDPOINT as host or host:port (credentials come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the AWS credentials file)", location)
	case !validBucket(bucket):
		return Options{}, fmt.Errorf("%q: bucket %q is not a valid S3 bucket name (3-63 lower-case letters, digits, '-' and '.')", location, bucket)
	case prefix != "" && (storage.CheckName(prefix) != nil || strings.ContainsAny(prefix, "?#")):
		return Options{}, fmt.Errorf("%q: invalid key prefix %q", location, prefix)
	}
	if prefix != "" {
		prefix += "/"
	}
	return Options{Endpoint: endpoint, Bucket: bucket, Prefix: prefix}, nil
}

func validBucket(b string) bool {
	if len(b) < 3 || len(b) > 63 || b[0] == '-' || b[0] == '.' || b[len(b)-1] == '-' || b[len(b)-1] == '.' {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

var _ storage.UploadAborter = (*Storage)(nil)

// AbortUploads aborts every multipart upload under the prefix initiated
// before before (by the object store's clock). smp never starts one
// (every object is one PUT), but another client of the bucket, or a tool
// copying a store into it, may leave one behind, which the object store
// keeps (and bills) until it is aborted.
func (s *Storage) AbortUploads(ctx context.Context, before time.Time) (int, error) {
	n := 0
	keyMarker, idMarker := "", ""
	for {
		var res minio.ListMultipartUploadsResult
		err := s.idempotent(ctx, func() (err error) {
			res, err = s.core.ListMultipartUploads(ctx, s.bucket, s.prefix, keyMarker, idMarker, "", 1000)
			return err
		})
		if err != nil {
			return n, fmt.Errorf("s3 list multipart uploads: %w", describe(err))
		}
		for _, u := range res.Uploads {
			if !strings.HasPrefix(u.Key, s.prefix) || !u.Initiated.Before(before) {
				continue
			}
			err := s.idempotent(ctx, func() error { return s.core.AbortMultipartUpload(ctx, s.bucket, u.Key, u.UploadID) })
			if err != nil && !isNotFound(err) && minio.ToErrorResponse(err).Code != "NoSuchUpload" {
				return n, fmt.Errorf("s3 abort multipart upload of %s: %w", u.Key, describe(err))
			}
			n++
		}
		if !res.IsTruncated || (res.NextKeyMarker == keyMarker && res.NextUploadIDMarker == idMarker) {
			return n, nil
		}
		keyMarker, idMarker = res.NextKeyMarker, res.NextUploadIDMarker
	}
}
