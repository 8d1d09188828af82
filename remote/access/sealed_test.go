package access

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"smp/keys"
)

const sealStoreID = "0123456789abcdef0123456789abcdef"

// newUnlocked returns the freshly made keys of a store.
func newUnlocked(t testing.TB) *keys.Unlocked {
	t.Helper()
	u, err := keys.Create(sealStoreID)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func sealer(kr *keys.Keyring) Codec {
	return keys.NewSealer(kr, sealStoreID, keys.PurposeAccess, MaxFileSize)
}

func openSealed(t *testing.T, dir string, c Codec) *Store {
	t.Helper()
	s, err := OpenWith(dir, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestSealedAccessFile: with a codec the access file is access.sealed, in
// which neither a computer name nor a token hash appears; it opens with
// the store's keys only, and without a codec it is refused, never read as
// an empty access list.
func TestSealedAccessFile(t *testing.T) {
	dir := newDir(t)
	u := newUnlocked(t)
	s := openSealed(t, dir, sealer(u.Keyring()))
	secret, tok := create(t, s, "sntlPC-Alpha", RoleClient, 0)
	if err := s.Associate("sntlPC-Alpha", "sntlPC-Beta", t0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, fileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("an encrypted store has %s (%v)", fileName, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, sealedName))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"sntlPC", tok.ID, "client", "version"} {
		if bytes.Contains(b, []byte(leak)) {
			t.Errorf("%s holds %q in clear", sealedName, leak)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, sealedName)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", sealedName, fi.Mode(), err)
	}

	// A second handle with the same keys (another process) sees it all.
	sn := snapshot(t, openSealed(t, dir, sealer(u.Keyring())))
	if got, err := sn.Authenticate(secret, t0); err != nil || got.Computer != "sntlPC-Alpha" {
		t.Fatalf("Authenticate: %+v, %v", got, err)
	}
	if !sn.MayRestore(tok, "sntlPC-Alpha") || len(sn.Associations()) != 1 {
		t.Fatalf("association lost: %+v", sn.Associations())
	}

	// Another store's keys: a clear error naming the file, no token.
	other, err := keys.Create(sealStoreID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = openSealed(t, dir, sealer(other.Keyring())).Snapshot()
	if err == nil || !errors.Is(err, keys.ErrSealed) || !strings.Contains(err.Error(), sealedName) ||
		!strings.Contains(err.Error(), "cannot be opened with this store's keys") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("wrong key: want a one-line error naming %s, got %v", sealedName, err)
	}
	if _, _, err := openSealed(t, dir, sealer(other.Keyring())).CreateToken("PC9", RoleClient, 0, t0); err == nil {
		t.Fatal("a token was created with the wrong key")
	}
	if b2, _ := os.ReadFile(filepath.Join(dir, sealedName)); !bytes.Equal(b, b2) {
		t.Fatal("a refused write changed the sealed file")
	}

	// No codec: refused at open, and not read as empty.
	if _, err := Open(dir); !errors.Is(err, ErrSealedNoKey) || !strings.Contains(err.Error(), "--key-file") {
		t.Fatalf("Open without a key: want ErrSealedNoKey naming --key-file, got %v", err)
	}
}

// TestSealedAccessMigratesClear: a converted store's access.json is read
// through the codec until the first write (or Reseal) seals it and
// removes the clear file; Reseal moves a sealed file to the current key.
func TestSealedAccessMigratesClear(t *testing.T) {
	dir := newDir(t)
	secret, _ := create(t, open(t, dir), "sntlPC-Clear", RoleClient, 0)
	u := newUnlocked(t)
	s := openSealed(t, dir, sealer(u.Keyring()))
	if _, err := snapshot(t, s).Authenticate(secret, t0); err != nil {
		t.Fatalf("clear file not read through the codec: %v", err)
	}
	if err := s.Reseal(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, fileName)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Reseal left %s (%v)", fileName, err)
	}
	b, err := os.ReadFile(filepath.Join(dir, sealedName))
	if err != nil || bytes.Contains(b, []byte("sntlPC")) {
		t.Fatalf("sealed file: %v, or holds the computer name", err)
	}
	if kid, err := keys.SealedHeaderKeyID(b); err != nil || kid != 1 {
		t.Fatalf("sealed under key %d (%v), want 1", kid, err)
	}
	newID, err := u.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	s = openSealed(t, dir, sealer(u.Keyring()))
	if err := s.Reseal(); err != nil {
		t.Fatal(err)
	}
	b, _ = os.ReadFile(filepath.Join(dir, sealedName))
	if kid, err := keys.SealedHeaderKeyID(b); err != nil || kid != newID {
		t.Fatalf("after rotation sealed under key %d (%v), want %d", kid, err, newID)
	}
	if _, err := snapshot(t, s).Authenticate(secret, t0.Add(time.Hour)); err != nil {
		t.Fatalf("token lost by Reseal: %v", err)
	}
	// No access file at all: Reseal writes none.
	empty := newDir(t)
	if err := openSealed(t, empty, sealer(u.Keyring())).Reseal(); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(empty); len(ents) != 2 { // config.json and access.lock
		t.Fatalf("Reseal of no access file wrote %v", ents)
	}
}

// FuzzOpenSealed: whatever bytes access.sealed holds, reading it never
// panics, fails with an error naming the file, and a file that opens
// decodes to a valid access list that writes back unchanged.
func FuzzOpenSealed(f *testing.F) {
	u := newUnlocked(f)
	c := sealer(u.Keyring())
	plain, err := emptyFile().encode()
	if err != nil {
		f.Fatal(err)
	}
	good, err := c.Seal(plain)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:keys.SealedOverhead])
	f.Add([]byte("SMPSEAL1"))
	f.Add([]byte{})
	dir := f.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte("{}\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	s, err := OpenWith(dir, c)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, sealedName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		fl, _, err := s.readFile(s.sealedPath, c)
		if err != nil {
			if !strings.Contains(err.Error(), sealedName) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := fl.check(); err != nil {
			t.Fatalf("opened an invalid file: %v", err)
		}
		if _, err := fl.encode(); err != nil {
			t.Fatal(err)
		}
	})
}
