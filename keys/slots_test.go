package keys

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func init() {
	// Tests need no brute-force resistance: a cheap argon2id setting.
	kdfParams = KDF{Name: "argon2id", Time: 1, MemoryKiB: 64, Threads: 1}
}

const testStore = "0123456789abcdef0123456789abcdef"

func newFile(t *testing.T) (*Unlocked, []byte, string) {
	t.Helper()
	u, err := Create(testStore)
	if err != nil {
		t.Fatal(err)
	}
	kf, _, err := u.AddKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	rk, _, err := u.AddRecovery()
	if err != nil {
		t.Fatal(err)
	}
	return u, kf, rk
}

// reload encodes and decodes the file, as a store would keep it.
func reload(t *testing.T, f *File) *File {
	t.Helper()
	b, err := f.Encode()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestSlotsUnlockEachKind(t *testing.T) {
	u, kf, rk := newFile(t)
	if _, err := u.AddPassphrase([]byte("correct horse")); err != nil {
		t.Fatal(err)
	}
	f := reload(t, u.File)
	want, _ := u.Keyring().HashKey()
	for name, s := range map[string]Secret{
		"keyfile":    {KeyFile: kf},
		"recovery":   {Passphrase: []byte(strings.ToLower(rk))},
		"passphrase": {Passphrase: []byte("correct horse")},
	} {
		got, err := f.Unlock(s)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		hk, ok := got.Keyring().HashKey()
		if !ok || hk != want {
			t.Fatalf("%s: hash key differs", name)
		}
		_, m := got.Keyring().Current()
		_, wm := u.Keyring().Current()
		if m != wm {
			t.Fatalf("%s: master key differs", name)
		}
	}
	for name, s := range map[string]Secret{
		"keyfile":    {KeyFile: bytes.Repeat([]byte{1}, 32)},
		"passphrase": {Passphrase: []byte("wrong horse")},
		"nothing":    {},
	} {
		if _, err := f.Unlock(s); !errors.Is(err, ErrWrongKey) {
			t.Fatalf("%s: want ErrWrongKey, got %v", name, err)
		}
	}
}

func TestSlotsBoundToStore(t *testing.T) {
	u, kf, _ := newFile(t)
	f := reload(t, u.File)
	f.StoreID = strings.Repeat("f", 32) // the same boxes claimed by another store
	if _, err := f.Unlock(Secret{KeyFile: kf}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("a slot moved to another store opened: %v", err)
	}
}

func TestRemoveLastSlotRefused(t *testing.T) {
	u, kf, _ := newFile(t)
	rec := u.File.Slots[1].ID
	if err := u.RemoveSlot(u.File.Slots[0].ID); err != nil {
		t.Fatal(err)
	}
	if err := u.RemoveSlot(rec); err == nil || !strings.Contains(err.Error(), "last") {
		t.Fatalf("removing the last slot: %v", err)
	}
	if _, err := reload(t, u.File).Unlock(Secret{KeyFile: kf}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("a removed slot still opens: %v", err)
	}
}

func TestRotateKeepsHashKeyAndOldMasters(t *testing.T) {
	u, kf, _ := newFile(t)
	hk, _ := u.Keyring().HashKey()
	_, m1 := u.Keyring().Current()
	id, err := u.Rotate()
	if err != nil || id != 2 {
		t.Fatalf("rotate: %d %v", id, err)
	}
	got, err := reload(t, u.File).Unlock(Secret{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	kr := got.Keyring()
	cur, m2 := kr.Current()
	old, ok := kr.Master(1)
	h2, _ := kr.HashKey()
	switch {
	case cur != 2 || m2 == m1:
		t.Fatal("rotation did not make a new current master key")
	case !ok || old != m1:
		t.Fatal("rotation lost the old master key")
	case h2 != hk:
		t.Fatal("rotation changed the hash key")
	}
}

func TestRecoveryKeyChecksum(t *testing.T) {
	var s [32]byte
	copy(s[:], "a recovery key of 32 bytes......")
	rk := FormatRecovery(s)
	got, err := ParseRecovery(strings.ReplaceAll(rk, "-", " "))
	if err != nil || got != s {
		t.Fatalf("round trip: %v", err)
	}
	// One character changed: the checksum catches it.
	i := len(rk) - 3
	c := byte('0')
	if rk[i] == '0' {
		c = '1'
	}
	bad := rk[:i] + string(c) + rk[i+1:]
	if _, err := ParseRecovery(bad); !errors.Is(err, ErrRecoveryChecksum) {
		t.Fatalf("typo: %v", err)
	}
}

func TestDecodeRejectsDamage(t *testing.T) {
	u, _, _ := newFile(t)
	good, err := u.File.Encode()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		"truncated": good[:len(good)/2],
		"version":   bytes.Replace(good, []byte(`"version": 1`), []byte(`"version": 9`), 1),
		"unknown":   bytes.Replace(good, []byte(`"version": 1`), []byte(`"version": 1, "x": 1`), 1),
		"kdf":       []byte(strings.Replace(string(good), `"kind": "keyfile"`, `"kind": "passphrase"`, 1)),
		"huge":      append(good, bytes.Repeat([]byte(" "), maxFileSize)...),
	} {
		if _, err := Decode(b); !errors.Is(err, ErrDamaged) {
			t.Errorf("%s: want ErrDamaged, got %v", name, err)
		}
	}
}

func TestSourcesOrderAndError(t *testing.T) {
	u, kf, rk := newFile(t)
	f := reload(t, u.File)
	dir := t.TempDir()
	cfgDir := filepath.Join(dir, "cfg")
	os.MkdirAll(cfgDir, 0o700)
	wrong := filepath.Join(dir, "wrong.key")
	os.WriteFile(wrong, EncodeKeyFile(bytes.Repeat([]byte{7}, 32)), 0o600)
	s := Sources{KeyFile: wrong, ConfigDir: cfgDir}
	_, err := s.Unlock("S", f)
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("want a one-line error, got %v", err)
	}
	for _, w := range []string{"store S", "--key-file " + wrong + " (wrong key)", "--passphrase-file (not set)", "$CREDENTIALS_DIRECTORY (not set)", "stored key " + StoredKeyPath(cfgDir, testStore) + " (not found)", "prompt (no terminal)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	// The stored key file, then a recovery key from a credential.
	os.WriteFile(StoredKeyPath(cfgDir, testStore), EncodeKeyFile(kf), 0o600)
	if _, err := s.Unlock("S", f); err != nil {
		t.Fatal(err)
	}
	creds := filepath.Join(dir, "creds")
	os.MkdirAll(creds, 0o700)
	os.WriteFile(filepath.Join(creds, "smp-passphrase"), []byte(rk+"\n"), 0o600)
	s = Sources{CredentialsDir: creds}
	if got, err := s.Unlock("S", f); err != nil || got.Slot != u.File.Slots[1].ID {
		t.Fatalf("recovery key credential: %v", err)
	}
	// A world-readable key file is refused.
	os.Chmod(wrong, 0o644)
	_, err = (&Sources{KeyFile: wrong}).Unlock("S", f)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	u, err := Create(testStore)
	if err != nil {
		f.Fatal(err)
	}
	u.AddKeyFile()
	u.AddPassphrase([]byte("p"))
	good, _ := u.File.Encode()
	f.Add(good)
	f.Add([]byte(`{"version":1}`))
	f.Add([]byte(`{"version":1,"slots":null,"masters":[{"id":1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		kf, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrDamaged) {
				t.Fatalf("error not ErrDamaged: %v", err)
			}
			return
		}
		// What decodes re-encodes and decodes to the same file.
		b2, err := kf.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b2); err != nil {
			t.Fatal(err)
		}
		kf.Unlock(Secret{Passphrase: []byte("p"), KeyFile: make([]byte, 32)}) // bounded work, no panic
	})
}

// TestRotateRevoking: after a revoking rotation, a removed slot's secret
// applied to a copy of the old file yields only the old master keys, never
// the new one, and the opening slot still opens the new file.
func TestRotateRevoking(t *testing.T) {
	u, kf, rk := newFile(t)
	old := reload(t, u.File)
	opened, err := reload(t, u.File).Unlock(Secret{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	id, removed, err := opened.RotateRevoking()
	if err != nil || id != 2 || len(removed) != 1 || len(opened.File.Slots) != 1 {
		t.Fatalf("RotateRevoking: %d %v %v", id, removed, err)
	}
	now := reload(t, opened.File)
	got, err := now.Unlock(Secret{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	_, m2 := got.Keyring().Current()
	h1, _ := u.Keyring().HashKey()
	if h2, _ := got.Keyring().HashKey(); h2 != h1 {
		t.Fatal("the hash key changed")
	}
	if _, err := now.Unlock(Secret{Passphrase: []byte(rk)}); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("a revoked slot opens the new file: %v", err)
	}
	// The old file's recovery slot still yields the old wrapping key;
	// grafting the new masters onto it must not give the new master key.
	graft := *old
	graft.Masters, graft.Current, graft.HashKey = now.Masters, now.Current, now.HashKey
	if g, err := graft.Unlock(Secret{Passphrase: []byte(rk)}); err == nil {
		if _, m := g.Keyring().Current(); m == m2 {
			t.Fatal("a revoked secret and an old file open the new master key")
		}
	}
}

// TestKeyringReopen: a keyring unlocked from a key slot file opens a newer
// version of it with the secrets its unlock kept, asking no source: after
// a rotation (same wrapping key) and after a revoking rotation made
// through its own slot, with the new current key and the same hash key;
// not after a revoking rotation through another slot, which removed its
// slot, nor when it was not unlocked from a file.
func TestKeyringReopen(t *testing.T) {
	u, kf, _ := newFile(t)
	server, err := reload(t, u.File).Unlock(Secret{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	kr := server.Keyring()
	hk, _ := kr.HashKey()
	check := func(what string, f *File, want KeyID) *Keyring {
		t.Helper()
		next, err := kr.Reopen(reload(t, f))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if cur, _ := next.Current(); cur != want {
			t.Fatalf("%s: current key %d, want %d", what, cur, want)
		}
		if h, _ := next.HashKey(); h != hk {
			t.Fatalf("%s: another hash key", what)
		}
		return next
	}
	admin, err := reload(t, u.File).Unlock(Secret{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Rotate(); err != nil {
		t.Fatal(err)
	}
	check("after rotate", admin.File, 2)
	if _, _, err := admin.RotateRevoking(); err != nil { // through the server's slot
		t.Fatal(err)
	}
	kr = check("after a revoking rotate through the same slot", admin.File, 3)

	// A revoking rotation through another slot (a recovery key added
	// since) removes the server's.
	other, err := reload(t, admin.File).Unlock(Secret{KeyFile: kf})
	if err != nil {
		t.Fatal(err)
	}
	rec, _, err := other.AddRecovery()
	if err != nil {
		t.Fatal(err)
	}
	byRec, err := reload(t, other.File).Unlock(Secret{Passphrase: []byte(rec)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := byRec.RotateRevoking(); err != nil {
		t.Fatal(err)
	}
	if _, err := kr.Reopen(reload(t, byRec.File)); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("after a revoking rotation through another slot: err = %v, want ErrWrongKey", err)
	}
	plain, err := NewKeyring(1, map[KeyID][32]byte{1: {}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plain.Reopen(byRec.File); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("a keyring not unlocked from a file: err = %v, want ErrWrongKey", err)
	}
}
