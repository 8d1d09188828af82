package restore

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"smp/cas"
	"smp/cas/manifest"
	"smp/filter"
)

// memStore is an in-memory Store for restore tests.
type memStore struct {
	hasher *cas.Hasher
	trees  map[cas.ID]*manifest.Tree
	chunks map[cas.ID][]byte
}

func newMemStore() *memStore {
	return &memStore{hasher: cas.NewHasher([32]byte{1}), trees: map[cas.ID]*manifest.Tree{}, chunks: map[cas.ID][]byte{}}
}

func (m *memStore) LoadTree(id cas.ID) (*manifest.Tree, error) {
	t, ok := m.trees[id]
	if !ok {
		return nil, cas.ErrNotFound
	}
	return t, nil
}

func (m *memStore) ReadChunk(id cas.ID, buf []byte) ([]byte, error) {
	b, ok := m.chunks[id]
	if !ok {
		return nil, cas.ErrNotFound
	}
	return append(buf[:0], b...), nil
}

func (m *memStore) tree(entries ...manifest.Entry) cas.ID {
	t := &manifest.Tree{Entries: entries}
	b, err := t.Encode()
	if err != nil {
		panic(err)
	}
	id := m.hasher.Sum(b)
	m.trees[id] = t
	return id
}

func (m *memStore) file(name, content string) manifest.Entry {
	e := manifest.Entry{Name: name, Type: manifest.TypeFile, Mode: 0o644, Size: uint64(len(content)), MTimeNs: 1_600_000_000_123_456_789}
	if content != "" {
		id := m.hasher.Sum([]byte(content))
		m.chunks[id] = []byte(content)
		e.Chunks = []manifest.Chunk{{ID: id, Size: uint32(len(content))}}
	}
	return e
}

func dir(name string, sub cas.ID) manifest.Entry {
	return manifest.Entry{Name: name, Type: manifest.TypeDir, Mode: 0o755, Subtree: sub, MTimeNs: 1_500_000_000_000_000_000}
}

func TestParseMapping(t *testing.T) {
	tests := []struct {
		in      string
		want    Mapping
		wantErr bool
	}{
		{"home/alice=home/bob", Mapping{"home/alice", "home/bob"}, false},
		{"/home/alice/=/home/bob", Mapping{"home/alice", "home/bob"}, false},
		{"home/a=", Mapping{}, true}, // empty TO: a usage error, not a per-path failure at run time
		{"home/a=/", Mapping{}, true},
		{"noequals", Mapping{}, true},
		{"=home/bob", Mapping{}, true},
		{"../x=y", Mapping{"x", "y"}, false}, // cleaned against the root, cannot climb out
	}
	for _, tt := range tests {
		got, err := ParseMapping(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseMapping(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseMapping(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestMapPath(t *testing.T) {
	r := &restorer{opts: Options{Maps: []Mapping{{"home/alice", "home/bob"}, {"home/alice/Documents", "srv/docs"}}}}
	tests := []struct{ in, want string }{
		{"home/alice/a.txt", "home/bob/a.txt"},
		{"home/alice", "home/bob"},
		{"home/alice/Documents/x", "srv/docs/x"}, // longest prefix wins
		{"home/alicex/a", "home/alicex/a"},       // whole components only
		{"etc/hosts", "etc/hosts"},
	}
	for _, tt := range tests {
		got, err := r.mapPath(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("mapPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestParseOverwrite(t *testing.T) {
	for _, ok := range []string{"never", "always", "older"} {
		if _, err := ParseOverwrite(ok); err != nil {
			t.Errorf("ParseOverwrite(%q): %v", ok, err)
		}
	}
	if _, err := ParseOverwrite("sometimes"); err == nil {
		t.Error("ParseOverwrite(sometimes) succeeded")
	}
}

func run(t *testing.T, m *memStore, root cas.ID, opts Options) *Result {
	t.Helper()
	// These tests are about restore's mechanics on arbitrary top-level
	// names; the path and ownership policy has its own (policy_test.go).
	opts.AllowSystem = true
	res, err := Run(context.Background(), m, &manifest.Record{Computer: "pc", Tree: root}, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func TestRestoreDoesNotFollowExistingSymlinks(t *testing.T) {
	m := newMemStore()
	root := m.tree(dir("home", m.tree(dir("alice", m.tree(m.file("secret.txt", "data"))))))
	target := t.TempDir()
	outside := t.TempDir()
	// An attacker (or a previous system) left home -> outside in the target.
	if err := os.Symlink(outside, filepath.Join(target, "home")); err != nil {
		t.Fatal(err)
	}
	var problems []Problem
	res := run(t, m, root, Options{Target: target, Report: func(p Problem) { problems = append(problems, p) }})
	entries, _ := os.ReadDir(outside)
	if len(entries) != 0 {
		t.Fatalf("restore wrote %d entries outside the target through a symlink", len(entries))
	}
	if res.Errors == 0 || len(problems) == 0 {
		t.Fatalf("conflicting symlink not reported: %+v", res)
	}
	// With --overwrite always the symlink itself is replaced by a real directory.
	res = run(t, m, root, Options{Target: target, Overwrite: OverwriteAlways})
	if res.Errors != 0 {
		t.Fatalf("overwrite always: %d errors", res.Errors)
	}
	if st, err := os.Lstat(filepath.Join(target, "home")); err != nil || !st.IsDir() {
		t.Fatalf("home is not a real directory after overwrite always: %v", err)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatal("overwrite always wrote outside the target")
	}
	got, err := os.ReadFile(filepath.Join(target, "home/alice/secret.txt"))
	if err != nil || string(got) != "data" {
		t.Fatalf("restored file = %q, %v", got, err)
	}
}

func TestRestoreSymlinkInRecordIsNotFollowedForLaterFiles(t *testing.T) {
	m := newMemStore()
	outside := t.TempDir()
	// A record whose symlink "a" points outside; a later file "a/x" cannot
	// exist in a valid tree (names are unique), but a mapping could try to
	// place files under it.
	root := m.tree(
		manifest.Entry{Name: "a", Type: manifest.TypeSymlink, Mode: 0o777, Target: outside},
		dir("b", m.tree(m.file("x", "payload"))),
	)
	target := t.TempDir()
	run(t, m, root, Options{Target: target, Maps: []Mapping{{"b", "a"}}})
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatal("file restored through a symlink the restore created")
	}
}

func TestRestoreDamagedChunkFailsOnlyThatFile(t *testing.T) {
	m := newMemStore()
	good := m.file("good.txt", "fine")
	bad := m.file("bad.txt", "lost")
	delete(m.chunks, bad.Chunks[0].ID)
	root := m.tree(good, bad)
	target := t.TempDir()
	var problems []Problem
	res := run(t, m, root, Options{Target: target, Report: func(p Problem) { problems = append(problems, p) }})
	if res.Errors != 1 || res.Files != 1 {
		t.Fatalf("got %d errors, %d files; want 1 and 1", res.Errors, res.Files)
	}
	if len(problems) != 1 || problems[0].Path != "bad.txt" || !errors.Is(problems[0].Err, cas.ErrNotFound) {
		t.Fatalf("problems = %+v", problems)
	}
	if _, err := os.Stat(filepath.Join(target, "bad.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("damaged file exists under its real name: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(target, ".smp-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left: %v", leftovers)
	}
}

func TestRestoreOverwritePolicies(t *testing.T) {
	m := newMemStore()
	root := m.tree(m.file("f", "new"))
	tests := []struct {
		policy   Overwrite
		existing string
		oldMtime bool
		want     string
	}{
		{OverwriteNever, "old", true, "old"},
		{OverwriteAlways, "old", false, "new"},
		{OverwriteOlder, "old", true, "new"},
		{OverwriteOlder, "old", false, "old"},
	}
	for _, tt := range tests {
		target := t.TempDir()
		p := filepath.Join(target, "f")
		if err := os.WriteFile(p, []byte(tt.existing), 0o644); err != nil {
			t.Fatal(err)
		}
		if tt.oldMtime {
			old := filepath.Join(target, "f")
			if err := os.Chtimes(old, timeOf(1_000_000_000), timeOf(1_000_000_000)); err != nil {
				t.Fatal(err)
			}
		}
		res := run(t, m, root, Options{Target: target, Overwrite: tt.policy})
		got, _ := os.ReadFile(p)
		if string(got) != tt.want {
			t.Errorf("%s (old mtime %v): file = %q, want %q", tt.policy, tt.oldMtime, got, tt.want)
		}
		if tt.want == "old" && res.Skipped != 1 {
			t.Errorf("%s: skipped = %d, want 1", tt.policy, res.Skipped)
		}
	}
}

func TestRestoreIncludeSelectsFiles(t *testing.T) {
	m := newMemStore()
	root := m.tree(dir("d", m.tree(m.file("a.txt", "a"), m.file("b.bin", "b"))), m.file("c.txt", "c"))
	inc, err := filter.Include("*.txt")
	if err != nil {
		t.Fatal(err)
	}
	target := t.TempDir()
	res := run(t, m, root, Options{Target: target, Filter: filter.NewSet(inc)})
	if res.Files != 2 {
		t.Fatalf("restored %d files, want 2", res.Files)
	}
	if _, err := os.Stat(filepath.Join(target, "d/b.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("b.bin restored despite --include *.txt")
	}
}

func TestRestoreSparseZeros(t *testing.T) {
	m := newMemStore()
	zeros := string(make([]byte, 1<<20))
	root := m.tree(m.file("z", zeros))
	target := t.TempDir()
	run(t, m, root, Options{Target: target})
	got, err := os.ReadFile(filepath.Join(target, "z"))
	if err != nil || len(got) != 1<<20 || string(got) != zeros {
		t.Fatalf("zero file restored wrong: len %d, %v", len(got), err)
	}
}

// TestRestoreSparseInsideChunk: zero blocks inside a chunk that also
// holds data are left as holes too (chunk boundaries do not follow zero
// runs), and the file reads back exactly.
func TestRestoreSparseInsideChunk(t *testing.T) {
	m := newMemStore()
	data := bytes.Repeat([]byte("data"), 3000) // 12000 bytes: ends inside a block
	content := append(append([]byte{}, data...), make([]byte, 4<<20)...)
	content = append(content, data...)
	content = append(content, make([]byte, 5000)...) // a short zero tail, in the last block
	e := manifest.Entry{Name: "mixed", Type: manifest.TypeFile, Mode: 0o600, Size: uint64(len(content))}
	for _, part := range [][]byte{content[:1<<20+100], content[1<<20+100:]} {
		id := m.hasher.Sum(part)
		m.chunks[id] = part
		e.Chunks = append(e.Chunks, manifest.Chunk{ID: id, Size: uint32(len(part))})
	}
	target := t.TempDir()
	run(t, m, m.tree(e), Options{Target: target})
	path := filepath.Join(target, "mixed")
	got, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("restored file differs (len %d, want %d): %v", len(got), len(content), err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := st.Sys().(*syscall.Stat_t).Blocks * 512; alloc > 256<<10 {
		t.Errorf("%d bytes allocated for %d of data in a %d byte file: the zero runs inside its chunks were written", alloc, 2*len(data), len(content))
	}
}

func TestRestoreMultiChunkFile(t *testing.T) {
	m := newMemStore()
	var content []byte
	e := manifest.Entry{Name: "big", Type: manifest.TypeFile, Mode: 0o600}
	for i := range 20 {
		part := bytes.Repeat([]byte{byte(i + 1)}, 1000+i)
		if i == 7 {
			part = make([]byte, 5000) // a hole in the middle
		}
		id := m.hasher.Sum(part)
		m.chunks[id] = part
		e.Chunks = append(e.Chunks, manifest.Chunk{ID: id, Size: uint32(len(part))})
		content = append(content, part...)
	}
	e.Size = uint64(len(content))
	damaged := e
	damaged.Name = "damaged"
	damaged.Chunks = append([]manifest.Chunk(nil), e.Chunks...)
	damaged.Chunks[12].ID = cas.ID{9}
	root := m.tree(e, damaged)
	target := t.TempDir()
	res := run(t, m, root, Options{Target: target})
	got, err := os.ReadFile(filepath.Join(target, "big"))
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("multi-chunk file differs (len %d, want %d): %v", len(got), len(content), err)
	}
	if res.Errors != 1 {
		t.Fatalf("errors = %d, want 1 for the damaged file", res.Errors)
	}
	if _, err := os.Stat(filepath.Join(target, "damaged")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("damaged file restored under its real name")
	}
}
