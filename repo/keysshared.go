package repo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"smp/cas"
	"smp/keys"
	"smp/storage"
)

// A key rotation on a store several smp share (a bucket). smp key rotate
// rewrites the bucket's key slot file (keys.json) from one machine; every
// other smp holding the store open takes the new current key up without a
// restart, and none ever stores an object under a key it cannot show was
// still current a moment ago:
//
//   - every refresh (a server's, every S3RefreshEvery) reads keys.json
//     again. When its current key is another than the one this Repo seals
//     with, the new file is opened with the secrets this process's unlock
//     kept (keys.Keyring.Reopen: the wrapping key, which a rotation keeps,
//     or the slot that opened the keys), and from then on new packs,
//     index segments and the access file are sealed under the new key.
//     When they no longer open it (a revoking rotation through another
//     slot removed this one), the Repo refuses every write with a one-line
//     error until it is restarted with a key that opens the store;
//   - a pack is stored only while this Repo's current key was confirmed
//     current by a read of keys.json that started less than the refresh
//     bound ago (SharedRefreshBound, as a have-query's "held"), checked
//     before the upload and again once the object is stored, before the
//     pack is indexed and so before any record can reference it: a pack
//     whose upload outlived the bound is deleted again and its commit
//     fails. An index segment and the access file are checked before
//     their write;
//   - smp key retire reads the keys' usage, for its last time, only once
//     keys.json is older than the bound plus clockMargin by the storage's
//     clock (RetireKey waits for that).
//
// So a pack under key K reaches the bucket only before the rotation away
// from K plus the bound, and retiring K needs a KeyUsage read after that:
// it sees every pack under K and refuses until gc --rekey moved them.

// sharedKeys is what a writer of a shared encrypted store knows of the
// bucket's key slot file.
type sharedKeys struct {
	mu sync.Mutex
	kr *keys.Keyring // the keys sealing now
	// ver is the version of keys.json last read (storage.NoVersion:
	// none yet, or not to be trusted to be unchanged).
	ver storage.Version
	// checkedAt (local clock) is when the last read of keys.json that
	// found kr's current key current started.
	checkedAt time.Time
	// err is set while keys.json's current key is one this Repo cannot
	// seal under: every write fails with it.
	err error
	// loading orders the reads of keys.json, so none applies a read
	// older than one applied before it.
	loading sync.Mutex
	bound   time.Duration
}

// ErrKeysChanged is wrapped by the error of a write refused because the
// store's current master key changed (or could not be confirmed) since
// the objects it stores were sealed.
var ErrKeysChanged = errors.New("the store's keys changed")

// sealingKeyring returns the keyring this Repo seals new objects with:
// the one it opened with, or the newer one a refresh adopted.
func (r *Repo) sealingKeyring() *keys.Keyring {
	if r.keys == nil {
		return r.Keyring
	}
	r.keys.mu.Lock()
	defer r.keys.mu.Unlock()
	return r.keys.kr
}

// currentKey is the master key this Repo seals new objects with.
func (r *Repo) currentKey() keys.KeyID {
	cur, _ := r.sealingKeyring().Current()
	return cur
}

// refreshKeys reads the bucket's keys.json and adopts a new current key,
// or records why it cannot (sharedKeys.err). start (local clock) is taken
// before the read. Only a failed read is an error.
func (r *Repo) refreshKeys(ctx context.Context, start time.Time) error {
	k := r.keys
	if k == nil {
		return nil
	}
	k.loading.Lock()
	defer k.loading.Unlock()
	f, ver, err := keys.Load(ctx, r.st)
	if err != nil {
		return fmt.Errorf("read the store's keys: %w", err)
	}
	k.mu.Lock()
	kr, known, failed := k.kr, k.ver, k.err
	k.mu.Unlock()
	cur, _ := kr.Current()
	if ver != storage.NoVersion && ver == known && failed != nil {
		return nil // the file this Repo could not open, unchanged
	}
	var next *keys.Keyring
	switch {
	case f.StoreID != r.Config.StoreID:
		err = storeIDMismatch(r.Dir, r.Config, f)
	case f.Current == cur:
		next = kr
	default:
		next, err = r.adoptKeys(kr, f)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.ver = ver
	if err == nil && next != kr {
		// Under k.mu, so check never sees the sealer's key and
		// k.kr's differ.
		err = r.packs.Sealer().Adopt(next)
	}
	if err != nil {
		k.err = fmt.Errorf("store %s: master key %d is current now (smp key rotate) and this smp cannot seal under it: %v; %w: nothing is written until smp is restarted with a key that opens the store",
			r.Dir, f.Current, err, ErrKeysChanged)
		return nil
	}
	k.kr, k.err, k.checkedAt = next, nil, start
	return nil
}

// adoptKeys opens f, a newer key slot file whose current key is another
// than kr's, with the secrets kr was unlocked with.
func (r *Repo) adoptKeys(kr *keys.Keyring, f *keys.File) (*keys.Keyring, error) {
	next, err := kr.Reopen(f)
	if err != nil {
		return nil, err
	}
	if a, b := hashKeyOf(r.Config, kr), hashKeyOf(r.Config, next); a != b {
		return nil, errors.New("the new keys wrap another hash key")
	}
	return next, nil
}

// sealable returns nil when an object sealed under master key kid may be
// stored now: kid is this Repo's current key, which a read of keys.json
// started within the bound confirmed. A confirmation too old is renewed
// first (one read of keys.json).
func (r *Repo) sealable(kid keys.KeyID) error {
	k := r.keys
	if k == nil {
		return nil
	}
	err := k.check(kid)
	if !errors.Is(err, errKeysStale) {
		return err
	}
	if err := r.refreshKeys(context.Background(), time.Now()); err != nil {
		return fmt.Errorf("%w: %w (nothing was committed)", ErrKeysChanged, err)
	}
	return k.check(kid)
}

// errKeysStale is check's answer when the confirmation is too old.
var errKeysStale = fmt.Errorf("%w: the store's keys were not read lately", ErrKeysChanged)

func (k *sharedKeys) check(kid keys.KeyID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.err != nil {
		return k.err
	}
	if cur, _ := k.kr.Current(); cur != kid {
		return fmt.Errorf("sealed under master key %d, but key %d is current now (smp key rotate meanwhile): %w; nothing was committed: run it again", kid, cur, ErrKeysChanged)
	}
	if time.Since(k.checkedAt) > k.bound {
		return errKeysStale
	}
	return nil
}

// keysSettleWait is how long RetireKey waits on a shared store before its
// usage count holds: until keys.json is older than the bound in which
// every writer takes a change up (by the storage's clock, plus
// clockMargin), a writer may still seal under a key that was current
// before the change.
func keysSettleWait(ctx context.Context, st storage.Storage, bound time.Duration) (time.Duration, error) {
	info, err := st.Stat(ctx, keys.FileName)
	if err != nil {
		return 0, err
	}
	now, err := st.Now(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the storage's clock: %w", err)
	}
	return info.Created.Add(bound + clockMargin).Sub(now), nil
}

// accessKeys seals the access file of a shared encrypted store with the
// keys the Repo seals with now, checked as a pack's (sealable).
type accessKeys struct{ r *Repo }

func (a accessKeys) Seal(plain []byte) ([]byte, error) {
	kr := a.r.sealingKeyring()
	cur, _ := kr.Current()
	if err := a.r.sealable(cur); err != nil {
		return nil, fmt.Errorf("write the access file: %w", err)
	}
	return accessCodec(kr, a.r.Config.StoreID).Seal(plain)
}

func (a accessKeys) Open(sealed []byte) ([]byte, error) {
	return accessCodec(a.r.sealingKeyring(), a.r.Config.StoreID).Open(sealed)
}

func (a accessKeys) MaxSealed() int {
	return accessCodec(a.r.sealingKeyring(), a.r.Config.StoreID).MaxSealed()
}

// storePack commits pending pack p to the storage (PendingPack.Commit) for
// the caller to index. On a shared encrypted store its key must be
// confirmed current (sealable) before the upload, to spare it, and again
// once it is stored: a pack whose upload outlived the confirmation may be
// under a key retired meanwhile, so it is deleted again, never indexed and
// so never referenced by a record. Its name is this writer's alone (the
// nonces are random), so deleting it takes nothing from another.
func (r *Repo) storePack(p *cas.PendingPack) (cas.ID, []cas.PackEntry, int64, error) {
	sealed, kid := p.KeyID()
	if !sealed || r.keys == nil {
		return p.Commit()
	}
	if err := r.sealable(kid); err != nil {
		p.Abort()
		return cas.ID{}, nil, 0, fmt.Errorf("commit pack: %w", err)
	}
	id, entries, size, err := p.Commit()
	if err != nil {
		return cas.ID{}, nil, 0, err
	}
	if err := r.sealable(kid); err != nil {
		_ = r.st.Delete(context.Background(), r.packs.Name(id))
		return cas.ID{}, nil, 0, fmt.Errorf("commit pack: %w", err)
	}
	return id, entries, size, nil
}
