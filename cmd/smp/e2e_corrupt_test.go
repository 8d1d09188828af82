package main

// The corruption campaign (issue 7): a store holding several records is
// damaged at random, one fault per round, and smp must name every damaged
// chunk and file, restore everything else byte for byte, never write a
// wrong byte, and never panic. --repair then rewrites the damaged chunks
// from the original files.
//
//	SMP_CORRUPT_ROUNDS=50 go test ./cmd/smp -run Corrupt -v -timeout 60m   # full campaign
//	SMP_CORRUPT_SEED=N ...                                                   # replay a run

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
)

// corruptFix is the pristine store the campaign copies for each round, and
// everything known about it before any damage.
type corruptFix struct {
	dir     string
	store   string
	sealer  *cas.Sealer // the store's, when it is encrypted (nil: in clear)
	roots   []string    // source roots, for --repair --from
	records []*corruptRecord
	hasher  *cas.Hasher
	params  cas.ChunkerParams
	packs   map[cas.ID]corruptPack
	loc     map[cas.ID]index.Location // every indexed blob
}

type corruptPack struct {
	size    int64
	entries []cas.PackEntry
	dataEnd int64 // where the trailer starts: the end of the last blob
	meta    bool  // holds trees and records, not file data
}

type corruptRecord struct {
	id, short string
	computer  string
	root      string   // source root it was captured from
	users     []string // profiles under home/
	tree      cas.ID
	dirs      []corruptDir  // every directory, parents first ("" is the root)
	files     []corruptFile // every regular file
}

type corruptDir struct {
	path string
	tree cas.ID
}

type corruptFile struct {
	path   string
	chunks []cas.ID
}

// newCorruptFix captures four records of three profiles from two source
// roots into a store with 64 KiB chunks and 1 MiB packs (many packs, many
// chunks per file): big random files, text, small files, files and whole
// directories shared between profiles and records, empty files, symlinks.
// The store is encrypted (the default) unless clear.
func newCorruptFix(t *testing.T, clear bool) *corruptFix {
	t.Helper()
	dir := tmpDir(t)
	f := &corruptFix{dir: dir, store: filepath.Join(dir, "pristine")}
	root1, root2 := filepath.Join(dir, "src1"), filepath.Join(dir, "src2")
	f.roots = []string{root1, root2}
	text := goSource(t, 1600<<10)
	shared := rnd(100, 700<<10)
	sharedText := text[1200<<10 : 1500<<10]
	profile := func(root, name string, seed uint64) {
		h := filepath.Join(root, "home", name)
		writeFile(t, filepath.Join(h, "big.bin"), rnd(seed, 1<<20+int(seed)*40961), 0o644)
		writeFile(t, filepath.Join(h, "notes.txt"), text[seed*300<<10:seed*300<<10+250<<10], 0o640)
		writeFile(t, filepath.Join(h, "shared/common.bin"), shared, 0o644)
		writeFile(t, filepath.Join(h, "shared/common.txt"), sharedText, 0o644)
		for i := range 8 {
			b := fmt.Appendf(nil, "small file %d of %s\n", i, name)
			b = append(b, rnd(seed*100+uint64(i), i*400)...)
			writeFile(t, filepath.Join(h, fmt.Sprintf("small/s%02d.dat", i)), b, 0o644)
		}
		writeFile(t, filepath.Join(h, "small/same.txt"), []byte("identical in every profile\n"), 0o644)
		writeFile(t, filepath.Join(h, "docs/deep/er/leaf.txt"), text[seed*1000:seed*1000+70<<10], 0o600)
		writeFile(t, filepath.Join(h, "docs/empty"), nil, 0o644)
		if err := os.Symlink("big.bin", filepath.Join(h, "link")); err != nil {
			t.Fatal(err)
		}
	}
	profile(root1, "alice", 1)
	profile(root1, "bob", 2)
	profile(root1, "carol", 3)
	stampTimes(t, root1)
	// alice a week later, elsewhere: one chunk of big.bin edited, a file added.
	mkdirs(t, filepath.Join(root2, "home"))
	if out, err := exec.Command("cp", "-a", filepath.Join(root1, "home/alice"), filepath.Join(root2, "home/alice")).CombinedOutput(); err != nil {
		t.Fatalf("cp -a: %v: %s", err, out)
	}
	big := filepath.Join(root2, "home/alice/big.bin")
	b, err := os.ReadFile(big)
	if err != nil {
		t.Fatal(err)
	}
	copy(b[len(b)/2:], "edited in the middle")
	writeFile(t, big, b, 0o644)
	writeFile(t, filepath.Join(root2, "home/alice/new.txt"), text[100<<10:160<<10], 0o644)
	stampTimes(t, root2)

	initArgs := []string{"init", "--store", f.store, "--chunk-avg", "64KiB"}
	if clear {
		initArgs = append(initArgs, "--no-encrypt")
	}
	mustSMP(t, initArgs...)
	corruptSetConfig(t, f.store, "pack_size", 1<<20)
	for _, c := range []struct {
		computer, root string
		users          []string
	}{
		{"pc-a", root1, []string{"alice"}},
		{"pc-b", root1, []string{"bob"}},
		{"pc-c", root1, []string{"alice", "carol"}},
		{"pc-a", root2, []string{"alice"}},
	} {
		args := []string{"--root", c.root}
		for _, u := range c.users {
			args = append(args, "--user", u)
		}
		out := doCapture(t, exitOK, f.store, c.computer, args...)
		f.records = append(f.records, &corruptRecord{id: out.Record, short: out.Record[:12], computer: c.computer, root: c.root, users: c.users})
	}
	f.readLayout(t)
	return f
}

// corruptSetConfig changes one field of config.json (test setup only: the
// file is fixed for a store's life).
func corruptSetConfig(t testing.TB, store, key string, v any) {
	t.Helper()
	path := filepath.Join(store, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m[key] = v
	if b, err = json.MarshalIndent(m, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
}

// readLayout records, from the pristine store, where every blob lives and
// which trees and chunks each record's directories and files use, and
// checks the chunk lists against the source files cut independently. An
// encrypted store's packs are read with its keys, as smp reads them.
func (f *corruptFix) readLayout(t *testing.T) {
	t.Helper()
	r := openRepo(t, f.store, false)
	defer r.Close()
	f.hasher, f.params, f.sealer = r.Hasher, r.ChunkerParams(), storeSealer(t, r)
	f.loc = map[cas.ID]index.Location{}
	f.packs = map[cas.ID]corruptPack{}
	pd, err := cas.NewPackDir(filepath.Join(f.store, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	defer pd.Close()
	pd.Seal(f.sealer)
	err = pd.Walk(func(id cas.ID, size int64) error {
		entries, err := pd.ReadTrailer(id)
		if err != nil {
			return err
		}
		p := corruptPack{size: size, entries: entries, dataEnd: cas.PackHeaderSize}
		trailer := int64(len(entries))*cas.PackEntrySize + cas.PackFooterSize
		if f.sealer != nil {
			trailer += cas.SealOverhead
		}
		for _, e := range entries {
			p.dataEnd = max(p.dataEnd, int64(e.Offset)+int64(e.StoredLen))
		}
		if p.dataEnd != size-trailer {
			return fmt.Errorf("pack %s: blobs end at %d, its trailer of %d bytes starts at %d", id.Short(), p.dataEnd, trailer, size-trailer)
		}
		for _, e := range entries {
			p.meta = p.meta || e.Type != cas.BlobData
			l, err := r.Lookup(e.Type, e.ID)
			if err != nil || l.Pack != id {
				return fmt.Errorf("blob %s of pack %s is indexed elsewhere (%v)", e.ID.Short(), id.Short(), err)
			}
			f.loc[e.ID] = l
		}
		f.packs[id] = p
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range f.records {
		id, err := cas.ParseID(rec.id)
		if err != nil {
			t.Fatal(err)
		}
		info, err := r.Record(id)
		if err != nil {
			t.Fatal(err)
		}
		rec.tree = info.Tree
		var walk func(tree cas.ID, dir string)
		walk = func(tree cas.ID, dir string) {
			rec.dirs = append(rec.dirs, corruptDir{dir, tree})
			tr, err := r.LoadTree(tree)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tr.Entries {
				p := corruptJoin(dir, e.Name)
				switch e.Type {
				case manifest.TypeDir:
					walk(e.Subtree, p)
				case manifest.TypeFile:
					cf := corruptFile{path: p}
					for _, ch := range e.Chunks {
						cf.chunks = append(cf.chunks, ch.ID)
					}
					rec.files = append(rec.files, cf)
					if got := f.cut(t, filepath.Join(rec.root, p)); !slices.Equal(got, cf.chunks) {
						t.Fatalf("%s:%s: the record's chunks differ from the source file cut with the store's chunker", rec.short, p)
					}
				}
			}
		}
		walk(rec.tree, "")
	}
	packs := 0
	for _, p := range f.packs {
		if !p.meta {
			packs++
		}
	}
	if packs < 4 || len(f.packs)-packs < 4 {
		t.Fatalf("fixture has %d data packs and %d metadata packs; want several of each", packs, len(f.packs)-packs)
	}
	t.Logf("fixture: %d records, %d packs (%d data), %d blobs", len(f.records), len(f.packs), packs, len(f.loc))
}

func corruptJoin(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// cut returns the chunk IDs of a file cut with the store's chunker.
func (f *corruptFix) cut(t *testing.T, path string) []cas.ID {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	var ids []cas.ID
	ch := cas.NewChunker(fh, f.params)
	for {
		c, err := ch.Next()
		if err != nil {
			break
		}
		ids = append(ids, f.hasher.Sum(c))
	}
	return ids
}

// ---- faults ----

type corruptKind string

const (
	corruptFlipData    corruptKind = "flip-data"    // bytes flipped in a pack's blob data
	corruptFlipEdge    corruptKind = "flip-edge"    // bytes flipped in a pack's header or trailer
	corruptFlipAny     corruptKind = "flip-any"     // bytes flipped anywhere in a pack
	corruptTruncate    corruptKind = "truncate"     // a pack cut at a random length
	corruptDeletePack  corruptKind = "delete-pack"  // a pack file removed
	corruptIndexDelete corruptKind = "index-delete" // the index directory removed
	corruptIndexGarble corruptKind = "index-garble" // index files flipped or truncated
	corruptConfig      corruptKind = "config"       // config.json garbled
)

var corruptKinds = []corruptKind{corruptFlipData, corruptTruncate, corruptIndexGarble, corruptDeletePack, corruptFlipEdge, corruptConfig, corruptFlipAny, corruptIndexDelete}

// fault is one applied fault.
type corruptFault struct {
	kind corruptKind
	desc string
	pack cas.ID          // pack faults: the pack damaged
	hit  map[cas.ID]bool // pack faults: blobs whose stored bytes the fault touched
	bad  map[cas.ID]bool // pack faults: blobs that no longer read back (ground truth)
}

// applyFault damages the store copy in scratch.
func (f *corruptFix) applyFault(t *testing.T, rng *rand.Rand, kind corruptKind, scratch string) *corruptFault {
	t.Helper()
	ft := &corruptFault{kind: kind, hit: map[cas.ID]bool{}, bad: map[cas.ID]bool{}}
	switch kind {
	case corruptIndexDelete:
		if err := os.RemoveAll(filepath.Join(scratch, "index")); err != nil {
			t.Fatal(err)
		}
		ft.desc = "index directory deleted"
		return ft
	case corruptIndexGarble:
		ft.desc = corruptGarbleDir(t, rng, filepath.Join(scratch, "index"))
		return ft
	case corruptConfig:
		ft.desc = corruptGarbleFile(t, rng, filepath.Join(scratch, "config.json"), true)
		return ft
	}
	ids := make([]cas.ID, 0, len(f.packs))
	for id := range f.packs {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b cas.ID) int { return strings.Compare(a.String(), b.String()) })
	// Two rounds in three damage a data pack: metadata packs are many but
	// small (a tree pack and a record pack per capture).
	var data, meta []cas.ID
	for _, id := range ids {
		if f.packs[id].meta {
			meta = append(meta, id)
		} else {
			data = append(data, id)
		}
	}
	if rng.IntN(3) < 2 {
		ft.pack = data[rng.IntN(len(data))]
	} else {
		ft.pack = meta[rng.IntN(len(meta))]
	}
	p := f.packs[ft.pack]
	path := filepath.Join(scratch, "packs", ft.pack.String()[:2], ft.pack.String()+".pack")
	what := "data"
	if p.meta {
		what = "metadata"
	}
	overlaps := func(lo, hi int64) {
		for _, e := range p.entries {
			if int64(e.Offset) < hi && lo < int64(e.Offset)+int64(e.StoredLen) {
				ft.hit[e.ID] = true
			}
		}
	}
	switch kind {
	case corruptFlipData, corruptFlipEdge, corruptFlipAny:
		var lo, hi int64
		var region string
		n := 1 + rng.IntN(8)
		switch {
		case kind == corruptFlipData:
			lo, hi, region = cas.PackHeaderSize, p.dataEnd, "blob data"
		case kind == corruptFlipAny:
			lo, hi, region, n = 0, p.size, "anywhere", 1+rng.IntN(16)
		case rng.IntN(2) == 0:
			lo, hi, region, n = 0, cas.PackHeaderSize, "header", 1+rng.IntN(3)
		default:
			lo, hi, region = p.dataEnd, p.size, "trailer"
		}
		offs := map[int64]bool{}
		for len(offs) < n && len(offs) < int(hi-lo) {
			offs[lo+rng.Int64N(hi-lo)] = true
		}
		fh, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		var list []int64
		for off := range offs {
			b := make([]byte, 1)
			if _, err := fh.ReadAt(b, off); err != nil {
				t.Fatal(err)
			}
			b[0] ^= byte(1 + rng.IntN(255))
			if _, err := fh.WriteAt(b, off); err != nil {
				t.Fatal(err)
			}
			overlaps(off, off+1)
			list = append(list, off)
		}
		fh.Close()
		slices.Sort(list)
		ft.desc = fmt.Sprintf("%d bytes flipped (%s) in %s pack %s of %d bytes at %v", len(list), region, what, ft.pack.Short(), p.size, list)
	case corruptTruncate:
		n := rng.Int64N(p.size)
		if err := os.Truncate(path, n); err != nil {
			t.Fatal(err)
		}
		overlaps(n, p.size)
		ft.desc = fmt.Sprintf("%s pack %s truncated from %d to %d bytes", what, ft.pack.Short(), p.size, n)
	case corruptDeletePack:
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		overlaps(0, p.size)
		ft.desc = fmt.Sprintf("%s pack %s (%d bytes, %d blobs) deleted", what, ft.pack.Short(), p.size, len(p.entries))
	default:
		t.Fatalf("unknown fault %s", kind)
	}
	// Ground truth, from the pack file alone: which blobs still read back.
	for _, e := range p.entries {
		if err := corruptReadBlob(path, e, f.hasher, f.sealer); err != nil {
			ft.bad[e.ID] = true
			if !ft.hit[e.ID] {
				t.Errorf("blob %s does not read back though the fault did not touch it: %v", e.ID.Short(), err)
			}
		}
	}
	return ft
}

func corruptReadBlob(path string, e cas.PackEntry, h *cas.Hasher, s *cas.Sealer) error {
	fh, err := os.Open(path)
	if err != nil {
		return err
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return err
	}
	if int64(e.Offset)+int64(e.StoredLen) > st.Size() {
		return fmt.Errorf("beyond the end")
	}
	_, err = cas.ReadBlobWith(fh, e, h, s, nil)
	return err
}

// corruptGarbleFile damages one file: flips bytes, truncates it, or overwrites it
// with random bytes. With invalid set, a truncation always breaks JSON.
func corruptGarbleFile(t *testing.T, rng *rand.Rand, path string, invalid bool) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(path)
	var desc string
	switch mode := rng.IntN(3); {
	case mode == 0 && len(b) > 0:
		n := 1 + rng.IntN(4)
		var offs []int
		for range n {
			off := rng.IntN(len(b))
			b[off] ^= byte(1 + rng.IntN(255))
			offs = append(offs, off)
		}
		desc = fmt.Sprintf("%s: %d bytes flipped at %v", name, n, offs)
	case mode == 1 && len(b) > 2:
		n := rng.IntN(len(b) - 1)
		if invalid {
			n = rng.IntN(len(b) - 2) // the trailing newline alone would leave valid JSON
		}
		b = b[:n]
		desc = fmt.Sprintf("%s truncated to %d bytes", name, n)
	default:
		b = rnd(rng.Uint64(), len(b)+rng.IntN(64))
		desc = fmt.Sprintf("%s overwritten with %d random bytes", name, len(b))
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return desc
}

// corruptGarbleDir garbles one to three of the non-empty files in dir.
func corruptGarbleDir(t *testing.T, rng *rand.Rand, dir string) string {
	t.Helper()
	var files []string
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.Size() > 0 {
			files = append(files, filepath.Join(dir, e.Name()))
		}
	}
	sort.Strings(files)
	var descs []string
	for range 1 + rng.IntN(3) {
		descs = append(descs, "index/"+corruptGarbleFile(t, rng, files[rng.IntN(len(files))], false))
	}
	return strings.Join(descs, "; ")
}

// ---- expectations ----

// corruptExpect is what verify and restore must report for a pack fault.
type corruptExpect struct {
	damaged      map[string]map[string]bool // blob ID -> affected "record-prefix:path"
	types        map[string]string          // blob ID -> "data" or "tree"
	damagedFiles int
	badFiles     map[*corruptRecord][]string // per record: files with a damaged chunk
	badDirs      map[*corruptRecord][]string // per record: directories whose tree is damaged ("" is the root)
}

// expect walks every record as verify and restore do: a damaged tree hides
// what lies below it; a file is damaged when one of its chunks is; a
// damaged record blob is named on its own (affecting "record-prefix:") and
// breaks no file.
func (f *corruptFix) expect(bad map[cas.ID]bool) *corruptExpect {
	x := &corruptExpect{damaged: map[string]map[string]bool{}, types: map[string]string{},
		badFiles: map[*corruptRecord][]string{}, badDirs: map[*corruptRecord][]string{}}
	add := func(id cas.ID, typ, who string) {
		k := id.String()
		if x.damaged[k] == nil {
			x.damaged[k] = map[string]bool{}
		}
		x.damaged[k][who] = true
		x.types[k] = typ
	}
	for _, rec := range f.records {
		if id, err := cas.ParseID(rec.id); err == nil && bad[id] {
			add(id, "record", rec.short+":")
		}
		var hidden []string
		under := func(p string) bool {
			for _, h := range hidden {
				if h == "" || p == h || strings.HasPrefix(p, h+"/") {
					return true
				}
			}
			return false
		}
		for _, d := range rec.dirs {
			if under(d.path) {
				continue
			}
			if bad[d.tree] {
				hidden = append(hidden, d.path)
				x.badDirs[rec] = append(x.badDirs[rec], d.path)
				add(d.tree, "tree", rec.short+":"+d.path+"/")
			}
		}
		for _, file := range rec.files {
			if under(file.path) {
				continue
			}
			broken := false
			for _, ch := range file.chunks {
				if bad[ch] {
					add(ch, "data", rec.short+":"+file.path)
					broken = true
				}
			}
			if broken {
				x.damagedFiles++
				x.badFiles[rec] = append(x.badFiles[rec], file.path)
			}
		}
	}
	return x
}

// ---- running smp ----

// run runs smp and checks what every run must satisfy, whatever the
// damage: no panic (a garbled index included: index.Open checks its
// tables before Badger opens them), an exit status of 0, 1 or 3, and an
// error, if any, on one line.
func (f *corruptFix) run(t *testing.T, args ...string) result {
	t.Helper()
	r := smp(t, args...)
	if strings.Contains(r.stderr, "panic:") || strings.Contains(r.stderr, "goroutine ") {
		t.Errorf("smp panicked:\n%s", r)
	}
	if r.code != exitOK && r.code != exitError && r.code != exitPartial {
		t.Errorf("exit status %d, want 0, 1 or 3\n%s", r.code, r)
	}
	if lines := r.stderrLines(); r.code == exitError && len(lines) != 1 {
		t.Errorf("exit 1 with %d lines on stderr, want one\n%s", len(lines), r)
	}
	return r
}

func corruptDecode(t *testing.T, r result, v any) bool {
	t.Helper()
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Errorf("decode JSON: %v\n%s", err, r)
		return false
	}
	return true
}

type corruptVerifyJSON struct {
	OK       bool `json:"ok"`
	ReadData bool `json:"read_data"`
	Report   struct {
		Records      int `json:"records"`
		DamagedFiles int `json:"damaged_files"`
		Damaged      []struct {
			Blob    string   `json:"blob"`
			Type    string   `json:"type"`
			Reason  string   `json:"reason"`
			Affects []string `json:"affects"`
		} `json:"damaged"`
	} `json:"report"`
	Repair *struct {
		Wanted   int      `json:"wanted"`
		Repaired []string `json:"repaired"`
		Missing  []string `json:"missing"`
		Packs    []string `json:"packs"`
	} `json:"repair"`
	Remaining []struct {
		Blob string `json:"blob"`
		Type string `json:"type"`
	} `json:"remaining"`
}

// checkVerify runs verify --read-data --json and compares its report with
// x exactly: every damaged blob, no other, with every record and file it
// breaks.
func (f *corruptFix) checkVerify(t *testing.T, store string, x *corruptExpect) {
	t.Helper()
	want := exitOK
	if len(x.damaged) > 0 {
		want = exitPartial
	}
	r := f.run(t, "verify", "--store", store, "--read-data", "--json")
	var v corruptVerifyJSON
	if r.code != want || !corruptDecode(t, r, &v) {
		t.Errorf("verify: want exit %d\n%s", want, r)
		return
	}
	if v.OK != (want == exitOK) || v.Report.Records != len(f.records) || v.Report.DamagedFiles != x.damagedFiles {
		t.Errorf("verify: ok %v, %d records, %d damaged files; want %v, %d, %d", v.OK, v.Report.Records, v.Report.DamagedFiles, want == exitOK, len(f.records), x.damagedFiles)
	}
	seen := map[string]bool{}
	for _, d := range v.Report.Damaged {
		seen[d.Blob] = true
		affects, ok := x.damaged[d.Blob]
		if !ok {
			t.Errorf("verify names %s %s (%s), which is not damaged", d.Type, d.Blob[:12], d.Reason)
			continue
		}
		if d.Type != x.types[d.Blob] {
			t.Errorf("verify calls %s a %s, want %s", d.Blob[:12], d.Type, x.types[d.Blob])
		}
		got := map[string]bool{}
		for _, a := range d.Affects {
			got[a] = true
		}
		for a := range affects {
			if !got[a] && len(d.Affects) <= 20 {
				t.Errorf("verify: damaged %s %s does not name %s (names %q)", d.Type, d.Blob[:12], a, d.Affects)
			}
		}
		for a := range got {
			if !affects[a] && a != "..." {
				t.Errorf("verify: damaged %s %s names %s, which does not use it", d.Type, d.Blob[:12], a)
			}
		}
	}
	for b := range x.damaged {
		if !seen[b] {
			t.Errorf("verify misses damaged %s %s (used by %v)", x.types[b], b[:12], corruptKeys(x.damaged[b]))
		}
	}
}

func corruptKeys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// corruptRestoreCheck is what a restore run must show.
type corruptRestoreCheck struct {
	exact    bool     // badFiles and badDirs are the exact damage (pack faults); else only consistency is checked
	badFiles []string // files that must not be restored and must be named
	badDirs  []string // directories whose contents must be missing and named
}

// restoreRecord restores rec into a fresh directory and checks it: every
// path present is identical to the source (content, size, type, mode, mtime,
// symlink target), so no wrong byte was written; every path missing is named
// (itself or a directory above it) on the problem list; with c.exact the
// problem list is exactly the damaged files and directories, and the exit
// status 3 when there are some, else 0. It returns the files restored and
// the files named.
func (f *corruptFix) restoreRecord(t *testing.T, store string, rec *corruptRecord, c corruptRestoreCheck) (restored, named int) {
	t.Helper()
	target := filepath.Join(filepath.Dir(store), "restore-"+rec.short+"-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	defer os.RemoveAll(target)
	r := f.run(t, "restore", "--store", store, "--record", rec.id, "--root", target, "--keep", "--json")
	var out restoreOut
	rootBad := slices.Contains(c.badDirs, "")
	switch {
	case r.code == exitError:
		// A fatal error (root tree unreadable, index unusable): allowed only
		// when the whole record is unreadable, or when nothing is exact.
		if c.exact && !rootBad {
			t.Errorf("restore of %s failed outright\n%s", rec.short, r)
		}
	case !corruptDecode(t, r, &out):
		return 0, 0
	case c.exact && rootBad:
		t.Errorf("restore of %s, whose root tree is damaged, exited %d\n%s", rec.short, r.code, r)
	}
	problems := map[string]bool{}
	for _, p := range out.Problems {
		rest, ok := strings.CutPrefix(p, "error: ")
		path, _, ok2 := strings.Cut(rest, ": ")
		if !ok || !ok2 {
			t.Errorf("restore of %s: unexpected problem line %q", rec.short, p)
			continue
		}
		rel, err := filepath.Rel(target, path)
		if err != nil || strings.HasPrefix(rel, "..") {
			t.Errorf("restore of %s names %s, outside the target", rec.short, path)
			continue
		}
		problems[filepath.ToSlash(rel)] = true
	}
	if r.code == exitPartial && len(problems) == 0 {
		t.Errorf("restore of %s exited 3 naming nothing\n%s", rec.short, r)
	}
	if r.code == exitOK && len(problems) > 0 {
		t.Errorf("restore of %s exited 0 with problems %q", rec.short, out.Problems)
	}
	if c.exact && r.code != exitError {
		want := map[string]bool{}
		for _, p := range c.badFiles {
			want[p] = true
		}
		for _, d := range c.badDirs {
			want[d] = true
		}
		if !corruptSetsEqual(problems, want) {
			t.Errorf("restore of %s names %q, want the damaged %q", rec.short, corruptKeys(problems), corruptKeys(want))
		}
		if wantCode := map[bool]int{true: exitPartial, false: exitOK}[len(want) > 0]; r.code != wantCode {
			t.Errorf("restore of %s: exit %d, want %d\n%s", rec.short, r.code, wantCode, r)
		}
	}
	named = len(problems)
	accounted := func(p string) bool {
		for q := p; ; q = corruptParent(q) {
			if problems[q] {
				return true
			}
			if q == "" {
				return false
			}
		}
	}
	// Everything the record holds, from the source.
	src := map[string]bool{}
	for _, d := range rec.dirs {
		if d.path != "" {
			src[d.path] = true
		}
	}
	for _, u := range rec.users {
		for _, p := range listTree(t, filepath.Join(rec.root, "home", u)) {
			src["home/"+u+"/"+p] = true
		}
	}
	exists := func(p string) bool { _, err := os.Lstat(filepath.Join(target, p)); return err == nil }
	if _, err := os.Stat(target); err == nil {
		for _, p := range listTree(t, target) {
			if !src[p] {
				t.Errorf("restore of %s wrote %s, which the record does not hold", rec.short, p)
			}
		}
	}
	for p := range src {
		if !exists(p) {
			if r.code != exitError && !accounted(p) {
				t.Errorf("restore of %s: %s is missing and not named as a problem", rec.short, p)
			}
			continue
		}
		if c.exact && accounted(p) && p != "" {
			t.Errorf("restore of %s wrote %s, which it names as damaged", rec.short, p)
		}
		if diff := corruptSameEntry(filepath.Join(rec.root, p), filepath.Join(target, p)); diff != "" {
			t.Errorf("restore of %s: %s: %s (a wrong byte or attribute written)", rec.short, p, diff)
		}
		if st, err := os.Lstat(filepath.Join(target, p)); err == nil && st.Mode().IsRegular() {
			restored++
		}
	}
	return restored, named
}

func corruptParent(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func corruptSetsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

// corruptSameEntry compares one restored entry with its source: type, permission
// bits, mtime, and size and contents or symlink target. Directory mtimes
// are left out: restore sets them, but a directory's own entry is not the
// campaign's subject.
func corruptSameEntry(src, dst string) string {
	a, err := os.Lstat(src)
	if err != nil {
		return err.Error()
	}
	b, err := os.Lstat(dst)
	if err != nil {
		return err.Error()
	}
	if a.Mode().Type() != b.Mode().Type() {
		return fmt.Sprintf("type %v, restored %v", a.Mode().Type(), b.Mode().Type())
	}
	switch {
	case a.Mode()&fs.ModeSymlink != 0:
		ta, _ := os.Readlink(src)
		tb, _ := os.Readlink(dst)
		if ta != tb {
			return fmt.Sprintf("symlink target %q, restored %q", ta, tb)
		}
	case a.Mode().IsRegular():
		if a.Size() != b.Size() {
			return fmt.Sprintf("size %d, restored %d", a.Size(), b.Size())
		}
		if same, err := sameContents(src, dst); err != nil || !same {
			return fmt.Sprintf("contents differ (%v)", err)
		}
		if a.Mode().Perm() != b.Mode().Perm() {
			return fmt.Sprintf("mode %v, restored %v", a.Mode(), b.Mode())
		}
		if ka, kb := a.Sys().(*syscall.Stat_t), b.Sys().(*syscall.Stat_t); ka.Mtim != kb.Mtim {
			return fmt.Sprintf("mtime %v, restored %v", ka.Mtim, kb.Mtim)
		}
	case a.IsDir():
		if a.Mode().Perm() != b.Mode().Perm() {
			return fmt.Sprintf("mode %v, restored %v", a.Mode(), b.Mode())
		}
	}
	return ""
}

// ---- the campaign ----

// corruptStats sums up a campaign for docs/RELIABILITY.md.
type corruptStats struct {
	rounds         int
	byKind         map[corruptKind]int
	blobsHit       int // blobs whose stored bytes a fault touched
	blobsBad       int // of those, blobs that no longer read back
	blobsHarmless  int // touched but still sound (the flip did not change the plaintext)
	reported       int // damaged blobs verify named
	filesDamaged   int // record files with a damaged chunk, as verify counted them
	filesRestored  int // files restored and found identical, damaged rounds
	filesNamed     int // paths restore named as not restored
	recordBlobs    int // record blobs damaged (verify names them; files cannot repair them)
	repaired       int // chunks --repair rewrote
	unrepairable   int // damaged trees (not file data: --repair cannot help)
	configOutcomes map[string]int
	indexOutcomes  map[string]int // before the rebuild, per index round
	indexRecovered int
}

func corruptEnvInt(t *testing.T, name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestE2ECorruptCampaign: SMP_CORRUPT_ROUNDS rounds (default 4) of one
// random fault each on a copy of a store holding four records, seeded by
// SMP_CORRUPT_SEED (default: the clock; logged). It runs on an encrypted
// store, as smp init makes them (the faults hit ciphertext and sealed
// trailers; the blobs' ground truth is read with the store's keys), and on
// a store made with --no-encrypt, each with the same seed.
func TestE2ECorruptCampaign(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("cp"); err != nil {
		t.Skip("no cp to copy stores with")
	}
	rounds := int(corruptEnvInt(t, "SMP_CORRUPT_ROUNDS", 4))
	seed := uint64(corruptEnvInt(t, "SMP_CORRUPT_SEED", time.Now().UnixNano()&(1<<62-1)))
	t.Logf("corruption campaign: %d rounds, seed %d (replay: SMP_CORRUPT_SEED=%d SMP_CORRUPT_ROUNDS=%d)", rounds, seed, seed, rounds)
	for _, clear := range []bool{false, true} {
		t.Run(map[bool]string{false: "encrypted", true: "clear"}[clear], func(t *testing.T) {
			t.Parallel()
			corruptCampaign(t, clear, rounds, seed)
		})
	}
}

func corruptCampaign(t *testing.T, clear bool, rounds int, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	start := time.Now()
	f := newCorruptFix(t, clear)
	st := &corruptStats{byKind: map[corruptKind]int{}, configOutcomes: map[string]int{}, indexOutcomes: map[string]int{}}
	// Sound first: the fixture verifies clean and restores identical.
	clean := f.expect(nil)
	f.checkVerify(t, f.store, clean)
	first := rng.IntN(len(corruptKinds))
	for i := range rounds {
		kind := corruptKinds[(first+i)%len(corruptKinds)]
		scratch := filepath.Join(f.dir, fmt.Sprintf("round%03d", i))
		if out, err := exec.Command("cp", "-a", f.store, scratch).CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v: %s", err, out)
		}
		ok := t.Run(fmt.Sprintf("%03d-%s", i, kind), func(t *testing.T) {
			ft := f.applyFault(t, rng, kind, scratch)
			t.Logf("round %d: %s", i, ft.desc)
			st.rounds++
			st.byKind[kind]++
			switch kind {
			case corruptIndexDelete, corruptIndexGarble:
				f.indexRound(t, scratch, kind, st)
			case corruptConfig:
				f.configRound(t, scratch, st)
			default:
				f.packRound(t, scratch, ft, st)
			}
		})
		if !ok {
			t.Logf("round %d failed; replay with SMP_CORRUPT_SEED=%d SMP_CORRUPT_ROUNDS=%d", i, seed, i+1)
		}
		os.RemoveAll(scratch)
	}
	kinds := []string{}
	for _, k := range corruptKinds {
		kinds = append(kinds, fmt.Sprintf("%s %d", k, st.byKind[k]))
	}
	t.Logf("campaign summary: %s store, seed %d, %d rounds in %.0fs (%s); blobs touched %d, unreadable %d (still sound %d), all named by verify: %d; "+
		"files damaged %d, named by restore %d paths, restored identical %d, wrong bytes written 0 unless reported above; "+
		"record blobs damaged (named by verify) %d; chunks repaired from the source %d, trees and records not repairable %d; index before the rebuild %v; index rebuilt and complete %d times; config.json outcomes %v",
		map[bool]string{false: "encrypted", true: "clear"}[clear], seed, st.rounds, time.Since(start).Seconds(), strings.Join(kinds, ", "), st.blobsHit, st.blobsBad, st.blobsHarmless, st.reported,
		st.filesDamaged, st.filesNamed, st.filesRestored, st.recordBlobs, st.repaired, st.unrepairable, st.indexOutcomes, st.indexRecovered, st.configOutcomes)
}

// packRound checks a damaged pack: verify and restore report exactly the
// damage; --repair from the source roots rewrites every damaged chunk;
// then verify is clean (but for damaged trees, which files cannot repair)
// and every record restores identical; gc keeps the good copies.
func (f *corruptFix) packRound(t *testing.T, scratch string, ft *corruptFault, st *corruptStats) {
	for id := range ft.hit {
		st.blobsHit++
		if !ft.bad[id] {
			st.blobsHarmless++
		}
	}
	st.blobsBad += len(ft.bad)
	for id := range ft.bad {
		if f.loc[id].Type == cas.BlobRecord {
			st.recordBlobs++
		}
	}
	x := f.expect(ft.bad)
	t.Logf("%d blobs unreadable: %d damaged blobs reachable from records, %d record files damaged", len(ft.bad), len(x.damaged), x.damagedFiles)
	st.reported += len(x.damaged)
	st.filesDamaged += x.damagedFiles
	f.checkVerify(t, scratch, x)
	for _, rec := range f.records {
		n, named := f.restoreRecord(t, scratch, rec, corruptRestoreCheck{exact: true, badFiles: x.badFiles[rec], badDirs: x.badDirs[rec]})
		st.filesRestored += n
		st.filesNamed += named
	}

	if len(ft.bad) == 0 {
		return // nothing to repair; the store is as sound as before
	}

	// Repair from the original trees.
	args := []string{"verify", "--store", scratch, "--repair", "--json"}
	for _, root := range f.roots {
		args = append(args, "--from", root)
	}
	r := f.run(t, args...)
	var v corruptVerifyJSON
	wantData, wantTrees := []string{}, []string{}
	for b, typ := range x.types {
		if typ == "data" {
			wantData = append(wantData, b)
		} else {
			wantTrees = append(wantTrees, b)
		}
	}
	sort.Strings(wantData)
	sort.Strings(wantTrees)
	wantCode := exitOK
	if len(wantTrees) > 0 {
		wantCode = exitPartial
	}
	if r.code != wantCode || !corruptDecode(t, r, &v) || v.Repair == nil {
		t.Fatalf("verify --repair: want exit %d and a repair report\n%s", wantCode, r)
	}
	var remaining []string
	for _, d := range v.Remaining {
		remaining = append(remaining, d.Blob)
	}
	sort.Strings(remaining)
	if !slices.Equal(v.Repair.Repaired, wantData) || len(v.Repair.Missing) != 0 || !slices.Equal(remaining, wantTrees) {
		t.Errorf("verify --repair: repaired %d %q, missing %q, remaining %q; want every damaged chunk %q repaired, trees %q remaining",
			len(v.Repair.Repaired), v.Repair.Repaired, v.Repair.Missing, remaining, wantData, wantTrees)
	}
	st.repaired += len(v.Repair.Repaired)
	st.unrepairable += len(wantTrees)

	// What remains is exactly the damaged trees.
	bad := map[cas.ID]bool{}
	for id := range ft.bad {
		if ft.bad[id] && f.loc[id].Type != cas.BlobData {
			bad[id] = true
		}
	}
	before := x
	x = f.expect(bad)
	f.checkVerify(t, scratch, x)
	for _, rec := range f.records {
		if len(before.badFiles[rec])+len(before.badDirs[rec]) == 0 {
			continue // restored identical above; the repair changed none of its blobs
		}
		f.restoreRecord(t, scratch, rec, corruptRestoreCheck{exact: true, badFiles: x.badFiles[rec], badDirs: x.badDirs[rec]})
	}
	r = f.run(t, "gc", "--store", scratch, "--repack-below", "1", "--json")
	if slices.Contains(slices.Collect(maps.Values(x.types)), "tree") {
		// A damaged tree stops gc before it changes anything.
		if r.code != exitError || !strings.Contains(r.stderr, "nothing was deleted") {
			t.Errorf("gc with a damaged tree: want exit 1, nothing deleted\n%s", r)
		}
		return
	}
	// A damaged record blob keeps its pack (exit 3); nothing else is left.
	if r.code != exitOK && r.code != exitPartial {
		t.Errorf("gc after repair\n%s", r)
	}
	// gc rewrote the damaged pack (or kept it, unreadable trailer) and the
	// index still serves the good copies.
	f.checkVerify(t, scratch, x)
}

// indexRound checks a lost or garbled index: before the rebuild, nothing
// panics or writes a wrong byte, and a command that cannot use the index
// fails with one line saying to run smp index rebuild (a deleted index
// always: it is not recreated empty); smp index rebuild then brings back
// every record, clean and identical.
func (f *corruptFix) indexRound(t *testing.T, scratch string, kind corruptKind, st *corruptStats) {
	hint := "run smp index rebuild --store " + scratch
	r := f.run(t, "verify", "--store", scratch, "--read-data", "--json")
	outcome := ""
	switch {
	case r.code == exitError && strings.Contains(r.stderr, hint):
		outcome = "refused: run smp index rebuild"
	case r.code == exitError:
		// Opened, then a read failed (a block or value failing its
		// checksum): one line (run checks it), naming the index.
		outcome = "read error"
		if !strings.Contains(r.stderr, "index") {
			t.Errorf("before rebuild: verify fails without naming the index\n%s", r)
		}
	default:
		var v corruptVerifyJSON
		if corruptDecode(t, r, &v) {
			outcome = fmt.Sprintf("opened, verify exit %d with %d of %d records", r.code, v.Report.Records, len(f.records))
		}
	}
	if kind == corruptIndexDelete {
		if outcome != "refused: run smp index rebuild" {
			t.Errorf("deleted index: verify must fail with one line saying to %s\n%s", hint, r)
		}
		if _, err := os.Stat(filepath.Join(scratch, "index")); !os.IsNotExist(err) {
			t.Errorf("a command recreated the deleted index (%v)", err)
		}
	}
	st.indexOutcomes[outcome]++
	t.Logf("before rebuild: %s: %s", outcome, strings.Join(r.stderrLines(), " | "))
	for _, rec := range f.records {
		f.restoreRecord(t, scratch, rec, corruptRestoreCheck{})
	}
	r = f.run(t, "index", "rebuild", "--store", scratch, "--json")
	var rep struct {
		Records      int      `json:"records"`
		DamagedPacks []string `json:"damaged_packs"`
		Incomplete   []string `json:"incomplete_records"`
	}
	if r.code != exitOK || !corruptDecode(t, r, &rep) || rep.Records != len(f.records) {
		t.Fatalf("index rebuild: want exit 0 and %d records\n%s", len(f.records), r)
	}
	f.checkVerify(t, scratch, f.expect(nil))
	for _, rec := range f.records {
		n, _ := f.restoreRecord(t, scratch, rec, corruptRestoreCheck{exact: true})
		st.filesRestored += n
	}
	st.indexRecovered++
}

// configRound checks a garbled config.json: a clear error naming it (exit
// 1) when it no longer parses; when it still does (a flip inside a value),
// whatever smp does, it writes no wrong byte.
func (f *corruptFix) configRound(t *testing.T, scratch string, st *corruptStats) {
	r := f.run(t, "verify", "--store", scratch, "--read-data", "--json")
	outcome := ""
	switch r.code {
	case exitError:
		lines := r.stderrLines()
		if len(lines) != 1 || !(strings.Contains(r.stderr, "config") || strings.Contains(r.stderr, "format version")) {
			t.Errorf("garbled config.json: want one line naming it\n%s", r)
		}
		outcome = "refused with an error naming config.json"
	case exitOK:
		outcome = "still valid, store sound"
	case exitPartial:
		// A flip turned the hash key into another valid key: every chunk
		// now fails its check. Nothing is lost, nothing wrong is written.
		outcome = "still valid JSON, different hash key: every blob reported damaged"
	}
	st.configOutcomes[outcome]++
	t.Logf("config.json: %s", outcome)
	for _, rec := range f.records {
		f.restoreRecord(t, scratch, rec, corruptRestoreCheck{})
	}
}

// TestE2ECorruptRepair: a flipped chunk is named by verify; --repair from an
// unrelated tree repairs nothing and lists what is still missing (exit 3);
// --repair from a copy of the original files (moved and renamed: chunks
// are found by content) repairs it; verify is clean and the record
// restores identical, also after gc and an index rebuild. It runs on an
// encrypted store (the flipped byte is ciphertext: the blob fails its
// authentication) and on a store in clear (the chunk fails its hash).
func TestE2ECorruptRepair(t *testing.T) {
	t.Parallel()
	for _, clear := range []bool{false, true} {
		name := map[bool]string{false: "encrypted", true: "clear"}[clear]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testCorruptRepair(t, clear)
		})
	}
}

func testCorruptRepair(t *testing.T, clear bool) {
	dir := tmpDir(t)
	root := filepath.Join(dir, "root")
	writeFile(t, filepath.Join(root, "home/alice/big.bin"), rnd(71, 3<<20), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/text.txt"), goSource(t, 500<<10), 0o644)
	writeFile(t, filepath.Join(root, "home/alice/small.txt"), []byte("small and intact\n"), 0o644)
	stampTimes(t, root)
	store := filepath.Join(dir, "store")
	initArgs := []string{"init", "--store", store, "--chunk-avg", "64KiB"}
	if clear {
		initArgs = append(initArgs, "--no-encrypt")
	}
	mustSMP(t, initArgs...)
	if storeEncrypted(t, store) == clear {
		t.Fatalf("smp %q made a store with encrypted=%v", initArgs, !clear)
	}
	rec := doCapture(t, exitOK, store, "pc1", "--root", root)

	// Damage one chunk in the middle of big.bin.
	packs, _ := storePacks(t, store)
	var victim cas.PackEntry
	var victimPack string
	err := packs.Walk(func(id cas.ID, _ int64) error {
		entries, err := packs.ReadTrailer(id)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if e.Type == cas.BlobData && e.Compression == cas.CompressionNone && e.StoredLen > victim.StoredLen {
				victim, victimPack = e, packs.Path(id)
			}
		}
		return nil
	})
	packs.Close()
	if err != nil || victimPack == "" {
		t.Fatalf("no raw data chunk found (%v)", err)
	}
	flipByte(t, victimPack, int64(victim.Offset)+int64(victim.StoredLen)/3)
	var v corruptVerifyJSON
	smpJSON(t, exitPartial, &v, "verify", "--store", store, "--read-data", "--json")
	if len(v.Report.Damaged) != 1 || v.Report.Damaged[0].Blob != victim.ID.String() || !slices.Equal(v.Report.Damaged[0].Affects, []string{rec.Record[:12] + ":home/alice/big.bin"}) {
		t.Fatalf("verify: want chunk %s of home/alice/big.bin named\n%+v", victim.ID.Short(), v)
	}

	// Usage errors.
	for _, args := range [][]string{
		{"--repair"},
		{"--from", root},
		{"--repair", "--from", filepath.Join(dir, "nope")},
		{"--record", rec.Record, "--computer", "pc1"},
	} {
		if r := smp(t, append([]string{"verify", "--store", store}, args...)...); r.code != exitUsage {
			t.Errorf("verify %q: want exit 2\n%s", args, r)
		}
	}

	// An unrelated tree holds none of it.
	unrelated := filepath.Join(dir, "unrelated")
	writeFile(t, filepath.Join(unrelated, "other.bin"), rnd(72, 1<<20), 0o644)
	writeFile(t, filepath.Join(unrelated, "small.txt"), []byte("small and intact\n"), 0o644) // same bytes as an intact chunk: not needed
	r := smp(t, "verify", "--store", store, "--repair", "--from", unrelated)
	if r.code != exitPartial || !strings.Contains(r.stdout, "STILL DAMAGED") || !strings.Contains(r.stdout, victim.ID.String()[:12]) ||
		!strings.Contains(r.stdout, "home/alice/big.bin") || !strings.Contains(r.stdout, "repaired 0 of 1") {
		t.Errorf("repair from an unrelated tree: want exit 3 naming the missing chunk and its file\n%s", r)
	}
	smpJSON(t, exitPartial, &v, "verify", "--store", store, "--repair", "--from", unrelated, "--json")
	if v.OK || v.Repair == nil || len(v.Repair.Repaired) != 0 || !slices.Equal(v.Repair.Missing, []string{victim.ID.String()}) ||
		len(v.Remaining) != 1 || len(v.Repair.Packs) != 0 {
		t.Errorf("repair --json from an unrelated tree: %+v", v)
	}

	// A copy of the original files, moved and renamed: chunks are matched
	// by content, wherever they are.
	copyDir := filepath.Join(dir, "elsewhere")
	writeFile(t, filepath.Join(copyDir, "renamed/data.bin"), rnd(71, 3<<20), 0o600)
	packsBefore := packNames(t, store)
	r = smp(t, "verify", "--store", store, "--computer", "pc1", "--repair", "--from", unrelated, "--from", copyDir)
	if r.code != exitOK || !strings.Contains(r.stdout, "REPAIRED data "+victim.ID.String()[:12]) || !strings.Contains(r.stdout, "repaired 1 of 1") {
		t.Fatalf("repair from a copy of the files: want exit 0 and the chunk repaired\n%s", r)
	}
	var repairPacks []string
	for _, p := range packNames(t, store) {
		if !slices.Contains(packsBefore, p) {
			repairPacks = append(repairPacks, p)
		}
	}
	if len(repairPacks) != 1 {
		t.Errorf("repair wrote packs %q, want one", repairPacks)
	}
	check := func(when string) {
		t.Helper()
		if r := smp(t, "verify", "--store", store, "--read-data"); r.code != exitOK || !strings.Contains(r.stdout, "all sound") {
			t.Fatalf("%s: verify --read-data\n%s", when, r)
		}
		target := filepath.Join(tmpDir(t), "target")
		restoreJSON(t, exitOK, store, "--record", rec.Record, "--root", target, "--keep")
		compareTrees(t, filepath.Join(root, "home"), filepath.Join(target, "home"), compareOpts{})
	}
	check("after repair")
	// A second repair has nothing to do.
	if r := smp(t, "verify", "--store", store, "--repair", "--from", root); r.code != exitOK || !strings.Contains(r.stdout, "repaired 0 of 0") {
		t.Errorf("second repair\n%s", r)
	}
	// Before gc, the damaged copy is still in its old pack: an index
	// rebuild finds both copies and indexes the one that reads back,
	// whichever pack it reads last.
	t.Run("index rebuild before gc", func(t *testing.T) {
		early := filepath.Join(tmpDir(t), "store")
		if out, err := exec.Command("cp", "-a", store, early).CombinedOutput(); err != nil {
			t.Fatalf("cp -a: %v: %s", err, out)
		}
		if err := os.RemoveAll(filepath.Join(early, "index")); err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Records    int      `json:"records"`
			Duplicates int      `json:"duplicated_blobs"`
			Unreadable []string `json:"unreadable_duplicates"`
		}
		smpJSON(t, exitOK, &rep, "index", "rebuild", "--store", early, "--json")
		if rep.Records != 1 || rep.Duplicates != 1 || len(rep.Unreadable) != 0 {
			t.Errorf("rebuild: %+v; want 1 record, 1 duplicated blob (the repaired chunk), none unreadable", rep)
		}
		t.Logf("damaged pack %s, repair wrote %q", filepath.Base(victimPack), repairPacks)
		if r := smp(t, "verify", "--store", early, "--read-data"); r.code != exitOK {
			t.Fatalf("verify after a rebuild before gc names the damaged copy again\n%s", r)
		}
	})

	// gc rewrites the damaged pack (its live blobs, not the damaged copy,
	// which the index no longer names); after that an index rebuild from
	// the packs finds only the good copy.
	var gc struct {
		PacksRewritten int      `json:"packs_rewritten"`
		Problems       []string `json:"problems"`
	}
	smpJSON(t, exitOK, &gc, "gc", "--store", store, "--repack-below", "1", "--json")
	if gc.PacksRewritten == 0 || len(gc.Problems) != 0 {
		t.Errorf("gc after repair: %+v; want the damaged pack rewritten", gc)
	}
	if _, err := os.Stat(victimPack); !os.IsNotExist(err) {
		t.Errorf("damaged pack still there after gc --repack-below 1 (%v)", err)
	}
	check("after gc")
	if err := os.RemoveAll(filepath.Join(store, "index")); err != nil {
		t.Fatal(err)
	}
	mustSMP(t, "index", "rebuild", "--store", store)
	check("after gc and an index rebuild")
}

// packNames lists the pack files of a store.
func packNames(t *testing.T, store string) []string {
	t.Helper()
	matches, err := filepath.Glob(filepath.Join(store, "packs", "*", "*.pack"))
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range matches {
		matches[i] = filepath.Base(m)
	}
	return matches
}
