package capture

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"smp/cas"
	"smp/cas/manifest"
)

// Hard-link modes for Options.Hardlink.
const (
	HardlinkNever  = "never"
	HardlinkAuto   = "auto"
	HardlinkAlways = "always"
)

// ErrLinkImpossible is returned in --hardlink always mode when a file can be
// neither cloned nor hard-linked into the store.
var ErrLinkImpossible = errors.New("cannot hard-link or clone into the store")

// linker places files into links/<set>/ by clone or hard link, reading no
// file contents (unless dedupe asks for hashes). Objects are numbered, 1000
// per bucket directory, so no directory grows without bound and user file
// names never need to be valid in the store.
type linker struct {
	dir     string // links/<set>
	set     string
	dedupe  bool
	hash    func([]byte) cas.ID
	storeFS uint64 // st_dev of the links directory
	n       atomic.Uint64
	noClone atomic.Bool // the filesystem refused FICLONE once: stop trying

	bucketMu sync.Mutex
	buckets  map[uint64]bool

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
	return &linker{dir: dir, set: set, dedupe: dedupe, hash: hash, storeFS: st.Dev,
		buckets: map[uint64]bool{}, byHash: map[cas.ID]*manifest.Link{}}, nil
}

// linkable reports whether a link can possibly work: same filesystem.
func (l *linker) sameFS(dev uint64) bool { return dev == l.storeFS }

// place makes a store object for the file at abs (whose lstat the entry
// holds) and returns its Link. A nil Link with nil error means "cannot link
// this one": the caller falls back to chunking (auto) or fails (always).
func (l *linker) place(abs string, e *manifest.Entry, dev uint64) (*manifest.Link, error) {
	if !l.sameFS(dev) {
		return nil, nil
	}
	var hash cas.ID
	if l.dedupe {
		h, err := hashFile(abs, l.hash)
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
	n := l.n.Add(1)
	bucket := n / 1000
	if err := l.ensureBucket(bucket); err != nil {
		return nil, err
	}
	rel := l.set + "/" + strconv.FormatUint(bucket, 10) + "/" + strconv.FormatUint(n, 10)
	obj := filepath.Join(l.dir, strconv.FormatUint(bucket, 10), strconv.FormatUint(n, 10))
	method := ""
	if !l.noClone.Load() {
		switch err := cloneFile(abs, obj, e); {
		case err == nil:
			method = manifest.LinkClone
		case errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY):
			l.noClone.Store(true)
		default:
			return nil, fmt.Errorf("clone into store: %w", err)
		}
	}
	if method == "" {
		err := os.Link(abs, obj)
		switch {
		case err == nil:
			method = manifest.LinkHard
		case errors.Is(err, unix.EXDEV) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EMLINK):
			return nil, nil
		default:
			return nil, fmt.Errorf("link into store: %w", err)
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(obj, &st); err != nil {
		return nil, fmt.Errorf("stat store object: %w", err)
	}
	if method == manifest.LinkHard && (st.Ino != e.Inode || uint64(st.Size) != e.Size || st.Mtim.Nano() != e.MTimeNs) {
		// Replaced or written between the walk and the link: link the new
		// state, as a chunked capture would read it.
		e.Inode, e.Size, e.MTimeNs = st.Ino, uint64(st.Size), st.Mtim.Nano()
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

func (l *linker) ensureBucket(b uint64) error {
	l.bucketMu.Lock()
	defer l.bucketMu.Unlock()
	if l.buckets[b] {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(l.dir, strconv.FormatUint(b, 10)), 0o700); err != nil {
		return fmt.Errorf("create link bucket: %w", err)
	}
	l.buckets[b] = true
	return nil
}

// cloneFile makes obj a copy-on-write clone of src (FICLONE), with src's
// mtime, so a later change to either cannot reach the other.
func cloneFile(src, obj string, e *manifest.Entry) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(obj, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = unix.IoctlFileClone(int(out.Fd()), int(in.Fd()))
	if err == nil {
		ts := []unix.Timespec{unix.NsecToTimespec(e.MTimeNs), unix.NsecToTimespec(e.MTimeNs)}
		err = unix.UtimesNanoAt(unix.AT_FDCWD, obj, ts, 0)
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(obj)
	}
	return err
}

// hashFile returns the whole-file ID of abs (cas.SumStream).
func hashFile(abs string, sum func([]byte) cas.ID) (cas.ID, error) {
	f, err := os.OpenFile(abs, os.O_RDONLY|syscall.O_NOATIME, 0)
	if errors.Is(err, os.ErrPermission) {
		f, err = os.Open(abs)
	}
	if err != nil {
		return cas.ID{}, err
	}
	defer f.Close()
	return cas.SumStream(f, sum)
}
