package repo

import (
	"time"

	"smp/cas"
	"smp/index"
	"smp/storage"
)

// SetRebuildHook sets the hook RebuildIndex calls at named points (an
// error there stops it, as a crash would) and returns a function that
// clears it.
func SetRebuildHook(f func(point string) error) func() {
	rebuildHook = f
	return func() { rebuildHook = nil }
}

// Index is the store's index, for tests that inspect it.
func (r *Repo) Index() *index.Index { return r.ix }

// Packs is the store's packs, for tests that inspect or damage them.
func (r *Repo) Packs() *cas.PackDir { return r.packs }

// SetStorage makes stores open their objects through wrap(the local
// storage) and returns a function that restores the default.
func SetStorage(wrap func(storage.Storage) storage.Storage) func() {
	old := openStorage
	openStorage = func(dir string) (storage.Storage, error) {
		st, err := old(dir)
		if err != nil {
			return nil, err
		}
		return wrap(st), nil
	}
	return func() { openStorage = old }
}

// SetSegmentGrace sets the age past which a refresh lists a pack it read
// from its trailer in a segment of its own, and returns a function that
// restores it.
func SetSegmentGrace(d time.Duration) func() {
	old := segmentGrace
	segmentGrace = d
	return func() { segmentGrace = old }
}

// SetCompactLimits sets how many small index segments a compaction waits
// for and how old they must be, and returns a function that restores them.
func SetCompactLimits(above int, age time.Duration) func() {
	old := compactLimits
	compactLimits.above, compactLimits.age = above, age
	return func() { compactLimits = old }
}
