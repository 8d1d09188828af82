package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"

	"smp/cas"
	"smp/cas/manifest"
)

// Restoring a regular file's contents: the workers, and the chunk reads
// running ahead of each file's writer.

func (r *restorer) worker(ctx context.Context) error {
	var buf []byte
	var objects objectDir
	defer objects.close()
	for batch := range r.jobs {
		for _, job := range batch {
			if ctx.Err() != nil {
				close(job.done)
				job.dir.release()
				continue
			}
			err := job.dir.pin()
			if err == nil {
				buf, err = r.restoreFile(job, buf, &objects)
				job.dir.unpin()
			}
			if err != nil {
				r.fail(job.rel, err)
			}
			close(job.done)
			job.dir.release()
		}
	}
	return ctx.Err()
}

// isZero reports whether b holds only zero bytes (a chunk that becomes a
// hole). Every byte equal to the one before it and the first one zero
// means all are zero: one memequal, and no zero buffer kept in memory.
func isZero(b []byte) bool {
	return len(b) == 0 || b[0] == 0 && bytes.Equal(b[1:], b[:len(b)-1])
}

// holeBlock is the granularity of the holes a restore leaves: every
// aligned block of the file that a chunk fills with zeros is left
// unwritten, whatever the chunk boundaries. They fall where the store's
// gear table puts them (an encrypted store's is keyed), so one chunk often
// holds data and a long run of zeros both.
const holeBlock = 4 << 10

// writeSparse writes data at off of a new file (whose unwritten bytes
// read as zeros), skipping its zero blocks: each run of blocks holding a
// non-zero byte is one write. end is where the last write ended (off when
// nothing was written): the file's size, unless zeros came after it.
func writeSparse(fd int, data []byte, off int64) (end int64, err error) {
	end = off
	run := -1 // start in data of the run of non-zero blocks not yet written
	for i := 0; i < len(data); {
		next := min(len(data), i+holeBlock-int((off+int64(i))%holeBlock))
		switch zero := isZero(data[i:next]); {
		case zero && run >= 0:
			if err := pwriteFull(fd, data[run:i], off+int64(run)); err != nil {
				return end, err
			}
			end, run = off+int64(i), -1
		case !zero && run < 0:
			run = i
		}
		i = next
	}
	if run >= 0 {
		if err := pwriteFull(fd, data[run:], off+int64(run)); err != nil {
			return end, err
		}
		end = off + int64(len(data))
	}
	return end, nil
}

// pwriteFull writes all of b at off of fd.
func pwriteFull(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		n, err := unix.Pwrite(fd, b, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}

func (r *restorer) restoreFile(job *fileJob, buf []byte, objects *objectDir) ([]byte, error) {
	e := job.entry
	dir := job.dir
	if ok, why := r.replaceable(dir, job.name, e); !ok {
		r.skipExisting(job.rel, why)
		return buf, nil
	}
	if job.linkOf != nil {
		<-job.linkOf.done
		if job.linkOf.ok && job.linkOf.dir.pin() == nil {
			tmp := tempName()
			err := unix.Linkat(job.linkOf.dir.fd, job.linkOf.name, dir.fd, tmp, 0)
			job.linkOf.dir.unpin()
			if err == nil {
				if err := unix.Renameat(dir.fd, tmp, dir.fd, job.name); err != nil {
					unix.Unlinkat(dir.fd, tmp, 0)
					return buf, fmt.Errorf("rename hard link into place: %w", err)
				}
				// rename(2) between two names of one inode does nothing
				// and leaves the temporary name (restoring over an earlier
				// restore of a hard-link record).
				unix.Unlinkat(dir.fd, tmp, 0)
				job.ok = true
				r.files.Add(1)
				r.opts.Progress.FilesDone.Add(1)
				return buf, nil
			}
			// Linking can fail (EXDEV after a --map, link limits): copy instead.
		}
	}
	if e.Incomplete {
		return buf, errors.New("the record holds only part of this file (it failed during capture); not restored")
	}
	if e.Link != nil {
		return buf, r.restoreLinked(job, objects)
	}
	tmp := tempName()
	// The file is written through its raw descriptor: an *os.File costs an
	// fcntl(F_GETFL) per file and the poller's bookkeeping, for a
	// descriptor that never blocks.
	fd, err := unix.Openat(dir.fd, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return buf, fmt.Errorf("create: %w", err)
	}
	fail := func(err error) ([]byte, error) {
		unix.Close(fd)
		unix.Unlinkat(dir.fd, tmp, 0)
		return buf, err
	}
	var off, end int64 // bytes restored; end of the last write
	err = r.readChunks(e.Chunks, &buf, func(i int, data []byte) error {
		ch := e.Chunks[i]
		if len(data) != int(ch.Size) {
			return fmt.Errorf("chunk %s is %d bytes, record says %d: %w", ch.ID.Short(), len(data), ch.Size, cas.ErrCorrupt)
		}
		n, err := writeSparse(fd, data, off)
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if n > off {
			end = n
		}
		off += int64(len(data))
		r.opts.Progress.BytesDone.Add(uint64(len(data)))
		return nil
	})
	if err != nil {
		return fail(err)
	}
	if end < off { // zeros at the end were not written: extend over them
		if err := unix.Ftruncate(fd, off); err != nil {
			return fail(fmt.Errorf("set size: %w", err))
		}
	}
	if err := r.setMeta(e, fd); err != nil {
		return fail(err)
	}
	if err := unix.Close(fd); err != nil {
		unix.Unlinkat(dir.fd, tmp, 0)
		return buf, fmt.Errorf("close: %w", err)
	}
	if err := unix.UtimesNanoAt(dir.fd, tmp, timespecs(e.MTimeNs), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		unix.Unlinkat(dir.fd, tmp, 0)
		return buf, fmt.Errorf("set mtime: %w", err)
	}
	if err := unix.Renameat(dir.fd, tmp, dir.fd, job.name); err != nil {
		unix.Unlinkat(dir.fd, tmp, 0)
		return buf, fmt.Errorf("rename into place: %w", err)
	}
	job.ok = true
	r.files.Add(1)
	r.bytes.Add(uint64(off))
	r.opts.Progress.FilesDone.Add(1)
	return buf, nil
}

// done counts a restored file.
func (r *restorer) done(job *fileJob, size uint64) {
	job.ok = true
	r.files.Add(1)
	r.bytes.Add(size)
	r.opts.Progress.FilesDone.Add(1)
	r.opts.Progress.BytesDone.Add(size)
}

// readAhead is how many chunks of one file are read, decompressed and
// verified ahead of the writer, so a single large file uses every core.
var readAhead = runtime.GOMAXPROCS(0) + 1

type chunkResult struct {
	data []byte
	buf  *[]byte
	err  error
}

// readChunks calls write for each chunk in order. Chunks of a multi-chunk
// file are read by up to readAhead goroutines at once; memory stays bounded
// by readAhead chunk buffers per file worker.
func (r *restorer) readChunks(chunks []manifest.Chunk, buf *[]byte, write func(int, []byte) error) error {
	chunkErr := func(i int, err error) error {
		return fmt.Errorf("chunk %d (%s) of %d: %w", i+1, chunks[i].ID.Short(), len(chunks), err)
	}
	if len(chunks) <= 1 {
		for i, ch := range chunks {
			data, err := r.store.ReadChunk(ch.ID, *buf)
			if err != nil {
				return chunkErr(i, err)
			}
			// data may be capped at its own length (the decoder's bound):
			// the buffer keeps the larger capacity.
			if cap(data) > cap(*buf) {
				*buf = data[:0]
			}
			if err := write(i, data); err != nil {
				return err
			}
		}
		return nil
	}
	futures := make(chan chan chunkResult, readAhead)
	stop := make(chan struct{})
	var stopOnce sync.Once
	cancel := func() { stopOnce.Do(func() { close(stop) }) }
	defer cancel()
	go func() {
		defer close(futures)
		for _, ch := range chunks {
			fut := make(chan chunkResult, 1)
			select {
			case futures <- fut:
			case <-stop:
				return
			}
			go func(id cas.ID) {
				b := r.getBuf()
				data, err := r.store.ReadChunk(id, *b)
				fut <- chunkResult{data: data, buf: b, err: err}
			}(ch.ID)
		}
	}()
	i := 0
	var firstErr error
	for fut := range futures {
		res := <-fut
		if firstErr == nil {
			if res.err != nil {
				firstErr = chunkErr(i, res.err)
			} else {
				firstErr = write(i, res.data)
			}
			if firstErr != nil {
				cancel()
			}
		}
		if cap(res.data) > cap(*res.buf) {
			*res.buf = res.data[:0]
		}
		r.bufs.put(res.buf)
		i++
	}
	return firstErr
}

func (r *restorer) getBuf() *[]byte { return r.bufs.get() }

// bufList holds the chunk buffers of readChunks between files. Unlike a
// sync.Pool it is not emptied by a garbage collection, which a restore
// runs often: buffers are reused at the size the largest chunks grew them
// to instead of being allocated (and zeroed, and faulted in) again. At
// most readAhead buffers per worker are out at once, so the list holds no
// more than that.
type bufList struct {
	mu   sync.Mutex
	free []*[]byte
}

func (l *bufList) get() *[]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	if n := len(l.free); n > 0 {
		b := l.free[n-1]
		l.free = l.free[:n-1]
		return b
	}
	b := make([]byte, 0, 1<<20)
	return &b
}

func (l *bufList) put(b *[]byte) {
	l.mu.Lock()
	l.free = append(l.free, b)
	l.mu.Unlock()
}
