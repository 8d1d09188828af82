package access

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"smp/storage"
)

// The access file of a store on S3 is an object of its bucket (ObjectName,
// or SealedObjectName in an encrypted store), so that every smp serve
// sharing the bucket accepts the same tokens. Writers replace it by
// compare-and-swap (storage.Storage.Swap: a conditional PUT on the
// object's ETag), re-reading and re-applying their change when another
// writer came first, so no change is lost. Readers poll it.
const (
	// ObjectName is the access file of an unencrypted store on S3.
	ObjectName = fileName
	// SealedObjectName is the access file of an encrypted store on S3.
	SealedObjectName = sealedName

	// RefreshEvery is how old a server's copy of a shared access file
	// may grow before Snapshot reads the object again, in the
	// background, answering from the copy meanwhile.
	RefreshEvery = time.Second
	// RefreshBound is how old a copy may be at most: past it, Snapshot
	// waits for a read of the object and fails (the server refuses the
	// request) when the read fails. A token revoked, an association
	// removed or restore-only switched on through any smp is in force
	// on every server sharing the bucket within RefreshBound (plus the
	// time of one read).
	RefreshBound = 2 * time.Second
	// recheckGap spaces the reads Recheck forces (an unknown token), so
	// that a client sending made-up tokens costs the bucket at most one
	// small request per gap.
	recheckGap = 50 * time.Millisecond
	// sharedTimeout bounds one read or one whole update.
	sharedTimeout = 2 * time.Minute
	// maxSwaps bounds the compare-and-swap attempts of one update.
	maxSwaps = 20
)

// SharedOptions configure OpenShared.
type SharedOptions struct {
	// Codec seals the file of an encrypted store (nil: in clear).
	Codec Codec
	// LocalDir is the cache directory of the store, whose access file
	// (where a store on S3 kept it before) is merged into the bucket's
	// and then removed; "" when there is none.
	LocalDir string
	// Every and Bound replace RefreshEvery and RefreshBound (tests).
	Every, Bound time.Duration
	// Close closes st with the Store (it was opened for it).
	Close bool
}

// shared is the state of an access file kept in a storage.
type shared struct {
	st          storage.Storage
	name, where string
	codec       Codec
	limit       int
	every       time.Duration
	bound       time.Duration
	close       bool

	mu sync.Mutex
	// The last read: the file at version ver (snap, or err when its
	// contents are invalid), read by a request started at readAt.
	loaded  bool
	snap    *Snapshot
	err     error
	ver     storage.Version
	readAt  time.Time
	written time.Time // this process's last write: later snapshots are read after it
	// lastStart is when the last read started; inflight the read in
	// progress, if any.
	lastStart time.Time
	inflight  *pendingRead
}

type pendingRead struct {
	start time.Time
	done  chan struct{}
	err   error // a failed read (the object store's trouble)
}

// OpenShared returns the access file kept as an object of st, the storage
// of a store on S3. Without a codec, a bucket holding the sealed object is
// refused (ErrSealedNoKey). With o.LocalDir, an access file left there is
// merged into the object first (see SharedOptions).
func OpenShared(st storage.Storage, o SharedOptions) (*Store, error) {
	sh := &shared{st: st, name: ObjectName, codec: o.Codec, limit: MaxFileSize,
		every: o.Every, bound: o.Bound, close: o.Close}
	if sh.every <= 0 {
		sh.every = RefreshEvery
	}
	if sh.bound <= 0 {
		sh.bound = RefreshBound
	}
	if o.Codec != nil {
		sh.name, sh.limit = SealedObjectName, o.Codec.MaxSealed()
	}
	sh.where = objectWhere(st, sh.name)
	s := &Store{sh: sh, path: sh.where}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	if o.Codec == nil {
		if _, err := st.Stat(ctx, SealedObjectName); err == nil {
			return nil, fmt.Errorf("access file %s: %w: give the store's key (--key-file, --passphrase-file)", objectWhere(st, SealedObjectName), ErrSealedNoKey)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return nil, fmt.Errorf("access file %s: %w", sh.where, err)
		}
	}
	if o.LocalDir != "" {
		if err := s.adoptLocal(o.LocalDir); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// objectWhere names object name of st for messages: its URL when st
// names itself (s3://ENDPOINT/BUCKET/PREFIX/).
func objectWhere(st storage.Storage, name string) string {
	if str, ok := st.(fmt.Stringer); ok {
		return str.String() + name
	}
	return name + " in the store's bucket"
}

// adoptLocal merges the access file a store on S3 kept in its cache
// directory dir (before it moved to the bucket) into the bucket's, then
// removes it: every server's tokens then work on every server. Tokens
// are merged by ID (revoked if revoked on either side), associations by
// pair, and restore-only is on if it was on either side.
func (s *Store) adoptLocal(dir string) error {
	_, e1 := os.Lstat(dir + "/" + fileName)
	_, e2 := os.Lstat(dir + "/" + sealedName)
	if errors.Is(e1, fs.ErrNotExist) && errors.Is(e2, fs.ErrNotExist) {
		return nil
	}
	local, err := OpenWith(dir, s.sh.codec)
	if err != nil {
		return err
	}
	lf, _, err := local.read()
	if err != nil {
		return err
	}
	if err := s.update(func(f *file) error { return f.merge(lf) }); err != nil {
		return fmt.Errorf("move the access file of %s into the bucket: %w", dir, err)
	}
	for _, p := range []string{local.clearPath, local.sealedPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("moved the access file of %s into the bucket, but: %w", dir, err)
		}
	}
	return syncDir(dir)
}

// merge adds to f what other holds: see adoptLocal.
func (f *file) merge(other *file) error {
	byID := make(map[string]int, len(f.Tokens))
	for i, t := range f.Tokens {
		byID[t.ID] = i
	}
	for _, t := range other.Tokens {
		i, ok := byID[t.ID]
		if !ok {
			f.Tokens = append(f.Tokens, t)
			continue
		}
		if r := t.Revoked; !r.IsZero() && (f.Tokens[i].Revoked.IsZero() || r.Before(f.Tokens[i].Revoked)) {
			f.Tokens[i].Revoked = r
		}
	}
	pairs := make(map[[2]string]bool, len(f.Associations))
	for _, a := range f.Associations {
		pairs[[2]string{a.Source, a.Dest}] = true
	}
	for _, a := range other.Associations {
		if !pairs[[2]string{a.Source, a.Dest}] {
			f.Associations = append(f.Associations, a)
		}
	}
	f.RestoreOnly = f.RestoreOnly || other.RestoreOnly
	f.Limits = f.Limits.merge(other.Limits)
	return f.check()
}

// decodeObject opens (with the codec) and decodes the object's bytes.
func (sh *shared) decodeObject(b []byte) (*file, error) {
	if sh.codec != nil {
		var err error
		if b, err = sh.codec.Open(b); err != nil {
			return nil, fmt.Errorf("access file %s cannot be opened with this store's keys (restore it from a backup, or remove the object to start with no tokens): %w", sh.where, err)
		}
	}
	f, err := decode(b)
	if err != nil {
		return nil, fmt.Errorf("access file %s: %w", sh.where, err)
	}
	return f, nil
}

// readFile reads the whole object: a missing one is an empty file at
// NoVersion.
func (sh *shared) readFile(ctx context.Context) (*file, storage.Version, error) {
	b, ver, _, err := storage.GetIfChanged(ctx, sh.st, sh.name, storage.NoVersion, int64(sh.limit))
	if errors.Is(err, storage.ErrNotFound) {
		return emptyFile(), storage.NoVersion, nil
	}
	if err != nil {
		return nil, storage.NoVersion, fmt.Errorf("access file %s: %w", sh.where, err)
	}
	f, err := sh.decodeObject(b)
	return f, ver, err
}

// update applies fn to the object by compare-and-swap: read, change,
// write back if nobody wrote meanwhile, else again from the new contents.
func (sh *shared) update(fn func(*file) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		f, ver, err := sh.readFile(ctx)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			if errors.Is(err, errNoChange) {
				return nil
			}
			return err
		}
		b, err := f.sealed(sh.codec, sh.where)
		if err != nil {
			return err
		}
		_, err = sh.st.Swap(ctx, sh.name, ver, b)
		if err == nil {
			sh.mu.Lock()
			sh.written = time.Now()
			sh.mu.Unlock()
			return nil
		}
		if !errors.Is(err, storage.ErrConflict) || attempt == maxSwaps {
			return fmt.Errorf("write access file %s: %w", sh.where, err)
		}
		// Another writer came first: its change is kept, ours applied
		// to it after a short random pause (concurrent writers part).
		if werr := sleepCtx(ctx, time.Duration(rand.Int64N(int64(20*time.Millisecond)*int64(attempt)))); werr != nil {
			return werr
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// exists reports whether the object is there.
func (sh *shared) exists() (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	_, err := sh.st.Stat(ctx, sh.name)
	if errors.Is(err, storage.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// snapshot returns the last read while it is younger than the bound (and
// starts a read in the background once it is older than every), else
// waits for a read.
func (sh *shared) snapshot() (*Snapshot, error) {
	now := time.Now()
	sh.mu.Lock()
	after := now.Add(-sh.bound)
	if sh.written.After(after) {
		after = sh.written
	}
	if sh.loaded && !sh.readAt.Before(after) {
		if now.Sub(sh.readAt) >= sh.every && sh.inflight == nil {
			sh.startLocked(false)
		}
		sn, err := sh.snap, sh.err
		sh.mu.Unlock()
		return sn, err
	}
	sh.mu.Unlock()
	return sh.readAfter(after, false)
}

// recheck returns the object as read by a request that started after the
// call (an unknown token may have just been made elsewhere); such forced
// reads are recheckGap apart at least.
func (sh *shared) recheck() (*Snapshot, error) {
	return sh.readAfter(time.Now(), true)
}

// readAfter returns the object as read by a request started at or after
// after, joining a read in progress that qualifies, or starting one.
func (sh *shared) readAfter(after time.Time, spaced bool) (*Snapshot, error) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for {
		if sh.loaded && !sh.readAt.Before(after) {
			return sh.snap, sh.err
		}
		p := sh.inflight
		if p == nil {
			p = sh.startLocked(spaced)
		}
		sh.mu.Unlock()
		<-p.done
		sh.mu.Lock()
		if p.err != nil && !p.start.Before(after) {
			return nil, p.err
		}
	}
}

// startLocked starts a read in the background; spaced, not before
// recheckGap after the last one started. The caller holds sh.mu.
func (sh *shared) startLocked(spaced bool) *pendingRead {
	start := time.Now()
	if next := sh.lastStart.Add(recheckGap); spaced && next.After(start) {
		start = next
	}
	p := &pendingRead{start: start, done: make(chan struct{})}
	sh.inflight, sh.lastStart = p, start
	have := storage.NoVersion
	if sh.loaded {
		have = sh.ver
	}
	go sh.read(p, have)
	return p
}

// read polls the object for p: unchanged since version have, the last
// read stands (now as of p.start); changed, it is decoded anew.
func (sh *shared) read(p *pendingRead, have storage.Version) {
	if d := time.Until(p.start); d > 0 {
		time.Sleep(d)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sharedTimeout)
	defer cancel()
	b, ver, changed, err := storage.GetIfChanged(ctx, sh.st, sh.name, have, int64(sh.limit))
	var snap *Snapshot
	var ferr error
	switch {
	case errors.Is(err, storage.ErrNotFound):
		snap, ver, changed, err = newSnapshot(emptyFile()), storage.NoVersion, true, nil
	case err != nil:
		err = fmt.Errorf("access file %s: %w", sh.where, err)
	case changed:
		var f *file
		if f, ferr = sh.decodeObject(b); ferr == nil {
			snap = newSnapshot(f)
		}
	}
	sh.mu.Lock()
	defer sh.mu.Unlock()
	p.err = err
	if err == nil && !p.start.Before(sh.readAt) {
		if changed {
			sh.snap, sh.err, sh.ver = snap, ferr, ver
		}
		sh.loaded, sh.readAt = true, p.start
	}
	sh.inflight = nil
	close(p.done)
}

// sealed is f encoded, and sealed by codec when set (an encrypted
// store), as the access file at where is written.
func (f *file) sealed(codec Codec, where string) ([]byte, error) {
	b, err := f.encode()
	if err != nil {
		return nil, fmt.Errorf("access file %s: %w", where, err)
	}
	if codec != nil {
		if b, err = codec.Seal(b); err != nil {
			return nil, fmt.Errorf("seal access file %s: %w", where, err)
		}
	}
	return b, nil
}
