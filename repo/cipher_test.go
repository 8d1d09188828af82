package repo

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"smp/cas"
	"smp/keys"
)

// TestOldCipherStore: a store sealed with XChaCha20-Poly1305 (format
// version 2 without "cipher", as smp made encrypted stores before version
// 4) captures, reads back, verifies and rekeys after a rotation, and stays
// so: every pack version 2, config.json unchanged. A new store does the
// same with XAES-256-GCM, version 3 packs and format version 4.
func TestOldCipherStore(t *testing.T) {
	for _, tc := range []struct {
		cipher  cas.Cipher
		version int
		pack    uint16
		json    string // "cipher" in config.json, "" for none
	}{
		{cas.CipherXChaCha20Poly1305, FormatVersionEncrypted, cas.PackVersionSealed, ""},
		{0, FormatVersionCipher, cas.PackVersionSealedXAES, "xaes-256-gcm"},
	} {
		t.Run(cmpName(tc.json), func(t *testing.T) {
			u := testKeys(t)
			f, r := newGCFixCipher(t, u, tc.cipher)
			checkCipherConfig(t, f.dir, tc.version, tc.json)
			f.checkKept(t, r)
			before := packVersions(t, r)
			if len(before) != 1 || before[tc.pack] == 0 {
				t.Fatalf("pack versions %v, want all %d", before, tc.pack)
			}
			gcClose(t, r)

			old, _ := u.Keyring().Current()
			if _, err := u.Rotate(); err != nil {
				t.Fatal(err)
			}
			gcKeyrings.Store(f.dir, u.Keyring())
			r = gcOpen(t, f.dir)
			rep := runGC(t, r, GCOptions{Rekey: true})
			if rep.PacksRekeyed == 0 || len(rep.Problems) != 0 {
				t.Fatalf("gc --rekey: %+v", rep)
			}
			after := packVersions(t, r)
			if len(after) != 1 || after[tc.pack] == 0 {
				t.Errorf("after rekey: pack versions %v, want all %d", after, tc.pack)
			}
			ku, err := r.KeyUsage()
			if err != nil {
				t.Fatal(err)
			}
			if uses := ku.Uses(old); len(uses) != 0 {
				t.Errorf("the old key still seals %v", uses)
			}
			f.checkKept(t, r)
			checkCipherConfig(t, f.dir, tc.version, tc.json)
		})
	}
}

// checkCipherConfig checks config.json's version and "cipher" (none when
// want is "").
func checkCipherConfig(t *testing.T, dir string, version int, want string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	got, has := m["cipher"]
	if m["version"] != float64(version) || has != (want != "") || has && got != want {
		t.Errorf("config.json has version %v and cipher %v, want %d and %q:\n%s", m["version"], got, version, want, b)
	}
}

// packVersions counts the store's packs by format version.
func packVersions(t *testing.T, r *Repo) map[uint16]int {
	t.Helper()
	n := map[uint16]int{}
	err := r.packs.Walk(func(id cas.ID, _ int64) error {
		obj, err := r.packs.Open(id)
		if err != nil {
			return err
		}
		defer obj.Close()
		v, err := cas.PackVersionOf(obj)
		n[v]++
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestConfigCipherChecks: config.json's "cipher" must match its version
// and encryption; an unknown cipher, a cipher in a version 2 or clear
// store, or a version 4 store without one is refused as damaged, and the
// store format version follows from the other fields.
func TestConfigCipherChecks(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "store")
	if _, err := InitWith(dir, InitOptions{Params: cas.DefaultChunkerParams(), Keys: testKeys(t)}); err != nil {
		t.Fatal(err)
	}
	good, err := readConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if good.Version != FormatVersionCipher || good.Cipher != cas.CipherXAES256GCM || good.SealCipher() != cas.CipherXAES256GCM {
		t.Fatalf("new store: version %d, cipher %v", good.Version, good.Cipher)
	}
	for _, tc := range []struct {
		name string
		edit func(c *Config)
	}{
		{"version 2 with a cipher", func(c *Config) { c.Version = FormatVersionEncrypted }},
		{"version 3 with a cipher", func(c *Config) { c.Version = FormatVersionConverting; c.Conversion = ConversionMixed }},
		{"version 4 without a cipher", func(c *Config) { c.Cipher = 0 }},
		{"unknown cipher", func(c *Config) { c.Cipher = 7 }},
		{"cipher in a clear store", func(c *Config) { c.Encrypted, c.Version, c.HashKey = false, FormatVersion, make([]byte, 32) }},
		{"version 5", func(c *Config) { c.Version = 5 }},
	} {
		c := *good
		tc.edit(&c)
		if err := c.check(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	for _, tc := range []struct {
		c    Config
		want int
	}{
		{Config{}, FormatVersion},
		{Config{Encrypted: true}, FormatVersionEncrypted},
		{Config{Encrypted: true, Conversion: ConversionDone}, FormatVersionEncrypted},
		{Config{Encrypted: true, Conversion: ConversionMixed}, FormatVersionConverting},
		{Config{Encrypted: true, Cipher: cas.CipherXAES256GCM, Conversion: ConversionMixed}, FormatVersionCipher},
		{Config{Encrypted: true, Cipher: cas.CipherXChaCha20Poly1305}, FormatVersionCipher},
	} {
		if got := tc.c.formatVersion(); got != tc.want {
			t.Errorf("%+v: format version %d, want %d", tc.c, got, tc.want)
		}
	}
	// The name in config.json is parsed: an unknown one does not open.
	b, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	b = []byte(strings.Replace(string(b), `"xaes-256-gcm"`, `"aes-128-ecb"`, 1))
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readConfig(dir); err == nil || !strings.Contains(err.Error(), "unknown cipher") {
		t.Errorf("an unknown cipher name: %v", err)
	}
}

func cmpName(cipher string) string {
	if cipher == "" {
		return "version 2, xchacha20-poly1305"
	}
	return cipher
}

// TestEncryptResumesOldConversion: smp encrypt converts to XAES-256-GCM
// (format version 4), and finishes a conversion an smp before version 4
// began (version 3, "mixed", no "cipher") with XChaCha20-Poly1305, ending
// at version 2 as that smp would have: its packs are version 2.
func TestEncryptResumesOldConversion(t *testing.T) {
	for _, old := range []bool{false, true} {
		f, r := newGCFix(t)
		gcClose(t, r)
		var secret []byte
		o := EncryptOptions{
			NewKeys: func(id string, hk [32]byte) (*keys.Unlocked, error) {
				u, err := keys.CreateWithHashKey(id, hk)
				if err == nil {
					secret, _, err = u.AddKeyFile()
				}
				return u, err
			},
			Unlock: func(_ string, kf *keys.File) (*keys.Unlocked, error) {
				return kf.Unlock(keys.Secret{KeyFile: secret})
			},
		}
		rekeyHook = func(at string) error {
			if at == "mixed" {
				return errConvertInjected
			}
			return nil
		}
		_, err := Encrypt(context.Background(), f.dir, o)
		rekeyHook = nil
		if !errors.Is(err, errConvertInjected) {
			t.Fatalf("Encrypt stopped at mixed: %v", err)
		}
		checkCipherConfig(t, f.dir, FormatVersionCipher, "xaes-256-gcm")
		version, cipher, pack := FormatVersionCipher, "xaes-256-gcm", uint16(cas.PackVersionSealedXAES)
		if old {
			// What smp before version 4 wrote at this step (no pack is
			// sealed yet): version 3 and no cipher.
			path := filepath.Join(f.dir, "config.json")
			b, _ := os.ReadFile(path)
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			m["version"] = FormatVersionConverting
			delete(m, "cipher")
			b, _ = json.Marshal(m)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			version, cipher, pack = FormatVersionEncrypted, "", cas.PackVersionSealed
		}
		rep, err := Encrypt(context.Background(), f.dir, o)
		if err != nil || !rep.Resumed {
			t.Fatalf("old %v: re-run: %+v, %v", old, rep, err)
		}
		checkCipherConfig(t, f.dir, version, cipher)
		r, err = OpenWith(f.dir, OpenOptions{Unlock: o.Unlock})
		if err != nil {
			t.Fatal(err)
		}
		if got := packVersions(t, r); len(got) != 1 || got[pack] == 0 {
			t.Errorf("old %v: pack versions %v, want all %d", old, got, pack)
		}
		f.checkKept(t, r)
		r.Close()
	}
}
