package s3_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"smp/internal/seaweedtest"
	"smp/storage"
	"smp/storage/s3"
	"smp/storage/storagetest"
)

func TestMain(m *testing.M) { seaweedtest.Main(m) }

var ctx = context.Background()

// open returns a storage on a new bucket of the shared SeaweedFS, under
// a key prefix so the prefix handling is exercised too.
func open(t *testing.T, srv *seaweedtest.Server, mod func(*s3.Options)) *s3.Storage {
	t.Helper()
	o := s3.Options{
		Endpoint: srv.Endpoint,
		Bucket:   srv.NewBucket(t),
		Prefix:   "stores/one/",
		Insecure: true,
		Creds:    credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, ""),
	}
	if mod != nil {
		mod(&o)
	}
	st, err := s3.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestConformance runs the storage contract against a real SeaweedFS.
func TestConformance(t *testing.T) {
	srv := seaweedtest.Shared(t)
	storagetest.Run(t, func(t *testing.T) storage.Storage { return open(t, srv, nil) })
}

// TestConformanceNoPrefix: the same at the bucket's root.
func TestConformanceNoPrefix(t *testing.T) {
	srv := seaweedtest.Shared(t)
	storagetest.Run(t, func(t *testing.T) storage.Storage {
		return open(t, srv, func(o *s3.Options) { o.Prefix = "" })
	})
}

// TestPrefixIsolation: two prefixes of one bucket do not see each other.
func TestPrefixIsolation(t *testing.T) {
	srv := seaweedtest.Shared(t)
	a := open(t, srv, nil)
	b, err := s3.Open(ctx, s3.Options{Endpoint: srv.Endpoint, Bucket: bucketOf(t, a), Prefix: "stores/one-b/", Insecure: true,
		Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(ctx, "config.json", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Stat(ctx, "config.json"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("another prefix sees the object: %v", err)
	}
	if page, _, err := b.List(ctx, "", "", 0); err != nil || len(page) != 0 {
		t.Fatalf("another prefix lists %v, %v", page, err)
	}
}

func bucketOf(t *testing.T, s *s3.Storage) string {
	// s3://endpoint/bucket/prefix
	parts := strings.SplitN(strings.TrimPrefix(s.String(), "s3://"), "/", 3)
	if len(parts) < 2 {
		t.Fatalf("String() = %q", s.String())
	}
	return parts[1]
}

// TestWrongSecret: a wrong secret is refused by the gateway, with a clear
// error, so requests really are signed and checked.
func TestWrongSecret(t *testing.T) {
	srv := seaweedtest.Shared(t)
	if srv.AccessKey == "" {
		t.Skip("the S3 service under test has no identity")
	}
	_, err := s3.Open(ctx, s3.Options{Endpoint: srv.Endpoint, Bucket: srv.NewBucket(t), Insecure: true,
		Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey+"x", "")})
	if err == nil {
		t.Fatal("a wrong secret opened the bucket")
	}
	if !strings.Contains(err.Error(), "signature") && !strings.Contains(err.Error(), "Signature") && !strings.Contains(err.Error(), "403") {
		t.Fatalf("wrong secret: %v, want a signature error", err)
	}
}

// TestEnvCredentials: with no Creds, AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY sign the requests.
func TestEnvCredentials(t *testing.T) {
	srv := seaweedtest.Shared(t)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	st := open(t, srv, func(o *s3.Options) { o.Creds = nil })
	if err := st.Put(ctx, "x", []byte("x")); err != nil {
		t.Fatal(err)
	}
}

// TestMissingBucket: opening a bucket that does not exist says so; Create
// makes it.
func TestMissingBucket(t *testing.T) {
	srv := seaweedtest.Shared(t)
	o := s3.Options{Endpoint: srv.Endpoint, Bucket: "missing-" + strings.ToLower(strings.TrimPrefix(srv.NewBucket(t), "t-")), Insecure: true,
		Creds: credentials.NewStaticV4(srv.AccessKey, srv.SecretKey, "")}
	if _, err := s3.Open(ctx, o); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Open of a missing bucket = %v, want ErrNotFound", err)
	}
	o.Create = true
	st, err := s3.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
}

// TestInsecureOnlyLoopback: plain http is refused to a non-loopback host
// before any request is made.
func TestInsecureOnlyLoopback(t *testing.T) {
	for _, ep := range []string{"s3.example.com", "192.0.2.1:9000", "[2001:db8::1]:443"} {
		if _, err := s3.Open(ctx, s3.Options{Endpoint: ep, Bucket: "b", Insecure: true}); !errors.Is(err, s3.ErrInsecureRemote) {
			t.Errorf("Open(%s, insecure) = %v, want ErrInsecureRemote", ep, err)
		}
	}
	for _, host := range []string{"127.0.0.1", "::1", "localhost", "127.3.4.5"} {
		if !s3.IsLoopback(host) {
			t.Errorf("IsLoopback(%s) = false", host)
		}
	}
}

func TestParseURL(t *testing.T) {
	good := map[string]s3.Options{
		"s3://127.0.0.1:8333/smp":             {Endpoint: "127.0.0.1:8333", Bucket: "smp"},
		"s3://s3.example.com/smp-store/a/b/":  {Endpoint: "s3.example.com", Bucket: "smp-store", Prefix: "a/b/"},
		"s3://[::1]:9000/bucket.one/stores/x": {Endpoint: "[::1]:9000", Bucket: "bucket.one", Prefix: "stores/x/"},
	}
	for in, want := range good {
		got, err := s3.ParseURL(in)
		if err != nil || got.Endpoint != want.Endpoint || got.Bucket != want.Bucket || got.Prefix != want.Prefix {
			t.Errorf("ParseURL(%s) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"s3://", "s3://host", "s3://host/", "s3://host/UPPER", "s3://host/ab", "s3://user:pw@host/bucket", "s3://host/bucket/a/../b", "https://host/bucket"} {
		if _, err := s3.ParseURL(in); err == nil {
			t.Errorf("ParseURL(%s) accepted", in)
		}
	}
}

// TestAbortUploads: multipart uploads under the prefix initiated before
// the time given are aborted, later ones and other prefixes' are not.
func TestAbortUploads(t *testing.T) {
	srv := seaweedtest.Shared(t)
	var bucket string
	st := open(t, srv, func(o *s3.Options) { bucket = o.Bucket })
	mc, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: mc}
	for _, key := range []string{"stores/one/packs/ab/x.pack", "stores/other/y"} {
		if _, err := core.NewMultipartUpload(ctx, bucket, key, minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	now, err := st.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := st.AbortUploads(ctx, now.Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("uploads younger than the cut: aborted %d, %v", n, err)
	}
	if n, err := st.AbortUploads(ctx, now.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("aborted %d, %v; want the one under the prefix", n, err)
	}
	var left []string
	for u := range mc.ListIncompleteUploads(ctx, bucket, "", true) {
		left = append(left, u.Key)
	}
	if len(left) != 1 || left[0] != "stores/other/y" {
		t.Fatalf("uploads left: %v", left)
	}
}
