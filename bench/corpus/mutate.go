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
// downloads and photos filling the rest. Touched directories get the
// mtime of their newest change. The same tree and seed give the same
// result. ZstdRatio is not measured (0).
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
	date := now.Format("2006-01-02")
	per := total * 35 / 1000 / int64(len(users))
	r := rand.New(rand.NewPCG(seed, 0x6d7574617465)) // "mutate"
	when := func(r *rand.Rand) time.Time {
		return now.Add(-time.Duration(r.Int64N(3*24*3600)) * time.Second)
	}
	res := &OrgInfo{Root: dir}
	touched := make([]map[string]time.Time, len(users))
	for i := range touched {
		touched[i] = map[string]time.Time{}
	}
	touch := func(u int, rel string, t time.Time) {
		d := path.Dir(rel)
		if t.After(touched[u][d]) {
			touched[u][d] = t
		}
	}
	profile := func(u int, rel string) string {
		return filepath.Join(home, users[u].name, filepath.FromSlash(rel))
	}
	var mu sync.Mutex
	count := func(added, modified, deleted int, bytes int64) {
		mu.Lock()
		res.Added += added
		res.Modified += modified
		res.Deleted += deleted
		res.ChangedBytes += bytes
		mu.Unlock()
	}

	// Org-wide update: written once, copied to everyone.
	orgSize := max(per*3/10, 8<<10)
	all := make([]int, len(users))
	for i := range all {
		all[i] = i
	}
	cw := newCorpusWriter(c)
	for _, it := range []struct {
		name string
		ct   content
		mix  [3]int
		size int64
	}{
		{fmt.Sprintf("Downloads/%s-SecurityUpdate-%s.msp", pick(r, corpProducts), date), ctMixed, mixInstaller, orgSize * 8 / 10},
		{fmt.Sprintf("Documents/%s Template (%s).dotx", pick(r, corpTopics), date), ctZip, [3]int{}, orgSize - orgSize*8/10},
	} {
		rel := freeIn(func(rel string) string { return profile(0, rel) }, it.name)
		t := when(r)
		sub := r.Uint64()
		src := profile(0, rel)
		err := cw.create(src, func() error {
			return cw.fill(contentRand(seed, sub), spec{ct: it.ct, mix: it.mix, name: path.Base(rel), t: t}, it.size)
		})
		if err != nil {
			return nil, fmt.Errorf("mutate: %w", err)
		}
		for u := range users {
			if u > 0 {
				if err := copyFile(src, profile(u, rel), 0o644); err != nil {
					return nil, fmt.Errorf("mutate: %w", err)
				}
			}
			if err := os.Chmod(profile(u, rel), 0o644); err != nil {
				return nil, fmt.Errorf("mutate: %w", err)
			}
			if err := os.Chtimes(profile(u, rel), t, t); err != nil {
				return nil, fmt.Errorf("mutate: %w", err)
			}
			touch(u, rel, t)
		}
		count(len(users), 0, 0, it.size*int64(len(users)))
	}

	// Each user's week, in parallel: every user has its own random stream.
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	pool := sync.Pool{New: func() any { return newCorpusWriter(c) }}
	for u := range users {
		ur := rand.New(rand.NewPCG(seed, 0x6d7574617465<<8|uint64(u)))
		g.Go(func() error {
			cw := pool.Get().(*corpusWriter)
			defer pool.Put(cw)
			m := &mutator{c: c, cw: cw, r: ur, seed: seed, u: users[u], prof: func(rel string) string { return profile(u, rel) },
				when: when, touch: func(rel string, t time.Time) { touch(u, rel, t) }, date: date}
			if err := m.run(per - orgSize); err != nil {
				return fmt.Errorf("mutate %s: %w", users[u].name, err)
			}
			count(m.added, m.modified, m.deleted, m.changed)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for u := range users {
		for d, t := range touched[u] {
			if err := os.Chtimes(profile(u, d), t, t); err != nil {
				return nil, fmt.Errorf("mutate: %w", err)
			}
		}
	}
	if err := countCorpus(home, res); err != nil {
		return nil, err
	}
	for _, u := range users {
		res.Users = append(res.Users, u.name)
	}
	return res, nil
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
	seed  uint64
	u     *mutUser
	prof  func(rel string) string
	when  func(*rand.Rand) time.Time
	touch func(rel string, t time.Time)
	date  string

	done                     map[string]bool
	added, modified, deleted int
	changed                  int64
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

func (m *mutator) run(budget int64) error {
	r := m.r
	m.done = map[string]bool{}
	left := budget

	// Edited documents: up to 35% of the budget.
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
			return err
		}
		editBudget -= n
		left -= n
		want--
	}

	// Logs and shell history grow in place.
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
		out, err := os.OpenFile(m.prof(f.rel), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			return err
		}
		m.cw.out.Reset(out)
		err = m.cw.fill(contentRand(m.seed, r.Uint64()), spec{ct: ct, name: path.Base(f.rel), t: t.Add(-3 * time.Hour)}, add)
		if err == nil {
			err = m.cw.out.Flush()
		}
		m.cw.out.Reset(nil)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Chtimes(m.prof(f.rel), t, t)
		}
		if err != nil {
			return err
		}
		m.done[f.rel] = true
		m.modified++
		m.changed += f.size + add
		left -= f.size + add
	}

	// A database changes a few pages in place.
	dbs := m.candidates(func(f mutFile) bool {
		ext := path.Ext(f.rel)
		return (ext == ".db" || ext == ".sqlite") && f.size >= 16<<10 && f.size <= budget
	})
	if len(dbs) > 0 {
		f := pick(r, dbs)
		out, err := os.OpenFile(m.prof(f.rel), os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		for range 1 + r.IntN(6) {
			page := m.cw.w.appendBinary(r, nil)
			if len(page) < 4096 {
				continue
			}
			page = page[:4096]
			if _, err := out.WriteAt(page, r.Int64N(f.size/4096)*4096); err != nil {
				out.Close()
				return err
			}
		}
		if err := out.Close(); err != nil {
			return err
		}
		t := m.when(r)
		if err := os.Chtimes(m.prof(f.rel), t, t); err != nil {
			return err
		}
		m.done[f.rel] = true
		m.modified++
		m.changed += f.size
		left -= f.size
	}

	// A few downloads and pictures are deleted.
	gone := m.candidates(func(f mutFile) bool { return under(f.rel, "Downloads", "Pictures") && f.size <= budget/2 })
	for range min(len(gone), 1+r.IntN(3)) {
		k := r.IntN(len(gone))
		f := gone[k]
		gone = slices.Delete(gone, k, k+1)
		if err := os.Remove(m.prof(f.rel)); err != nil {
			return err
		}
		m.touch(f.rel, m.when(r))
		m.done[f.rel] = true
		m.deleted++
	}

	// New files fill the rest of the budget.
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
	m.changed += size
	return size, nil
}
