package capture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"smp/cas"
	"smp/cas/manifest"
)

// linker places files into links/<set>/ by clone or hard link, reading no
// file contents (unless dedupe asks for hashes). Objects are numbered, at
// most 1000 per bucket directory (see bucketOf), so no directory grows
// without bound and user file names never need to be valid in the store.
type linker struct {
	dir     string // links/<set>
	set     string
	dedupe  bool
	hash    func([]byte) cas.ID
	storeFS uint64 // st_dev of the links directory
	n       atomic.Uint64
	noClone atomic.Bool // the filesystem refused FICLONE once: stop trying

	bucketMu sync.Mutex
	buckets  map[uint64]*bucketDir // open bucket directories: links are made relative to them
	newest   uint64                // the newest bucket generation opened

	hashMu sync.Mutex
	byHash map[cas.ID]*manifest.Link
}

func newLinker(linkRoot, set string, dedupe bool, hash func([]byte) cas.ID) (*linker, error) {
	dir := filepath.Join(linkRoot, set)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create link directory: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("stat link directory: %w", err)
	}
	l := &linker{dir: dir, set: set, dedupe: dedupe, hash: hash, storeFS: st.Dev,
		buckets: map[uint64]*bucketDir{}, byHash: map[cas.ID]*manifest.Link{}}
	if !cloneSupported(dir) {
		l.noClone.Store(true)
	}
	return l, nil
}

// cloneSupported reports whether the filesystem of dir makes FICLONE
// copies, by cloning a small file there.
func cloneSupported(dir string) bool {
	src := filepath.Join(dir, ".clone-probe")
	defer os.Remove(src)
	defer os.Remove(filepath.Join(dir, ".clone-probe-copy"))
	if err := os.WriteFile(src, make([]byte, 4096), 0o600); err != nil {
		return false
	}
	in, err := unix.Open(src, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(in)
	d, err := openDir(dir)
	if err != nil {
		return false
	}
	defer unix.Close(d)
	return cloneFile(in, d, ".clone-probe-copy", 0) == nil
}

// close closes the bucket directories.
func (l *linker) close() {
	l.bucketMu.Lock()
	defer l.bucketMu.Unlock()
	for b, d := range l.buckets {
		unix.Close(d.fd)
		delete(l.buckets, b)
	}
}

// linkable reports whether a link can possibly work: same filesystem.
func (l *linker) sameFS(dev uint64) bool { return dev == l.storeFS }

// place makes a store object for the job's file, open as fd (whose fstat
// the entry holds), and returns its Link. A nil Link with nil error means
// "cannot link this one": the caller falls back to chunking (auto) or fails
// (always). A hard link is made by name, in the file's directory: it is
// kept only if it is the inode open as fd, else the file changed during
// capture.
func (l *linker) place(job *fileJob, fd int) (*manifest.Link, error) {
	e := job.entry
	if !l.sameFS(job.dev) {
		return nil, nil
	}
	var hash cas.ID
	if l.dedupe {
		h, err := cas.SumStream(&fdReader{fd: fd}, l.hash)
		if err != nil {
			return nil, err
		}
		hash = h
		l.hashMu.Lock()
		prev := l.byHash[hash]
		l.hashMu.Unlock()
		if prev != nil {
			link := *prev
			return &link, nil
		}
	}
	n, bucket, bfd, err := l.next()
	if err != nil {
		return nil, err
	}
	defer l.release(bucket)
	name := strconv.FormatUint(n, 10)
	rel := l.set + "/" + strconv.FormatUint(bucket, 10) + "/" + name
	method := ""
	if !l.noClone.Load() {
		switch err := cloneFile(fd, bfd, name, e.MTimeNs); {
		case err == nil:
			method = manifest.LinkClone
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY):
			l.noClone.Store(true)
		default:
			return nil, fmt.Errorf("clone into store: %w", err)
		}
	}
	if method == "" {
		if linked, err := linkObject(job.parent.fd, job.name, bfd, name, rel); !linked {
			return nil, err
		}
		method = manifest.LinkHard
	}
	var st unix.Stat_t
	if err := unix.Fstatat(bfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, fmt.Errorf("stat store object: %w", err)
	}
	if method == manifest.LinkHard {
		if st.Dev != job.dev || st.Ino != e.Inode {
			unix.Unlinkat(bfd, name, 0)
			return nil, changedErr("another file now")
		}
		// The inode open as fd: its stat now, after the link.
		e.Mode, e.UID, e.GID = st.Mode&0o7777, st.Uid, st.Gid
		e.Size, e.MTimeNs = uint64(st.Size), st.Mtim.Nano()
	}
	e.CTimeNs = st.Ctim.Nano()
	link := &manifest.Link{Method: method, Object: rel, CTimeNs: st.Ctim.Nano(), Nlink: uint64(st.Nlink), Hash: hash}
	if l.dedupe {
		l.hashMu.Lock()
		l.byHash[hash] = link
		l.hashMu.Unlock()
	}
	return link, nil
}

// linkByName hard-links the file name in the directory open as dir into the
// store before anything is known of it but its name, and fills st with the
// stat of the store object: the very inode linked, so its metadata is the
// file's as captured, and the ctime the link itself set (which restore
// checks). That is one stat where the walker and the linker made one each,
// on a capture where the stats and the link are nearly all the work. xattrs
// are read from the object too. A nil Link with nil error means the file
// cannot be linked here (another filesystem, EPERM, link limit); a file gone
// since the listing gives an fs.ErrNotExist error; anything but a regular
// file (a symlink is linked as itself, never followed) is unlinked again and
// reported as changed.
func (l *linker) linkByName(dir int, file string, st *unix.Stat_t) (*manifest.Link, map[string][]byte, error) {
	n, bucket, fd, err := l.next()
	if err != nil {
		return nil, nil, err
	}
	defer l.release(bucket)
	name := strconv.FormatUint(n, 10)
	rel := l.set + "/" + strconv.FormatUint(bucket, 10) + "/" + name
	if linked, err := linkObject(dir, file, fd, name, rel); !linked {
		return nil, nil, err
	}
	if err := unix.Fstatat(fd, name, st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		unix.Unlinkat(fd, name, 0)
		return nil, nil, fmt.Errorf("stat store object: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Unlinkat(fd, name, 0)
		return nil, nil, changedErr("is no longer a regular file")
	}
	xattrs := readXattrs(fd, name, filepath.Join(l.dir, strconv.FormatUint(bucket, 10), name))
	return &manifest.Link{Method: manifest.LinkHard, Object: rel, CTimeNs: st.Ctim.Nano(), Nlink: uint64(st.Nlink)}, xattrs, nil
}

// linkObject hard-links file, a name in the directory open as dir, as name
// in the bucket directory open as fd (rel names the object in errors),
// without following a symlink. linked is false with a nil error when no
// link can work: another filesystem, EPERM, the link limit.
func linkObject(dir int, file string, fd int, name, rel string) (linked bool, err error) {
	switch err := unix.Linkat(dir, file, fd, name, 0); {
	case err == nil:
		return true, nil
	case errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EMLINK):
		return false, nil
	default:
		return false, &os.LinkError{Op: "link into store", Old: file, New: rel, Err: err}
	}
}

// next numbers a new store object and returns its bucket directory, open
// until release(bucket).
func (l *linker) next() (n, bucket uint64, fd int, err error) {
	n = l.n.Add(1)
	bucket = bucketOf(n)
	fd, err = l.acquire(bucket)
	return n, bucket, fd, err
}

// linkLanes is how many bucket directories consecutive objects are spread
// over. Making a name takes the directory's lock: with every worker
// linking into one bucket, they queued on it (and spun: an eighth of a
// hard-link capture's CPU).
const linkLanes = 16

// bucketOf is object n's bucket: lane n % linkLanes of generation
// n / (1000 * linkLanes), so a bucket still holds at most 1000 objects.
func bucketOf(n uint64) uint64 {
	return n/(1000*linkLanes)*linkLanes + n%linkLanes
}

// bucketDir is an open bucket directory and how many links are being made
// in it.
type bucketDir struct{ fd, users int }

// acquire returns bucket b's directory, created and opened on first use.
func (l *linker) acquire(b uint64) (int, error) {
	l.bucketMu.Lock()
	defer l.bucketMu.Unlock()
	if d, ok := l.buckets[b]; ok {
		d.users++
		return d.fd, nil
	}
	dir := filepath.Join(l.dir, strconv.FormatUint(b, 10))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return -1, fmt.Errorf("create link bucket: %w", err)
	}
	fd, err := openDir(dir)
	if err != nil {
		return -1, fmt.Errorf("open link bucket: %w", err)
	}
	l.buckets[b] = &bucketDir{fd: fd, users: 1}
	l.newest = max(l.newest, b/linkLanes)
	return fd, nil
}

// release ends a use of bucket b. Objects are numbered in order, so a
// bucket of an older generation no one is using is done with: close it,
// rather than hold a descriptor per thousand files.
func (l *linker) release(b uint64) {
	l.bucketMu.Lock()
	defer l.bucketMu.Unlock()
	d := l.buckets[b]
	if d.users--; d.users == 0 && b/linkLanes < l.newest {
		unix.Close(d.fd)
		delete(l.buckets, b)
	}
}

// cloneFile makes name in the directory open as dir a copy-on-write clone
// (FICLONE) of the file open as src, with mtime, so a later change to
// either cannot reach the other.
func cloneFile(src, dir int, name string, mtimeNs int64) error {
	out, err := unix.Openat(dir, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	err = unix.IoctlFileClone(out, src)
	if err == nil {
		ts := []unix.Timespec{unix.NsecToTimespec(mtimeNs), unix.NsecToTimespec(mtimeNs)}
		err = unix.UtimesNanoAt(dir, name, ts, unix.AT_SYMLINK_NOFOLLOW)
	}
	if cerr := unix.Close(out); err == nil {
		err = cerr
	}
	if err != nil {
		unix.Unlinkat(dir, name, 0)
	}
	return err
}
