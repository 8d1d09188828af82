// Package capture owns turning a directory tree into a state record: it
// walks the selected paths under a source root, applies filter rules, cuts
// files into content-defined chunks, stores the chunks the store has never
// seen, and writes one tree blob per directory and a record.
//
// The pipeline is bounded at every stage so memory does not grow with file
// size or tree size:
//
//	walker --fileJobs(256)--> file workers (read, chunk, hash, dedupe)
//	                             --compressJobs(4)--> compressors --> packs
//	walker --dirs(1024 dirs, 16Ki entries)--> finisher (waits for a
//	          directory's files and subdirectories, then writes its tree blob)
//
// The walker pushes directories in post-order, so the single finisher always
// finds a directory's subtrees already written. Nothing waits on the walker
// or the finisher, so the stages cannot deadlock.
//
// A store that answers later (OfferingStore: an SMP, which is asked many
// chunks per round trip) gets each chunk's copy from a file worker without
// the worker waiting for the answer; the answer queues a needed chunk for
// the compressors, whose queue closes only after the store has answered
// every offer. The store bounds what its waiting offers hold.
//
// What is held therefore depends on the directories being worked on, not on
// the files seen so far: the entries of the directories on the walker's
// path and of at most 16Ki entries in queued directories, and the parent
// record's trees of the directories on the walker's path, plus at most
// 4Ki entries of trees loaded ahead of the walker (treeahead.go). A tree's
// entries are freed once it is stored. The only per-file state that lives
// longer is one small record per multiply-linked inode whose other names
// have not all been seen yet (hard-link detection).
//
// Files and directories below the source root are opened by name in their
// parent's descriptor, never by path, and never through a symlink; what is
// recorded of a name (type, metadata, xattrs, contents or link) comes from
// the one inode opened there: a name replaced between the walk and the open
// is reported as changed during capture (ErrChanged). See walk_linux.go.
//
// On a cold page cache, helpers keep the disk busy ahead of the walker and
// the workers (ahead_linux.go): directories are listed ahead of the walk
// and the next queued files' data is requested (posix_fadvise WILLNEED).
// They only warm the cache: nothing they read is recorded.
//
// The API (Options, Run, Ingest, ParseHardlink) builds on every system; the
// walker and file workers are Linux-only (the _linux.go files), and Run
// returns a "not supported" error elsewhere.
//
// Change detection: with a parent record, a file whose type, size, mtime,
// ctime and inode are unchanged reuses the parent's chunk list unread.
package capture
