package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/bits"
	"os"
	"path/filepath"
	"testing"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/internal/keytest"
	"smp/repo"
	"smp/restore"
)

// smallFilesTree writes dirs directories of files small files each under
// root/home/u, with text-like contents of 100 B to 16 KiB, assorted modes
// and mtimes, some ending in a run of zeros; it returns the bytes written.
func smallFilesTree(tb testing.TB, root string, dirs, files int) int64 {
	tb.Helper()
	var total int64
	seed := uint64(1)
	next := func() uint64 {
		seed ^= seed << 13
		seed ^= seed >> 7
		seed ^= seed << 17
		return seed
	}
	words := []string{"profile ", "setting=", "true\n", "cache ", "0x1f ", "user ", "desktop ", "\t", "{\"k\": 1}\n"}
	modes := []fs.FileMode{0o644, 0o600, 0o755, 0o640}
	for d := range dirs {
		dir := filepath.Join(root, "home", "u", fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			tb.Fatal(err)
		}
		for f := range files {
			var b bytes.Buffer
			size := 100 + int(next()%(16<<10))
			for b.Len() < size {
				b.WriteString(words[next()%uint64(len(words))])
			}
			data := b.Bytes()[:size]
			if f%7 == 0 { // a file ending in zeros (a hole past its last write)
				data = append(data, make([]byte, 8<<10)...)
			}
			p := filepath.Join(dir, fmt.Sprintf("f%04d.txt", f))
			if err := os.WriteFile(p, data, 0o600); err != nil {
				tb.Fatal(err)
			}
			if err := os.Chmod(p, modes[bits.OnesCount64(next())%len(modes)]); err != nil {
				tb.Fatal(err)
			}
			mt := time.Unix(1_700_000_000+int64(next()%1_000_000), int64(next()%1e9))
			if err := os.Chtimes(p, mt, mt); err != nil {
				tb.Fatal(err)
			}
			total += int64(len(data))
		}
	}
	return total
}

// encryptedStoreOf captures root/home/u into a new encrypted store and
// returns it open, with the record.
func encryptedStoreOf(tb testing.TB, root string) (*repo.Repo, repo.RecordInfo) {
	tb.Helper()
	u := keytest.New(tb)
	dir := filepath.Join(tb.TempDir(), "store")
	if _, err := repo.InitWith(dir, repo.InitOptions{Params: cas.DefaultChunkerParams(), Keys: u}); err != nil {
		tb.Fatal(err)
	}
	open := func() *repo.Repo {
		r, err := repo.OpenWith(dir, repo.OpenOptions{Keyring: u.Keyring()})
		if err != nil {
			tb.Fatal(err)
		}
		return r
	}
	r := open()
	if _, err := capture.Run(context.Background(), r, capture.Options{Computer: "pc", Root: root, Paths: []string{"home/u"}, Version: "test"}); err != nil {
		tb.Fatal(err)
	}
	if err := r.Close(); err != nil {
		tb.Fatal(err)
	}
	r = open()
	tb.Cleanup(func() { r.Close() })
	rec, err := r.FindRecord("", "pc")
	if err != nil {
		tb.Fatal(err)
	}
	return r, rec
}

// sameTree fails unless every file and directory under src/home/u is
// under dst/home/u with the same type, content, mode and mtime.
func sameTree(tb testing.TB, src, dst string) {
	tb.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(src, "home", "u"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		want, err := os.Lstat(p)
		if err != nil {
			return err
		}
		got, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		if got.Mode() != want.Mode() || !got.ModTime().Equal(want.ModTime()) {
			tb.Errorf("%s: restored %v %v, want %v %v", rel, got.Mode(), got.ModTime(), want.Mode(), want.ModTime())
		}
		if d.Type().IsRegular() {
			a, _ := os.ReadFile(p)
			b, err := os.ReadFile(filepath.Join(dst, rel))
			if err != nil || !bytes.Equal(a, b) {
				tb.Errorf("%s: content differs (%v)", rel, err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if n == 0 {
		tb.Fatal("no file compared")
	}
}

// TestRestoreSmallFilesEncrypted restores directories of small files
// (batched per directory onto the workers, some ending in zeros) from an
// encrypted store, with fewer and more workers than directories: content,
// size, mode and mtime are the source's.
func TestRestoreSmallFilesEncrypted(t *testing.T) {
	src := t.TempDir()
	smallFilesTree(t, src, 6, 150)
	r, rec := encryptedStoreOf(t, src)
	for _, workers := range []int{1, 3, 16} {
		dst := t.TempDir()
		res, err := restore.Run(context.Background(), r, rec.Record, restore.Options{Target: dst, Workers: workers})
		if err != nil {
			t.Fatal(err)
		}
		if res.Files != 900 || res.Errors != 0 {
			t.Fatalf("workers %d: %d files, %d errors; want 900, 0", workers, res.Files, res.Errors)
		}
		sameTree(t, src, dst)
	}
}

// BenchmarkRestoreSmallFiles restores 3,000 small files (30 directories of
// 100) from an encrypted store whose packs are in the page cache: the
// per-file path (read, open, decompress, verify, create, write, metadata,
// rename).
func BenchmarkRestoreSmallFiles(b *testing.B) {
	src := b.TempDir()
	size := smallFilesTree(b, src, 30, 100)
	r, rec := encryptedStoreOf(b, src)
	b.SetBytes(size)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		dst := filepath.Join(b.TempDir(), "t")
		b.StartTimer()
		res, err := restore.Run(context.Background(), r, rec.Record, restore.Options{Target: dst})
		if err != nil || res.Errors != 0 || res.Files != 3000 {
			b.Fatalf("restore: %v, %+v", err, res)
		}
		if i == 0 {
			b.StopTimer()
			sameTree(b, src, dst)
			b.StartTimer()
		}
	}
}
