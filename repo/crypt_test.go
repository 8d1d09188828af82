package repo

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"

	"smp/cas"
	"smp/index"
	"smp/internal/keytest"
	"smp/keys"
)

// testKeys returns the keys of a new encrypted store, with one key file
// slot (a key slot file needs one to be saved).
func testKeys(t testing.TB) *keys.Unlocked {
	t.Helper()
	return keytest.New(t)
}

// TestEncryptedStoreRotatedKeyring: after a rotation (a keyring whose
// current key is new), the store opens with its index still under the old
// key, reads what the old key sealed and seals new blobs with the new key;
// an index rebuild moves the index to the new key, and a keyring without
// the new key then no longer opens the index. Without any keyring the
// store does not open.
func TestEncryptedStoreRotatedKeyring(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	params, _ := cas.ChunkerParamsForAvg(64 << 10)
	u := testKeys(t)
	if _, err := InitWith(dir, InitOptions{Params: params, Keys: u}); err != nil {
		t.Fatal(err)
	}
	old := u.Keyring()
	if _, err := u.Rotate(); err != nil {
		t.Fatal(err)
	}
	rotated := u.Keyring()
	put := func(kr *keys.Keyring, b []byte) cas.ID {
		t.Helper()
		r, err := OpenWith(dir, OpenOptions{Keyring: kr})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		id, _, err := r.PutBlob(cas.BlobData, b)
		if err == nil {
			err = r.Flush()
		}
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	a, b := bytes.Repeat([]byte("old key "), 1000), bytes.Repeat([]byte("new key "), 1000)
	idA := put(old, a)
	idB := put(rotated, b)
	check := func(kr *keys.Keyring) {
		t.Helper()
		r, err := OpenWith(dir, OpenOptions{Keyring: kr})
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		for id, want := range map[cas.ID][]byte{idA: a, idB: b} {
			if got, err := r.ReadChunk(id, nil); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("read %s: %v", id.Short(), err)
			}
		}
	}
	check(rotated)
	if _, err := RebuildIndexWith(dir, OpenOptions{Keyring: rotated}); err != nil {
		t.Fatal(err)
	}
	check(rotated)
	if _, err := OpenWith(dir, OpenOptions{Keyring: old}); !errors.Is(err, index.ErrWrongKey) {
		t.Errorf("the rebuilt index opened under the old key alone: %v", err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrKeyRequired) {
		t.Errorf("opened without a keyring: %v", err)
	}
}
