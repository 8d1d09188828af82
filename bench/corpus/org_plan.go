package corpus

import (
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

type corpusKind int

const (
	kindOrg corpusKind = iota
	kindDept
	kindUnique
	kindEdited
	kindConfig
	numKinds
)

var kindNames = [numKinds]string{"org", "dept", "unique", "edited", "config"}

// content is how a file's bytes are made.
type content int

const (
	ctText    content = iota // spliced source and documentation
	ctBinary                 // pieces of executables
	ctZip                    // gzip of mostly text (documents, archives)
	ctMedia                  // gzip of mostly binary (photos, video)
	ctPacked                 // a real .gz or .png copied whole
	ctMixed                  // text, binary and gzip segments (pdf, installers, mailboxes)
	ctConfig                 // json / ini / xml / yaml / prefs.js / shell, by extension
	ctLog                    // timestamped log lines
	ctHistory                // shell history
	ctKey                    // base64 key material
)

func (ct content) class() string {
	switch ct {
	case ctBinary:
		return "binary"
	case ctZip, ctMedia, ctPacked:
		return "compressed"
	case ctMixed:
		return "mixed"
	}
	return "text"
}

type corpusFile struct {
	rel    string // slash path relative to DIR
	kind   corpusKind
	ct     content
	mix    [3]int // ctMixed: weights of text, binary, gzip segments
	size   int64
	mode   fs.FileMode
	mtime  time.Time
	id     uint64 // content stream
	packed string // ctPacked: the real file
	src    int    // index of the file this is a copy or an edited copy of; -1 if none
	edits  []corpusEdit
}

// corpusEdit replaces del bytes at offset off of the source by ins new bytes.
type corpusEdit struct{ off, del, ins int64 }

type corpusLink struct {
	rel, target string
	mtime       time.Time
}

type corpusDir struct {
	mode  fs.FileMode
	mtime time.Time
}

type corpusPlan struct {
	shape  Shape
	org    string
	users  []string
	depts  []string
	deptOf []int
	files  []corpusFile
	links  []corpusLink
	dirs   map[string]*corpusDir
	used   map[string]bool
}

type planner struct {
	r          *rand.Rand
	c          *material
	p          *corpusPlan
	packed     []int
	nextPacked int
	medMax     int64
	bigMax     int64
	eff        [3]float64 // bytes planned so far as text, binary, compressed (mixed files split)
	shape      Shape
	dirCache   map[string][]string // realistic shape: directories made from each template, per set of users
}

// effTarget is the byte share of text, binary and compressed data the
// planner steers towards.
var effTarget = [3]float64{0.45, 0.32, 0.23}

// shares returns how ct's bytes split into text, binary and compressed.
func shares(ct content, mix [3]int) [3]float64 {
	switch ct {
	case ctBinary:
		return [3]float64{0, 1, 0}
	case ctZip, ctMedia, ctPacked:
		return [3]float64{0, 0, 1}
	case ctMixed:
		t := float64(mix[0] + mix[1] + mix[2])
		return [3]float64{float64(mix[0]) / t, float64(mix[1]) / t, float64(mix[2]) / t}
	}
	return [3]float64{1, 0, 0}
}

func planCorpus(c *material, o OrgOptions) *corpusPlan {
	r := rand.New(rand.NewPCG(o.Seed, 0x6f7267706c616e)) // "orgplan"
	p := &corpusPlan{shape: o.Shape, dirs: map[string]*corpusDir{}, used: map[string]bool{}}
	pl := &planner{r: r, c: c, p: p, packed: r.Perm(len(c.packed)), shape: o.Shape, dirCache: map[string][]string{}}
	p.org = pick(r, orgNames)
	for i := 1; i <= o.Users; i++ {
		p.users = append(p.users, fmt.Sprintf("user%02d", i))
	}
	// Departments: 2-4, but at most Users-1 so that with three or more
	// users some department has several members and none has everyone.
	nd := max(1, min(2+r.IntN(3), o.Users-1))
	names := slices.Clone(deptNames)
	r.Shuffle(len(names), func(i, j int) { names[i], names[j] = names[j], names[i] })
	p.depts = names[:nd]
	p.deptOf = make([]int, o.Users)
	for k, u := range r.Perm(o.Users) {
		p.deptOf[u] = k % nd
	}

	per := o.Size / int64(o.Users)
	pl.medMax = min(max(per/40, 128<<10), 8<<20)
	pl.bigMax = min(max(per/6, 1<<20), 400<<20)
	orgB, deptB, confB, editB := per*35/100, per*20/100, per*10/100, per*10/100

	all := make([]int, o.Users)
	for i := range all {
		all[i] = i
	}
	p.addDir("home", 0o755)
	for u := range p.users {
		p.addDir(p.home(u), 0o700)
		for _, d := range []string{"Documents", "Desktop", "Pictures", "Downloads", ".config", ".local/share"} {
			p.addDir(p.home(u)+"/"+d, 0o755)
		}
	}

	// Organisation-wide files: the biggest installer first.
	left := orgB
	if big := pl.bigMax * int64(60+r.IntN(41)) / 100; big <= orgB/2 {
		left -= pl.shared(orgItems[0], big, all, kindOrg)
	}
	left -= pl.fillShared(orgItems, left, all, kindOrg)

	// Shell start-up files every profile gets from /etc/skel: identical.
	skel := int64(0)
	for _, s := range []struct {
		name string
		size int64
	}{{".bashrc", 3771}, {".profile", 807}, {".bash_logout", 220}, {".config/user-dirs.dirs", 633}} {
		skel += pl.shared(item{dir: ".", name: s.name, ct: ctConfig}, s.size, all, kindConfig)
	}

	// Departments.
	for d := range p.depts {
		var members []int
		for u, du := range p.deptOf {
			if du == d {
				members = append(members, u)
			}
		}
		left := deptB
		if big := pl.bigMax * int64(40+r.IntN(41)) / 100; big <= deptB/2 {
			left -= pl.shared(item{dir: "Documents/{Dept}/Data", name: "{topic}_full_{yyyymm}.csv", ct: ctText}, big, members, kindDept)
		}
		pl.fillShared(deptItems, left, members, kindDept)
	}

	// Each user's own files.
	nOrgDept := len(p.files)
	for u := range p.users {
		used := pl.planConfig(u, confB-skel)
		used += pl.planEdited(u, editB, nOrgDept)
		pl.planUnique(u, per-orgB-deptB-used-skel)
	}
	p.finishDirs(r)
	return p
}

func (p *corpusPlan) home(u int) string { return "home/" + p.users[u] }

func (p *corpusPlan) addDir(rel string, mode fs.FileMode) {
	rel = path.Clean(rel)
	if d, ok := p.dirs[rel]; ok {
		if mode != 0 {
			d.mode = mode
		}
		return
	}
	if parent := path.Dir(rel); parent != "." {
		p.addDir(parent, 0)
	}
	if mode == 0 {
		mode = 0o755
	}
	p.dirs[rel] = &corpusDir{mode: mode}
}

// free returns prof (a path inside a profile), changed by a " (n)" suffix
// if needed so that it is unused in every profile of users.
func (p *corpusPlan) free(prof string, users []int) string {
	ext := path.Ext(prof)
	if len(ext) > 6 || strings.ContainsAny(ext, " ()") {
		ext = ""
	}
	stem := strings.TrimSuffix(prof, ext)
	cand := prof
	for n := 2; ; n++ {
		ok := true
		for _, u := range users {
			if p.used[p.home(u)+"/"+cand] || p.dirs[p.home(u)+"/"+cand] != nil {
				ok = false
				break
			}
		}
		if ok {
			return cand
		}
		cand = fmt.Sprintf("%s (%d)%s", stem, n, ext)
	}
}

func (pl *planner) add(f corpusFile) int {
	p := pl.p
	for k, s := range shares(f.ct, f.mix) {
		pl.eff[k] += s * float64(f.size)
	}
	p.used[f.rel] = true
	p.addDir(path.Dir(f.rel), 0)
	f.id = uint64(len(p.files))
	if f.mode == 0 {
		f.mode = 0o644
	}
	p.files = append(p.files, f)
	return len(p.files) - 1
}

// randTime returns a whole second in the span before Now.
func randTime(r *rand.Rand, span time.Duration) time.Time {
	return Now.Add(-time.Duration(r.Int64N(int64(span/time.Second))) * time.Second)
}

func (pl *planner) size(s sizeRange) int64 {
	r := pl.r
	if pl.shape == ShapeRealistic && (s == szAny || s == szSmall || s == szMedium) {
		return bodySize(r, pl.medMax)
	}
	switch s {
	case szSmall:
		return logUniform(r, 1<<10, 64<<10)
	case szMedium:
		return logUniform(r, 64<<10, pl.medMax)
	case szPhoto:
		return logUniform(r, 256<<10, max(min(8<<20, pl.medMax), 512<<10))
	case szConfig:
		return logUniform(r, 1<<10, 8<<10)
	case szLarge:
		return logUniform(r, pl.medMax, 3*pl.medMax)
	}
	if r.IntN(10) < 6 {
		return logUniform(r, 1<<10, 64<<10)
	}
	return logUniform(r, 64<<10, pl.medMax)
}

// packedFile returns the next unused real compressed file of at most size
// bytes with extension ext ("" for any), or -1.
func (pl *planner) packedFile(size int64, ext string) int {
	for tries := 0; tries < 64 && pl.nextPacked < len(pl.packed); tries++ {
		i := pl.packed[pl.nextPacked]
		pf := pl.c.packed[i]
		if pf.size <= size && (ext == "" || filepath.Ext(pf.path) == ext) {
			pl.nextPacked++
			return i
		}
		if ext == "" || filepath.Ext(pf.path) == ext {
			pl.nextPacked++ // too big: skip it for good, as gen.go does
		} else if tries > 32 {
			break
		}
	}
	return -1
}

// file fills in a file of item it for user u (the first of users, who
// share it) and adds it.
func (pl *planner) file(it item, size int64, users []int, kind corpusKind) corpusFile {
	r := pl.r
	f := corpusFile{kind: kind, ct: it.ct, mix: it.mix, size: size, mode: it.mode, src: -1}
	var dir string
	if pl.shape == ShapeRealistic {
		dir = pl.dirFor(it.dir, users)
	} else {
		dir = pl.expand(it.dir, users[0])
	}
	prof := path.Clean(dir + "/" + pl.expand(it.name, users[0]))
	if f.ct == ctPacked {
		want := ".gz"
		if strings.HasSuffix(prof, ".png") {
			want = ".png"
		}
		if i := pl.packedFile(size, want); i >= 0 {
			f.packed, f.size = pl.c.packed[i].path, pl.c.packed[i].size
		} else if want == ".png" {
			f.ct = ctMedia
		} else {
			f.ct = ctZip
		}
	}
	f.rel = pl.p.free(prof, users)
	switch {
	case f.ct == ctLog || f.ct == ctHistory:
		f.mtime = randTime(r, 3*24*time.Hour)
	case kind == kindConfig:
		f.mtime = randTime(r, 120*24*time.Hour)
	default:
		f.mtime = randTime(r, corpusSpan)
	}
	return f
}

// dirFor returns a directory (relative to a profile) for a new file of
// the realistic shape from the directory template t, for users: mostly
// one made before from t for the same users, and for one file in
// dirFanout a new one, expanded from t and, for a template outside the
// dot-directories, half the time 1-3 levels deeper, so that directories hold about dirFanout files in trees
// several levels deep. A new directory never runs into a file's path.
func (pl *planner) dirFor(t string, users []int) string {
	r := pl.r
	key := fmt.Sprint(t, users)
	made := pl.dirCache[key]
	if len(made) > 0 && r.IntN(dirFanout) != 0 {
		return made[r.IntN(len(made))]
	}
	d := pl.expand(t, users[0])
	for try := 0; try < 8; try++ {
		deeper := d
		if deepens(t) && r.IntN(2) == 0 {
			for n := 1 + r.IntN(3); n > 0; n-- {
				deeper += "/" + strings.ToLower(pick(r, pl.c.words))
			}
		}
		if !pl.p.hitsFile(path.Clean(deeper), users) {
			d = deeper
			break
		}
	}
	pl.dirCache[key] = append(made, d)
	return d
}

// hitsFile reports whether dir (relative to a profile), or a directory
// above it, is a file's path in one of users' profiles.
func (p *corpusPlan) hitsFile(dir string, users []int) bool {
	for _, u := range users {
		for d := dir; d != "." && d != "/"; d = path.Dir(d) {
			if p.used[p.home(u)+"/"+d] {
				return true
			}
		}
	}
	return false
}

// shared plans one file of it for every user in users (the first gets the
// generated bytes, the others copies) and returns its size.
func (pl *planner) shared(it item, size int64, users []int, kind corpusKind) int64 {
	f := pl.file(it, size, users, kind)
	prof := f.rel
	f.rel = pl.p.home(users[0]) + "/" + prof
	master := pl.add(f)
	for _, u := range users[1:] {
		cp := f
		cp.rel = pl.p.home(u) + "/" + prof
		cp.src = master
		pl.add(cp)
	}
	return f.size
}

// pickItem picks an item by weight, favouring (by 4x) items whose main
// kind of data is below its target share and avoiding those above it.
func (pl *planner) pickItem(items []item) item {
	all := pl.eff[0] + pl.eff[1] + pl.eff[2]
	ws := make([]int, len(items))
	total := 0
	for i, it := range items {
		sh := shares(it.ct, it.mix)
		main := 0
		for k := range sh {
			if sh[k] > sh[main] {
				main = k
			}
		}
		ws[i] = 4 * it.w
		if all > 0 {
			switch d := pl.eff[main]/all - effTarget[main]; {
			case d > 0.02:
				ws[i] = it.w
			case d < -0.02:
				ws[i] = 16 * it.w
			}
		}
		total += ws[i]
	}
	k := pl.r.IntN(total)
	for i, it := range items {
		if k -= ws[i]; k < 0 {
			return it
		}
	}
	return items[len(items)-1]
}

// fill plans files of items until budget bytes are used, calling place for
// each; it returns the bytes used.
func (pl *planner) fill(items []item, budget int64, place func(item, int64) int64) int64 {
	used := int64(0)
	for budget-used > 0 {
		it := pl.pickItem(items)
		s := min(pl.size(it.size), budget-used)
		if budget-used-s < 1<<10 {
			s = budget - used
		}
		used += place(it, s)
	}
	return used
}

func (pl *planner) fillShared(items []item, budget int64, users []int, kind corpusKind) int64 {
	return pl.fill(items, budget, func(it item, s int64) int64 { return pl.shared(it, s, users, kind) })
}

func (pl *planner) unique(it item, size int64, u int, kind corpusKind) int64 {
	f := pl.file(it, size, []int{u}, kind)
	f.rel = pl.p.home(u) + "/" + f.rel
	pl.add(f)
	return f.size
}
