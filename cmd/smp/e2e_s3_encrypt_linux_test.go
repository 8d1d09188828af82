package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"smp/internal/leaktest"
	"smp/internal/seaweedtest"
)

// TestE2ES3EncryptedNoPlaintext: an encrypted store on S3 (the real binary,
// a real SeaweedFS) captures a profile holding sentinels and random blocks,
// and smp token create (with the key) makes a token for its computer; no
// object of the bucket, nor any file of the cache directory (the access file
// is the bucket's object access.sealed), holds any of them, and the profile restores identical through a new cache. What
// the bucket's operator sees is sealed packs, key slots and a config
// without the hash key.
func TestE2ES3EncryptedNoPlaintext(t *testing.T) {
	t.Parallel()
	srv := seaweedtest.Shared(t)
	dir := tmpDir(t)
	bucket := srv.NewBucket(t)
	loc := "s3://" + srv.Endpoint + "/" + bucket + "/enc"
	keyFile := filepath.Join(dir, "store.key")
	env := append(s3Env(srv), keyEnv(tmpDir(t))...)
	run := func(args ...string) result {
		t.Helper()
		r := smpWith(t, runOpts{env: env}, args...)
		if r.code != exitOK {
			t.Fatalf("want exit 0:\n%v", r)
		}
		return r
	}
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	run("init", "--store", loc, "--s3-insecure", "--cache", cacheA, "--encrypt", "--key-file", keyFile)
	sec := &leaktest.Secrets{}
	src := tmpDir(t)
	pc := leaktest.Tree(t, src, sec)
	run("capture", "--store", loc, "--s3-insecure", "--cache", cacheA, "--key-file", keyFile, "--computer", pc, "--root", src)
	// The access file every smp serve of the store shares, an object of
	// the bucket, names the computer: it is sealed (the scans below see
	// no name), and the cache directory holds none.
	run("token", "create", "--store", loc, "--s3-insecure", "--cache", cacheA, "--key-file", keyFile, "--computer", pc)
	for _, name := range []string{"access.sealed", "access.json"} {
		if _, err := os.Stat(filepath.Join(cacheA, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the cache directory holds %s (%v): the access file belongs in the bucket", name, err)
		}
	}
	sealedSeen := false
	if r := smpWith(t, runOpts{env: env}, "token", "list", "--store", loc, "--s3-insecure", "--cache", cacheA); r.code != 1 || len(r.stderrLines()) != 1 {
		t.Errorf("token list without the key: want one line, exit 1\n%s", r)
	}

	mirror := filepath.Join(dir, "bucket")
	cl, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for o := range cl.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		sealedSeen = sealedSeen || o.Key == "enc/access.sealed"
		if o.Key == "enc/config.json" {
			obj, err := cl.GetObject(ctx, bucket, o.Key, minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(obj)
			obj.Close()
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), "hash_key") {
				t.Errorf("config.json of an encrypted store holds a hash key:\n%s", b)
			}
		}
		p := filepath.Join(mirror, filepath.FromSlash(o.Key))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := cl.FGetObject(ctx, bucket, o.Key, p, minio.GetObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if !sealedSeen {
		t.Error("no enc/access.sealed in the bucket after smp token create")
	}
	leaktest.CheckNoPlaintext(t, "the bucket after a capture", mirror, sec)
	leaktest.CheckNoPlaintext(t, "the cache directory after a capture", cacheA, sec)

	dst := filepath.Join(tmpDir(t), "dst")
	run("restore", "--store", loc, "--s3-insecure", "--cache", cacheB, "--key-file", keyFile, "--computer", pc, "--root", dst)
	compareTrees(t, src, dst, compareOpts{})
	leaktest.CheckNoPlaintext(t, "a new cache directory after a restore", cacheB, sec)
}
