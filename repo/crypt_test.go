package repo

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"testing"

	"smp/cas"
	"smp/index"
	"smp/keys"
)

func randomKey() [32]byte {
	var k [32]byte
	rand.Read(k[:])
	return k
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
	if _, err := InitWith(dir, InitOptions{Chunker: params, Encrypted: true}); err != nil {
		t.Fatal(err)
	}
	k1, k2 := randomKey(), randomKey()
	old, _ := keys.NewKeyring(1, map[keys.KeyID][32]byte{1: k1})
	rotated, _ := keys.NewKeyring(2, map[keys.KeyID][32]byte{1: k1, 2: k2})
	put := func(kr *keys.Keyring, b []byte) cas.ID {
		t.Helper()
		r, err := OpenWith(dir, Options{Keyring: kr})
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
		r, err := OpenWith(dir, Options{Keyring: kr})
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
	if _, err := RebuildIndexWith(dir, Options{Keyring: rotated}); err != nil {
		t.Fatal(err)
	}
	check(rotated)
	if _, err := OpenWith(dir, Options{Keyring: old}); !errors.Is(err, index.ErrWrongKey) {
		t.Errorf("the rebuilt index opened under the old key alone: %v", err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrKeyRequired) {
		t.Errorf("opened without a keyring: %v", err)
	}
}
