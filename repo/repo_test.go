package repo_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/repo"
)

func newStore(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := repo.Init(dir, cas.DefaultChunkerParams()); err != nil {
		t.Fatalf("Init: %v", err)
	}
	return dir
}

// closers holds a once-only Close for every repo openStore opened, so a test
// may close early (closeStore) and the cleanup does not close twice.
var closers sync.Map // *repo.Repo -> func() error

func openStore(t testing.TB, dir string) *repo.Repo {
	t.Helper()
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	c := sync.OnceValue(r.Close)
	closers.Store(r, c)
	t.Cleanup(func() { c() })
	return r
}

func closeStore(t testing.TB, r *repo.Repo) {
	t.Helper()
	c, ok := closers.Load(r)
	if !ok {
		t.Fatal("closeStore of a repo openStore did not open")
	}
	if err := c.(func() error)(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// text returns n bytes of compressible text unique to seed.
func text(seed string, n int) []byte {
	line := "line of " + seed + " text, compressible and repetitive\n"
	return []byte(strings.Repeat(line, n/len(line)+1)[:n])
}

// packFiles lists every committed pack with its trailer.
func packFiles(t testing.TB, r *repo.Repo) map[cas.ID][]cas.PackEntry {
	t.Helper()
	out := map[cas.ID][]cas.PackEntry{}
	err := r.Packs().Walk(func(id cas.ID, _ int64) error {
		entries, err := r.Packs().ReadTrailer(id)
		if err != nil {
			return err
		}
		out[id] = entries
		return nil
	})
	if err != nil {
		t.Fatalf("walk packs: %v", err)
	}
	return out
}

// copiesOf counts the pack entries holding blob id.
func copiesOf(t testing.TB, r *repo.Repo, id cas.ID) int {
	n := 0
	for _, entries := range packFiles(t, r) {
		for _, e := range entries {
			if e.ID == id {
				n++
			}
		}
	}
	return n
}

func TestInitOpen(t *testing.T) {
	dir := newStore(t)
	for _, name := range []string{"config.json", "packs", "packs/tmp"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("Init did not create %s: %v", name, err)
		}
	}
	st, err := os.Stat(filepath.Join(dir, "config.json"))
	if err == nil && st.Mode().Perm() != 0o600 {
		t.Errorf("config.json mode %v, want 0600 (it holds the hash key)", st.Mode().Perm())
	}
	r := openStore(t, dir)
	if r.Config.Version != repo.FormatVersion || len(r.Config.HashKey) != 32 || r.Config.PackSize != 32<<20 {
		t.Errorf("config = %+v", r.Config)
	}
	if r.ChunkerParams() != cas.DefaultChunkerParams() {
		t.Errorf("ChunkerParams = %+v, want defaults", r.ChunkerParams())
	}
	if r.Config.StoreID == "" || len(r.Config.StoreID) != 32 {
		t.Errorf("store ID %q", r.Config.StoreID)
	}
	// Two stores get different keys: IDs differ for the same content.
	r2 := openStore(t, newStore(t))
	if bytes.Equal(r.Config.HashKey, r2.Config.HashKey) || r.Sum([]byte("x")) == r2.Sum([]byte("x")) {
		t.Errorf("two stores share a hash key")
	}
	// An existing empty directory is fine too.
	empty := t.TempDir()
	if _, err := repo.Init(empty, cas.DefaultChunkerParams()); err != nil {
		t.Errorf("Init(empty dir) = %v", err)
	}
}

func TestInitRejects(t *testing.T) {
	nonEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(nonEmpty, "file"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	aFile := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(aFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		dir    string
		params cas.ChunkerParams
	}{
		{"non-empty dir", nonEmpty, cas.DefaultChunkerParams()},
		{"existing store", newStore(t), cas.DefaultChunkerParams()},
		{"path is a file", aFile, cas.DefaultChunkerParams()},
		{"bad chunker params", filepath.Join(t.TempDir(), "new"), cas.ChunkerParams{Min: 1, Avg: 3, Max: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := os.ReadDir(tt.dir)
			if _, err := repo.Init(tt.dir, tt.params); err == nil {
				t.Errorf("Init succeeded")
			}
			after, _ := os.ReadDir(tt.dir)
			if len(before) != len(after) {
				t.Errorf("failed Init changed the directory: %d -> %d entries", len(before), len(after))
			}
		})
	}
	// The existing store still opens with its own key.
	dir := newStore(t)
	r := openStore(t, dir)
	key := slices.Clone(r.Config.HashKey)
	closeStore(t, r)
	if _, err := repo.Init(dir, cas.DefaultChunkerParams()); err == nil {
		t.Fatal("re-Init of a store succeeded")
	}
	r = openStore(t, dir)
	if !bytes.Equal(r.Config.HashKey, key) {
		t.Errorf("failed re-Init changed the hash key")
	}
}

func TestOpenNotStore(t *testing.T) {
	empty := t.TempDir()
	damaged := t.TempDir()
	if err := os.WriteFile(filepath.Join(damaged, "config.json"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		dir  string
	}{
		{"missing dir", filepath.Join(t.TempDir(), "nope")},
		{"uninitialised dir", empty},
		{"damaged config", damaged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := repo.Open(tt.dir)
			if !errors.Is(err, repo.ErrNotStore) {
				t.Errorf("Open = %v, want ErrNotStore", err)
			}
			if r != nil {
				r.Close()
				t.Errorf("Open returned a repo with an error")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(t.TempDir(), "nope")); err == nil {
		t.Errorf("Open created the missing directory")
	}
}

func TestOpenRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		edit func(m map[string]any)
	}{
		{"future version", func(m map[string]any) { m["version"] = 2 }},
		{"old version", func(m map[string]any) { m["version"] = 0 }},
		{"unknown chunker", func(m map[string]any) { m["chunker_algo"] = "rabin" }},
		{"unknown hash", func(m map[string]any) { m["hash_algo"] = "sha256" }},
		{"short key", func(m map[string]any) { m["hash_key"] = "AAAA" }},
		{"pack size too small", func(m map[string]any) { m["pack_size"] = 1000 }},
		{"pack size too large", func(m map[string]any) { m["pack_size"] = 2 << 30 }},
		{"bad chunker params", func(m map[string]any) { m["chunker"] = map[string]int{"Min": 10, "Avg": 5, "Max": 1} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := newStore(t)
			path := filepath.Join(dir, "config.json")
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			tt.edit(m)
			b, _ = json.Marshal(m)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if r, err := repo.Open(dir); err == nil {
				r.Close()
				t.Errorf("Open succeeded")
			}
		})
	}
}

func TestOpenLocked(t *testing.T) {
	dir := newStore(t)
	r1, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		r2, err := repo.Open(dir)
		if !errors.Is(err, repo.ErrLocked) {
			t.Errorf("second Open = %v, want ErrLocked", err)
		}
		if r2 != nil {
			r2.Close()
		}
	}
	// The failed Open did not disturb the first: it still works.
	if _, _, err := r1.PutBlob(cas.BlobData, []byte("still usable")); err != nil {
		t.Errorf("PutBlob after a refused Open: %v", err)
	}
	if err := r1.Flush(); err != nil {
		t.Errorf("Flush after a refused Open: %v", err)
	}
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	r3, err := repo.Open(dir)
	if err != nil {
		t.Fatalf("Open after Close = %v", err)
	}
	r3.Close()
}

func TestStaleTempRemovedOnOpen(t *testing.T) {
	dir := newStore(t)
	tmp := filepath.Join(dir, "packs", "tmp")
	stale := filepath.Join(tmp, "0123456789abcdef01234567.tmp")
	if err := os.WriteFile(stale, []byte("SMPPACK\x00half written"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(tmp, "keep.txt")
	if err := os.WriteFile(other, []byte("not ours"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := openStore(t, dir)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temp pack still there after Open: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("Open removed a non-.tmp file: %v", err)
	}
	// A locked second Open must not remove the first one's temp packs.
	if _, _, err := r.PutBlob(cas.BlobData, []byte("pending")); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadDir(tmp)
	if _, err := repo.Open(dir); !errors.Is(err, repo.ErrLocked) {
		t.Fatalf("second Open = %v", err)
	}
	after, _ := os.ReadDir(tmp)
	if len(after) != len(before) {
		t.Errorf("refused Open touched packs/tmp: %d -> %d files", len(before), len(after))
	}
	if err := r.Flush(); err != nil {
		t.Errorf("Flush after refused Open: %v", err)
	}
}

func TestPutBlobDedupAndCommitOrder(t *testing.T) {
	r := openStore(t, newStore(t))
	tests := []struct {
		name  string
		typ   cas.BlobType
		plain []byte
	}{
		{"text chunk", cas.BlobData, text("a", 50000)},
		{"tiny chunk", cas.BlobData, []byte("hi")},
		{"empty chunk", cas.BlobData, nil},
		{"tree", cas.BlobTree, []byte(`{"v":1,"entries":[]}`)},
	}
	ids := map[string]cas.ID{}
	for _, tt := range tests {
		id, isNew, err := r.PutBlob(tt.typ, tt.plain)
		if err != nil || !isNew {
			t.Fatalf("%s: first PutBlob = %v, %v, %v; want new", tt.name, id.Short(), isNew, err)
		}
		if id != r.Hasher.SumBlob(tt.typ, tt.plain) {
			t.Errorf("%s: PutBlob ID is not Sum(plain)", tt.name)
		}
		// Same content again before the pack is committed: not new.
		id2, isNew, err := r.PutBlob(tt.typ, tt.plain)
		if err != nil || isNew || id2 != id {
			t.Errorf("%s: second PutBlob = %v, %v, %v; want same ID, not new", tt.name, id2.Short(), isNew, err)
		}
		// Not visible before Flush: the pack is not on disk yet.
		if _, err := r.Lookup(tt.typ, id); !errors.Is(err, cas.ErrNotFound) {
			t.Errorf("%s: Lookup before Flush = %v, want ErrNotFound", tt.name, err)
		}
		if has, _ := r.Has(tt.typ, id); has {
			t.Errorf("%s: Has before Flush = true", tt.name)
		}
		ids[tt.name] = id
	}
	if n := len(packFiles(t, r)); n != 0 {
		t.Errorf("%d packs on disk before Flush", n)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	packs := packFiles(t, r)
	if len(packs) != 2 {
		t.Errorf("%d packs after Flush, want 2 (data and metadata)", len(packs))
	}
	if left, _ := os.ReadDir(filepath.Join(r.Dir, "packs", "tmp")); len(left) != 0 {
		t.Errorf("packs/tmp holds %d files after Flush", len(left))
	}
	for _, tt := range tests {
		id := ids[tt.name]
		loc, err := r.Lookup(tt.typ, id)
		if err != nil {
			t.Errorf("%s: Lookup after Flush = %v", tt.name, err)
			continue
		}
		if loc.Type != tt.typ || loc.ID != id || int(loc.RawLen) != len(tt.plain) {
			t.Errorf("%s: Lookup = %+v", tt.name, loc)
		}
		// The index points into a pack that is on disk and holds the blob.
		entries, ok := packs[loc.Pack]
		if !ok || !slices.Contains(entries, loc.PackEntry) {
			t.Errorf("%s: indexed in pack %v which is not on disk or lacks it", tt.name, loc.Pack.Short())
		}
		got, err := r.ReadBlob(tt.typ, id, nil)
		if err != nil || !bytes.Equal(got, tt.plain) {
			t.Errorf("%s: ReadBlob = %d bytes, %v", tt.name, len(got), err)
		}
		if copies := copiesOf(t, r, id); copies != 1 {
			t.Errorf("%s: %d copies in packs, want 1", tt.name, copies)
		}
		// And once committed, still not new, and no new pack.
		if _, isNew, err := r.PutBlob(tt.typ, tt.plain); isNew || err != nil {
			t.Errorf("%s: PutBlob after Flush = new %v, %v", tt.name, isNew, err)
		}
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := len(packFiles(t, r)); n != 2 {
		t.Errorf("%d packs after re-putting known blobs, want still 2", n)
	}
	// Data and metadata go to different packs.
	if a, b := mustLookup(t, r, ids["text chunk"]).Pack, mustLookup(t, r, ids["tree"]).Pack; a == b {
		t.Errorf("data chunk and tree share pack %v", a.Short())
	}
	// A data chunk is no tree: reading its ID as a tree finds nothing.
	if _, err := r.ReadBlob(cas.BlobTree, ids["text chunk"], nil); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("ReadBlob(tree) of a data chunk = %v, want ErrNotFound", err)
	}
	if _, err := r.ReadChunk(r.Sum([]byte("never stored")), nil); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("ReadChunk(missing) = %v, want ErrNotFound", err)
	}
	// Every indexed pack is on disk with the indexed size.
	err := r.Index().Packs(func(p index.PackInfo) error {
		size, err := r.Packs().Stat(p.ID)
		if err != nil || size != p.Size {
			t.Errorf("indexed pack %v: on disk %d, %v; indexed size %d", p.ID.Short(), size, err, p.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// mustLookup returns the location of the one blob, of whatever type, with
// ID id.
func mustLookup(t testing.TB, r *repo.Repo, id cas.ID) index.Location {
	t.Helper()
	var found []index.Location
	for bt := cas.BlobData; bt <= cas.BlobTombstone; bt++ {
		loc, err := r.Lookup(bt, id)
		if err == nil {
			found = append(found, loc)
		} else if !errors.Is(err, cas.ErrNotFound) {
			t.Fatalf("Lookup(%s %v): %v", bt, id.Short(), err)
		}
	}
	if len(found) != 1 {
		t.Fatalf("Lookup(%v): %d blobs have that ID, want 1", id.Short(), len(found))
	}
	return found[0]
}

func TestEmptyFlushWritesNothing(t *testing.T) {
	r := openStore(t, newStore(t))
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if n := len(packFiles(t, r)); n != 0 {
		t.Errorf("Flush of nothing wrote %d packs", n)
	}
	if left, _ := os.ReadDir(filepath.Join(r.Dir, "packs", "tmp")); len(left) != 0 {
		t.Errorf("packs/tmp holds %d files", len(left))
	}
}

func TestPutBlobConcurrentDedup(t *testing.T) {
	r := openStore(t, newStore(t))
	blobs := make([][]byte, 20)
	for i := range blobs {
		blobs[i] = text(fmt.Sprint(i), 3000+i)
	}
	var mu sync.Mutex
	newCount := map[cas.ID]int{}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range blobs {
				id, isNew, err := r.PutBlob(cas.BlobData, blobs[(i+g)%len(blobs)])
				if err != nil {
					t.Error(err)
					return
				}
				if isNew {
					mu.Lock()
					newCount[id]++
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	if len(newCount) != len(blobs) {
		t.Errorf("%d blobs reported new, want %d", len(newCount), len(blobs))
	}
	for id, n := range newCount {
		if n != 1 {
			t.Errorf("blob %v reported new %d times", id.Short(), n)
		}
		if c := copiesOf(t, r, id); c != 1 {
			t.Errorf("blob %v stored %d times", id.Short(), c)
		}
	}
}

func TestPackSizeRollsOver(t *testing.T) {
	dir := newStore(t)
	setPackSize(t, dir, 1<<20)
	r := openStore(t, dir)
	// 3 MiB of incompressible-ish distinct chunks: at least 3 data packs,
	// each handed to the background committer as it fills. Commits are
	// asynchronous, so only Flush guarantees they are all on disk.
	var ids []cas.ID
	for i := range 12 {
		b := make([]byte, 256<<10)
		var seed [32]byte
		seed[0] = byte(i)
		_, _ = rand.NewChaCha8(seed).Read(b)
		id, _, err := r.PutBlob(cas.BlobData, b)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	packs := packFiles(t, r)
	if len(packs) < 3 {
		t.Errorf("%d packs for 3 MiB with a 1 MiB pack size", len(packs))
	}
	for id := range packs {
		size, _ := r.Packs().Stat(id)
		if size > 1<<20+256<<10+cas.PackEntrySize*16+cas.PackFooterSize {
			t.Errorf("pack %v is %d bytes with pack size 1 MiB", id.Short(), size)
		}
	}
	for _, id := range ids {
		if _, err := r.ReadChunk(id, nil); err != nil {
			t.Errorf("ReadChunk(%v) = %v", id.Short(), err)
		}
	}
}

func setPackSize(t testing.TB, dir string, size int64) {
	t.Helper()
	path := filepath.Join(dir, "config.json")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["pack_size"] = size
	b, _ = json.Marshal(m)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// putFile stores content as chunks of at most chunk bytes and returns its
// tree entry.
func putFile(t testing.TB, r *repo.Repo, name string, content []byte, chunk int) manifest.Entry {
	t.Helper()
	e := manifest.Entry{Name: name, Type: manifest.TypeFile, Mode: 0o644, Size: uint64(len(content))}
	for len(content) > 0 {
		n := min(chunk, len(content))
		id, _, err := r.PutBlob(cas.BlobData, content[:n])
		if err != nil {
			t.Fatal(err)
		}
		e.Chunks = append(e.Chunks, manifest.Chunk{ID: id, Size: uint32(n)})
		content = content[n:]
	}
	return e
}

func putTree(t testing.TB, r *repo.Repo, entries ...manifest.Entry) cas.ID {
	t.Helper()
	id, err := r.PutTree(&manifest.Tree{Entries: entries})
	if err != nil {
		t.Fatalf("PutTree: %v", err)
	}
	return id
}

// fixture is a committed record with a root tree holding a.txt (two chunks),
// link, and sub/b.txt (one chunk).
type fixture struct {
	r              *repo.Repo
	rec            cas.ID
	a1, a2, b1     cas.ID
	rootID, subID  cas.ID
	aData, bData   []byte
	computer       string
	recordCreated  time.Time
	recordBytes    uint64
	uniqueRawBytes uint64
}

func newFixture(t testing.TB, r *repo.Repo, computer string, created time.Time) *fixture {
	t.Helper()
	f := &fixture{r: r, computer: computer, recordCreated: created}
	f.aData = text("a-"+computer, 9000)
	f.bData = text("b-"+computer, 3000)
	a := putFile(t, r, "a.txt", f.aData, 5000)
	b := putFile(t, r, "b.txt", f.bData, 5000)
	f.a1, f.a2, f.b1 = a.Chunks[0].ID, a.Chunks[1].ID, b.Chunks[0].ID
	f.subID = putTree(t, r, b)
	f.rootID = putTree(t, r,
		manifest.Entry{Name: "sub", Type: manifest.TypeDir, Mode: 0o755, Subtree: f.subID},
		manifest.Entry{Name: "link", Type: manifest.TypeSymlink, Mode: 0o777, Target: "a.txt"},
		a,
	)
	f.recordBytes = uint64(len(f.aData) + len(f.bData))
	f.uniqueRawBytes = f.recordBytes
	rec := &manifest.Record{Computer: computer, Users: []string{"alice"}, Created: created, Tree: f.rootID, Bytes: f.recordBytes, Files: 2, Dirs: 1, Symlinks: 1}
	id, err := r.CommitRecord(rec)
	if err != nil {
		t.Fatalf("CommitRecord: %v", err)
	}
	f.rec = id
	return f
}

func TestCommitRecordAndFind(t *testing.T) {
	r := openStore(t, newStore(t))
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	pc1old := newFixture(t, r, "PC1", t0)
	pc2 := newFixture(t, r, "PC2", t0.Add(time.Hour))
	pc1new := newFixture(t, r, "PC1", t0.Add(2*time.Hour))

	// Everything a live record references is indexed and readable.
	for _, f := range []*fixture{pc1old, pc2, pc1new} {
		for _, id := range []cas.ID{f.a1, f.a2, f.b1} {
			if _, err := r.ReadChunk(id, nil); err != nil {
				t.Errorf("chunk %v of record %v: %v", id.Short(), f.rec.Short(), err)
			}
		}
		tree, err := r.LoadTree(f.rootID)
		if err != nil || len(tree.Entries) != 3 || tree.Entries[0].Name != "a.txt" {
			t.Errorf("LoadTree(root) = %+v, %v", tree, err)
		}
		loc := mustLookup(t, r, f.rec)
		if loc.Type != cas.BlobRecord {
			t.Errorf("record blob indexed as %v", loc.Type)
		}
	}

	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	var gotIDs []cas.ID
	for _, ri := range recs {
		gotIDs = append(gotIDs, ri.ID)
	}
	if want := []cas.ID{pc1old.rec, pc2.rec, pc1new.rec}; !slices.Equal(gotIDs, want) {
		t.Errorf("Records order = %v, want oldest first %v", gotIDs, want)
	}
	if recs[1].Computer != "PC2" || recs[1].Tree != pc2.rootID || recs[1].Bytes != pc2.recordBytes {
		t.Errorf("Records[1] = %+v", recs[1].Record)
	}

	full := pc2.rec.String()
	tests := []struct {
		name     string
		ref      string
		computer string
		want     cas.ID
	}{
		{"full ID", full, "", pc2.rec},
		{"8-digit prefix", full[:8], "", pc2.rec},
		{"uppercase prefix", strings.ToUpper(full[:10]), "", pc2.rec},
		{"computer newest", "", "PC1", pc1new.rec},
		{"computer single", "", "PC2", pc2.rec},
		{"prefix and computer", pc1old.rec.String()[:12], "PC1", pc1old.rec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.FindRecord(tt.ref, tt.computer)
			if err != nil || got.ID != tt.want {
				t.Errorf("FindRecord(%q, %q) = %v, %v; want %v", tt.ref, tt.computer, got.ID.Short(), err, tt.want.Short())
			}
		})
	}

	missing := "ffffffff"
	for _, f := range []*fixture{pc1old, pc2, pc1new} {
		if strings.HasPrefix(f.rec.String(), missing) {
			missing = "00000000"
		}
	}
	errTests := []struct {
		name      string
		ref       string
		computer  string
		noRecord  bool
		errSubstr string
	}{
		{"nothing given", "", "", false, "give"},
		{"prefix too short", full[:3], "", false, "too short"},
		{"one digit", full[:1], "", false, "too short"},
		{"no match", missing, "", true, ""},
		{"unknown computer", "", "PC9", true, ""},
		{"prefix of another computer", full[:8], "PC1", true, ""},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.FindRecord(tt.ref, tt.computer)
			if err == nil {
				t.Fatalf("FindRecord(%q, %q) = %v, want an error", tt.ref, tt.computer, got.ID.Short())
			}
			if errors.Is(err, repo.ErrNoRecord) != tt.noRecord {
				t.Errorf("FindRecord(%q, %q) = %v; ErrNoRecord %v", tt.ref, tt.computer, err, tt.noRecord)
			}
			if !strings.Contains(err.Error(), tt.errSubstr) {
				t.Errorf("FindRecord error %q lacks %q", err, tt.errSubstr)
			}
		})
	}

	// Records survive a reopen.
	dir := r.Dir
	closeStore(t, r)
	r = openStore(t, dir)
	recs, err = r.Records()
	if err != nil || len(recs) != 3 {
		t.Errorf("after reopen Records = %d, %v", len(recs), err)
	}
}

func TestFindRecordAmbiguousPrefix(t *testing.T) {
	r := openStore(t, newStore(t))
	tree := putTree(t, r, manifest.Entry{Name: "f", Type: manifest.TypeFile})
	// Find two records whose IDs share their first 4 hex digits (record IDs
	// are the store-keyed hash of the encoding, which we can compute).
	byPrefix := map[string]*manifest.Record{}
	var a, b *manifest.Record
	var prefix string
	for i := 0; a == nil; i++ {
		rec := &manifest.Record{Computer: "PC", Tree: tree, Created: time.Unix(1700000000, 0).UTC(), Files: uint64(i)}
		enc, err := rec.Encode()
		if err != nil {
			t.Fatal(err)
		}
		p := r.Hasher.SumBlob(cas.BlobRecord, enc).String()[:4]
		if prev, ok := byPrefix[p]; ok {
			a, b, prefix = prev, rec, p
		}
		byPrefix[p] = rec
	}
	idA, err := r.CommitRecord(a)
	if err != nil {
		t.Fatal(err)
	}
	idB, err := r.CommitRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if idA.String()[:4] != prefix || idB.String()[:4] != prefix {
		t.Fatalf("record IDs %v %v do not share prefix %s", idA, idB, prefix)
	}
	if got, err := r.FindRecord(prefix, ""); err == nil || errors.Is(err, repo.ErrNoRecord) || !strings.Contains(err.Error(), "matches 2") {
		t.Errorf("FindRecord(%q) = %v, %v; want an ambiguity error", prefix, got.ID.Short(), err)
	}
	// The computer alone resolves to the newest (same Created: the larger ID).
	got, err := r.FindRecord("", "PC")
	want := max(idA.String(), idB.String())
	if err != nil || got.ID.String() != want {
		t.Errorf("FindRecord(computer) = %v, %v; want %s", got.ID, err, want[:12])
	}
	// A longer prefix disambiguates.
	n := 4
	for idA.String()[:n] == idB.String()[:n] {
		n++
	}
	if got, err := r.FindRecord(idB.String()[:n], ""); err != nil || got.ID != idB {
		t.Errorf("FindRecord(%d digits) = %v, %v; want %v", n, got.ID.Short(), err, idB.Short())
	}
}

func TestCommitRecordRejectsInvalid(t *testing.T) {
	r := openStore(t, newStore(t))
	for name, rec := range map[string]*manifest.Record{
		"no tree":     {Computer: "PC"},
		"no computer": {Tree: r.Sum([]byte("t"))},
	} {
		if _, err := r.CommitRecord(rec); err == nil {
			t.Errorf("%s: CommitRecord succeeded", name)
		}
	}
	if recs, _ := r.Records(); len(recs) != 0 {
		t.Errorf("invalid records became live: %d", len(recs))
	}
}

func TestRemoveRecord(t *testing.T) {
	r := openStore(t, newStore(t))
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	keep := newFixture(t, r, "PC1", t0)
	drop := newFixture(t, r, "PC2", t0.Add(time.Minute))

	if err := r.RemoveRecord(drop.rec); err != nil {
		t.Fatal(err)
	}
	recs, err := r.Records()
	if err != nil || len(recs) != 1 || recs[0].ID != keep.rec {
		t.Errorf("Records after remove = %v, %v; want only %v", recs, err, keep.rec.Short())
	}
	if _, err := r.FindRecord(drop.rec.String(), ""); !errors.Is(err, repo.ErrNoRecord) {
		t.Errorf("FindRecord(removed) = %v, want ErrNoRecord", err)
	}
	if _, err := r.FindRecord("", "PC2"); !errors.Is(err, repo.ErrNoRecord) {
		t.Errorf("FindRecord(computer of removed) = %v, want ErrNoRecord", err)
	}

	// A committed pack holds a tombstone naming the record.
	tombID := r.Hasher.SumBlob(cas.BlobTombstone, drop.rec[:])
	var found []cas.PackEntry
	for _, entries := range packFiles(t, r) {
		for _, e := range entries {
			if e.Type == cas.BlobTombstone {
				found = append(found, e)
			}
		}
	}
	if len(found) != 1 || found[0].ID != tombID || found[0].RawLen != cas.IDSize {
		t.Fatalf("tombstones in packs = %+v, want one with ID %v", found, tombID.Short())
	}
	body, err := r.ReadBlob(cas.BlobTombstone, tombID, nil)
	if err != nil || !bytes.Equal(body, drop.rec[:]) {
		t.Errorf("tombstone body = %x, %v; want the record ID %x", body, err, drop.rec[:])
	}
	// The record blob and its data stay until garbage collection.
	if _, err := r.Lookup(cas.BlobRecord, drop.rec); err != nil {
		t.Errorf("record blob gone after remove: %v", err)
	}

	// Removing again is harmless and writes no second tombstone.
	if err := r.RemoveRecord(drop.rec); err != nil {
		t.Errorf("second RemoveRecord = %v", err)
	}
	if n := copiesOf(t, r, tombID); n != 1 {
		t.Errorf("%d tombstones after a second remove, want 1", n)
	}
	// And it is remembered across a reopen.
	dir := r.Dir
	closeStore(t, r)
	r = openStore(t, dir)
	if recs, _ := r.Records(); len(recs) != 1 {
		t.Errorf("after reopen %d records, want 1", len(recs))
	}
}

func TestStats(t *testing.T) {
	r := openStore(t, newStore(t))
	s, err := r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if s.FreeBytes == 0 {
		t.Errorf("Stats of an empty store: no free space reported")
	}
	s.FreeBytes = 0 // the filesystem's, not the store's
	if *s != (repo.Stats{}) {
		t.Errorf("Stats of an empty store = %+v", s)
	}

	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	f1 := newFixture(t, r, "PC1", t0)
	// A second record of the same content: no new chunks or trees.
	rec2 := &manifest.Record{Computer: "PC1", Created: t0.Add(time.Hour), Tree: f1.rootID, Bytes: f1.recordBytes}
	if _, err := r.CommitRecord(rec2); err != nil {
		t.Fatal(err)
	}
	f2 := newFixture(t, r, "PC2", t0.Add(2*time.Hour))

	s, err = r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	var wantStored, storedData uint64
	var packs uint64
	if err := r.Packs().Walk(func(_ cas.ID, size int64) error {
		packs++
		wantStored += uint64(size)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var unique uint64
	var chunks, trees uint64
	if err := r.Index().Blobs(func(l index.Location) error {
		switch l.Type {
		case cas.BlobData:
			chunks++
			unique += uint64(l.RawLen)
			storedData += uint64(l.StoredLen)
		case cas.BlobTree:
			trees++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// One record released: the other two stay in the captured state.
	if err := r.Release(f1.rec, t0); err != nil {
		t.Fatal(err)
	}
	s, err = r.Stats()
	if err != nil {
		t.Fatal(err)
	}
	s.FreeBytes = 0
	want := repo.Stats{
		Records:      3,
		Captured:     2,
		Released:     1,
		LogicalBytes: 3 * f1.recordBytes, // f2 has the same sizes as f1
		UniqueBytes:  f1.uniqueRawBytes + f2.uniqueRawBytes,
		StoredBytes:  wantStored,
		Chunks:       6, // 3 per fixture
		Trees:        4, // root and sub per fixture
		Packs:        packs,
	}
	want.DedupeRatio = float64(want.LogicalBytes) / float64(want.StoredBytes)
	want.Compression = float64(want.UniqueBytes) / float64(storedData)
	if *s != want {
		t.Errorf("Stats = %+v\nwant    %+v", *s, want)
	}
	if unique != s.UniqueBytes || chunks != s.Chunks || trees != s.Trees {
		t.Errorf("Stats disagree with the index: unique %d/%d chunks %d/%d trees %d/%d", s.UniqueBytes, unique, s.Chunks, chunks, s.Trees, trees)
	}
	if s.Compression <= 1 {
		t.Errorf("text chunks did not compress: ratio %v", s.Compression)
	}
}

func TestVerify(t *testing.T) {
	r := openStore(t, newStore(t))
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	f := newFixture(t, r, "PC1", t0)
	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}

	rep, err := r.Verify(recs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantClean := repo.VerifyReport{Records: 1, Trees: 2, Chunks: 3, Damaged: []*repo.Damage{}, UnindexedPacks: []string{}}
	rep.BytesRead = 0
	if fmt.Sprint(*rep) != fmt.Sprint(wantClean) {
		t.Errorf("Verify of a sound store = %+v, want %+v", *rep, wantClean)
	}

	// Flip one byte of sub/b.txt's only chunk in its data pack.
	loc := mustLookup(t, r, f.b1)
	path := r.Packs().Path(loc.Pack)
	pf, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	one := make([]byte, 1)
	if _, err := pf.ReadAt(one, int64(loc.Offset)+int64(loc.StoredLen)/2); err != nil {
		t.Fatal(err)
	}
	one[0] ^= 0x10
	if _, err := pf.WriteAt(one, int64(loc.Offset)+int64(loc.StoredLen)/2); err != nil {
		t.Fatal(err)
	}
	pf.Close()

	// Without reading data, the damage is invisible (only presence is
	// checked).
	rep, err = r.Verify(recs, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) != 0 {
		t.Errorf("Verify without data reads found %+v", rep.Damaged[0])
	}

	rep, err = r.Verify(recs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Damaged) != 1 {
		t.Fatalf("Verify found %d damaged blobs, want 1: %+v", len(rep.Damaged), rep.Damaged)
	}
	d := rep.Damaged[0]
	want := repo.Damage{Blob: f.b1.String(), Type: "data", Pack: loc.Pack.String(), Users: []string{f.rec.Short() + ":sub/b.txt"}}
	if d.Blob != want.Blob || d.Type != want.Type || d.Pack != want.Pack || !slices.Equal(d.Users, want.Users) {
		t.Errorf("Damage = %+v\nwant   %+v", *d, want)
	}
	if d.Reason == "" || !strings.Contains(d.Reason, "corrupt") {
		t.Errorf("Damage reason %q does not say corrupt", d.Reason)
	}
	if rep.DamagedFiles != 1 || rep.Chunks != 3 || rep.Trees != 2 {
		t.Errorf("report counts: damaged files %d chunks %d trees %d; want 1 3 2", rep.DamagedFiles, rep.Chunks, rep.Trees)
	}
	// Reading the damaged chunk directly fails too.
	if _, err := r.ReadChunk(f.b1, nil); !errors.Is(err, cas.ErrCorrupt) {
		t.Errorf("ReadChunk(damaged) = %v, want ErrCorrupt", err)
	}
}

func TestVerifySharedChunkAndMissingPack(t *testing.T) {
	r := openStore(t, newStore(t))
	shared := text("shared", 4000)
	x := putFile(t, r, "x", shared, 8000)
	y := putFile(t, r, "y", shared, 8000)
	other := putFile(t, r, "z", text("other", 100), 8000)
	sub := putTree(t, r, y)
	root := putTree(t, r, manifest.Entry{Name: "d", Type: manifest.TypeDir, Subtree: sub}, x, other)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec1, err := r.CommitRecord(&manifest.Record{Computer: "A", Created: t0, Tree: root})
	if err != nil {
		t.Fatal(err)
	}
	rec2, err := r.CommitRecord(&manifest.Record{Computer: "B", Created: t0.Add(time.Second), Tree: sub})
	if err != nil {
		t.Fatal(err)
	}
	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	// Remove the data pack: every chunk is missing.
	loc := mustLookup(t, r, x.Chunks[0].ID)
	if err := os.Remove(r.Packs().Path(loc.Pack)); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(recs, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	byBlob := map[string]*repo.Damage{}
	for _, d := range rep.Damaged {
		byBlob[d.Blob] = d
	}
	if len(byBlob) != 2 {
		t.Fatalf("Verify found %d damaged blobs, want 2 (the shared and the other chunk): %+v", len(byBlob), rep.Damaged)
	}
	d := byBlob[x.Chunks[0].ID.String()]
	if d == nil {
		t.Fatalf("shared chunk not reported")
	}
	if d.Reason != "pack file is missing" {
		t.Errorf("reason %q, want pack file is missing", d.Reason)
	}
	wantUsers := []string{rec1.Short() + ":d/y", rec1.Short() + ":x", rec2.Short() + ":y"}
	if !slices.Equal(d.Users, wantUsers) {
		t.Errorf("shared chunk users = %q, want %q", d.Users, wantUsers)
	}
	if rep.DamagedFiles != 4 {
		t.Errorf("damaged files = %d, want 4 (d/y, x, z in A and y in B)", rep.DamagedFiles)
	}
	if rep.Chunks != 2 {
		t.Errorf("chunks checked = %d, want 2 (each once)", rep.Chunks)
	}
}

// TestCloseAbortsOpenPacks: data reaches the store only through Flush or
// CommitRecord; Close drops whatever an interrupted operation left open, so
// nothing unreferenced and half-done becomes visible.
func TestCloseAbortsOpenPacks(t *testing.T) {
	dir := newStore(t)
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := r.PutBlob(cas.BlobData, text("closed", 5000))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	r = openStore(t, dir)
	if _, err := r.ReadChunk(id, nil); !errors.Is(err, cas.ErrNotFound) {
		t.Errorf("blob put before Close without Flush: err = %v, want ErrNotFound", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "packs", "tmp", "*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary packs left after Close: %v", leftovers)
	}
}

// TestDedupAcrossBlobTypes: a file whose bytes equal a tree blob's encoding
// (the 22-byte empty directory, a copied manifest) gets a different ID from
// the tree, because metadata blob IDs are domain-separated by type; both
// stay readable as their own type.
func TestDedupAcrossBlobTypes(t *testing.T) {
	r := openStore(t, newStore(t))
	emptyTree, err := r.PutTree(&manifest.Tree{})
	if err != nil {
		t.Fatal(err)
	}
	treeBytes, err := (&manifest.Tree{}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	id, isNew, err := r.PutBlob(cas.BlobData, treeBytes) // a user file with the same bytes
	if err != nil {
		t.Fatal(err)
	}
	if id == emptyTree || !isNew {
		t.Fatalf("file chunk shares the tree's ID (new=%v)", isNew)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadChunk(id, nil)
	if err != nil || !bytes.Equal(got, treeBytes) {
		t.Errorf("ReadChunk of a file chunk equal to a tree blob = %q, %v", got, err)
	}
	if _, err := r.LoadTree(emptyTree); err != nil {
		t.Errorf("tree unreadable after an equal file chunk was stored: %v", err)
	}
}

// TestVerifyNamesUnindexedPacks: a pack file the index does not know (an
// interrupted indexing, or an index that lost tables with their records)
// is listed, without counting as damage.
func TestVerifyNamesUnindexedPacks(t *testing.T) {
	r := openStore(t, newStore(t))
	t0 := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	newFixture(t, r, "PC1", t0)
	other := openStore(t, newStore(t))
	newFixture(t, other, "PC2", t0.Add(time.Hour))
	var want []string
	for id := range packFiles(t, other) {
		dst := r.Packs().Path(id)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(other.Packs().Path(id))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
		want = append(want, id.String())
	}
	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	rep, err := r.Verify(recs, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(rep.UnindexedPacks))
	if len(want) == 0 || !slices.Equal(got, want) || len(rep.Damaged) != 0 {
		t.Fatalf("unindexed %v, damaged %d; want %v and no damage", got, len(rep.Damaged), want)
	}
}

// TestPutTreeReusesBuffersSafely stores many different trees from several
// goroutines (PutTree reuses encoding and compression buffers) and reads
// every one back unchanged, one by one and concurrently (LoadTree reuses
// its read buffers).
func TestPutTreeReusesBuffersSafely(t *testing.T) {
	r := openStore(t, newStore(t))
	const workers, perWorker = 4, 50
	trees := make([]*manifest.Tree, workers*perWorker)
	for i := range trees {
		// Sizes vary so a buffer grown by a big tree is reused for a small one.
		n := 1 + i%7*40
		tr := &manifest.Tree{}
		for j := range n {
			tr.Entries = append(tr.Entries, manifest.Entry{Name: fmt.Sprintf("f%03d-%d", j, i), Type: manifest.TypeSymlink, Target: fmt.Sprint("target-", i*1000+j), Mode: 0o777})
		}
		trees[i] = tr
	}
	ids := make([]cas.ID, len(trees))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(trees); i += workers {
				id, err := r.PutTree(trees[i])
				if err != nil {
					t.Error(err)
					return
				}
				ids[i] = id
			}
		})
	}
	wg.Wait()
	check := func(when string) {
		for i, id := range ids {
			want, err := trees[i].Encode()
			if err != nil {
				t.Fatal(err)
			}
			got, err := r.LoadTree(id)
			if err != nil {
				t.Fatalf("%s: tree %d: %v", when, i, err)
			}
			b, err := got.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("%s: tree %d read back as\n%s\nwant\n%s", when, i, b, want)
			}
		}
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	check("after flush")
	// LoadTree reads into pooled buffers too: concurrent loads of trees of
	// different sizes must each decode their own bytes.
	for w := range workers {
		wg.Go(func() {
			for i := len(ids) - 1 - w; i >= 0; i -= workers {
				want, _ := trees[i].Encode()
				got, err := r.LoadTree(ids[i])
				if err != nil {
					t.Errorf("concurrent LoadTree %d: %v", i, err)
					return
				}
				if b, _ := got.Encode(); !bytes.Equal(b, want) {
					t.Errorf("concurrent LoadTree %d read back another tree", i)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestOpenReadOnly reads a store through OpenReadOnly: records, trees and
// chunks are all there, nothing can be added, and the index directory is
// left as it was. A store whose index does not exist yet, and one left
// open by a killed process (an index only a writable open can replay), are
// opened writable instead and still show everything.
func TestOpenReadOnly(t *testing.T) {
	t.Run("fresh store", func(t *testing.T) {
		r, err := repo.OpenReadOnly(newStore(t))
		if err != nil {
			t.Fatalf("OpenReadOnly of a new store: %v", err)
		}
		defer r.Close()
		if recs, err := r.Records(); err != nil || len(recs) != 0 {
			t.Errorf("Records = %v, %v", recs, err)
		}
	})

	dir := newStore(t)
	r := openStore(t, dir)
	f := newFixture(t, r, "PC1", time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	closeStore(t, r)
	ixDir := filepath.Join(dir, "index")
	before, err := os.ReadDir(ixDir)
	if err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, ro *repo.Repo) {
		t.Helper()
		rec, err := ro.FindRecord("", "PC1")
		if err != nil || rec.ID != f.rec {
			t.Fatalf("FindRecord = %v, %v; want %v", rec.ID.Short(), err, f.rec.Short())
		}
		if tree, err := ro.LoadTree(f.rootID); err != nil || len(tree.Entries) != 3 {
			t.Errorf("LoadTree = %+v, %v", tree, err)
		}
		for _, id := range []cas.ID{f.a1, f.a2, f.b1} {
			if _, err := ro.ReadChunk(id, nil); err != nil {
				t.Errorf("ReadChunk(%v): %v", id.Short(), err)
			}
		}
	}
	ro, err := repo.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	check(t, ro)
	if _, _, err := ro.PutBlob(cas.BlobData, text("new", 5000)); !errors.Is(err, index.ErrReadOnly) {
		t.Errorf("PutBlob on a read-only store = %v, want ErrReadOnly", err)
	}
	if err := ro.Release(f.rec, time.Now()); !errors.Is(err, index.ErrReadOnly) {
		t.Errorf("Release on a read-only store = %v, want ErrReadOnly", err)
	}
	if err := ro.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadDir(ixDir)
	if err != nil {
		t.Fatal(err)
	}
	names := func(es []os.DirEntry) (n []string) {
		for _, e := range es {
			if e.Name() != "LOCK" {
				n = append(n, e.Name())
			}
		}
		return n
	}
	if !slices.Equal(names(before), names(after)) {
		t.Errorf("a read-only open changed the index directory: %v -> %v", names(before), names(after))
	}

	// Copy the store while a writer holds it open, after its last write.
	w := openStore(t, dir)
	g := newFixture(t, w, "PC2", time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC))
	crashed := filepath.Join(t.TempDir(), "store")
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	closeStore(t, w)
	ro, err = repo.OpenReadOnly(crashed)
	if err != nil {
		t.Fatalf("OpenReadOnly of a store left open: %v", err)
	}
	defer ro.Close()
	check(t, ro)
	if rec, err := ro.FindRecord("", "PC2"); err != nil || rec.ID != g.rec {
		t.Errorf("the last record of the killed writer: FindRecord = %v, %v; want %v", rec.ID.Short(), err, g.rec.Short())
	}
}

// TestOpenDeferred: the lock and config are taken at once, the index opens
// behind them, and a failed open releases the lock.
func TestOpenDeferred(t *testing.T) {
	dir := newStore(t)
	d, err := repo.OpenDeferred(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d.Config == nil || d.Hasher == nil || d.LinkDir() != filepath.Join(dir, "links") {
		t.Fatalf("Deferred before its index: %+v", d)
	}
	if _, err := repo.Open(dir); !errors.Is(err, repo.ErrLocked) {
		t.Errorf("Open while a deferred open holds the store = %v, want ErrLocked", err)
	}
	r, err := d.Repo()
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, r, "PC1", time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	if got := d.Hasher.Sum([]byte("x")); got != r.Sum([]byte("x")) {
		t.Error("the deferred hasher differs from the store's")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	r = openStore(t, dir)
	if rec, err := r.FindRecord("", "PC1"); err != nil || rec.ID != f.rec {
		t.Errorf("after the deferred store closed: FindRecord = %v, %v", rec.ID.Short(), err)
	}
	closeStore(t, r)

	// A store whose packs lost their index: the open fails in the
	// background, Repo says why, and the lock is free again.
	if err := os.RemoveAll(filepath.Join(dir, "index")); err != nil {
		t.Fatal(err)
	}
	d, err = repo.OpenDeferred(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Repo(); !errors.Is(err, repo.ErrIndexLost) {
		t.Errorf("Repo of a store without its index = %v, want ErrIndexLost", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close after a failed open: %v", err)
	}
	d, err = repo.OpenDeferred(dir)
	if err != nil {
		t.Fatalf("the failed open kept the lock: %v", err)
	}
	d.Close()
}
