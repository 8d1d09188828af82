package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestCompareTrees checks the restore verification on real trees.
func TestCompareTrees(t *testing.T) {
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	build := func(root string) {
		must(os.MkdirAll(filepath.Join(root, "Documents/sub"), 0o755))
		must(os.WriteFile(filepath.Join(root, "Documents/a.txt"), []byte("hello"), 0o644))
		must(os.WriteFile(filepath.Join(root, "Documents/sub/b.bin"), bytes.Repeat([]byte{7}, 3<<20), 0o600))
		must(os.Symlink("Documents/a.txt", filepath.Join(root, "link")))
	}
	tests := []struct {
		name   string
		mutate func(dst string)
		want   string
	}{
		{"identical", func(string) {}, ""},
		{"contents", func(d string) {
			b := bytes.Repeat([]byte{7}, 3<<20)
			b[2<<20+5] = 8
			must(os.WriteFile(filepath.Join(d, "Documents/sub/b.bin"), b, 0o600))
		}, "Documents/sub/b.bin: contents differ"},
		{"size", func(d string) { must(os.WriteFile(filepath.Join(d, "Documents/a.txt"), []byte("hello!"), 0o644)) }, "Documents/a.txt: size"},
		{"mode", func(d string) { must(os.Chmod(filepath.Join(d, "Documents/a.txt"), 0o600)) }, "Documents/a.txt: mode"},
		{"symlink", func(d string) {
			must(os.Remove(filepath.Join(d, "link")))
			must(os.Symlink("Documents", filepath.Join(d, "link")))
		}, "link: symlink target"},
		{"missing", func(d string) { must(os.Remove(filepath.Join(d, "Documents/a.txt"))) }, "Documents/a.txt: missing"},
		{"extra", func(d string) { must(os.WriteFile(filepath.Join(d, "new"), nil, 0o644)) }, "new: only in the restored tree"},
		{"type", func(d string) {
			must(os.Remove(filepath.Join(d, "link")))
			must(os.Mkdir(filepath.Join(d, "link"), 0o755))
		}, "link: type"},
	}
	src := filepath.Join(t.TempDir(), "src")
	build(src)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := filepath.Join(t.TempDir(), "dst")
			build(dst)
			tc.mutate(dst)
			err := compareTrees(src, dst)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected difference: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestCompareLinkedTrees(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	for _, d := range []string{"a/b", "c"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dst, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a/b/x", "c/y"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte("data of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(src, f), filepath.Join(dst, f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("b/x", filepath.Join(src, "a/l")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("b/x", filepath.Join(dst, "a/l")); err != nil {
		t.Fatal(err)
	}
	if n, err := compareLinkedTrees(src, dst, false); err != nil || n != 2 {
		t.Fatalf("linked trees: %d files, %v", n, err)
	}
	// A copy is not the corpus file; with clones allowed, its bytes count.
	os.Remove(filepath.Join(dst, "c/y"))
	if err := os.WriteFile(filepath.Join(dst, "c/y"), []byte("data of c/y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := compareLinkedTrees(src, dst, false); err == nil || !strings.Contains(err.Error(), "different inode") {
		t.Fatalf("copy accepted as a link: %v", err)
	}
	if _, err := compareLinkedTrees(src, dst, true); err != nil {
		t.Fatalf("equal clone refused: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dst, "c/y"), []byte("data of c/Y"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := compareLinkedTrees(src, dst, true); err == nil || !strings.Contains(err.Error(), "contents differ") {
		t.Fatalf("different clone accepted: %v", err)
	}
	os.Remove(filepath.Join(dst, "a/l"))
	if err := os.Symlink("elsewhere", filepath.Join(dst, "a/l")); err != nil {
		t.Fatal(err)
	}
	if _, err := compareLinkedTrees(src, dst, true); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Fatalf("wrong symlink accepted: %v", err)
	}
}

// BenchmarkCompareTrees compares two trees of 2,000 files of 4 KiB, the
// corpus' median file size: B/op shows what the comparison allocates
// per file beside reading it.
func BenchmarkCompareTrees(b *testing.B) {
	dirs := [2]string{filepath.Join(b.TempDir(), "a"), filepath.Join(b.TempDir(), "b")}
	data := bytes.Repeat([]byte("smp bench "), 410)
	for _, d := range dirs {
		for i := range 2000 {
			p := filepath.Join(d, strconv.Itoa(i%20), strconv.Itoa(i))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := compareTrees(dirs[0], dirs[1]); err != nil {
			b.Fatal(err)
		}
	}
}
