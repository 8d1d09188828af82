package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/internal/keytest"
	"smp/internal/leaktest"
	"smp/keys"
	"smp/remote/access"
	"smp/remote/server"
	"smp/repo"
	"smp/restore"
)

// testKeys returns the keys of a new encrypted store (keys.Create), with
// one key file slot so that its key slot file can be saved.
func testKeys(t *testing.T) *keys.Unlocked {
	t.Helper()
	return keytest.New(t)
}

// initEncrypted creates an encrypted store with 64 KiB chunks and returns
// it with its keyring (master keys and hash key).
func initEncrypted(t *testing.T) (string, *keys.Keyring) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	params, err := cas.ChunkerParamsForAvg(64 << 10)
	if err != nil {
		t.Fatal(err)
	}
	u := testKeys(t)
	if _, err := InitWith(dir, repo.InitOptions{Params: params, Keys: u}); err != nil {
		t.Fatal(err)
	}
	return dir, u.Keyring()
}

type secrets = leaktest.Secrets

// sentinelTree writes a sentinel user profile (leaktest.Tree) in a new
// directory and returns it with the computer name.
func sentinelTree(t *testing.T, sec *secrets) (root, computer string) {
	t.Helper()
	root = t.TempDir()
	return root, leaktest.Tree(t, root, sec)
}

func checkNoPlaintext(t *testing.T, when, dir string, sec *secrets) {
	t.Helper()
	leaktest.CheckNoPlaintext(t, when, dir, sec)
}

// restoreAndCompare restores rec from st and compares it to the tree at src.
func restoreAndCompare(t *testing.T, st Store, rec Record, src string) {
	t.Helper()
	ctx := context.Background()
	rd, err := st.Reader(ctx, rec)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	target := t.TempDir()
	if _, err := restore.Run(ctx, rd, rec.Record, restore.Options{Target: target}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	compared := 0
	err = filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		got := filepath.Join(target, rel)
		if d.Type()&fs.ModeSymlink != 0 {
			want, _ := os.Readlink(path)
			if l, err := os.Readlink(got); err != nil || l != want {
				t.Errorf("symlink %s restored as %q, %v; want %q", rel, l, err, want)
			}
			compared++
			return nil
		}
		want, _ := os.ReadFile(path)
		if b, err := os.ReadFile(got); err != nil || !bytes.Equal(b, want) {
			t.Errorf("file %s restored differs (%v)", rel, err)
		}
		compared++
		return nil
	})
	if err != nil || compared < 6 {
		t.Fatalf("compared %d entries: %v", compared, err)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// serveForTest serves the encrypted store dir in process and returns its
// URL, an admin token and a function that stops it.
func serveForTest(t *testing.T, dir string, kr *keys.Keyring) (url, token string, stop func()) {
	t.Helper()
	r, err := repo.OpenWith(dir, repo.OpenOptions{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	acc, err := r.Access()
	if err != nil {
		t.Fatal(err)
	}
	token, _, err = acc.CreateToken("", access.RoleAdmin, 0, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(server.New(server.Options{Repo: r, Access: acc, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	return hs.URL, token, func() { hs.Close(); r.Close() }
}

// TestEncryptedStoreHoldsNoPlaintext is issue 16's sentinel test: after a
// local capture, captures through smp serve, gc with repack, and an index
// rebuild, no file under an encrypted store (packs, index tables, value
// log, everything) holds a sentinel or 64 bytes of a random block; and
// every record still restores byte-identical. The SMP's clients chunk
// with the store's keyed gear table: a tree captured locally and again
// through the SMP adds no data.
func TestEncryptedStoreHoldsNoPlaintext(t *testing.T) {
	ctx := context.Background()
	dir, kr := initEncrypted(t)
	sec := &secrets{}
	srcA, pcA := sentinelTree(t, sec)
	srcB, pcB := sentinelTree(t, sec)

	st, err := Open(ctx, dir, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	resA, err := st.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: pcA, Root: srcA}})
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	st.Close()
	checkNoPlaintext(t, "after a capture", dir, sec)

	// One file less for the capture through the SMP: once the local
	// record is removed, its chunk is dead in a pack whose other chunks
	// stay live, a pack gc --repack-below 1 must rewrite.
	gone, err := filepath.Glob(filepath.Join(srcA, "home", "alice", "dir-*", "blob2.bin"))
	if err != nil || len(gone) != 1 {
		t.Fatalf("blob2.bin of the profile: %q %v", gone, err)
	}
	if err := os.Remove(gone[0]); err != nil {
		t.Fatal(err)
	}
	url, token, stop := serveForTest(t, dir, kr)
	rst, err := Open(ctx, url, Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	before := dirSize(t, filepath.Join(dir, "packs"))
	if _, err := rst.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: pcA + "x", Root: srcA}}); err != nil {
		t.Fatalf("capture through the SMP: %v", err)
	}
	if grown := dirSize(t, filepath.Join(dir, "packs")) - before; grown > 64<<10 {
		t.Errorf("capturing the same tree through the SMP added %d bytes of packs: the client did not chunk as the store does", grown)
	}
	resB, err := rst.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: pcB, Root: srcB}})
	if err != nil {
		t.Fatalf("capture through the SMP: %v", err)
	}
	recB, err := rst.FindRecord(ctx, resB.ID.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	restoreAndCompare(t, rst, recB, srcB) // blobs unsealed by the SMP
	rst.Close()
	stop()
	checkNoPlaintext(t, "after captures through smp serve", dir, sec)

	d, err := OpenDir("gc", dir, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	recA, err := d.FindRecord(ctx, resA.ID.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Remove(ctx, recA); err != nil {
		t.Fatal(err)
	}
	gc, err := d.GC(ctx, GCOptions{RepackBelow: 1, Grace: -1})
	if err != nil {
		t.Fatalf("gc: %v", err)
	}
	if gc.PacksWritten == 0 {
		t.Errorf("gc rewrote no pack: %+v", gc.GCReport)
	}
	d.Close()
	checkNoPlaintext(t, "after gc and repack", dir, sec)

	if _, err := RebuildIndexWith(dir, repo.OpenOptions{Keyring: kr}); err != nil {
		t.Fatalf("index rebuild: %v", err)
	}
	checkNoPlaintext(t, "after index rebuild", dir, sec)

	d, err = OpenDir("verify", dir, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	v, err := d.Verify(VerifyOptions{ReadData: true})
	if err != nil || len(v.Report.Damaged) != 0 || v.Report.Records != 2 {
		t.Fatalf("verify: %v, %+v", err, v)
	}
	recB, err = d.FindRecord(ctx, resB.ID.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	restoreAndCompare(t, d, recB, srcB)
}

// TestEncryptedStoreNeedsItsKey: an encrypted store opens with its keyring
// only; without it the open fails before anything is written, and with
// another store's keyring the index does not open.
func TestEncryptedStoreNeedsItsKey(t *testing.T) {
	dir, kr := initEncrypted(t)
	r, err := repo.OpenWith(dir, repo.OpenOptions{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.PutBlob(cas.BlobData, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	if err := r.Flush(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := repo.Open(dir); !errors.Is(err, repo.ErrKeyRequired) {
		t.Errorf("open without a key: %v", err)
	}
	if r, err := repo.OpenWith(dir, repo.OpenOptions{Keyring: testKeys(t).Keyring()}); err == nil {
		r.Close()
		t.Error("an encrypted store opened with another keyring")
	}
}

// TestEncryptedVerifyReportsFlippedByte: one flipped ciphertext byte of a
// sealed data chunk is found by verify --read-data (the AEAD fails it)
// and reported with the file it breaks; restoring that file fails.
func TestEncryptedVerifyReportsFlippedByte(t *testing.T) {
	ctx := context.Background()
	dir, kr := initEncrypted(t)
	src := t.TempDir()
	home := filepath.Join(src, "home", "alice")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 100<<10)
	rand.Read(content)
	if err := os.WriteFile(filepath.Join(home, "victim.bin"), content, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := Open(ctx, dir, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: "PC01", Root: src}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	r, err := repo.OpenWith(dir, repo.OpenOptions{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	var chunk cas.ID
	var walk func(id cas.ID)
	walk = func(id cas.ID) {
		tree, err := r.LoadTree(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range tree.Entries {
			if e.Name == "victim.bin" {
				chunk = e.Chunks[len(e.Chunks)/2].ID
			}
			if !e.Subtree.IsZero() {
				walk(e.Subtree)
			}
		}
	}
	walk(res.Record.Tree)
	loc, err := r.Lookup(cas.BlobData, chunk)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := loc.Pack.String()
	pack := filepath.Join(dir, "packs", p[:2], p+".pack")
	b, err := os.ReadFile(pack)
	if err != nil {
		t.Fatal(err)
	}
	b[loc.Offset+uint64(loc.StoredLen)/2] ^= 0x04
	if err := os.WriteFile(pack, b, 0o600); err != nil {
		t.Fatal(err)
	}

	d, err := OpenDir("verify", dir, Options{Keyring: kr, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	v, err := d.Verify(VerifyOptions{ReadData: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Report.Damaged) != 1 || v.Report.Damaged[0].Blob != chunk.String() {
		t.Fatalf("verify found %+v, want chunk %s damaged", v.Report.Damaged, chunk.Short())
	}
	dmg := v.Report.Damaged[0]
	if !strings.Contains(strings.Join(dmg.Users, " "), "victim.bin") || !strings.Contains(dmg.Reason, "authenticate") {
		t.Errorf("damage %+v does not name victim.bin or the failed authentication", dmg)
	}
}

// TestEncryptedIngestAndRepair: on an encrypted store, smp ingest turns a
// hard-link record into a sealed one (after which, its links gone, no file
// of the store holds a sentinel), and verify --repair-from rewrites a
// chunk whose ciphertext was damaged, sealed, from the user's files.
func TestEncryptedIngestAndRepair(t *testing.T) {
	ctx := context.Background()
	dir, kr := initEncrypted(t)
	sec := &secrets{}
	src, pc := sentinelTree(t, sec)
	st, err := Open(ctx, dir, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: pc, Root: src, Hardlink: capture.HardlinkAlways}})
	if err != nil {
		t.Fatalf("hard-link capture: %v", err)
	}
	st.Close()
	d, err := OpenDir("ingest", dir, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	ir, err := d.Ingest(ctx, res.ID.String())
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	rec, err := d.FindRecord(ctx, ir.ID.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	restoreAndCompare(t, d, rec, src)
	d.Close()
	checkNoPlaintext(t, "after ingest", dir, sec)

	// Damage the largest pack (a data pack: the random blocks) inside its
	// first blob's ciphertext.
	var largest string
	var size int64
	filepath.WalkDir(filepath.Join(dir, "packs"), func(p string, e fs.DirEntry, err error) error {
		if info, ierr := e.Info(); err == nil && ierr == nil && strings.HasSuffix(p, ".pack") && info.Size() > size {
			largest, size = p, info.Size()
		}
		return nil
	})
	b, err := os.ReadFile(largest)
	if err != nil {
		t.Fatal(err)
	}
	b[cas.PackHeaderSize+cas.SealOverhead+100] ^= 0x10
	if err := os.WriteFile(largest, b, 0o600); err != nil {
		t.Fatal(err)
	}
	d, err = OpenDir("verify", dir, Options{Keyring: kr})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	v, err := d.Verify(VerifyOptions{RepairFrom: []string{src}})
	if err != nil {
		t.Fatalf("verify --repair-from: %v", err)
	}
	if len(v.Report.Damaged) != 1 || v.Repair == nil || len(v.Repair.Repaired) != 1 || len(v.Remaining) != 0 {
		t.Fatalf("damaged %+v, repair %+v, remaining %+v: want one chunk damaged and repaired", v.Report.Damaged, v.Repair, v.Remaining)
	}
	v, err = d.Verify(VerifyOptions{ReadData: true})
	if err != nil || len(v.Report.Damaged) != 0 {
		t.Fatalf("verify after repair: %v, %+v", err, v.Report.Damaged)
	}
	restoreAndCompare(t, d, rec, src)
}
