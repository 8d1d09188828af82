package capture

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sys/unix"

	"smp/cas"
	"smp/cas/manifest"
)

// Directories walked but not yet written as trees hold all their entries.
// The finisher waits for each in turn, so one large file keeps every
// directory after it queued: many may wait (dirQueue), so that the walker
// and the other workers keep going, but only up to queuedEntries entries
// in all (about 300 bytes each), so that a run of wide directories (1000s
// of files each) cannot hold a large part of the tree in memory.
const (
	dirQueue      = 1024
	queuedEntries = 16 << 10
)

type capturer struct {
	opts     Options
	store    Store
	prover   ProvingStore          // store as a ProvingStore, or nil
	offerer  OfferingStore         // store as an OfferingStore, or nil
	offerErr atomic.Pointer[error] // the first error an offer was answered with
	params   cas.ChunkerParams
	progress *Progress
	skip     map[devIno]bool

	fileJobs     chan *fileJob
	compressJobs chan compressJob
	chunkBufs    *chunkBufs // full-size chunker buffers lent to file workers
	dirs         chan *dirNode
	dirEntries   *semaphore.Weighted // queuedEntries: entries of the dirs in c.dirs
	rootTree     cas.ID

	// hardlinks holds, for inodes with more than one link, the first name
	// captured until every link has been seen (walker only). It is the one
	// structure that can outlive a directory; see hardLink.
	hardlinks map[devIno]*hardLink
	direntBuf []byte // getdents buffer (walker only)
	// dirAhead and dataAhead read ahead of the walker and the workers on
	// a cold cache (see ahead_linux.go); nil when not running.
	dirAhead  *dirAhead
	dataAhead *dataAhead
	trees     *treeAhead // the parent record's trees; nil: c.store.LoadTree
	// parentHeld says whether the store holds every chunk the parent
	// record reaches for the whole capture (HoldingStore), asked once.
	parentHeld func() bool
	linker     *linker
	// linkFirst: regular files are hard-linked into the store before
	// anything else (see linkByName), so the walker need not stat them.
	linkFirst bool
	names     nameCache
	bufPools  [1 + 4*(28-minBufClass)]sync.Pool // by bufClass; chunks are at most 256 MiB (1<<28)
	errors    atomic.Uint64
	dirCount  atomic.Uint64
	symlinks  atomic.Uint64
	files     atomic.Uint64
	bytes     atomic.Uint64
	// totals, when set, makes this a counting pass (Count): files are
	// compared with the parent record and counted, never opened, and no
	// tree is stored.
	totals *countTotals
}

type devIno struct{ dev, ino uint64 }

type fileJob struct {
	abs  string // for reports
	name string // opened in parent, never by abs
	// parent is the open directory of the file, held for the job.
	parent *dirHandle
	entry  *manifest.Entry
	prev   *manifest.Entry
	dir    *dirNode
	slot   int
	dev    uint64
	// unstatted: only the name and type are known (from the directory
	// listing); the worker links the file first and stats the link.
	unstatted bool
	// first is set on the first name of a multiply-linked inode: its
	// worker publishes the result there. linkOf is set on the later
	// names, which wait for it and reuse that result.
	first, linkOf *hardLink
	failed        bool
	// unchanged is set when the parent record's chunks were reused.
	unchanged bool
	// ahead is the file as the read-ahead opened it, for the worker.
	ahead aheadFile
}

// hardLink is the result of capturing the first name of an inode with
// more than one link. It copies out only what later names reuse, so a
// pending link group never holds its directory's entries, the fileJob or
// the parent record's tree in memory after the directory is written.
type hardLink struct {
	done chan struct{} // closed when the fields below are final
	// left counts the links not yet seen by the walker; at zero the group
	// leaves capturer.hardlinks. Links outside the captured tree keep it
	// there to the end, so that map grows only with such inodes.
	left      uint64
	failed    bool
	unchanged bool
	size      uint64
	mtimeNs   int64
	chunks    []manifest.Chunk
	link      *manifest.Link
	xattrs    map[string][]byte
}

// publish records job's outcome for the inode's later names.
func (h *hardLink) publish(job *fileJob) {
	h.failed, h.unchanged = job.failed, job.unchanged
	if !job.failed {
		h.size, h.mtimeNs, h.chunks, h.link = job.entry.Size, job.entry.MTimeNs, job.entry.Chunks, job.entry.Link
		h.xattrs = job.entry.Xattrs
	}
	close(h.done)
}

// compressJob is a new chunk for a compressor: plain is either a pooled
// copy (copied, back to the pool once stored) or a chunk in a lent chunker
// buffer (lent, released once stored).
type compressJob struct {
	id     cas.ID
	plain  []byte
	copied *[]byte
	lent   *chunkBuf
}

// done gives back what the job's bytes are in.
func (c *capturer) done(job compressJob) {
	if job.copied != nil {
		c.putBuf(job.copied)
	}
	if job.lent != nil {
		job.lent.release()
	}
}

// dirNode is a directory being captured: its entries are filled in by file
// workers and by the finisher of its subdirectories.
type dirNode struct {
	rel     string
	entries []manifest.Entry
	drop    []bool // entries whose capture failed
	pending sync.WaitGroup
	parent  *dirNode
	slot    int   // index in parent.entries
	queued  int64 // its weight in capturer.dirEntries
	// dev and ino identify the directory as the walk opened it.
	dev, ino uint64
}

// runCapture captures the selection with the Linux walker and file workers.
func runCapture(ctx context.Context, store Store, opts Options, sel *selection, users []string) (*Result, error) {
	c, err := newCapturer(store, opts)
	if err != nil {
		return nil, err
	}
	if c.linker != nil {
		defer c.linker.close()
	}
	// Without --hardlink always, files may reuse the parent's chunks: the
	// parent is needed before the walk. With it, only the record names it.
	if opts.ParentLookup != nil && opts.Hardlink != HardlinkAlways {
		opts.Parent, opts.ParentID = opts.ParentLookup()
	}
	var prevRoot *manifest.Tree
	if opts.Parent != nil {
		if t, err := store.LoadTree(opts.Parent.Tree); err == nil {
			prevRoot = t
		} // an unreadable parent only costs re-reading every file
	}
	started := opts.Now()
	if err := c.pipeline(ctx, sel, prevRoot); err != nil {
		c.dropLinks() // no record will ever reference them
		return nil, err
	}
	if opts.ParentLookup != nil && opts.Hardlink == HardlinkAlways {
		_, opts.ParentID = opts.ParentLookup()
	}
	return c.commit(sel.paths(), users, opts.ParentID, started)
}

// newCapturer sets up a capture's state, and its link set when the options
// ask for hard links.
func newCapturer(store Store, opts Options) (*capturer, error) {
	prover, _ := store.(ProvingStore)
	offerer, _ := store.(OfferingStore)
	c := &capturer{
		prover: prover, offerer: offerer,
		opts: opts, store: store, params: store.ChunkerParams(), progress: opts.Progress,
		skip:         map[devIno]bool{},
		fileJobs:     make(chan *fileJob, fileJobQueue),
		compressJobs: make(chan compressJob, 4),
		chunkBufs:    newChunkBufs(opts.ChunkBuffers),
		dirs:         make(chan *dirNode, dirQueue),
		dirEntries:   semaphore.NewWeighted(queuedEntries),
		hardlinks:    map[devIno]*hardLink{},
		names:        nameCache{users: map[uint32]string{}, groups: map[uint32]string{}},
	}
	c.parentHeld = sync.OnceValue(func() bool {
		hs, ok := store.(HoldingStore)
		if !ok {
			return false
		}
		held, err := hs.HoldsRecordChunks()
		return err == nil && held
	})
	for _, d := range opts.SkipDirs {
		if st, err := os.Stat(d); err == nil {
			sys := st.Sys().(*syscall.Stat_t)
			c.skip[devIno{uint64(sys.Dev), sys.Ino}] = true
		}
	}
	if !opts.Hardlink.links() {
		return c, nil
	}
	var set [8]byte
	_, _ = rand.Read(set[:])
	var err error
	c.linker, err = newLinker(opts.LinkDir, opts.Now().UTC().Format("20060102T150405Z")+"-"+hex.EncodeToString(set[:]), opts.HardlinkDedupe, store.Sum)
	if err != nil {
		return nil, err
	}
	// A clone is a new inode (the user's file must then be stat'ed
	// itself), and dedupe hashes a file before placing it.
	c.linkFirst = !opts.HardlinkDedupe && c.linker.noClone.Load()
	return c, nil
}

// pipeline runs the walker, file workers, compressors and finisher until
// the root tree is written or one of them fails.
func (c *capturer) pipeline(ctx context.Context, sel *selection, prevRoot *manifest.Tree) error {
	g, gctx := errgroup.WithContext(ctx)
	var fileWG, compressWG sync.WaitGroup
	for range c.opts.Workers {
		fileWG.Add(1)
		g.Go(func() error { defer fileWG.Done(); return c.fileWorker(gctx) })
	}
	for range runtime.GOMAXPROCS(0) {
		compressWG.Add(1)
		g.Go(func() error { defer compressWG.Done(); return c.compressor(gctx) })
	}
	g.Go(func() error {
		// Answers to offers still on their way may queue chunks for the
		// compressors: their queue closes only once every offer is answered.
		fileWG.Wait()
		if c.offerer != nil {
			c.offerer.WaitOffers()
		}
		close(c.compressJobs)
		return c.firstOfferErr()
	})
	g.Go(func() error { return c.finisher(gctx) })
	c.dirAhead = startDirAhead(c.opts.Root, c.enters)
	defer c.dirAhead.stop()
	if prevRoot != nil && !loadsTreesAhead(c.store) {
		c.trees = startTreeAhead(c.store.LoadTree)
		defer c.trees.stop()
		c.trees.queue(prevRoot)
	}
	if c.linker == nil && c.totals == nil {
		// Only a capture that chunks reads files' data.
		c.dataAhead = startDataAhead()
	}
	g.Go(func() error {
		defer c.dataAhead.stop() // after the last job is queued
		defer close(c.dirs)
		defer close(c.fileJobs)
		return c.walkRoot(gctx, &dirNode{rel: ""}, sel, prevRoot)
	})
	err := g.Wait()
	for job := range c.fileJobs {
		job.ahead.discard()
		job.parent.release() // jobs no worker took (the capture failed)
	}
	if err != nil {
		return err
	}
	compressWG.Wait()
	return nil
}

// commit writes the record of a finished walk. A link set no file ended
// up in, or one of a record that failed to commit, is removed.
func (c *capturer) commit(paths, users []string, parent cas.ID, started time.Time) (*Result, error) {
	opts := c.opts
	rec := &manifest.Record{
		Computer:    opts.Computer,
		Users:       users,
		Created:     started.UTC(),
		ToolVersion: opts.Version,
		SourceRoot:  opts.Root,
		Paths:       paths,
		Rules:       opts.Rules,
		Parent:      parent,
		Tree:        c.rootTree,
		Files:       c.files.Load(),
		Dirs:        c.dirCount.Load(),
		Symlinks:    c.symlinks.Load(),
		Bytes:       c.bytes.Load(),
		NewBytes:    c.progress.NewBytes.Load(),
		StoredBytes: c.progress.Stored.Load(),
		Errors:      c.errors.Load(),
	}
	if c.linker != nil {
		rec.LinkedFiles, rec.ClonedFiles = c.progress.Linked.Load(), c.progress.Cloned.Load()
		if rec.LinkedFiles+rec.ClonedFiles > 0 {
			rec.LinkSet = c.linker.set
		} else {
			c.dropLinks()
		}
	}
	id, err := c.store.CommitRecord(rec)
	if err != nil {
		c.dropLinks()
		return nil, fmt.Errorf("commit record: %w", err)
	}
	return &Result{ID: id, Record: rec}, nil
}

// dropLinks removes this capture's link set, if it made one.
func (c *capturer) dropLinks() {
	if c.linker != nil {
		os.RemoveAll(c.linker.dir)
	}
}

// enters reports whether the walk enters the directory rel, stat'ed as st
// (dirAhead lists only those).
func (c *capturer) enters(rel string, st *unix.Stat_t) bool {
	return c.allowed(rel, true) && !c.skip[devIno{st.Dev, st.Ino}]
}

// allowed applies --user limits and the filter to a path below the root.
func (c *capturer) allowed(rel string, isDir bool) bool {
	if len(c.opts.Users) > 0 {
		parts := strings.SplitN(rel, "/", 3)
		switch {
		case parts[0] == "home" && len(parts) >= 2:
			if !slices.Contains(c.opts.Users, parts[1]) {
				return false
			}
		case parts[0] == "root":
			if !slices.Contains(c.opts.Users, "root") {
				return false
			}
		}
	}
	return !c.opts.Filter.Excluded(rel, isDir)
}

func (c *capturer) report(p Problem) {
	if !p.Warning {
		c.errors.Add(1)
		c.progress.Errors.Add(1)
	}
	c.opts.Report(p)
}
