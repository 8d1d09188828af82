package repo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/keys"
	"smp/storage"
)

// sharedKeysPair is sharedPairWith on a new encrypted store whose writers
// follow the bucket's keys.json as an S3 store's do; unlock opens that
// file with the store's first key file, as smp key on another machine.
func sharedKeysPair(t *testing.T) (a, b *Repo, clock func(time.Duration), unlock keys.UnlockFunc) {
	t.Helper()
	var sid [16]byte
	rand.Read(sid[:])
	u, err := keys.Create(hex.EncodeToString(sid[:]))
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := u.AddKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := sharedPairWith(t, u)
	for _, r := range []*Repo{a, b} {
		r.keys = &sharedKeys{kr: r.Keyring, ver: storage.NoVersion, bound: r.sh.bound}
	}
	unlock = func(_ string, f *keys.File) (*keys.Unlocked, error) { return f.Unlock(keys.Secret{KeyFile: secret}) }
	return a, b, func(d time.Duration) { advance(c, d) }, unlock
}

// packKeys returns the master keys sealing the packs in r's storage, with
// how many packs each seals.
func packKeys(t *testing.T, r *Repo) map[keys.KeyID]int {
	t.Helper()
	u, err := r.KeyUsage()
	if err != nil {
		t.Fatal(err)
	}
	return u.Packs
}

// TestSharedKeysAdoptRotation: a writer of a shared store that was open
// before smp key rotate (made through the bucket's keys.json by another
// smp) takes the new key up at its next refresh, without a restart: its
// next commit seals under the new key. A pack it began under the old key
// is not committed once the new key is current. A writer whose last read
// of keys.json is older than the bound, and cannot read it again, commits
// nothing; smp key retire waits until keys.json is older than the bound.
func TestSharedKeysAdoptRotation(t *testing.T) {
	a, b, advanceClock, unlock := sharedKeysPair(t)
	if _, _, err := commitFile(t, b, "pc1", gcRandom(1, 3*gcChunk)); err != nil {
		t.Fatal(err)
	}
	if got := packKeys(t, b); len(got) != 1 || got[1] == 0 {
		t.Fatalf("packs by key before the rotation = %v, want key 1 only", got)
	}
	// A pack b begins under key 1, still open when the key changes.
	pending := gcFile(t, b, "pending.bin", gcRandom(2, gcChunk/2))

	if err := EditKeys(a.Dir, unlock, func(u *keys.Unlocked) error { _, err := u.Rotate(); return err }); err != nil {
		t.Fatal(err)
	}
	if wait, err := keysSettleWait(context.Background(), a.st, SharedRefreshBound); err != nil || wait <= SharedRefreshBound {
		t.Fatalf("retire's wait right after the rotation = %v, %v: want more than the bound", wait, err)
	}
	refresh(t, b)
	if cur := b.currentKey(); cur != 2 {
		t.Fatalf("b seals under key %d after its refresh, want 2", cur)
	}
	// The pack begun under key 1 is refused, and nothing of it indexed.
	if err := b.Flush(); !errors.Is(err, ErrKeysChanged) {
		t.Fatalf("flush of a pack sealed under the replaced key: err = %v, want ErrKeysChanged", err)
	}
	if ok, _ := b.Has(cas.BlobData, pending.Chunks[0].ID); ok {
		t.Fatal("a blob of the refused pack is indexed")
	}
	before := packKeys(t, b)
	// As a server does, the next capture waits only for its own packs.
	if err := commitSince(t, b, "pc2", gcRandom(3, 3*gcChunk)); err != nil {
		t.Fatal(err)
	}
	after := packKeys(t, b)
	if after[1] != before[1] || after[2] <= before[2] {
		t.Fatalf("packs by key: %v before the commit, %v after: want new packs under key 2 only", before, after)
	}
	readAll(t, b, "b after the rotation")
	refresh(t, a)
	readAll(t, a, "a after the rotation")

	// Stale: with a zero bound no read of keys.json is recent enough.
	b.keys.mu.Lock()
	b.keys.bound = 0
	b.keys.mu.Unlock()
	if err := commitSince(t, b, "pc3", gcRandom(4, gcChunk)); !errors.Is(err, ErrKeysChanged) {
		t.Fatalf("commit without a fresh read of the keys: err = %v, want ErrKeysChanged", err)
	}

	advanceClock(SharedRefreshBound + clockMargin + time.Second)
	if wait, err := keysSettleWait(context.Background(), a.st, SharedRefreshBound); err != nil || wait > 0 {
		t.Fatalf("retire's wait past the bound = %v, %v: want none", wait, err)
	}
}

// commitSince is commitFile for a writer that goes on after a failed
// pack (a server): it waits only for the packs of this record.
func commitSince(t *testing.T, r *Repo, computer string, content []byte) error {
	t.Helper()
	m := r.Mark()
	e := gcFile(t, r, "f.bin", content)
	root := gcTree(t, r, e)
	_, err := r.CommitRecordSince(m, &manifest.Record{Computer: computer, Created: time.Unix(1, 0).UTC(), Tree: root, Files: 1, Bytes: uint64(len(content))})
	return err
}

// TestSharedKeysRevokedSlot: a revoking rotation through another key slot
// removes the slot a writer unlocked with: its refresh cannot open the
// new keys, and every commit then fails with one line saying so, writing
// no pack.
func TestSharedKeysRevokedSlot(t *testing.T) {
	a, b, _, unlock := sharedKeysPair(t)
	var other []byte
	if err := EditKeys(a.Dir, unlock, func(u *keys.Unlocked) error {
		var err error
		other, _, err = u.AddKeyFile()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	refresh(t, b) // a new version of keys.json, same current key
	if _, _, err := commitFile(t, b, "pc1", gcRandom(1, gcChunk)); err != nil {
		t.Fatal(err)
	}
	byOther := func(_ string, f *keys.File) (*keys.Unlocked, error) { return f.Unlock(keys.Secret{KeyFile: other}) }
	if err := EditKeys(a.Dir, byOther, func(u *keys.Unlocked) error { _, _, err := u.RotateRevoking(); return err }); err != nil {
		t.Fatal(err)
	}
	refresh(t, b)
	before := packKeys(t, b)
	_, _, err := commitFile(t, b, "pc2", gcRandom(2, gcChunk))
	if !errors.Is(err, ErrKeysChanged) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), "master key 2 is current") {
		t.Fatalf("commit after a revoking rotation: err = %v, want one line naming key 2 and ErrKeysChanged", err)
	}
	if after := packKeys(t, b); after[1] != before[1] || after[2] != 0 {
		t.Fatalf("packs by key: %v before the refused commit, %v after", before, after)
	}
}
