package corpus

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/dustin/go-humanize"
)

// corpusTestOptions is the small corpus the tests generate: 3 users (so
// there are 2 departments, one with two members), 24 MiB (8 MiB under the
// race detector, which slows the generator about tenfold).
func corpusTestOptions(out string) OrgOptions {
	size := int64(24 << 20)
	if raceEnabled {
		size = 8 << 20
	}
	return OrgOptions{Out: out, Users: 3, Size: size, Seed: 11}
}

// corpusEntry is what a capture would see of one path.
type corpusEntry struct {
	Type   string // "f", "d", "l"
	Mode   fs.FileMode
	Size   int64
	MTime  time.Time
	Sum    [32]byte // regular files
	Target string   // symlinks
}

func (e corpusEntry) String() string {
	return fmt.Sprintf("%s %v %d %s %x %q", e.Type, e.Mode, e.Size, e.MTime.UTC().Format(time.RFC3339Nano), e.Sum[:6], e.Target)
}

// corpusSnapshot maps every path under dir/home (relative to dir) to its
// type, mode, size, mtime and content hash or link target.
func corpusSnapshot(t *testing.T, dir string) map[string]corpusEntry {
	t.Helper()
	out := map[string]corpusEntry{}
	err := filepath.WalkDir(filepath.Join(dir, "home"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		e := corpusEntry{Mode: info.Mode().Perm(), MTime: info.ModTime()}
		switch {
		case d.IsDir():
			e.Type = "d"
		case d.Type()&fs.ModeSymlink != 0:
			e.Type = "l"
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case d.Type().IsRegular():
			e.Type, e.Size = "f", info.Size()
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Sum = sha256.Sum256(b)
		default:
			return fmt.Errorf("%s: unexpected type %v", p, d.Type())
		}
		out[filepath.ToSlash(rel)] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func diffSnapshots(t *testing.T, a, b map[string]corpusEntry) {
	t.Helper()
	n := 0
	for p, ea := range a {
		if eb, ok := b[p]; !ok || ea != eb {
			if n++; n <= 10 {
				t.Errorf("%s: %v vs %v", p, ea, b[p])
			}
		}
	}
	for p := range b {
		if _, ok := a[p]; !ok {
			if n++; n <= 10 {
				t.Errorf("%s only in the second tree", p)
			}
		}
	}
	if n > 0 {
		t.Fatalf("%d paths differ", n)
	}
}

type corpusFixtureT struct {
	opts        OrgOptions
	info, info2 *OrgInfo
	plan        *corpusPlan
	snap        map[string]corpusEntry
	snap2       map[string]corpusEntry
	elapsed     time.Duration
}

var (
	corpusFixtureOnce sync.Once
	corpusFixtureVal  *corpusFixtureT
	corpusFixtureErr  error
)

// corpusFixture generates the test corpus twice with the same options,
// once per process; tests must not modify it.
func corpusFixture(t *testing.T) *corpusFixtureT {
	t.Helper()
	dir := fixtureDir
	corpusFixtureOnce.Do(func() {
		f := &corpusFixtureT{opts: corpusTestOptions(filepath.Join(dir, "corpus-a"))}
		c, err := loadMaterial()
		if err != nil {
			corpusFixtureErr = err
			return
		}
		start := time.Now()
		if f.info, err = GenerateOrg(f.opts); err != nil {
			corpusFixtureErr = err
			return
		}
		f.elapsed = time.Since(start)
		o2 := f.opts
		o2.Out = filepath.Join(dir, "corpus-b")
		if f.info2, err = GenerateOrg(o2); err != nil {
			corpusFixtureErr = err
			return
		}
		f.plan = planCorpus(c, f.opts)
		corpusFixtureVal = f
	})
	if corpusFixtureErr != nil {
		t.Fatal(corpusFixtureErr)
	}
	f := corpusFixtureVal
	if f.snap == nil {
		f.snap = corpusSnapshot(t, f.opts.Out)
		f.snap2 = corpusSnapshot(t, f.info2.Root)
	}
	return f
}

func TestCorpusDeterministic(t *testing.T) {
	f := corpusFixture(t)
	b, _ := json.Marshal(f.info)
	t.Logf("generated in %v: %s", f.elapsed.Round(time.Millisecond), b)
	diffSnapshots(t, f.snap, f.snap2)
	i1, i2 := *f.info, *f.info2
	i1.Root, i2.Root = "", ""
	if j1, j2 := fmt.Sprint(i1), fmt.Sprint(i2); j1 != j2 {
		t.Fatalf("infos differ:\n%s\n%s", j1, j2)
	}
	// Another seed plans another organisation.
	c, _ := loadMaterial()
	o := f.opts
	o.Seed++
	other := planCorpus(c, o)
	same := 0
	for _, g := range other.files {
		if f.plan.used[g.rel] {
			same++
		}
	}
	if same > len(other.files)/4 {
		t.Errorf("seed %d reuses %d of %d paths of seed %d", o.Seed, same, len(other.files), f.opts.Seed)
	}
}

func TestCorpusLayout(t *testing.T) {
	f := corpusFixture(t)
	info, snap := f.info, f.snap
	if len(info.Users) != f.opts.Users || info.Users[0] != "user01" {
		t.Fatalf("users %v", info.Users)
	}
	// Totals match the disk and the requested size.
	var files, links, dirs int
	var bytes int64
	for _, e := range snap {
		switch e.Type {
		case "f":
			files++
			bytes += e.Size
		case "l":
			links++
		case "d":
			dirs++
		}
	}
	if files != info.Files || bytes != info.Bytes || links != info.Symlinks || dirs != info.Dirs {
		t.Fatalf("info says %d files, %d bytes, %d links, %d dirs; disk has %d, %d, %d, %d",
			info.Files, info.Bytes, info.Symlinks, info.Dirs, files, bytes, links, dirs)
	}
	if d := float64(bytes)/float64(f.opts.Size) - 1; d < -0.10 || d > 0.10 {
		t.Errorf("corpus holds %d bytes, want %d ±10%%", bytes, f.opts.Size)
	}

	oldest := Now.Add(-corpusSpan - 24*time.Hour)
	for _, u := range info.Users {
		home := "home/" + u
		t.Run(u, func(t *testing.T) {
			for _, d := range []string{"", "/Documents", "/Desktop", "/Pictures", "/Downloads", "/.config", "/.local/share", "/.ssh"} {
				if snap[home+d].Type != "d" {
					t.Errorf("%s%s is not a directory", home, d)
				}
			}
			if m := snap[home].Mode; m != 0o700 {
				t.Errorf("%s has mode %v, want 0700", home, m)
			}
			var (
				modes                                 = map[fs.FileMode]int{}
				dirModes                              = map[fs.FileMode]int{}
				spaces, unicode, dash, long, configs  int
				empty, relLinks, dangling, emptyFiles int
				minT, maxT                            = Now, oldest
				perUser                               int64
			)
			children := map[string]int{}
			for p := range snap {
				children[path.Dir(p)]++
			}
			for p, e := range snap {
				if !strings.HasPrefix(p, home+"/") {
					continue
				}
				rel := strings.TrimPrefix(p, home+"/")
				base := path.Base(p)
				if e.MTime.After(Now) || e.MTime.Before(oldest) {
					t.Errorf("%s: mtime %v outside the three years before %v", p, e.MTime, Now)
				}
				if e.MTime.Before(minT) {
					minT = e.MTime
				}
				if e.MTime.After(maxT) {
					maxT = e.MTime
				}
				if strings.Contains(base, " ") {
					spaces++
				}
				if !utf8.ValidString(base) {
					t.Errorf("%q is not UTF-8", p)
				}
				for _, r := range base {
					if r > 127 {
						unicode++
						break
					}
				}
				if strings.HasPrefix(base, "-") {
					dash++
				}
				if len(base) >= 190 {
					long++
				}
				switch e.Type {
				case "d":
					dirModes[e.Mode]++
					if children[p] == 0 {
						empty++
					}
				case "f":
					modes[e.Mode]++
					perUser += e.Size
					if e.Size == 0 {
						emptyFiles++
					}
					if strings.HasPrefix(rel, ".") && e.Size >= 1<<10 && e.Size <= 8<<10 {
						configs++
					}
				case "l":
					if path.IsAbs(e.Target) {
						t.Errorf("%s -> %s is absolute", p, e.Target)
					}
					target := path.Join(path.Dir(p), e.Target)
					if !strings.HasPrefix(target, home+"/") {
						t.Errorf("%s -> %s leaves the profile", p, e.Target)
					}
					if _, ok := snap[target]; ok {
						relLinks++
					} else {
						dangling++
					}
				}
			}
			t.Logf("%.1f MiB; file modes %v; dir modes %v; %d empty dirs, %d small dot-files, %d symlinks (+%d dangling); mtimes %s .. %s",
				float64(perUser)/(1<<20), modes, dirModes, empty, configs, relLinks, dangling, minT.Format(time.DateOnly), maxT.Format(time.DateOnly))
			if spaces == 0 || unicode == 0 || dash == 0 || long == 0 || emptyFiles == 0 {
				t.Errorf("odd names: %d with spaces, %d unicode, %d leading dash, %d long; %d empty files", spaces, unicode, dash, long, emptyFiles)
			}
			if modes[0o600] == 0 || modes[0o644] == 0 || modes[0o755] == 0 || dirModes[0o700] < 2 || dirModes[0o755] == 0 {
				t.Errorf("want files 0600, 0644, 0755 and dirs 0700, 0755; have %v and %v", modes, dirModes)
			}
			if empty < 3 {
				t.Errorf("%d empty directories, want at least 3", empty)
			}
			if relLinks < 2 || dangling != 1 {
				t.Errorf("%d working symlinks and %d dangling, want >= 2 and 1", relLinks, dangling)
			}
			if configs < 24 {
				t.Errorf("%d dot-files of 1-8 KiB, want dozens", configs)
			}
			if maxT.Sub(minT) < 365*24*time.Hour {
				t.Errorf("mtimes span only %v", maxT.Sub(minT))
			}
		})
	}
}

func TestCorpusSharing(t *testing.T) {
	f := corpusFixture(t)
	p, snap, users := f.plan, f.snap, f.info.Users
	profile := func(rel string) (user, prof string) {
		parts := strings.SplitN(rel, "/", 3)
		return parts[1], parts[2]
	}
	holders := func(prof string) (n int, same bool) {
		same = true
		var sum [32]byte
		for _, u := range users {
			e, ok := snap["home/"+u+"/"+prof]
			if !ok || e.Type != "f" {
				continue
			}
			if n == 0 {
				sum = e.Sum
			}
			same = same && e.Sum == sum
			n++
		}
		return n, same
	}
	var org, dept, deptPartial int
	for _, fl := range p.files {
		if fl.src >= 0 {
			continue
		}
		_, prof := profile(fl.rel)
		n, same := holders(prof)
		switch fl.kind {
		case kindOrg:
			org++
			if n != len(users) || !same {
				t.Errorf("org file %s: in %d of %d profiles, identical %v", prof, n, len(users), same)
			}
		case kindDept:
			dept++
			if !same || n < 1 || n == len(users) {
				t.Errorf("department file %s: in %d of %d profiles, identical %v", prof, n, len(users), same)
			}
			if n > 1 {
				deptPartial++
			}
		}
	}
	if org == 0 || deptPartial == 0 {
		t.Fatalf("%d org files, %d department files of which %d shared by several users", org, dept, deptPartial)
	}
	// Unique files appear in one profile only.
	where := map[[32]byte]string{}
	for rel, e := range snap {
		if e.Type == "f" && e.Size > 0 {
			u, _ := profile(rel)
			if w, ok := where[e.Sum]; ok && w != u {
				where[e.Sum] = "*"
			} else if !ok {
				where[e.Sum] = u
			}
		}
	}
	for _, fl := range p.files {
		if fl.kind == kindUnique && fl.size > 0 && where[snap[fl.rel].Sum] == "*" {
			t.Errorf("unique file %s is also in another profile", fl.rel)
		}
	}
	// Byte mix per user.
	want := map[string][2]float64{"org": {0.30, 0.40}, "dept": {0.15, 0.25}, "unique": {0.15, 0.35}, "edited": {0.05, 0.15}, "config": {0.05, 0.15}}
	for k, r := range want {
		if s := float64(f.info.Kinds[k]) / float64(f.info.Bytes); s < r[0] || s > r[1] {
			t.Errorf("%s is %.0f%% of the bytes, want %.0f-%.0f%%", k, 100*s, 100*r[0], 100*r[1])
		}
	}
	if f.info.DistinctBytes >= f.info.Bytes*8/10 {
		t.Errorf("distinct bytes %d of %d: little is shared", f.info.DistinctBytes, f.info.Bytes)
	}
	t.Logf("%d org files, %d department files (%d shared by several users); departments %v; kinds %v; distinct %.0f%%",
		org, dept, deptPartial, f.info.Departments, f.info.Kinds, 100*float64(f.info.DistinctBytes)/float64(f.info.Bytes))
}

// sharedFraction cuts a and b into content-defined chunks of about 256
// bytes and returns the fraction of a's bytes that are in chunks b has too.
func sharedFraction(a, b []byte) float64 {
	var gear [256]uint64
	r := rand.New(rand.NewPCG(1, 2))
	for i := range gear {
		gear[i] = r.Uint64()
	}
	chunks := func(d []byte, fn func(c []byte)) {
		var h uint64
		start := 0
		for i, c := range d {
			h = h<<1 + gear[c]
			if i-start >= 64 && h&(0xff<<56) == 0 || i == len(d)-1 {
				fn(d[start : i+1])
				start, h = i+1, 0
			}
		}
	}
	have := map[[32]byte]bool{}
	chunks(b, func(c []byte) { have[sha256.Sum256(c)] = true })
	shared := 0
	chunks(a, func(c []byte) {
		if have[sha256.Sum256(c)] {
			shared += len(c)
		}
	})
	return float64(shared) / float64(max(len(a), 1))
}

func TestCorpusEditedCopies(t *testing.T) {
	f := corpusFixture(t)
	per := map[string]int{}
	checked := 0
	for _, fl := range f.plan.files {
		if fl.kind != kindEdited {
			continue
		}
		per[strings.Split(fl.rel, "/")[1]]++
		src := f.plan.files[fl.src]
		a, err := os.ReadFile(filepath.Join(f.opts.Out, src.rel))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(f.opts.Out, fl.rel))
		if err != nil {
			t.Fatal(err)
		}
		if string(a) == string(b) {
			t.Errorf("%s is identical to %s", fl.rel, src.rel)
		}
		if len(a) >= 64<<10 {
			checked++
			if s := sharedFraction(a, b); s < 0.8 {
				t.Errorf("%s shares %.0f%% of %s's bytes, want most", fl.rel, 100*s, src.rel)
			}
			// Not a prefix or suffix change: the edits are in the middle.
			if string(a[:len(a)/20]) != string(b[:len(a)/20]) || string(a[len(a)-len(a)/20:]) != string(b[len(b)-len(a)/20:]) {
				t.Errorf("%s: edits outside the middle of the file", fl.rel)
			}
		}
	}
	if len(per) != f.opts.Users || checked == 0 {
		t.Fatalf("edited copies per user %v, %d of at least 64 KiB", per, checked)
	}
	t.Logf("edited copies per user %v; %d checked", per, checked)
}

func TestCorpusRatio(t *testing.T) {
	f := corpusFixture(t)
	if r := f.info.ZstdRatio; r < 1.5 || r > 4 {
		t.Errorf("zstd ratio %.2f outside [1.5, 4]", r)
	}
	// Sampling every other block estimates the same ratio.
	r, err := MeasureRatio(filepath.Join(f.opts.Out, "home"), f.info.Bytes/2)
	if err != nil {
		t.Fatal(err)
	}
	half := r.Total()
	if d := half/f.info.ZstdRatio - 1; d < -0.15 || d > 0.15 {
		t.Errorf("sampled ratio %.2f, full %.2f", half, f.info.ZstdRatio)
	}
	t.Logf("zstd ratio %.2f (half sampled: %.2f); content %v", f.info.ZstdRatio, half, f.info.Classes)
}

func TestCorpusMutate(t *testing.T) {
	// Its own two corpora: the fixture must stay as generated.
	o := corpusTestOptions(t.TempDir())
	o.Seed = 5
	o2 := o
	o2.Out = t.TempDir()
	for _, o := range []OrgOptions{o, o2} {
		if _, err := GenerateOrg(o); err != nil {
			t.Fatal(err)
		}
	}
	before := corpusSnapshot(t, o.Out)
	var newest time.Time
	for _, e := range before {
		if e.MTime.After(newest) {
			newest = e.MTime
		}
	}
	start := time.Now()
	m, err := MutateOrg(o.Out, 3)
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	m2, err := MutateOrg(o2.Out, 3)
	if err != nil {
		t.Fatal(err)
	}
	after := corpusSnapshot(t, o.Out)
	diffSnapshots(t, after, corpusSnapshot(t, o2.Out))
	if fmt.Sprint(m.Added, m.Modified, m.Deleted, m.ChangedBytes, m.Files, m.Bytes) != fmt.Sprint(m2.Added, m2.Modified, m2.Deleted, m2.ChangedBytes, m2.Files, m2.Bytes) {
		t.Fatalf("infos differ: %+v vs %+v", m, m2)
	}

	renameTo := map[string]bool{} // a renamed file keeps its mtime
	for _, c := range m.Changes {
		renameTo[c.Path] = c.Kind == "renamed"
	}
	var added, modified, deleted, sameSize, grown []string
	var files int
	var bytes, changed int64
	for p, e := range after {
		old, ok := before[p]
		if e.Type == "f" {
			files++
			bytes += e.Size
		}
		switch {
		case e.Type != "f":
		case !ok:
			added = append(added, p)
			changed += e.Size
		case old.Sum != e.Sum:
			modified = append(modified, p)
			changed += e.Size
			if old.Size == e.Size {
				sameSize = append(sameSize, p)
			} else if e.Size > old.Size && (strings.HasSuffix(p, ".log") || strings.HasSuffix(p, "/.bash_history")) {
				grown = append(grown, p)
			}
		case old.MTime != e.MTime || old.Mode != e.Mode:
			t.Errorf("%s: metadata changed, bytes did not", p)
		}
		if (!ok || old.Sum != e.Sum) && !e.MTime.After(newest) && !renameTo[p] {
			t.Errorf("%s changed but its mtime %v is not after the corpus' newest %v", p, e.MTime, newest)
		}
	}
	for p, e := range before {
		if _, ok := after[p]; !ok && e.Type == "f" {
			deleted = append(deleted, p)
		}
	}
	// A renamed file is on disk an addition and a deletion of the same
	// bytes and mtime; Changes names both ends.
	var renamed int
	for _, c := range m.Changes {
		if c.Kind != "renamed" {
			continue
		}
		renamed++
		if a, b := after[c.Path], before[c.From]; a.Type != "f" || a.Sum != b.Sum || !a.MTime.Equal(b.MTime) || b.Type != "f" {
			t.Errorf("rename %s -> %s: not the same file", c.From, c.Path)
		}
		if _, ok := after[c.From]; ok {
			t.Errorf("rename %s -> %s: the old name is still there", c.From, c.Path)
		}
		added = slices.DeleteFunc(added, func(p string) bool { return p == c.Path })
		deleted = slices.DeleteFunc(deleted, func(p string) bool { return p == c.From })
		changed -= after[c.Path].Size
	}
	var fromChanges [3][]string
	for _, c := range m.Changes {
		if k := slices.Index([]string{"added", "modified", "deleted"}, c.Kind); k >= 0 {
			fromChanges[k] = append(fromChanges[k], c.Path)
		}
	}
	for k, disk := range [][]string{added, modified, deleted} {
		slices.Sort(disk)
		if !slices.Equal(disk, fromChanges[k]) {
			t.Errorf("Changes of kind %d: %v, on disk %v", k, fromChanges[k], disk)
		}
	}
	if renamed != m.Renamed || renamed < o.Users {
		t.Errorf("%d renames listed, %d counted, want one per user at least", renamed, m.Renamed)
	}
	t.Logf("mutated in %v: %d added, %d modified (%d same size, %d logs or histories grown), %d deleted; %.1f%% of %d bytes changed",
		elapsed.Round(time.Millisecond), len(added), len(modified), len(sameSize), len(grown), len(deleted), 100*float64(changed)/float64(m.Bytes), m.Bytes)
	if len(added) != m.Added || len(modified) != m.Modified || len(deleted) != m.Deleted || changed != m.ChangedBytes || files != m.Files || bytes != m.Bytes {
		t.Fatalf("info %+v; disk: %d added, %d modified, %d deleted, %d changed bytes, %d files, %d bytes",
			m, len(added), len(modified), len(deleted), changed, files, bytes)
	}
	if len(added) < o.Users || len(modified) < o.Users || len(deleted) < o.Users || len(sameSize) == 0 || len(grown) == 0 {
		t.Errorf("want every user to have additions, edits and deletions, an in-place same-size change and a log appended to")
	}
	if s := float64(changed) / float64(m.Bytes); s < 0.02 || s > 0.05 {
		t.Errorf("%.1f%% of the bytes changed, want 2-5%%", 100*s)
	}
	// The org-wide update reached everyone, byte-identical.
	orgWide := 0
	for _, p := range added {
		if !strings.HasPrefix(p, "home/user01/") {
			continue
		}
		n := 0
		for _, u := range m.Users {
			if e, ok := after["home/"+u+strings.TrimPrefix(p, "home/user01")]; ok && e.Sum == after[p].Sum {
				n++
			}
		}
		if n == len(m.Users) {
			orgWide++
		}
	}
	if orgWide == 0 {
		t.Errorf("no added file is identical in every profile")
	}
	// A second week builds on the first.
	m3, err := MutateOrg(o.Out, 4)
	if err != nil {
		t.Fatal(err)
	}
	if m3.Added == 0 || m3.Modified == 0 {
		t.Errorf("second mutation: %+v", m3)
	}
}

// TestCorpusDemo generates a large corpus when SMP_CORPUS_DEMO names its
// size (e.g. 1GiB; SMP_CORPUS_USERS, default 8), reports timing and
// totals, mutates it and removes it.
//
//	SMP_CORPUS_DEMO=1GiB go test ./bench -run CorpusDemo -v -timeout 1h
func TestCorpusDemo(t *testing.T) {
	s := os.Getenv("SMP_CORPUS_DEMO")
	if s == "" {
		t.Skip("set SMP_CORPUS_DEMO=SIZE to generate a large corpus")
	}
	size, err := humanize.ParseBytes(s)
	if err != nil {
		t.Fatal(err)
	}
	users := 8
	if u := os.Getenv("SMP_CORPUS_USERS"); u != "" {
		if users, err = strconv.Atoi(u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := loadMaterial(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	start := time.Now()
	info, err := GenerateOrg(OrgOptions{Out: dir, Users: users, Size: int64(size), Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	b, _ := json.MarshalIndent(info, "", "  ")
	t.Logf("generated in %v (%.0f MB/s): %s", el.Round(time.Millisecond), float64(info.Bytes)/1e6/el.Seconds(), b)
	start = time.Now()
	m, err := MutateOrg(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mutated in %v: %d added, %d modified, %d deleted, %.1f MB changed (%.1f%%); now %d files, %d bytes",
		time.Since(start).Round(time.Millisecond), m.Added, m.Modified, m.Deleted, float64(m.ChangedBytes)/1e6,
		100*float64(m.ChangedBytes)/float64(info.Bytes), m.Files, m.Bytes)
}
