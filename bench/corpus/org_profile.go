package corpus

import (
	"fmt"
	"math/rand/v2"
	"path"
	"slices"
	"strings"
	"time"
)

// planConfig plans user u's dot-files: history, ssh, dozens of small
// config files, then logs, databases and caches up to budget.
func (pl *planner) planConfig(u int, budget int64) int64 {
	r, p := pl.r, pl.p
	home := p.home(u)
	p.addDir(home+"/.ssh", 0o700)
	p.addDir(home+"/.local/share/keyrings", 0o700)
	p.addDir(home+"/.local/share/Trash/files", 0)
	p.addDir(home+"/.local/share/Trash/info", 0)
	used := int64(0)
	for _, it := range []item{
		{dir: ".", name: ".bash_history", ct: ctHistory, mode: 0o600, size: szSmall},
		{dir: ".", name: ".gitconfig", ct: ctConfig, size: szConfig},
		{dir: ".ssh", name: "config", ct: ctConfig, mode: 0o600, size: szConfig},
		{dir: ".ssh", name: "known_hosts", ct: ctKey, size: szConfig},
		{dir: ".ssh", name: "id_ed25519", ct: ctKey, mode: 0o600},
		{dir: ".ssh", name: "id_ed25519.pub", ct: ctKey},
		{dir: ".local/share/keyrings", name: "login.keyring", ct: ctBinary, mode: 0o600, size: szConfig},
		{dir: ".local/bin", name: "{word}.sh", ct: ctConfig, mode: 0o755, size: szConfig},
		{dir: ".local/share/{app}", name: "{word}.sqlite", ct: ctMixed, mix: mixDB},
	} {
		s := pl.size(it.size)
		switch it.name {
		case "id_ed25519":
			s = 411
		case "id_ed25519.pub":
			s = 98
		case "{word}.sqlite": // history, cookies: what MutateOrg changes in place
			s = logUniform(r, 16<<10, 48<<10)
		}
		if used+s > budget {
			break
		}
		used += pl.unique(it, s, u, kindConfig)
	}
	for n := 30 + r.IntN(50); n > 0; n-- {
		it := item{dir: ".config/" + pick(r, corpApps), name: pick(r, configNames), ct: ctConfig}
		if r.IntN(4) == 0 {
			it.mode = 0o600
		}
		s := pl.size(szConfig)
		if used+s > budget {
			break
		}
		used += pl.unique(it, s, u, kindConfig)
	}
	if pl.shape == ShapeRealistic && budget > used {
		dot := (budget - used) * realisticDotShare / 100
		used += pl.fill(dotItems, dot, func(it item, s int64) int64 { return pl.unique(it, s, u, kindConfig) })
	}
	items := configMediumItems
	if r.IntN(3) > 0 { // most users have a cache
		items = append(slices.Clone(items), cacheItems...)
	}
	if budget > used {
		used += pl.fill(items, budget-used, func(it item, s int64) int64 { return pl.unique(it, s, u, kindConfig) })
	}
	return used
}

// planEdited plans user u's edited copies of org and dept files (indexes
// below nShared) up to about budget bytes and returns their size.
func (pl *planner) planEdited(u int, budget int64, nShared int) int64 {
	r, p := pl.r, pl.p
	home := p.home(u) + "/"
	var cands []int
	for i := range p.files[:nShared] {
		f := &p.files[i]
		if strings.HasPrefix(f.rel, home) && f.kind != kindConfig && f.size >= 16<<10 &&
			(f.ct == ctText || f.ct == ctBinary || f.ct == ctMixed) {
			cands = append(cands, i)
		}
	}
	used := int64(0)
	for _, k := range r.Perm(len(cands)) {
		src := p.files[cands[k]]
		if used+src.size > budget+budget/10 {
			continue
		}
		master := cands[k]
		if src.src >= 0 {
			master = src.src
		}
		f := corpusFile{kind: kindEdited, ct: src.ct, mix: src.mix, mode: src.mode, src: master}
		f.edits, f.size = planEdits(r, src.size)
		prof := strings.TrimPrefix(src.rel, home)
		dir, base := path.Split(prof)
		ext := path.Ext(base)
		stem := strings.TrimSuffix(base, ext)
		switch r.IntN(3) {
		case 0:
			dir = "Documents/Working/"
		case 1:
			dir = "Desktop/"
		}
		base = fmt.Sprintf(pick(r, []string{"%s - Copy%s", "%s (edited)%s", "%s v2%s", "%s (" + p.users[u] + ")%s", "%s draft%s"}), stem, ext)
		f.rel = home + p.free(path.Clean(dir+base), []int{u})
		f.mtime = src.mtime.Add(time.Duration(3600+r.Int64N(120*24*3600)) * time.Second)
		if f.mtime.After(Now) {
			f.mtime = Now.Add(-time.Duration(r.IntN(3600)) * time.Second)
		}
		pl.add(f)
		used += f.size
		if used >= budget {
			break
		}
	}
	return used
}

// planEdits plans 2-12 inserts and deletes in the middle 80% of a file of
// size bytes and returns them with the edited size.
func planEdits(r *rand.Rand, size int64) ([]corpusEdit, int64) {
	n := 2 + int(min(10, size/(4<<20)))
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = size/10 + r.Int64N(size*8/10)
	}
	slices.Sort(offs)
	offs = slices.Compact(offs)
	maxLen := max(16, min(16<<10, size/50))
	kinds := make([]int, len(offs)) // 0 insert, 1 delete, 2 replace: at least one insert and one delete
	for i := range kinds {
		kinds[i] = i
		if i >= 2 {
			kinds[i] = r.IntN(3)
		}
	}
	r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
	var edits []corpusEdit
	out := size
	for i, off := range offs {
		e := corpusEdit{off: off}
		next := size
		if i+1 < len(offs) {
			next = offs[i+1]
		}
		if kinds[i] != 0 {
			e.del = min(logUniform(r, 16, maxLen), next-off)
		}
		if kinds[i] != 1 {
			e.ins = logUniform(r, 16, maxLen)
		}
		out += e.ins - e.del
		edits = append(edits, e)
	}
	return edits, out
}

// planUnique plans user u's own files (exactly budget bytes), odd names,
// symlinks and empty directories.
func (pl *planner) planUnique(u int, budget int64) {
	r, p := pl.r, pl.p
	home := p.home(u)
	used := int64(0)
	for _, it := range oddNames {
		used += pl.unique(it, pl.size(it.size), u, kindUnique)
	}
	long := "Minutes of the extended steering committee meeting on the migration of all departmental file shares and user profiles to the new storage platform, with action items, owners and deadlines for the next review"
	used += pl.unique(item{dir: "Downloads", name: long[:196] + ".pdf", ct: ctMixed, mix: mixPDF}, pl.size(szSmall), u, kindUnique) // a 200-byte name
	used += pl.unique(item{dir: "Documents", name: "New Text Document.txt", ct: ctText}, 0, u, kindUnique)
	if big := pl.bigMax * int64(50+r.IntN(41)) / 100; big <= (budget-used)/2 {
		it := item{dir: "Documents/Outlook Files", name: "archive-{year}.pst", ct: ctMixed, mix: mixMail}
		if r.IntN(4) == 0 {
			it = item{dir: "Videos", name: "{Topic} recording {date}.mp4", ct: ctMedia}
		}
		used += pl.unique(it, big, u, kindUnique)
	}
	first := len(p.files)
	if budget > used {
		pl.fill(uniqueItems, budget-used, func(it item, s int64) int64 { return pl.unique(it, s, u, kindUnique) })
	}

	// Symlinks: Desktop shortcut to a document, a directory link, a tool
	// on PATH, and one whose target is gone.
	var docs []string
	for _, f := range p.files[first:] {
		if rest, ok := strings.CutPrefix(f.rel, home+"/Documents/"); ok && strings.Contains(rest, "/") {
			docs = append(docs, f.rel)
		}
	}
	link := func(rel, target string) {
		rel = home + "/" + p.free(rel, []int{u})
		p.addDir(path.Dir(rel), 0)
		p.used[rel] = true
		p.links = append(p.links, corpusLink{rel: rel, target: target, mtime: randTime(r, corpusSpan)})
	}
	if len(docs) > 0 {
		d := pick(r, docs)
		link("Desktop/"+path.Base(d), "../"+strings.TrimPrefix(d, home+"/"))
		link("Documents/Current", strings.TrimPrefix(path.Dir(d), home+"/Documents/"))
	}
	for _, f := range p.files {
		if strings.HasPrefix(f.rel, home+"/.local/share/") && strings.Contains(f.rel, "/bin/") {
			link(".local/bin/"+path.Base(f.rel), "../share/"+strings.TrimPrefix(f.rel, home+"/.local/share/"))
			break
		}
	}
	link("Desktop/Old share.lnk", "../Documents/Archive/moved-away.docx")

	for _, d := range []string{"Documents/New folder", "Music", "Templates", "Downloads/Temp", ".local/share/Trash/files"} {
		p.addDir(home+"/"+d, 0)
	}
	p.addDir(home+"/Documents/Private", 0o700)
}

// finishDirs gives every directory the mtime of its newest entry (a random
// one when empty).
func (p *corpusPlan) finishDirs(r *rand.Rand) {
	newest := map[string]time.Time{}
	bump := func(dir string, t time.Time) {
		if t.After(newest[dir]) {
			newest[dir] = t
		}
	}
	for _, f := range p.files {
		bump(path.Dir(f.rel), f.mtime)
	}
	for _, l := range p.links {
		bump(path.Dir(l.rel), l.mtime)
	}
	dirs := make([]string, 0, len(p.dirs))
	for d := range p.dirs {
		dirs = append(dirs, d)
	}
	// Deepest first, so a directory's mtime is known before its parent's.
	slices.SortFunc(dirs, func(a, b string) int {
		if c := strings.Count(b, "/") - strings.Count(a, "/"); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, d := range dirs {
		t, ok := newest[d]
		if !ok {
			t = randTime(r, corpusSpan)
		}
		p.dirs[d].mtime = t
		if parent := path.Dir(d); parent != "." {
			bump(parent, t)
		}
	}
}

func (p *corpusPlan) info(root string) *OrgInfo {
	info := &OrgInfo{Root: root, Users: p.users, Files: len(p.files), Dirs: len(p.dirs), Symlinks: len(p.links),
		Shape: p.shape.String(), Kinds: map[string]int64{}, Classes: map[string]int64{}, Departments: map[string][]string{}}
	sizes := make([]int64, 0, len(p.files))
	for _, f := range p.files {
		sizes = append(sizes, f.size)
		info.Bytes += f.size
		info.Kinds[kindNames[f.kind]] += f.size
		for k, sh := range shares(f.ct, f.mix) {
			info.Classes[[3]string{"text", "binary", "compressed"}[k]] += int64(sh * float64(f.size))
		}
		if f.src < 0 || f.kind == kindEdited {
			info.DistinctBytes += f.size
		}
	}
	slices.Sort(sizes)
	if n := len(sizes); n > 0 {
		info.MedianFileSize, info.P90FileSize, info.P99FileSize = sizes[n/2], sizes[n*9/10], sizes[n*99/100]
	}
	for u, d := range p.deptOf {
		info.Departments[p.depts[d]] = append(info.Departments[p.depts[d]], p.users[u])
	}
	return info
}
