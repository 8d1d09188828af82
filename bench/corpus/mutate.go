package corpus

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

type mutFile struct {
	rel  string // slash path relative to the profile
	size int64
	mode fs.FileMode
}

type mutUser struct {
	name    string
	files   []mutFile
	targets map[string]bool // profile-relative paths symlinks point to
}

var (
	mutRewriteExts = []string{".docx", ".xlsx", ".pptx", ".dotx", ".xltx", ".potx", ".zip"}
	mutTextExts    = []string{".txt", ".md", ".csv", ".json", ".html", ".py", ".go", ".sh", ".xml"}
	mutMixedExts   = []string{".pdf", ".sqlite", ".db", ".pst"}
)

// MutateOrg applies a deterministic "one week later" change (edits,
// additions, deletions) to a corpus made by GenerateOrg.
//
// The week ends 7 days after the newest mtime in DIR/home; every file it
// changes gets an mtime in its last 3 days, so it is newer than anything
// before. For about 3.5% of the corpus' bytes (ChangedBytes, the size of
// the files added or modified), each user gets: an org-wide update (an
// installer patch and a template, byte-identical for everyone); 2-5
// documents edited (text, PDFs and databases with bytes inserted and
// deleted mid-file, written to a temporary file and renamed; .docx/.xlsx
// rewritten whole, as office suites do); log files and shell history
// appended to in place; a database with a few 4 KiB pages overwritten in
// place (same size); 1-3 downloads or pictures deleted; new documents,
// downloads and photos filling the rest; then 1-2 documents renamed in
// their directory, contents and mtime untouched (drawn from a random
// stream of their own, so the steps before give the bytes they always
// gave). Touched directories get the mtime of their newest change. The
// same tree and seed give the same result, and Changes lists every file
// changed. ZstdRatio is not measured (0).
func MutateOrg(dir string, seed uint64) (*OrgInfo, error) {
	c, err := loadMaterial()
	if err != nil {
		return nil, err
	}
	home := filepath.Join(dir, "home")
	users, latest, total, err := scanCorpus(home)
	if err != nil {
		return nil, err
	}
	now := latest.Add(7 * 24 * time.Hour).Truncate(time.Minute)
	mu := &mutation{c: c, seed: seed, home: home, users: users, now: now, date: now.Format("2006-01-02"),
		per: total * 35 / 1000 / int64(len(users)), res: &OrgInfo{Root: dir}, touched: make([]map[string]time.Time, len(users))}
	for i := range mu.touched {
		mu.touched[i] = map[string]time.Time{}
	}
	r := rand.New(rand.NewPCG(seed, 0x6d7574617465)) // "mutate"
	orgSize := max(mu.per*3/10, 8<<10)
	if err := mu.orgUpdate(r, orgSize); err != nil {
		return nil, err
	}
	if err := mu.userWeeks(mu.per - orgSize); err != nil {
		return nil, err
	}
	for u := range users {
		for d, t := range mu.touched[u] {
			if err := os.Chtimes(mu.profile(u, d), t, t); err != nil {
				return nil, fmt.Errorf("mutate: %w", err)
			}
		}
	}
	if err := countCorpus(home, mu.res); err != nil {
		return nil, err
	}
	for _, u := range users {
		mu.res.Users = append(mu.res.Users, u.name)
	}
	slices.SortFunc(mu.res.Changes, func(a, b OrgChange) int { return strings.Compare(a.Path, b.Path) })
	return mu.res, nil
}

// mutation is one MutateOrg: the week's date and budget, and what it has
// changed so far.
type mutation struct {
	c     *material
	seed  uint64
	home  string
	users []*mutUser
	now   time.Time // the end of the week
	date  string    // now as 2006-01-02, in new files' names
	per   int64     // bytes to change per user

	mu      sync.Mutex
	res     *OrgInfo
	touched []map[string]time.Time // per user: directory -> newest change in it
}

// when is a time in the last 3 days of the week.
func (mu *mutation) when(r *rand.Rand) time.Time {
	return mu.now.Add(-time.Duration(r.Int64N(3*24*3600)) * time.Second)
}

// touch records a change at t in the directory of rel in user u's profile;
// each directory gets the mtime of its newest change at the end.
func (mu *mutation) touch(u int, rel string, t time.Time) {
	d := path.Dir(rel)
	if t.After(mu.touched[u][d]) {
		mu.touched[u][d] = t
	}
}

func (mu *mutation) profile(u int, rel string) string {
	return filepath.Join(mu.home, mu.users[u].name, filepath.FromSlash(rel))
}

func (mu *mutation) count(added, modified, deleted, renamed int, bytes int64) {
	mu.mu.Lock()
	mu.res.Added += added
	mu.res.Modified += modified
	mu.res.Deleted += deleted
	mu.res.Renamed += renamed
	mu.res.ChangedBytes += bytes
	mu.mu.Unlock()
}

// record adds changes of user u (profile-relative paths) to Changes.
func (mu *mutation) record(u int, chs []OrgChange) {
	mu.mu.Lock()
	defer mu.mu.Unlock()
	for _, c := range chs {
		c.Path = "home/" + mu.users[u].name + "/" + c.Path
		if c.From != "" {
			c.From = "home/" + mu.users[u].name + "/" + c.From
		}
		mu.res.Changes = append(mu.res.Changes, c)
	}
}

// orgUpdate writes the org-wide update of orgSize bytes once, into the
// first profile, and copies it to everyone.
func (mu *mutation) orgUpdate(r *rand.Rand, orgSize int64) error {
	cw := newCorpusWriter(mu.c)
	for _, it := range []struct {
		name string
		ct   content
		mix  [3]int
		size int64
	}{
		{fmt.Sprintf("Downloads/%s-SecurityUpdate-%s.msp", pick(r, corpProducts), mu.date), ctMixed, mixInstaller, orgSize * 8 / 10},
		{fmt.Sprintf("Documents/%s Template (%s).dotx", pick(r, corpTopics), mu.date), ctZip, [3]int{}, orgSize - orgSize*8/10},
	} {
		rel := freeIn(func(rel string) string { return mu.profile(0, rel) }, it.name)
		t := mu.when(r)
		sub := r.Uint64()
		src := mu.profile(0, rel)
		err := cw.create(src, func() error {
			return cw.fill(contentRand(mu.seed, sub), spec{ct: it.ct, mix: it.mix, name: path.Base(rel), t: t}, it.size)
		})
		if err != nil {
			return fmt.Errorf("mutate: %w", err)
		}
		for u := range mu.users {
			if u > 0 {
				if err := copyFile(src, mu.profile(u, rel), 0o644); err != nil {
					return fmt.Errorf("mutate: %w", err)
				}
			}
			if err := os.Chmod(mu.profile(u, rel), 0o644); err != nil {
				return fmt.Errorf("mutate: %w", err)
			}
			if err := os.Chtimes(mu.profile(u, rel), t, t); err != nil {
				return fmt.Errorf("mutate: %w", err)
			}
			mu.touch(u, rel, t)
			mu.record(u, []OrgChange{{Kind: "added", Path: rel}})
		}
		mu.count(len(mu.users), 0, 0, 0, it.size*int64(len(mu.users)))
	}
	return nil
}

// userWeeks runs each user's week, budget bytes each, in parallel: every
// user has its own random stream, so the result does not depend on
// scheduling.
func (mu *mutation) userWeeks(budget int64) error {
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	pool := sync.Pool{New: func() any { return newCorpusWriter(mu.c) }}
	for u := range mu.users {
		ur := rand.New(rand.NewPCG(mu.seed, 0x6d7574617465<<8|uint64(u)))
		g.Go(func() error {
			cw := pool.Get().(*corpusWriter)
			defer pool.Put(cw)
			rr := rand.New(rand.NewPCG(mu.seed, 0x72656e616d65<<8|uint64(u))) // "rename"
			m := &mutator{c: mu.c, cw: cw, r: ur, rr: rr, seed: mu.seed, u: mu.users[u], prof: func(rel string) string { return mu.profile(u, rel) },
				when: mu.when, touch: func(rel string, t time.Time) { mu.touch(u, rel, t) }, date: mu.date}
			if err := m.run(budget); err != nil {
				return fmt.Errorf("mutate %s: %w", mu.users[u].name, err)
			}
			mu.count(m.added, m.modified, m.deleted, m.renamed, m.changed)
			mu.record(u, m.changes)
			return nil
		})
	}
	return g.Wait()
}

// freeIn returns rel or rel with a " (n)" suffix that does not exist.
func freeIn(abs func(string) string, rel string) string {
	ext := path.Ext(rel)
	stem := strings.TrimSuffix(rel, ext)
	cand := rel
	for n := 2; ; n++ {
		if _, err := os.Lstat(abs(cand)); os.IsNotExist(err) {
			return cand
		}
		cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
	}
}

// scanCorpus lists each profile's regular files and symlink targets, the
// newest mtime and the total bytes.
func scanCorpus(home string) ([]*mutUser, time.Time, int64, error) {
	ents, err := os.ReadDir(home)
	if err != nil {
		return nil, time.Time{}, 0, fmt.Errorf("mutate: %w", err)
	}
	var users []*mutUser
	var latest time.Time
	var total int64
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		u := &mutUser{name: e.Name(), targets: map[string]bool{}}
		root := filepath.Join(home, e.Name())
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.ModTime().After(latest) {
				latest = info.ModTime()
			}
			rel, _ := filepath.Rel(root, p)
			rel = filepath.ToSlash(rel)
			switch {
			case d.Type().IsRegular():
				u.files = append(u.files, mutFile{rel: rel, size: info.Size(), mode: info.Mode().Perm()})
				total += info.Size()
			case d.Type()&fs.ModeSymlink != 0:
				if t, err := os.Readlink(p); err == nil && !path.IsAbs(t) {
					u.targets[path.Join(path.Dir(rel), t)] = true
				}
			}
			return nil
		})
		if err != nil {
			return nil, latest, 0, fmt.Errorf("mutate: %w", err)
		}
		users = append(users, u)
	}
	if len(users) == 0 {
		return nil, latest, 0, fmt.Errorf("mutate: no profiles in %s", home)
	}
	if latest.Before(Now) {
		latest = Now
	}
	return users, latest, total, nil
}

// countCorpus fills in the totals of the tree under home.
func countCorpus(home string, info *OrgInfo) error {
	return filepath.WalkDir(home, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			info.Dirs++
		case d.Type()&fs.ModeSymlink != 0:
			info.Symlinks++
		case d.Type().IsRegular():
			fi, err := d.Info()
			if err != nil {
				return err
			}
			info.Files++
			info.Bytes += fi.Size()
		}
		return nil
	})
}

type mutator struct {
	c     *material
	cw    *corpusWriter
	r     *rand.Rand
	rr    *rand.Rand // the renames' own stream
	seed  uint64
	u     *mutUser
	prof  func(rel string) string
	when  func(*rand.Rand) time.Time
	touch func(rel string, t time.Time)
	date  string

	done                              map[string]bool
	added, modified, deleted, renamed int
	changed                           int64
	changes                           []OrgChange // profile-relative paths
}

// note records a change of kind to rel.
func (m *mutator) note(kind, rel, from string) {
	m.changes = append(m.changes, OrgChange{Kind: kind, Path: rel, From: from})
}

func (m *mutator) candidates(ok func(f mutFile) bool) []mutFile {
	var out []mutFile
	for _, f := range m.u.files {
		if !m.done[f.rel] && !m.u.targets[f.rel] && ok(f) {
			out = append(out, f)
		}
	}
	return out
}

func under(rel string, dirs ...string) bool {
	for _, d := range dirs {
		if strings.HasPrefix(rel, d+"/") {
			return true
		}
	}
	return false
}

// run makes one user's week of changes, about budget bytes. The steps
// draw from one random stream in a fixed order, so the result depends only
// on the seed.
func (m *mutator) run(budget int64) error {
	m.done = map[string]bool{}
	left := budget
	for _, step := range []func(budget int64) (int64, error){m.editDocs, m.growLogs, m.changeDB, m.deleteSome} {
		n, err := step(budget)
		if err != nil {
			return err
		}
		left -= n
	}
	if err := m.addNew(left); err != nil {
		return err
	}
	return m.renameSome()
}

// renameSome renames 1-2 documents in their directory, as a user tidying
// up does: same contents, same mtime, a new name.
func (m *mutator) renameSome() error {
	r := m.rr
	docs := m.candidates(func(f mutFile) bool { return under(f.rel, "Documents", "Desktop") && f.size > 0 })
	for range min(len(docs), 1+r.IntN(2)) {
		k := r.IntN(len(docs))
		f := docs[k]
		docs = slices.Delete(docs, k, k+1)
		ext := path.Ext(f.rel)
		rel := freeIn(m.prof, strings.TrimSuffix(f.rel, ext)+" (old)"+ext)
		if err := os.Rename(m.prof(f.rel), m.prof(rel)); err != nil {
			return err
		}
		m.touch(rel, m.when(r))
		m.done[f.rel], m.done[rel] = true, true
		m.renamed++
		m.note("renamed", rel, f.rel)
	}
	return nil
}

// editDocs edits 2-5 documents, for up to 35% of the budget; it returns
// the bytes of the edited files.
func (m *mutator) editDocs(budget int64) (int64, error) {
	r := m.r
	var used int64
	editBudget := budget * 35 / 100
	docs := m.candidates(func(f mutFile) bool {
		ext := path.Ext(f.rel)
		return under(f.rel, "Documents", "Desktop") && f.size >= 1<<10 && f.size <= editBudget &&
			(slices.Contains(mutTextExts, ext) || slices.Contains(mutRewriteExts, ext) || slices.Contains(mutMixedExts, ext))
	})
	want := 2 + r.IntN(4)
	for _, k := range r.Perm(len(docs)) {
		f := docs[k]
		if want == 0 || f.size > editBudget {
			continue
		}
		n, err := m.edit(f)
		if err != nil {
			return used, err
		}
		editBudget -= n
		used += n
		want--
	}
	return used, nil
}

// growLogs appends to 1-3 logs or the shell history in place; it returns
// the bytes of the grown files.
func (m *mutator) growLogs(budget int64) (int64, error) {
	r := m.r
	var used int64
	logs := m.candidates(func(f mutFile) bool {
		return (path.Ext(f.rel) == ".log" || f.rel == ".bash_history") && f.size <= budget/3
	})
	for range min(len(logs), 1+r.IntN(3)) {
		k := r.IntN(len(logs))
		f := logs[k]
		logs = slices.Delete(logs, k, k+1)
		t := m.when(r)
		add := logUniform(r, 2<<10, 32<<10)
		ct := ctLog
		if f.rel == ".bash_history" {
			ct = ctHistory
		}
		sub := r.Uint64()
		err := m.cw.open(m.prof(f.rel), os.O_WRONLY|os.O_APPEND, func() error {
			return m.cw.fill(contentRand(m.seed, sub), spec{ct: ct, name: path.Base(f.rel), t: t.Add(-3 * time.Hour)}, add)
		})
		if err == nil {
			err = os.Chtimes(m.prof(f.rel), t, t)
		}
		if err != nil {
			return used, err
		}
		m.done[f.rel] = true
		m.modified++
		m.note("modified", f.rel, "")
		m.changed += f.size + add
		used += f.size + add
	}
	return used, nil
}

// changeDB overwrites a few 4 KiB pages of a database in place; it
// returns the database's size.
func (m *mutator) changeDB(budget int64) (int64, error) {
	r := m.r
	dbs := m.candidates(func(f mutFile) bool {
		ext := path.Ext(f.rel)
		return (ext == ".db" || ext == ".sqlite") && f.size >= 16<<10 && f.size <= budget
	})
	if len(dbs) == 0 {
		return 0, nil
	}
	f := pick(r, dbs)
	out, err := os.OpenFile(m.prof(f.rel), os.O_WRONLY, 0)
	if err != nil {
		return 0, err
	}
	for range 1 + r.IntN(6) {
		page := m.cw.w.appendBinary(r, nil)
		if len(page) < 4096 {
			continue
		}
		page = page[:4096]
		if _, err := out.WriteAt(page, r.Int64N(f.size/4096)*4096); err != nil {
			out.Close()
			return 0, err
		}
	}
	if err := out.Close(); err != nil {
		return 0, err
	}
	t := m.when(r)
	if err := os.Chtimes(m.prof(f.rel), t, t); err != nil {
		return 0, err
	}
	m.done[f.rel] = true
	m.modified++
	m.note("modified", f.rel, "")
	m.changed += f.size
	return f.size, nil
}

// deleteSome deletes 1-3 downloads or pictures.
func (m *mutator) deleteSome(budget int64) (int64, error) {
	r := m.r
	gone := m.candidates(func(f mutFile) bool { return under(f.rel, "Downloads", "Pictures") && f.size <= budget/2 })
	for range min(len(gone), 1+r.IntN(3)) {
		k := r.IntN(len(gone))
		f := gone[k]
		gone = slices.Delete(gone, k, k+1)
		if err := os.Remove(m.prof(f.rel)); err != nil {
			return 0, err
		}
		m.touch(f.rel, m.when(r))
		m.done[f.rel] = true
		m.deleted++
		m.note("deleted", f.rel, "")
	}
	return 0, nil
}

// addNew adds 1-4 new documents, downloads and photos of about left bytes
// in all.
func (m *mutator) addNew(left int64) error {
	r := m.r
	news := []item{
		{dir: "Downloads", name: "{topic}-" + m.date + ".pdf", ct: ctMixed, mix: mixPDF},
		{dir: "Documents", name: "{Topic} notes " + m.date + ".txt", ct: ctText},
		{dir: "Pictures", name: "IMG_" + strings.ReplaceAll(m.date, "-", "") + "_{n4}.jpg", ct: ctMedia},
		{dir: "Desktop", name: "{Topic} " + m.date + ".docx", ct: ctZip},
	}
	n := 1 + r.IntN(4)
	left = max(left, int64(4<<10)*int64(n))
	for i := range n {
		it := pick(r, news)
		size := left / int64(n-i)
		if i < n-1 {
			size = size/2 + r.Int64N(size)
		}
		size = max(size, 1<<10)
		name := expandName(r, m.c, it.name, "", "")
		rel := freeIn(m.prof, it.dir+"/"+name)
		t := m.when(r)
		sub := r.Uint64()
		err := m.cw.create(m.prof(rel), func() error {
			return m.cw.fill(contentRand(m.seed, sub), spec{ct: it.ct, mix: it.mix, name: name, t: t}, size)
		})
		if err == nil {
			err = os.Chmod(m.prof(rel), 0o644)
		}
		if err == nil {
			err = os.Chtimes(m.prof(rel), t, t)
		}
		if err != nil {
			return err
		}
		m.touch(rel, t)
		m.done[rel] = true
		m.added++
		m.note("added", rel, "")
		m.changed += size
		left -= size
	}
	return nil
}

// edit rewrites document f as an editor would (new file, rename) and
// returns its new size.
func (m *mutator) edit(f mutFile) (int64, error) {
	r := m.r
	ext := path.Ext(f.rel)
	s := spec{ct: ctText, name: path.Base(f.rel), t: m.when(r)}
	switch {
	case slices.Contains(mutMixedExts, ext):
		s.ct, s.mix = ctMixed, mixPDF
		if ext != ".pdf" {
			s.mix = mixDB
		}
	case slices.Contains(mutRewriteExts, ext):
		s.ct = ctZip
	}
	dir, base := path.Split(f.rel)
	tmp := dir + "." + base + ".tmp"
	sub := contentRand(m.seed, r.Uint64())
	size := f.size
	var edits []corpusEdit
	if s.ct == ctZip { // saved whole: nothing in common with the old bytes
		size = max(1<<10, f.size+f.size*int64(r.IntN(11)-5)/100)
	} else {
		edits, size = planEdits(r, f.size)
	}
	err := m.cw.create(m.prof(tmp), func() error {
		if edits == nil {
			return m.cw.fill(sub, s, size)
		}
		in, err := os.Open(m.prof(f.rel))
		if err != nil {
			return err
		}
		defer in.Close()
		return m.cw.applyEdits(sub, in, edits, s)
	})
	if err == nil {
		err = os.Chmod(m.prof(tmp), f.mode)
	}
	if err == nil {
		err = os.Chtimes(m.prof(tmp), s.t, s.t)
	}
	if err == nil {
		err = os.Rename(m.prof(tmp), m.prof(f.rel))
	}
	if err != nil {
		return 0, err
	}
	m.touch(f.rel, s.t)
	m.done[f.rel] = true
	m.modified++
	m.note("modified", f.rel, "")
	m.changed += size
	return size, nil
}
