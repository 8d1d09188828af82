package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os/user"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"smp/cas"
	"smp/cas/manifest"
)

// metadataEntry is an entry with what st says of the file.
func (c *capturer) metadataEntry(name string, st *unix.Stat_t) manifest.Entry {
	e := manifest.Entry{
		Name: name,
		// The permission, setuid, setgid and sticky bits, as Entry.Mode keeps them.
		Mode:    st.Mode & 0o7777,
		UID:     st.Uid,
		GID:     st.Gid,
		User:    c.names.user(st.Uid),
		Group:   c.names.group(st.Gid),
		MTimeNs: st.Mtim.Nano(),
		CTimeNs: st.Ctim.Nano(),
		Inode:   st.Ino,
	}
	if st.Mode&unix.S_IFMT == unix.S_IFREG {
		e.Size = uint64(st.Size)
	}
	return e
}

func fileKind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	}
	return "special file"
}

// readXattrs reads the extended attributes of name in dir, a store
// directory (abs is its path), not following a symlink.
func readXattrs(dir int, name, abs string) map[string][]byte {
	names, err := listXattrs(dir, name, abs)
	if err != nil || len(names) == 0 {
		return nil // unsupported filesystems and no xattrs look the same
	}
	out := make(map[string][]byte, len(names))
	for _, n := range names {
		if !utf8.ValidString(n) {
			continue // not representable in a tree; such names do not occur in practice
		}
		if v, err := xattr.LGet(abs, n); err == nil {
			out[n] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// nameCache maps uids and gids to names once per capture.
type nameCache struct {
	mu     sync.Mutex
	users  map[uint32]string
	groups map[uint32]string
}

func (n *nameCache) user(id uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.users[id]; ok {
		return s
	}
	s := ""
	if u, err := user.LookupId(strconv.FormatUint(uint64(id), 10)); err == nil && utf8.ValidString(u.Username) {
		s = u.Username
	}
	n.users[id] = s
	return s
}

func (n *nameCache) group(id uint32) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s, ok := n.groups[id]; ok {
		return s
	}
	s := ""
	if g, err := user.LookupGroupId(strconv.FormatUint(uint64(id), 10)); err == nil && utf8.ValidString(g.Name) {
		s = g.Name
	}
	n.groups[id] = s
	return s
}

// maxAttempts bounds how often a file that changes while being read is
// read again before it is reported instead of stored torn.
const maxAttempts = 3

// racyWindow is how recent a file's ctime may be, at the end of a read,
// for the read to count as possibly torn. The kernel stamps writes with
// its coarse clock, which advances one tick (1 to 10 ms) at a time, so a
// write during the read can leave the ctime equal to the one seen before
// it; a ctime older than the read's start by more than a tick proves no
// write happened during the read. A possibly torn read is tried again
// once the file has been quiet for the window.
const racyWindow = 20 * time.Millisecond

// chunking is a file worker's chunker and its small buffer (see
// chunkbuf.go), made on first use: a hard-link capture, or one of
// unchanged files, never needs them.
type chunking struct {
	chunker *cas.Chunker
	small   []byte
}

func (c *capturer) fileWorker(ctx context.Context) error {
	var w chunking
	for job := range c.fileJobs {
		if c.totals != nil {
			c.countFile(job)
			job.dir.pending.Done()
			job.parent.release()
			continue
		}
		if err := c.captureFile(ctx, &w, job); err != nil {
			// The capture fails with err; the directory must not meanwhile
			// fail to encode an entry left half-filled, or that error could
			// be reported instead of this one.
			job.failed = true
			job.dir.drop[job.slot] = true
			if job.first != nil {
				job.first.publish(job)
			}
			job.ahead.discard()
			job.dir.pending.Done()
			job.parent.release()
			return err
		}
		if job.failed {
			job.dir.drop[job.slot] = true
		} else {
			c.files.Add(1)
			c.bytes.Add(job.entry.Size)
		}
		c.progress.FilesDone.Add(1)
		if job.first != nil {
			job.first.publish(job)
		}
		job.ahead.discard()
		job.dir.pending.Done()
		job.parent.release()
	}
	return nil
}

// captureFile fills job.entry.Chunks. Problems with the file itself are
// reported and mark the job failed; only store errors are returned.
func (c *capturer) captureFile(ctx context.Context, w *chunking, job *fileJob) error {
	e := job.entry
	if job.unstatted {
		linked, err := c.linkUnstatted(job)
		if linked || job.failed || err != nil {
			return err
		}
	}
	if first := job.linkOf; first != nil {
		select {
		case <-first.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		// The walk stat'ed this name as the inode first's worker opened:
		// its contents and xattrs are this name's.
		if !first.failed && first.size == e.Size && first.mtimeNs == e.MTimeNs {
			e.Chunks, e.Link, e.Xattrs = first.chunks, first.link, first.xattrs
			c.countLinkPath(e.Link)
			if first.unchanged {
				c.progress.Unchanged.Add(1)
			}
			c.progress.BytesDone.Add(e.Size)
			return nil
		}
	}
	// Unchanged since the parent record by the walk's stat of the name:
	// nothing of the file is read, and its xattrs are the parent's (a
	// change to them would have changed the ctime).
	if c.linker == nil && !job.unstatted && c.reuseUnchanged(job) {
		e.Xattrs = job.prev.Xattrs
		return nil
	}
	fd, err := c.openFile(job)
	if err != nil {
		// Gone since the directory was listed: not an error for a name the
		// walk did not stat, as in the walk.
		if !job.unstatted || !errors.Is(err, fs.ErrNotExist) {
			c.report(Problem{Path: job.abs, Err: err})
		}
		job.failed = true
		return nil
	}
	defer unix.Close(fd)
	if c.linker != nil {
		link, err := c.linker.place(job, fd)
		if err != nil {
			c.report(Problem{Path: job.abs, Err: err})
			job.failed = true
			return nil
		}
		if link != nil {
			e.Link = link
			c.countLinkPath(link)
			c.progress.BytesDone.Add(e.Size)
			return nil
		}
		if c.opts.Hardlink == HardlinkAlways {
			return fmt.Errorf("%s: %w (store on another filesystem, or link limit reached); use --hardlink auto to chunk such files", job.abs, ErrLinkImpossible)
		}
		c.countLinkPath(nil)
	}
	if c.reuseUnchanged(job) {
		return nil
	}
	var lastErr error
	for range maxAttempts {
		if err := ctx.Err(); err != nil {
			return err
		}
		changed, err := c.readFile(ctx, w, job, fd)
		if err != nil {
			var se storeError
			if errors.As(err, &se) {
				return se.err
			}
			if errors.Is(err, context.Canceled) {
				return err
			}
			c.report(Problem{Path: job.abs, Err: err})
			job.failed = true
			return nil
		}
		if !changed {
			c.progress.BytesDone.Add(e.Size)
			return nil
		}
		lastErr = fmt.Errorf("file changed while being read (tried %d times); capture it again when it is not in use", maxAttempts)
		select {
		case <-time.After(racyWindow):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	c.report(Problem{Path: job.abs, Err: lastErr})
	job.failed = true
	return nil
}

// reuseUnchanged reuses the parent record's chunks for a file whose entry
// (stat) is the parent's.
func (c *capturer) reuseUnchanged(job *fileJob) bool {
	if !c.sameAsParent(job) {
		return false
	}
	e, p := job.entry, job.prev
	e.Chunks = p.Chunks
	job.unchanged = true
	c.progress.Unchanged.Add(1)
	c.progress.BytesDone.Add(e.Size)
	return true
}

// sameAsParent reports whether the file's entry (the walk's stat) is its
// entry in the parent record, whose chunks the store still holds: then
// nothing of it is read.
func (c *capturer) sameAsParent(job *fileJob) bool {
	return statUnchanged(job) && c.chunksPresent(job.prev.Chunks)
}

// statUnchanged reports whether the file's entry (the walk's stat) is its
// entry in the parent record.
func statUnchanged(job *fileJob) bool {
	e, p := job.entry, job.prev
	return p != nil && p.Type == manifest.TypeFile && !p.Incomplete && p.Link == nil &&
		p.Size == e.Size && p.MTimeNs == e.MTimeNs && p.CTimeNs == e.CTimeNs && p.Inode == e.Inode
}

// openFile opens the job's file by name in its parent directory and fills
// the entry from the descriptor: its stat and its xattrs. The file must be
// a regular file and, when the walk stat'ed it, the very inode the walk
// saw; otherwise it changed during capture and nothing of it is kept (the
// walk's stat of one inode never goes with another's contents).
func (c *capturer) openFile(job *fileJob) (int, error) {
	e := job.entry
	var st unix.Stat_t
	fd, ok := job.ahead.take(&st)
	if !ok {
		if testHookOpen != nil {
			testHookOpen(job.abs)
		}
		var err error
		if fd, err = openFileAt(job.parent.fd, job.name); err != nil {
			return -1, openErr("open", job.abs, err)
		}
		if err := fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, &fs.PathError{Op: "fstat", Path: job.abs, Err: err}
		}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		unix.Close(fd)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return -1, changedErr("a directory now")
		}
		return -1, changedErr("a %s now", fileKind(st.Mode))
	case !job.unstatted && (st.Dev != job.dev || st.Ino != e.Inode):
		unix.Close(fd)
		return -1, changedErr("another file now")
	}
	if job.unstatted {
		c.progress.BytesSeen.Add(uint64(st.Size))
	}
	hardLink := e.HardLink
	*e = c.metadataEntry(e.Name, &st)
	e.Type, e.HardLink = manifest.TypeFile, hardLink
	e.Xattrs = fdXattrs(fd)
	job.dev = st.Dev
	return fd, nil
}

// linkUnstatted links a file the walker only listed (see linker.linkByName)
// and fills its entry from the link's stat. When the file cannot be linked,
// linked is false: the caller goes on as for any file, opening it (fallback
// to chunking, or the error of --hardlink always).
func (c *capturer) linkUnstatted(job *fileJob) (linked bool, err error) {
	e := job.entry
	if testHookOpen != nil {
		testHookOpen(job.abs)
	}
	var st unix.Stat_t
	link, xattrs, err := c.linker.linkByName(job.parent.fd, job.name, &st)
	if err != nil {
		// Gone since the directory was listed: not an error, as in the walk.
		if !errors.Is(err, fs.ErrNotExist) {
			c.report(Problem{Path: job.abs, Err: err})
		}
		job.failed = true
		return false, nil
	}
	if link == nil {
		return false, nil
	}
	*e = c.metadataEntry(e.Name, &st)
	e.Xattrs = xattrs
	// st.Nlink counts the store's new link: more than one other name
	// may be another name in the tree (restore links those together;
	// a name outside it, such as an earlier record's link, is harmless).
	if st.Nlink > 2 {
		e.HardLink = strconv.FormatUint(st.Dev, 10) + ":" + strconv.FormatUint(st.Ino, 10)
	}
	e.Link = link
	e.Type = manifest.TypeFile
	c.progress.BytesSeen.Add(e.Size)
	c.countLinkPath(link)
	c.progress.BytesDone.Add(e.Size)
	return true, nil
}

// chunksPresent reports whether the store still holds the parent
// record's chunks of an unchanged file: a store that holds every chunk of
// its records through the capture is not asked (a lookup per chunk on a
// cold index is table seeks an unchanged file does not need).
func (c *capturer) chunksPresent(chunks []manifest.Chunk) bool {
	if c.parentHeld != nil && c.parentHeld() {
		return true
	}
	for _, ch := range chunks {
		if ok, err := c.store.Has(cas.BlobData, ch.ID); err != nil || !ok {
			return false
		}
	}
	return true
}

// storeError marks an error of the store (fatal) apart from an error of the
// file being read (reported and skipped).
type storeError struct{ err error }

func (s storeError) Error() string { return s.err.Error() }

// readFile chunks the file open as fd once, from its start. changed is
// true when its size or mtime differ after the read from before it: the
// read may be torn.
func (c *capturer) readFile(ctx context.Context, w *chunking, job *fileJob, fd int) (changed bool, err error) {
	e := job.entry
	start := time.Now()
	var before unix.Stat_t
	if err := fstat(fd, &before); err != nil {
		return false, err
	}
	// The same inode (the descriptor's): written since it was opened, or
	// since the last attempt, it is read as it is now.
	e.Size, e.MTimeNs, e.CTimeNs = uint64(before.Size), before.Mtim.Nano(), before.Ctim.Nano()
	lent, err := c.startChunking(ctx, w, &fdReader{fd: fd}, before.Size)
	if err != nil {
		return false, err
	}
	if lent != nil {
		defer lent.release()
	}
	e.Chunks = e.Chunks[:0]
	var total uint64
	for {
		chunk, err := w.chunker.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err() // the refill hook's
			}
			return false, fmt.Errorf("read: %w", err)
		}
		total += uint64(len(chunk))
		id := c.store.Sum(chunk)
		if c.offerer != nil {
			if err := c.offer(ctx, id, chunk); err != nil {
				return false, err
			}
			e.Chunks = append(e.Chunks, manifest.Chunk{ID: id, Size: uint32(len(chunk))})
			continue
		}
		var isNew bool
		if c.prover != nil {
			isNew, err = c.prover.ReserveData(cas.BlobData, id, chunk)
		} else {
			isNew, err = c.store.Reserve(cas.BlobData, id)
		}
		if err != nil {
			return false, storeError{fmt.Errorf("store lookup: %w", err)}
		}
		if isNew {
			if err := c.queueChunk(ctx, id, chunk, lent); err != nil {
				return false, err
			}
			c.progress.NewBytes.Add(uint64(len(chunk)))
		}
		e.Chunks = append(e.Chunks, manifest.Chunk{ID: id, Size: uint32(len(chunk))})
	}
	var after unix.Stat_t
	if err := fstat(fd, &after); err != nil {
		return false, err
	}
	if total != uint64(after.Size) || after.Mtim.Nano() != e.MTimeNs || uint64(after.Size) != e.Size ||
		after.Ctim.Nano() > start.Add(-racyWindow).UnixNano() {
		return true, nil
	}
	e.CTimeNs = after.Ctim.Nano()
	return false, nil
}

// startChunking points w's chunker at r, a file of size bytes: in w's small
// buffer when the file is shorter than it, else in a full buffer lent
// (returned: the caller releases it when done with the file). A chunk in a
// lent buffer may go to a compressor without a copy: the chunker waits for
// the compressors before it overwrites one (see chunkbuf.go).
func (c *capturer) startChunking(ctx context.Context, w *chunking, r io.Reader, size int64) (*chunkBuf, error) {
	if w.chunker == nil {
		w.chunker = cas.NewChunkerBuffer(nil, c.params, nil)
	}
	if size < int64(c.params.Min) {
		if w.small == nil {
			w.small = make([]byte, c.params.Min)
		}
		w.chunker.ResetBuffer(r, w.small)
		w.chunker.OnRefill(nil)
		return nil, nil
	}
	lent, err := c.chunkBufs.get(ctx, c.params.BufferSize())
	if err != nil {
		return nil, err
	}
	w.chunker.ResetBuffer(r, lent.b)
	w.chunker.OnRefill(func() error { return lent.waitChunks(ctx) })
	return lent, nil
}

// queueChunk hands a new chunk to the compressors: the chunk itself when
// it is in lent, a buffer lent for the file, else a copy.
func (c *capturer) queueChunk(ctx context.Context, id cas.ID, chunk []byte, lent *chunkBuf) error {
	job := compressJob{id: id, plain: chunk, lent: lent}
	if lent != nil {
		lent.hold()
	} else {
		job.copied = c.getBuf(len(chunk))
		copy(*job.copied, chunk)
		job.plain = *job.copied
	}
	select {
	case c.compressJobs <- job:
		return nil
	case <-ctx.Done():
		c.done(job)
		return ctx.Err()
	}
}

// offer hands a copy of chunk to the offering store, whose answer queues
// it for a compressor when the store needs it. The file worker does not
// wait for the answer: many offers travel in one round trip.
func (c *capturer) offer(ctx context.Context, id cas.ID, chunk []byte) error {
	if err := c.offerFailure(); err != nil {
		return err
	}
	buf := c.getBuf(len(chunk))
	copy(*buf, chunk)
	n := len(chunk)
	c.offerer.OfferData(cas.BlobData, id, *buf, func(need bool, err error) {
		if err != nil || !need {
			c.putBuf(buf)
			if err != nil {
				c.offerErr.CompareAndSwap(nil, &err)
			}
			return
		}
		c.progress.NewBytes.Add(uint64(n))
		select {
		case c.compressJobs <- compressJob{id: id, plain: *buf, copied: buf}:
		case <-ctx.Done():
			c.putBuf(buf)
		}
	})
	return nil
}

// offerFailure is the first error an offer was answered with, as a store
// error (it ends the capture).
func (c *capturer) offerFailure() error {
	if err := c.firstOfferErr(); err != nil {
		return storeError{err}
	}
	return nil
}

func (c *capturer) firstOfferErr() error {
	if p := c.offerErr.Load(); p != nil {
		return fmt.Errorf("store lookup: %w", *p)
	}
	return nil
}

// minBufClass is the smallest pooled chunk copy, 4 KiB (1<<12), about a
// profile's median file: an offering store holds thousands of copies
// while their offers travel, so a small chunk's copy must stay small.
const minBufClass = 12

// bufClass is the pool of a chunk copy of n bytes. Above 4 KiB each
// doubling of size has four pools, 1.25, 1.5, 1.75 and 2 times its start,
// so a copy is at most a quarter larger than its chunk, where pools of
// powers of two would hold chunks waiting for a compressor in buffers up
// to twice their size. A small file's chunk costs little more than its size, not the
// store's maximum chunk size (4 MiB by default).
func bufClass(n int) int {
	if n <= 1<<minBufClass {
		return 0
	}
	g := bits.Len(uint(n-1)) - 1 - minBufClass // 1<<(minBufClass+g) < n <= twice that
	step := 1 << (minBufClass + g - 2)
	q := (n - 1<<(minBufClass+g) + step - 1) / step // 1 to 4
	return 4*g + q
}

// bufClassSize is the capacity of the copies in pool k: the largest n
// with bufClass(n) == k.
func bufClassSize(k int) int {
	if k == 0 {
		return 1 << minBufClass
	}
	g, q := (k-1)/4, (k-1)%4+1
	return 1<<(minBufClass+g) + q<<(minBufClass+g-2)
}

func (c *capturer) getBuf(n int) *[]byte {
	k := bufClass(n)
	if v := c.bufPools[k].Get(); v != nil {
		b := v.(*[]byte)
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, bufClassSize(k))
	return &b
}

func (c *capturer) putBuf(b *[]byte) { c.bufPools[bufClass(cap(*b))].Put(b) }

func (c *capturer) compressor(ctx context.Context) error {
	var dst []byte
	for job := range c.compressJobs {
		plain := job.plain
		stored, comp := cas.CompressLevel(dst, plain, c.opts.Compression)
		if comp == cas.CompressionZstd {
			dst = stored[:0]
		}
		err := c.store.AddBlob(cas.BlobData, job.id, comp, stored, len(plain))
		c.done(job)
		if err != nil {
			return fmt.Errorf("store chunk: %w", err)
		}
		c.progress.Stored.Add(uint64(len(stored)))
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// finisher writes each directory's tree once its files and subdirectories
// are done. Directories arrive in post-order.
func (c *capturer) finisher(ctx context.Context) error {
	for node := range c.dirs {
		waited := make(chan struct{})
		go func() { node.pending.Wait(); close(waited) }()
		select {
		case <-waited:
		case <-ctx.Done():
			return ctx.Err()
		}
		// Dropped entries are removed in place: the directory's entries are
		// not needed after its tree is stored, and a copy would double the
		// memory of a wide directory.
		tree := &manifest.Tree{Entries: node.entries[:0]}
		for i := range node.entries {
			if !node.drop[i] {
				tree.Entries = append(tree.Entries, node.entries[i])
			}
		}
		var id cas.ID
		if c.totals == nil {
			var err error
			if id, err = c.store.PutTree(tree); err != nil {
				return fmt.Errorf("store tree %s: %w", node.rel, err)
			}
		}
		node.entries, node.drop = nil, nil // free the directory's memory
		c.dirEntries.Release(node.queued)
		if node.parent == nil {
			c.rootTree = id // the root is the record itself, not one of its directories
			continue
		}
		c.dirCount.Add(1)
		node.parent.entries[node.slot].Subtree = id
		node.parent.pending.Done()
	}
	return nil
}

// countLinkPath counts which path a file took in hard-link mode.
func (c *capturer) countLinkPath(link *manifest.Link) {
	switch {
	case c.linker == nil:
	case link == nil:
		c.progress.LinkFallback.Add(1)
	case link.Method == manifest.LinkClone:
		c.progress.Cloned.Add(1)
	default:
		c.progress.Linked.Add(1)
	}
}
