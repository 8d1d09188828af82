package capture_test

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"

	"smp/capture"
	"smp/cas"
	"smp/cas/manifest"
	"smp/filter"
	"smp/repo"
)

func newRepo(t testing.TB) *repo.Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	p, err := cas.ChunkerParamsForAvg(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Init(dir, p); err != nil {
		t.Fatal(err)
	}
	r, err := repo.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func write(t testing.TB, root, rel string, data []byte) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// paths lists every path in a record's tree.
func paths(t *testing.T, r *repo.Repo, id cas.ID, dir string, out *[]string) {
	t.Helper()
	tree, err := r.LoadTree(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range tree.Entries {
		p := filepath.ToSlash(filepath.Join(dir, e.Name))
		*out = append(*out, p)
		if e.Type == manifest.TypeDir {
			paths(t, r, e.Subtree, p, out)
		}
	}
}

func TestCaptureSelection(t *testing.T) {
	src := t.TempDir()
	for _, rel := range []string{"home/alice/a.txt", "home/alice/x.tmp", "home/alice/Cache/c", "home/bob/b.txt", "root/r.txt", "etc/e.conf"} {
		write(t, src, rel, []byte(rel))
	}
	exTmp, _ := filter.Exclude("*.tmp")
	exCache, _ := filter.Exclude("Cache/")
	tests := []struct {
		name      string
		paths     []string
		users     []string
		filter    *filter.Set
		want      []string
		wantUsers []string
	}{
		{"default profiles", nil, nil, nil,
			[]string{"home", "home/alice", "home/alice/Cache", "home/alice/Cache/c", "home/alice/a.txt", "home/alice/x.tmp", "home/bob", "home/bob/b.txt", "root", "root/r.txt"},
			[]string{"alice", "bob", "root"}},
		{"one user", nil, []string{"bob"}, nil,
			[]string{"home", "home/bob", "home/bob/b.txt"}, []string{"bob"}},
		{"user limits a selected home", []string{"home"}, []string{"alice"}, nil,
			[]string{"home", "home/alice", "home/alice/Cache", "home/alice/Cache/c", "home/alice/a.txt", "home/alice/x.tmp"}, []string{"alice"}},
		{"explicit paths", []string{"etc", "home/bob/b.txt"}, nil, nil,
			[]string{"etc", "etc/e.conf", "home", "home/bob", "home/bob/b.txt"}, []string{"bob"}},
		{"excludes", []string{"home/alice"}, nil, filter.NewSet(exTmp, exCache),
			[]string{"home", "home/alice", "home/alice/a.txt"}, []string{"alice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRepo(t)
			res, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: src, Paths: tt.paths, Users: tt.users, Filter: tt.filter})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			paths(t, r, res.Record.Tree, "", &got)
			sort.Strings(got)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("paths = %v\nwant    %v", got, tt.want)
			}
			if !reflect.DeepEqual(res.Record.Users, tt.wantUsers) {
				t.Errorf("users = %v, want %v", res.Record.Users, tt.wantUsers)
			}
		})
	}
}

func TestCaptureErrors(t *testing.T) {
	src := t.TempDir()
	write(t, src, "home/a/f", []byte("x"))
	r := newRepo(t)
	tests := []struct {
		name  string
		opts  capture.Options
		match string
	}{
		{"missing path", capture.Options{Computer: "pc", Root: src, Paths: []string{"nope"}}, "does not exist"},
		{"escaping path", capture.Options{Computer: "pc", Root: src, Paths: []string{"../x"}}, "leaves the source root"},
		{"bad computer", capture.Options{Computer: "a/b", Root: src}, "invalid computer"},
		{"no profiles", capture.Options{Computer: "pc", Root: t.TempDir()}, "no profile"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := capture.Run(context.Background(), r, tt.opts)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.match)) {
				t.Fatalf("err = %v, want it to mention %q", err, tt.match)
			}
		})
	}
}

func TestCaptureDedupesAndDetectsUnchangedFiles(t *testing.T) {
	src := t.TempDir()
	shared := randBytes(1, 3<<20)
	write(t, src, "home/alice/big", shared)
	write(t, src, "home/bob/big", shared)
	write(t, src, "home/alice/small", []byte("hello"))
	r := newRepo(t)
	res, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: src})
	if err != nil {
		t.Fatal(err)
	}
	rec := res.Record
	if rec.Files != 3 || rec.Bytes != uint64(2*len(shared)+5) {
		t.Fatalf("files %d bytes %d", rec.Files, rec.Bytes)
	}
	if rec.NewBytes != uint64(len(shared)+5) {
		t.Fatalf("new bytes %d, want %d: shared file stored twice?", rec.NewBytes, len(shared)+5)
	}
	progress := &capture.Progress{}
	res2, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: src, Parent: rec, ParentID: res.ID, Progress: progress})
	if err != nil {
		t.Fatal(err)
	}
	if got := progress.Unchanged.Load(); got != 3 {
		t.Fatalf("unchanged files = %d, want 3", got)
	}
	if res2.Record.NewBytes != 0 || res2.Record.Tree != rec.Tree {
		t.Fatalf("second capture stored %d new bytes / a different tree", res2.Record.NewBytes)
	}
}

func TestCaptureReportsUnreadableAndSpecialFiles(t *testing.T) {
	src := t.TempDir()
	write(t, src, "home/a/ok", []byte("fine"))
	if err := mkfifo(filepath.Join(src, "home/a/pipe")); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	var mu sync.Mutex
	var problems []capture.Problem
	r := newRepo(t)
	res, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: src, Report: func(p capture.Problem) {
		mu.Lock()
		problems = append(problems, p)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || !problems[0].Warning {
		t.Fatalf("problems = %+v, want one warning for the fifo", problems)
	}
	if res.Record.Errors != 0 || res.Record.Files != 1 {
		t.Fatalf("errors %d files %d", res.Record.Errors, res.Record.Files)
	}
}

func TestParseHardlink(t *testing.T) {
	for _, s := range []string{"never", "auto", "always"} {
		if m, err := capture.ParseHardlink(s); err != nil || string(m) != s {
			t.Errorf("ParseHardlink(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "yes", "Auto", "/home"} {
		if _, err := capture.ParseHardlink(s); err == nil || !strings.Contains(err.Error(), "want never, auto or always") {
			t.Errorf("ParseHardlink(%q): %v, want a usage error", s, err)
		}
	}
}

// proseBytes is n bytes of words drawn at random from a small vocabulary:
// text that the harder zstd levels compress noticeably better.
func proseBytes(seed uint64, n int) []byte {
	words := strings.Fields("profile settings document report budget meeting notes draft final quarter " +
		"sales invoice customer account project review summary calendar the a of and to in for on with")
	r := rand.New(rand.NewPCG(seed, 7))
	var b []byte
	for len(b) < n {
		b = append(b, words[r.IntN(len(words))]...)
		b = append(b, " \n"[r.IntN(8)/7])
	}
	return b[:n]
}

// TestCaptureCompressionLevel checks Options.Compression reaches the
// compressors: the same files captured at the best level take fewer pack
// bytes than at the fastest, and every file reads back from either store.
func TestCaptureCompressionLevel(t *testing.T) {
	src := t.TempDir()
	files := map[string][]byte{}
	for i, n := range []int{3 << 10, 40 << 10, 300 << 10, 700 << 10} {
		rel := filepath.Join("home", "alice", "doc"+string(rune('a'+i))+".txt")
		files[rel] = proseBytes(uint64(i), n)
		write(t, src, rel, files[rel])
	}
	packBytes := map[cas.Level]uint64{}
	for _, level := range []cas.Level{cas.LevelFastest, cas.LevelBest} {
		r := newRepo(t)
		res, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: src, Compression: level})
		if err != nil {
			t.Fatal(err)
		}
		if packBytes[level], err = r.PackBytes(); err != nil {
			t.Fatal(err)
		}
		for rel, want := range files {
			e := findEntry(t, r, res.Record.Tree, filepath.ToSlash(rel))
			var got []byte
			for _, c := range e.Chunks {
				b, err := r.ReadBlob(cas.BlobData, c.ID, nil)
				if err != nil {
					t.Fatalf("%v: %s: %v", level, rel, err)
				}
				got = append(got, b...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%v: %s reads back %d bytes, differing from its %d", level, rel, len(got), len(want))
			}
		}
	}
	if packBytes[cas.LevelBest] >= packBytes[cas.LevelFastest] {
		t.Errorf("best level: %d pack bytes, fastest %d", packBytes[cas.LevelBest], packBytes[cas.LevelFastest])
	}
}

// findEntry walks the tree from root down rel's slash-separated path.
func findEntry(t *testing.T, r *repo.Repo, root cas.ID, rel string) manifest.Entry {
	t.Helper()
	id := root
	parts := strings.Split(rel, "/")
	for i, name := range parts {
		tree, err := r.LoadTree(id)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, e := range tree.Entries {
			if e.Name != name {
				continue
			}
			if i == len(parts)-1 {
				return e
			}
			id, found = e.Subtree, true
			break
		}
		if !found {
			t.Fatalf("%s: %s not found", rel, name)
		}
	}
	t.Fatalf("%s: empty path", rel)
	return manifest.Entry{}
}
