package index

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dustin/go-humanize"

	"smp/cas"
)

// Badger writes its memtable write-ahead logs, value logs and new tables
// through shared mappings of files it sized with ftruncate (badger v4 has
// no option to write them with write(2)). On a full filesystem a store to
// such a page cannot fail with an error: the kernel kills the process with
// SIGBUS, whatever it was doing. So before every writable open and every
// write, the index checks that the filesystem has room for everything
// Badger may write through a mapping until the next check, and otherwise
// fails with ENOSPC, on one line, before Badger touches anything:
//
//   - pageRoom: the pages a writable open and close write besides
//     entries: the headers of the new write-ahead log and value log, the
//     discard statistics, the pid in LOCK, MANIFEST appends;
//   - twice what the memtable logs hold: each is flushed into a level-0
//     table on close (or when full), which a compaction may then rewrite;
//   - one compaction of each kind: every level-0 table together with the
//     whole base level (index keys are uniformly spread hashes, so level-0
//     tables overlap all of it), and one deeper table with the tables of
//     the next level it overlaps (about the level size multiplier of them);
//     compaction writes its output before it deletes its input;
//   - the write itself, writeFactor times its entries (write-ahead log,
//     value log for values over the threshold, level-0 table).
//
// Badger's background work after the last check (a compaction started by
// a flush) stays within these bounds as long as nothing else fills the
// filesystem meanwhile.
const (
	pageRoom          = 1 << 20
	writeFactor       = 3
	entryOverhead     = 48 // WAL header, version, checksum, table index per entry
	levelSizeMultiple = 10 // Badger's default LevelSizeMultiplier

	// smallWrite bounds the transactions update runs: a record's
	// encoding, a release mark, a deletion (PutRecord checks a larger
	// record itself).
	smallWrite = 64 << 10
)

// freeBytes returns the space an unprivileged writer may still use on the
// filesystem holding path, or ok false when it cannot be known. A variable
// so tests can simulate a full filesystem.
var freeBytes = statfsFree

// tableSize is one table of the LSM tree: its level and bytes on disk.
type tableSize struct {
	level int
	size  int64
}

// compactionRoom is what one compaction of each kind may write before it
// deletes its input (see the comment at the top of this file).
func compactionRoom(tables []tableSize) int64 {
	var l0, base, deepest int64
	baseLevel := 0
	for _, t := range tables {
		switch {
		case t.level == 0:
			l0 += t.size
		case baseLevel == 0 || t.level == baseLevel:
			baseLevel = t.level
			base += t.size
		default:
			deepest = max(deepest, t.size)
		}
	}
	return l0 + base + (levelSizeMultiple+1)*deepest
}

// memtableBytes returns the bytes the memtable write-ahead logs in dir
// really hold: their allocated blocks, not the preallocated length.
func memtableBytes(dir string) (int64, error) {
	mems, err := filepath.Glob(filepath.Join(dir, "*.mem"))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, m := range mems {
		st, err := os.Lstat(m)
		if errors.Is(err, fs.ErrNotExist) {
			continue // flushed and deleted meanwhile
		}
		if err != nil {
			return 0, fmt.Errorf("index space check: %w", err)
		}
		n += allocated(st)
	}
	return n, nil
}

// manifestTables lists the tables the MANIFEST in dir names, before Badger
// opens it. A missing MANIFEST is a new index: no tables.
func manifestTables(dir string) ([]tableSize, error) {
	fp, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open index manifest: %w", err)
	}
	mf, _, err := badger.ReplayManifestFile(fp, 0, badger.DefaultOptions(dir).WithLogger(nil))
	fp.Close()
	if err != nil {
		return nil, damaged("MANIFEST", err)
	}
	var out []tableSize
	for id, tm := range mf.Tables {
		st, err := os.Stat(table.NewFilename(id, dir))
		if err != nil {
			continue // checkTables reports missing tables
		}
		out = append(out, tableSize{level: int(tm.Level), size: st.Size()})
	}
	return out, nil
}

// openTables lists the tables of the open index.
func (ix *Index) openTables() []tableSize {
	infos := ix.db.Tables()
	out := make([]tableSize, len(infos))
	for i, t := range infos {
		out[i] = tableSize{level: t.Level, size: int64(t.OnDiskSize)}
	}
	return out
}

// checkRoom fails with ENOSPC unless the filesystem of the index in dir
// has room for a write of batch entry bytes given its tables, after extra
// bytes of other files are written to it.
func checkRoom(dir string, tables []tableSize, batch, extra int64) error {
	free, ok := freeBytes(dir)
	if !ok {
		return nil
	}
	need, err := neededRoom(dir, tables, batch, extra)
	if err != nil {
		return err
	}
	if int64(free) >= need {
		return nil
	}
	return fmt.Errorf("index %s: %s free on its filesystem, %s needed to write it safely (Badger's memtables, value log and compactions, plus this write): free some space and retry: %w",
		dir, humanize.IBytes(free), humanize.IBytes(uint64(need)), syscall.ENOSPC)
}

// neededRoom is the free space checkRoom requires.
func neededRoom(dir string, tables []tableSize, batch, extra int64) (int64, error) {
	mem, err := memtableBytes(dir)
	if err != nil {
		return 0, err
	}
	return pageRoom + 2*mem + compactionRoom(tables) + writeFactor*batch + extra, nil
}

// roomToOpen checks, before Badger opens the index in dir writable, that
// the open (which may flush memtables left by a killed process and start
// compactions) has room.
func roomToOpen(dir string) error {
	tables, err := manifestTables(dir)
	if err != nil {
		return err
	}
	return checkRoom(dir, tables, 0, 0)
}

// room checks that the open index has room for a write of n entries
// whose keys and values take kv bytes.
func (ix *Index) room(n int, kv int64) error {
	return checkRoom(ix.dir, ix.openTables(), kv+int64(n)*entryOverhead, 0)
}

// RoomForPack fails with an error wrapping ENOSPC unless the index's
// filesystem has room to write extra more bytes of a pack and then index
// its entries with AddPack: checked before a pack is committed, so a full
// filesystem leaves no pack the index does not know.
func (ix *Index) RoomForPack(entries int, extra int64) error {
	if ix.readOnly {
		return ErrReadOnly
	}
	n := int64(entries + 1)
	return checkRoom(ix.dir, ix.openTables(), n*(1+cas.IDSize+locationSize+entryOverhead), extra)
}

// NeededRoom returns the free space a writable open of the index in dir
// needs (what it checks before opening), for tests and diagnostics.
func NeededRoom(dir string) (int64, error) {
	tables, err := manifestTables(dir)
	if err != nil {
		return 0, err
	}
	return neededRoom(dir, tables, 0, 0)
}
