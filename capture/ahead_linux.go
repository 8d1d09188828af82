package capture

import (
	"path"
	"slices"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// On a cold page cache the walk and the file reads wait on the disk one
// request at a time: the walker lists a directory, stats its names and
// descends, each a read the next one waits for, and each file worker reads
// its file before it can hash it. The disk serves many requests at once,
// so two helpers keep it busy ahead of them. The listing only warms the
// caches: the walker lists and stats through its own descriptors. A file
// opened ahead is opened exactly as its worker would open it, and the
// worker takes that descriptor and its fstat as its own.
//
//   - dirAhead lists and stats directories ahead of the walker, several
//     at once, in the walker's own order (depth first, by name), at most
//     dirAheadLead directories ahead of it.
//   - dataAhead opens each file queued for a worker as the walker queues
//     it and asks the kernel to read its start (posix_fadvise WILLNEED),
//     so its data is on its way while the workers chunk the files before
//     it; the worker reads it through that descriptor.

const (
	// dirAheadWorkers directories are listed at once ahead of the walker.
	dirAheadWorkers = 4
	// dirAheadLead bounds how far the listing runs ahead (in
	// directories), so that what it caches is still cached when the walker
	// gets there.
	dirAheadLead = 512
	// dirAheadQueue bounds the directories waiting to be listed ahead;
	// beyond it the walker lists them alone.
	dirAheadQueue = 1 << 14

	// fileJobQueue bounds the files queued for the workers, and so how far
	// ahead of them their data is asked for: deep enough that a file's
	// data has arrived when its worker gets to it on a cold cache, and
	// each queued file holds at most its directory and itself open.
	fileJobQueue = 256
	// dataAheadWorkers files are opened at once to be read ahead: the
	// open of a file whose inode is not cached waits on the disk.
	dataAheadWorkers = 8
	// dataAheadQueue bounds the files waiting to be read ahead (each holds
	// its directory open); beyond it a file is read when its worker gets
	// to it.
	dataAheadQueue = fileJobQueue
	// dataAheadSpan is how much of a file's start is read ahead: its
	// worker's first read of a large file, whose rest fdReader asks for as
	// it goes. With at most fileJobs' buffer plus dataAheadQueue files
	// ahead, the page cache they fill stays bounded.
	dataAheadSpan = 4 << 20
	// readAheadMin: fdReader asks for the next window of a file only
	// after reads of at least this much (a large file's).
	readAheadMin = 256 << 10
)

// testHookAhead, when set, runs for each directory dirAhead opened.
var testHookAhead func(rel string)

// dirAhead lists directories below the source root ahead of the walker.
// It opens them by their path below the root with openat2's
// RESOLVE_BENEATH and RESOLVE_NO_SYMLINKS (no symlink, no ".." out of the
// root), reads their names and lstats them; the directories it finds are
// listed next, first by name first, as the walker will.
type dirAhead struct {
	root    int // the source root, O_PATH
	allowed func(rel string, st *unix.Stat_t) bool

	mu      sync.Mutex
	cond    sync.Cond
	stack   []string // directories to list, the next one last
	listed  int      // directories listed (or being listed)
	walked  int      // directories the walker listed
	stopped bool
	wg      sync.WaitGroup
}

// startDirAhead starts listing ahead below root; allowed says whether the
// walker will enter a directory. It returns nil where paths cannot be
// resolved without symlinks (no openat2): the walker then reads alone.
func startDirAhead(root string, allowed func(rel string, st *unix.Stat_t) bool) *dirAhead {
	if noOpenat2.Load() {
		return nil
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil
	}
	d := &dirAhead{root: fd, allowed: allowed}
	d.cond.L = &d.mu
	for range dirAheadWorkers {
		d.wg.Go(d.work)
	}
	return d
}

// seed lists the directory rel and everything below it ahead.
func (d *dirAhead) seed(rel string) {
	if d == nil {
		return
	}
	d.mu.Lock()
	if len(d.stack) < dirAheadQueue {
		d.stack = append(d.stack, rel)
		d.cond.Signal()
	}
	d.mu.Unlock()
}

// walkedOne counts a directory the walker listed: the listing ahead may
// go one further.
func (d *dirAhead) walkedOne() {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.walked++
	if d.listed-d.walked == dirAheadLead-1 && len(d.stack) > 0 {
		d.cond.Signal() // the lead held the listing back until now
	}
	d.mu.Unlock()
}

// stop ends the listing ahead and waits for its descriptors to be closed.
func (d *dirAhead) stop() {
	if d == nil {
		return
	}
	d.mu.Lock()
	d.stopped = true
	d.cond.Broadcast()
	d.mu.Unlock()
	d.wg.Wait()
	unix.Close(d.root)
}

func (d *dirAhead) work() {
	buf := make([]byte, 32<<10)
	var subdirs []string
	for {
		d.mu.Lock()
		for !d.stopped && (len(d.stack) == 0 || d.listed-d.walked >= dirAheadLead) {
			d.cond.Wait()
		}
		if d.stopped {
			d.mu.Unlock()
			return
		}
		rel := d.stack[len(d.stack)-1]
		d.stack = d.stack[:len(d.stack)-1]
		d.listed++
		d.mu.Unlock()

		var opened bool
		subdirs, opened = d.list(rel, buf, subdirs[:0])
		if !opened {
			// The walker cannot open it either and so never counts it
			// walked: uncounted, it keeps the lead from shrinking.
			d.mu.Lock()
			d.listed--
			d.mu.Unlock()
			continue
		}
		if len(subdirs) == 0 {
			continue
		}
		d.mu.Lock()
		// Last pushed, first listed: the first subdirectory by name is
		// the one the walker enters next.
		for i := len(subdirs) - 1; i >= 0 && len(d.stack) < dirAheadQueue; i-- {
			d.stack = append(d.stack, subdirs[i])
		}
		// One waiter woken per directory queued: waking them all would
		// have them compete for the CPU the walker needs, to find nothing.
		for range min(len(subdirs), dirAheadWorkers) {
			d.cond.Signal()
		}
		d.mu.Unlock()
	}
}

// list reads the directory rel, lstats its names and appends the paths of
// the subdirectories the walker will enter, sorted; opened is false when
// rel could not be opened. Errors end the listing quietly: the walker
// meets and reports them.
func (d *dirAhead) list(rel string, buf []byte, subdirs []string) (_ []string, opened bool) {
	name := rel
	if name == "" {
		name = "."
	}
	fd, err := openBeneath(d.root, name)
	if err != nil {
		return subdirs, false
	}
	defer unix.Close(fd)
	if testHookAhead != nil {
		testHookAhead(rel)
	}
	var entries []dirEntry
	for {
		n, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n <= 0 {
			break
		}
		if entries, err = parseDirents(buf[:n], entries); err != nil {
			break
		}
	}
	first := len(subdirs)
	var st unix.Stat_t
	for _, e := range entries {
		if lstatAt(fd, e.name, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
			continue
		}
		if child := path.Join(rel, e.name); d.allowed(child, &st) {
			subdirs = append(subdirs, child)
		}
	}
	slices.SortFunc(subdirs[first:], strings.Compare)
	return subdirs, true
}

// openBeneath opens the directory at the relative path rel below dir for
// listing: every component must be a directory below dir, no symlink and
// no ".." leading out of it.
func openBeneath(dir int, rel string) (int, error) {
	for {
		fd, err := openat2(dir, rel, &unix.OpenHow{
			Flags:   uint64(unix.O_RDONLY | unix.O_DIRECTORY | openFlags),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// dataAhead opens the files queued for the workers, by name in their
// directory (as the workers do), asks the kernel to start reading them,
// and leaves each open file to its job's worker (see aheadFile).
type dataAhead struct {
	reqs chan dataHint
	wg   sync.WaitGroup
}

type dataHint struct {
	dir  *dirHandle // held for the hint
	job  *fileJob
	size int64
}

func startDataAhead() *dataAhead {
	a := &dataAhead{reqs: make(chan dataHint, dataAheadQueue)}
	for range dataAheadWorkers {
		a.wg.Go(a.work)
	}
	return a
}

// hint queues the file of job, size bytes in dir, to be read ahead, unless
// the queue is full. Only the walker calls it, before it queues the job.
func (a *dataAhead) hint(dir *dirHandle, job *fileJob, size int64) {
	if a == nil || size <= 0 {
		return
	}
	dir.hold()
	select {
	case a.reqs <- dataHint{dir: dir, job: job, size: size}:
	default:
		dir.release()
	}
}

// stop ends the reading ahead once the walker queues no more hints.
func (a *dataAhead) stop() {
	if a == nil {
		return
	}
	close(a.reqs)
	a.wg.Wait()
}

func (a *dataAhead) work() {
	for h := range a.reqs {
		h.job.ahead.open(h.dir.fd, h.job, h.size)
		h.dir.release()
	}
}

// aheadFile is a job's file as dataAhead opened it: the descriptor and its
// fstat, which the job's worker takes instead of opening the file again.
// It is opened exactly as the worker opens it (by name in the directory's
// descriptor, O_NOFOLLOW), and the worker checks it as its own. Only files
// queued for a worker are open here, so at most the fileJobs buffer plus
// the workers' files are held ahead.
type aheadFile struct {
	mu sync.Mutex
	// done: the worker took the job; nothing is opened for it any more.
	done bool
	fd   int // valid when held
	held bool
	st   unix.Stat_t
}

// open opens job's file in dir and asks for its first size bytes, unless
// its worker got to it first.
func (f *aheadFile) open(dir int, job *fileJob, size int64) {
	if !f.mu.TryLock() {
		return // the worker is opening it
	}
	defer f.mu.Unlock()
	if f.done {
		return
	}
	if testHookOpen != nil {
		testHookOpen(job.abs)
	}
	fd, err := openFileAt(dir, job.name)
	if err != nil {
		return // the worker meets and reports it
	}
	if fstat(fd, &f.st) != nil {
		unix.Close(fd)
		return
	}
	if f.st.Mode&unix.S_IFMT == unix.S_IFREG {
		_ = unix.Fadvise(fd, 0, min(size, dataAheadSpan), unix.FADV_WILLNEED)
	}
	f.fd, f.held = fd, true
}

// take ends the reading ahead of the file and returns the descriptor
// opened ahead and its fstat, if any: the caller owns it.
func (f *aheadFile) take(st *unix.Stat_t) (fd int, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.done = true
	if !f.held {
		return -1, false
	}
	f.held = false
	*st = f.st
	return f.fd, true
}

// discard ends the reading ahead of the file and closes what was opened
// ahead and not taken.
func (f *aheadFile) discard() {
	var st unix.Stat_t
	if fd, ok := f.take(&st); ok {
		unix.Close(fd)
	}
}
