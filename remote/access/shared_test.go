package access

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"smp/storage"
	"smp/storage/local"
	"smp/storage/storagetest"
)

// newBucket is a storage standing for a store's bucket: a real local
// directory storage, whose Swap is the compare-and-swap of the contract
// the S3 storage keeps too (see cmd/smp's e2e tests on SeaweedFS).
func newBucket(t *testing.T) storage.Storage {
	t.Helper()
	st, err := local.Open(t.TempDir(), local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func openShared(t *testing.T, st storage.Storage, o SharedOptions) *Store {
	t.Helper()
	s, err := OpenShared(st, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func authErr(t *testing.T, get func() (*Snapshot, error), secret string) error {
	t.Helper()
	sn, err := get()
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	_, aerr := sn.Authenticate(secret, t0)
	return aerr
}

// TestSharedAcrossServers: two Stores on one bucket stand for two smp
// serve. A token made through A is known to B at once through Recheck
// (what the server calls on an unknown token), although B's snapshot is
// fresh; a token revoked through A is refused by B's Snapshot within
// RefreshBound; restore-only, associations and limits set through A
// reach B the same way.
func TestSharedAcrossServers(t *testing.T) {
	st := newBucket(t)
	a := openShared(t, st, SharedOptions{})
	b := openShared(t, st, SharedOptions{})
	if _, err := b.Snapshot(); err != nil { // B holds a fresh copy
		t.Fatal(err)
	}
	secret, _ := create(t, a, "PC01", RoleClient, 0)
	if err := authErr(t, b.Recheck, secret); err != nil {
		t.Fatalf("B after Recheck: %v, want the token A made accepted", err)
	}

	revoked := time.Now()
	tok, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if err := a.RevokeToken(tok.Tokens()[0].ID, t0); err != nil {
		t.Fatal(err)
	}
	if err := authErr(t, a.Snapshot, secret); !errors.Is(err, ErrRevoked) {
		t.Fatalf("A after its own revoke: %v, want ErrRevoked", err)
	}
	waitFor(t, "B refuses the revoked token", func() bool {
		return errors.Is(authErr(t, b.Snapshot, secret), ErrRevoked)
	})
	if d := time.Since(revoked); d > RefreshBound+time.Second {
		t.Errorf("B refused the revoked token after %v; the bound is %v", d, RefreshBound)
	} else {
		t.Logf("B refused the revoked token %v after the revoke", d)
	}

	if err := a.SetRestoreOnly(true); err != nil {
		t.Fatal(err)
	}
	if err := a.Associate("PC01", "PC02", t0); err != nil {
		t.Fatal(err)
	}
	lim := Limits{MaxStoreBytes: 1 << 30, MaxRecords: 7}
	if err := a.SetLimits(lim); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, "B sees restore-only, the association and the limits", func() bool {
		sn, err := b.Snapshot()
		if err != nil {
			t.Fatal(err)
		}
		return sn.RestoreOnly() && sn.MayRestore(Token{Role: RoleClient, Computer: "PC02"}, "PC01") && sn.Limits() == lim
	})
	if d := time.Since(start); d > RefreshBound+time.Second {
		t.Errorf("B saw the settings after %v; the bound is %v", d, RefreshBound)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 10 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSharedConcurrentWriters: writers through two Stores at once lose
// nothing (each write is a compare-and-swap, redone on a conflict).
func TestSharedConcurrentWriters(t *testing.T) {
	st := newBucket(t)
	stores := []*Store{openShared(t, st, SharedOptions{}), openShared(t, st, SharedOptions{})}
	const each = 12
	var wg sync.WaitGroup
	for i, s := range stores {
		for j := range each {
			wg.Go(func() {
				if _, _, err := s.CreateToken(fmt.Sprintf("PC-%d-%d", i, j), RoleClient, 0, t0); err != nil {
					t.Error(err)
				}
			})
		}
	}
	wg.Wait()
	sn, err := stores[1].Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(sn.Tokens()); n != 2*each {
		t.Fatalf("%d tokens after %d concurrent creations", n, 2*each)
	}
}

// TestSharedSealed: an encrypted store's object is access.sealed, with no
// computer name in it; without the key the bucket's access file is
// refused, never read as an empty one.
func TestSharedSealed(t *testing.T) {
	st := newBucket(t)
	u := newUnlocked(t)
	s := openShared(t, st, SharedOptions{Codec: sealer(u.Keyring())})
	secret, _ := create(t, s, "sntlPC-Gamma", RoleClient, 0)
	b, err := st.Get(context.Background(), SealedObjectName, 0, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("sntlPC")) {
		t.Fatal("the sealed object names the computer")
	}
	if _, err := st.Stat(context.Background(), ObjectName); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an encrypted store's bucket has %s (%v)", ObjectName, err)
	}
	other := openShared(t, st, SharedOptions{Codec: sealer(u.Keyring())})
	if err := authErr(t, other.Recheck, secret); err != nil {
		t.Fatalf("another server with the key: %v", err)
	}
	if _, err := OpenShared(st, SharedOptions{}); !errors.Is(err, ErrSealedNoKey) {
		t.Fatalf("OpenShared without the key = %v, want ErrSealedNoKey", err)
	}
	wrong := openShared(t, st, SharedOptions{Codec: sealer(newUnlocked(t).Keyring())})
	if _, err := wrong.Snapshot(); err == nil {
		t.Fatal("a wrong key read the sealed object")
	}
}

// TestSharedAdoptsLocalFile: the access file a store on S3 kept in its
// cache directory is merged into the bucket's by the first OpenShared
// with that directory (tokens by ID, revoked if revoked on either side,
// associations, restore-only) and removed.
func TestSharedAdoptsLocalFile(t *testing.T) {
	st := newBucket(t)
	cache := t.TempDir()
	if err := os.WriteFile(filepath.Join(cache, "location.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	loc, err := Open(cache)
	if err != nil {
		t.Fatal(err)
	}
	localSecret, _ := create(t, loc, "PC-local", RoleClient, 0)
	if err := loc.Associate("PC-local", "PC-new", t0); err != nil {
		t.Fatal(err)
	}
	if err := loc.SetRestoreOnly(true); err != nil {
		t.Fatal(err)
	}
	bucket := openShared(t, st, SharedOptions{})
	bucketSecret, _ := create(t, bucket, "PC-bucket", RoleClient, 0)

	s := openShared(t, st, SharedOptions{LocalDir: cache})
	sn, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, sec := range []string{localSecret, bucketSecret} {
		if _, err := sn.Authenticate(sec, t0); err != nil {
			t.Errorf("after the merge: %v", err)
		}
	}
	if !sn.RestoreOnly() || !sn.MayRestore(Token{Role: RoleClient, Computer: "PC-new"}, "PC-local") {
		t.Error("the merge lost restore-only or the association")
	}
	if _, err := os.Stat(filepath.Join(cache, fileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the cache directory still has %s (%v)", fileName, err)
	}
	// Opening again with the (now empty) cache directory changes nothing.
	again := openShared(t, st, SharedOptions{LocalDir: cache})
	if sn2, err := again.Snapshot(); err != nil || len(sn2.Tokens()) != 2 {
		t.Fatalf("reopened: %v tokens, %v", len(sn2.Tokens()), err)
	}
}

// TestSharedFailsClosed: while the bucket cannot be read, a server keeps
// its copy for at most the bound, then refuses (Snapshot fails) rather
// than accept a token that may have been revoked meanwhile; it recovers
// when the bucket answers again. Recheck spaces the reads it forces.
func TestSharedFailsClosed(t *testing.T) {
	var down atomic.Bool
	var reads atomic.Int64
	st := &storagetest.Faulty{Storage: newBucket(t), Hook: func(op storagetest.Op, name string) error {
		if name == ObjectName && op != storagetest.OpSwap {
			reads.Add(1)
		}
		if down.Load() {
			return errors.New("bucket unreachable")
		}
		return nil
	}}
	const every, bound = 50 * time.Millisecond, 200 * time.Millisecond
	s := openShared(t, st, SharedOptions{Every: every, Bound: bound})
	secret, _ := create(t, s, "PC01", RoleClient, 0)
	if err := authErr(t, s.Snapshot, secret); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	if err := authErr(t, s.Snapshot, secret); err != nil {
		t.Fatalf("within the bound: %v, want the copy", err)
	}
	time.Sleep(bound + 50*time.Millisecond)
	if _, err := s.Snapshot(); err == nil {
		t.Fatal("Snapshot past the bound with the bucket down succeeded")
	}
	down.Store(false)
	if err := authErr(t, s.Snapshot, secret); err != nil {
		t.Fatalf("after the bucket came back: %v", err)
	}
	before := reads.Load()
	start := time.Now()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := s.Recheck(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	n := reads.Load() - before
	if max := 2 + int64(time.Since(start)/recheckGap); n > 2*max {
		t.Fatalf("20 concurrent Rechecks made %d reads in %v", n, time.Since(start))
	}
}
