package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smp/capture"
	"smp/cas"
	"smp/index"
	"smp/keys"
)

// keyFileUnlock returns the keys of a new encrypted store made around
// hashKey, with one key file slot, and an Unlock opening them with it.
func keyFileKeys(t *testing.T, storeID string, hashKey [32]byte) (*keys.Unlocked, keys.UnlockFunc) {
	t.Helper()
	u, err := keys.CreateWithHashKey(storeID, hashKey)
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := u.AddKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	return u, func(_ string, f *keys.File) (*keys.Unlocked, error) { return f.Unlock(keys.Secret{KeyFile: secret}) }
}

func readConfigJSON(t *testing.T, dir string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestEncryptConvertsInPlace: a store in clear with sentinel records and a
// TLS key in clear is converted by Encrypt: its records keep their IDs and
// restore byte-identical, config.json keeps no hash key, no file under the
// store holds a sentinel, and the same tree captured again adds almost no
// data (the gear table stays unkeyed, so new chunks match old ones). A
// second Encrypt has nothing to do.
func TestEncryptConvertsInPlace(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	params, _ := cas.ChunkerParamsForAvg(64 << 10)
	cfg, err := Init(dir, params)
	if err != nil {
		t.Fatal(err)
	}
	sec := &secrets{}
	src, pc := sentinelTree(t, sec)
	st, err := Open(ctx, dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: pc, Root: src}})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	tlsKey := "-----BEGIN EC PRIVATE KEY-----\n" + sec.Sentinel("tlskey") + "\n-----END EC PRIVATE KEY-----\n"
	os.MkdirAll(filepath.Join(dir, "tls"), 0o700)
	if err := os.WriteFile(filepath.Join(dir, "tls", "key.pem"), []byte(tlsKey), 0o600); err != nil {
		t.Fatal(err)
	}

	var hk [32]byte
	copy(hk[:], cfg.HashKey)
	var unlock keys.UnlockFunc
	rep, err := Encrypt(ctx, dir, EncryptOptions{NewKeys: func(id string, h [32]byte) (*keys.Unlocked, error) {
		if h != hk || id != cfg.StoreID {
			t.Errorf("NewKeys got another hash key or store ID")
		}
		var u *keys.Unlocked
		u, unlock = keyFileKeys(t, id, h)
		return u, nil
	}})
	if err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	if rep.KeyedGear || rep.Already || rep.GC.PacksRekeyed == 0 || !rep.GC.IndexRekeyed {
		t.Errorf("report %+v, gc %+v", rep, rep.GC)
	}
	m := readConfigJSON(t, dir)
	if m["version"] != float64(4) || m["cipher"] != "xaes-256-gcm" || m["conversion"] != "done" || m["hash_key"] != nil || m["encrypted"] != true {
		t.Errorf("config.json after encrypt: %v", m)
	}
	checkNoPlaintext(t, "after smp encrypt", dir, sec)

	d, err := OpenDir("verify", dir, Options{Unlock: unlock})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := d.FindRecord(ctx, res.ID.String(), "")
	if err != nil {
		t.Fatalf("the record's ID changed: %v", err)
	}
	restoreAndCompare(t, d, rec, src)
	v, err := d.Verify(VerifyOptions{ReadData: true})
	if err != nil || len(v.Report.Damaged) != 0 || v.Report.Records != 1 {
		t.Fatalf("verify: %v, %+v", err, v)
	}
	kr, _, _ := d.Keyring()
	d.Close()
	before := dirSize(t, filepath.Join(dir, "packs"))
	if st, err = Open(ctx, dir, Options{Unlock: unlock}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: pc + "2", Root: src}}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if grown := dirSize(t, filepath.Join(dir, "packs")) - before; grown > 64<<10 {
		t.Errorf("the same tree captured after the conversion added %d bytes: it no longer deduplicates", grown)
	}
	b, err := os.ReadFile(filepath.Join(dir, "tls", "key.sealed"))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := keys.OpenSecret(kr, cfg.StoreID, keys.PurposeTLSKey, b); err != nil || string(got) != tlsKey {
		t.Errorf("sealed TLS key opens to %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "tls", "key.pem")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tls/key.pem still there: %v", err)
	}
	rep, err = Encrypt(ctx, dir, EncryptOptions{Unlock: unlock})
	if err != nil || !rep.Already {
		t.Errorf("second encrypt: %+v, %v", rep, err)
	}
}

// TestRekeyRetireOldKeyOpensNothing is issue 16's "rotate + rekey, then
// the old master key opens nothing": with the old master key's bytes kept
// aside, after gc --rekey and retiring it no pack trailer and no blob
// opens under it (even with the key ID in front rewritten to name it), the
// index does not open with its subkey, nor the sealed TLS key; and the
// store's own keys no longer hold it. Before the rekey, retiring it is
// refused with the store's bytes unchanged.
func TestRekeyRetireOldKeyOpensNothing(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	params, _ := cas.ChunkerParamsForAvg(64 << 10)
	u, unlock := keyFileKeys(t, "0123456789abcdef0123456789abcdef", [32]byte{1, 2, 3})
	if _, err := InitWith(dir, InitOptions{Params: params, Keys: u}); err != nil {
		t.Fatal(err)
	}
	kr1 := u.Keyring()
	old, _ := kr1.Master(1)
	sec := &secrets{}
	src, pc := sentinelTree(t, sec)
	st, err := Open(ctx, dir, Options{Keyring: kr1})
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Capture(ctx, CaptureOptions{Options: capture.Options{Computer: pc, Root: src}})
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	tlsKey := []byte("tls key " + sec.Sentinel("tls"))
	sealed, _ := keys.SealSecret(kr1, u.File.StoreID, keys.PurposeTLSKey, tlsKey)
	os.MkdirAll(filepath.Join(dir, "tls"), 0o700)
	os.WriteFile(filepath.Join(dir, "tls", "key.sealed"), sealed, 0o600)

	if err := EditKeys(dir, S3Options{}, unlock, func(u *keys.Unlocked) error { _, err := u.Rotate(); return err }); err != nil {
		t.Fatal(err)
	}
	bytesBefore := hashTree(t, dir)
	err = RetireKey(dir, S3Options{}, unlock, 1)
	if err == nil || !containsAll(err.Error(), "still seals", "pack", "the index", "tls/key.sealed", "gc --rekey") {
		t.Fatalf("retire before rekey: %v", err)
	}
	if after := hashTree(t, dir); !equalMaps(bytesBefore, after) {
		t.Errorf("a refused retire changed the store")
	}
	if err := RetireKey(dir, S3Options{}, unlock, 2); err == nil {
		t.Errorf("retiring the current key was allowed")
	}

	d, err := OpenDir("gc", dir, Options{Unlock: unlock})
	if err != nil {
		t.Fatal(err)
	}
	gc, err := d.GC(ctx, GCOptions{Rekey: true})
	if err != nil || len(gc.Problems) != 0 || gc.PacksRekeyed == 0 {
		t.Fatalf("gc --rekey: %+v, %v", gc, err)
	}
	d.Close()
	if err := RetireKey(dir, S3Options{}, unlock, 1); err != nil {
		t.Fatalf("retire after rekey: %v", err)
	}

	oldKR, _ := keys.NewKeyring(1, map[keys.KeyID][32]byte{1: old})
	oldSealer, _ := cas.NewSealer(u.File.StoreID, oldKR, cas.DefaultCipher)
	d, err = OpenDir("check", dir, Options{Unlock: unlock})
	if err != nil {
		t.Fatal(err)
	}
	kr2, _, _ := d.Keyring()
	if _, ok := kr2.Master(1); ok {
		t.Errorf("the store's keys still hold master key 1")
	}
	curSealer, _ := cas.NewSealer(u.File.StoreID, kr2, cas.DefaultCipher)
	checkOldKeyOpensNoPack(t, dir, curSealer, oldSealer)
	rec, err := d.FindRecord(ctx, res.ID.String(), "")
	if err != nil {
		t.Fatal(err)
	}
	restoreAndCompare(t, d, rec, src)
	d.Close()

	oldIx, _ := oldKR.Subkey(1, "index")
	if ix, err := index.OpenReadOnly(filepath.Join(dir, "index"), index.Options{EncryptionKey: oldIx[:]}); err == nil {
		ix.Close()
		t.Errorf("the index opens with the old key's subkey")
	} else if !errors.Is(err, index.ErrWrongKey) {
		t.Errorf("index under the old key: %v", err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "tls", "key.sealed"))
	if _, err := keys.OpenSecret(oldKR, u.File.StoreID, keys.PurposeTLSKey, b); err == nil {
		t.Errorf("the TLS key opens with the old key")
	}
	b[len("SMPSEAL1")+3] = 1 // name key 1 in the header: the box must still not open
	if _, err := keys.OpenSecret(oldKR, u.File.StoreID, keys.PurposeTLSKey, b); err == nil {
		t.Errorf("the TLS key opens with the old key")
	}
	checkNoPlaintext(t, "after rekey and retire", dir, sec)
}

// checkOldKeyOpensNoPack opens every pack's trailer with cur and tries the
// trailer and every blob with old, also with their key ID rewritten to
// old's: none may open.
func checkOldKeyOpensNoPack(t *testing.T, dir string, cur, old *cas.Sealer) {
	t.Helper()
	pd, err := cas.NewPackDir(filepath.Join(dir, "packs"))
	if err != nil {
		t.Fatal(err)
	}
	blobs := 0
	err = pd.Walk(func(id cas.ID, size int64) error {
		f, err := os.ReadFile(pd.Path(id))
		if err != nil {
			return err
		}
		r := bytesReaderAt(f)
		if _, _, err := cas.ReadTrailerWith(r, size, old); err == nil {
			t.Errorf("pack %s: trailer opens with the old key", id.Short())
		}
		entries, _, err := cas.ReadTrailerWith(r, size, cur)
		if err != nil {
			t.Fatalf("pack %s: %v", id.Short(), err)
		}
		n, _ := cas.SealedTrailerLen(f[len(f)-cas.PackFooterSize:], size)
		tr := append([]byte(nil), f[size-n:size-cas.PackFooterSize]...)
		binary.LittleEndian.PutUint32(tr, 1)
		if _, err := old.OpenTrailer(tr); err == nil {
			t.Errorf("pack %s: trailer opens with the old key under its ID", id.Short())
		}
		for _, e := range entries {
			raw := append([]byte(nil), f[e.Offset:e.Offset+uint64(e.StoredLen)]...)
			if _, err := old.OpenBlob(nil, e, raw); err == nil {
				t.Errorf("blob %s opens with the old key", e.ID.Short())
			}
			binary.LittleEndian.PutUint32(raw, 1)
			if _, err := old.OpenBlob(nil, e, raw); err == nil {
				t.Errorf("blob %s opens with the old key under its ID", e.ID.Short())
			}
			blobs++
		}
		return nil
	})
	if err != nil || blobs == 0 {
		t.Fatalf("checked %d blobs: %v", blobs, err)
	}
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, errors.New("EOF")
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, errors.New("short")
	}
	return n, nil
}

func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			out[p] = string(cas.PackIDOf(b).String())
		} else if err == nil {
			out[p] = d.Type().String()
		}
		return nil
	})
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestEncryptEmptyStoreKeysGear: a store that holds no pack yet loses no
// deduplication by keying its gear table, so Encrypt keys it, and the
// store then chunks as one made by smp init --encrypt.
func TestEncryptEmptyStoreKeysGear(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "store")
	params, _ := cas.ChunkerParamsForAvg(64 << 10)
	if _, err := Init(dir, params); err != nil {
		t.Fatal(err)
	}
	var unlock keys.UnlockFunc
	rep, err := Encrypt(ctx, dir, EncryptOptions{NewKeys: func(id string, h [32]byte) (*keys.Unlocked, error) {
		var u *keys.Unlocked
		u, unlock = keyFileKeys(t, id, h)
		return u, nil
	}})
	if err != nil || !rep.KeyedGear {
		t.Fatalf("encrypt: %+v, %v", rep, err)
	}
	m := readConfigJSON(t, dir)
	if ch, _ := m["chunker"].(map[string]any); ch["keyed_gear"] != true || m["conversion"] != "done" {
		t.Errorf("config.json: %v", m)
	}
	d, err := OpenDir("check", dir, Options{Unlock: unlock})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Records(ctx); err != nil {
		t.Fatal(err)
	}
}
