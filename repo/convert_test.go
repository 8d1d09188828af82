package repo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"smp/cas"
	"smp/keys"
)

var errConvertInjected = errors.New("injected crash")

// TestEncryptCrashPoints stops Encrypt at each of its steps, as a crash
// would (gc's own steps included), then checks that the kept record is
// whole and the store verifies, opened with the keys as any smp would open
// it, and that Encrypt run again finishes: every pack sealed under the
// current key, the index encrypted, the TLS key sealed, config.json done.
func TestEncryptCrashPoints(t *testing.T) {
	type point struct {
		name   string
		gcStep int
		// rebuild runs smp index rebuild in the state the crash left,
		// before the re-run: it reads the packs in clear and the sealed
		// ones, and builds the index encrypted.
		rebuild bool
	}
	points := []point{
		{name: "keys saved"}, {name: "mixed"},
		{name: "new pack written", gcStep: gcStepPackWritten},
		{name: "old packs retired", gcStep: gcStepRetired},
		{name: "one old pack deleted", gcStep: gcStepFileDeleted},
		{name: "index copied"}, {name: "index swapped"}, {name: "tls key sealed"}, {name: "before done"},
		{name: "mixed", rebuild: true},
		{name: "new pack written", gcStep: gcStepPackWritten, rebuild: true},
	}
	for _, p := range points {
		name := p.name
		if p.rebuild {
			name += ", then index rebuild"
		}
		t.Run(name, func(t *testing.T) {
			f, r := newGCFix(t)
			gcClose(t, r)
			tlsKey := []byte("-----BEGIN EC PRIVATE KEY-----\nsecret\n")
			os.MkdirAll(filepath.Join(f.dir, "tls"), 0o700)
			if err := os.WriteFile(filepath.Join(f.dir, "tls", "key.pem"), tlsKey, 0o600); err != nil {
				t.Fatal(err)
			}
			var secret []byte
			newKeys := func(id string, hk [32]byte) (*keys.Unlocked, error) {
				u, err := keys.CreateWithHashKey(id, hk)
				if err == nil {
					secret, _, err = u.AddKeyFile()
				}
				return u, err
			}
			unlock := func(_ string, kf *keys.File) (*keys.Unlocked, error) {
				return kf.Unlock(keys.Secret{KeyFile: secret})
			}
			if p.gcStep != 0 {
				gcFailAfter = p.gcStep
			} else {
				rekeyHook = func(at string) error {
					if at == p.name {
						return errConvertInjected
					}
					return nil
				}
			}
			_, err := Encrypt(context.Background(), f.dir, EncryptOptions{NewKeys: newKeys, Unlock: unlock})
			gcFailAfter, rekeyHook = 0, nil
			if !errors.Is(err, errConvertInjected) && !errors.Is(err, errGCInjected) {
				t.Fatalf("Encrypt stopped at %q = %v", p.name, err)
			}
			r, err = OpenWith(f.dir, OpenOptions{Unlock: unlock})
			if err != nil {
				t.Fatalf("open after the crash: %v", err)
			}
			f.checkKept(t, r)
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
			if p.rebuild {
				rep, err := RebuildIndexWith(f.dir, OpenOptions{Unlock: unlock})
				if err != nil || len(rep.DamagedPacks) != 0 || rep.Records != 2 {
					t.Fatalf("index rebuild in the mixed state: %+v, %v", rep, err)
				}
				r, err = OpenWith(f.dir, OpenOptions{Unlock: unlock})
				if err != nil {
					t.Fatal(err)
				}
				if cur, _ := r.Keyring.Current(); r.ixKey != cur {
					t.Errorf("rebuilt index under key %d", r.ixKey)
				}
				f.checkKept(t, r)
				r.Close()
			}

			rep, err := Encrypt(context.Background(), f.dir, EncryptOptions{NewKeys: newKeys, Unlock: unlock})
			if err != nil || rep.Already {
				t.Fatalf("re-run: %+v, %v", rep, err)
			}
			r, err = OpenWith(f.dir, OpenOptions{Unlock: unlock})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Config.Version != FormatVersionCipher || r.Config.Cipher != cas.DefaultCipher || r.Config.Conversion != ConversionDone || len(r.Config.HashKey) != 0 {
				t.Errorf("config after the re-run: %+v", r.Config)
			}
			f.checkKept(t, r)
			u, err := r.KeyUsage()
			if err != nil {
				t.Fatal(err)
			}
			cur, _ := r.Keyring.Current()
			if u.Packs[0] != 0 || u.Index != cur || u.Sealed["tls/key.sealed"] != cur || len(u.Sealed) != 1 || len(u.OldIndexes) != 0 || len(u.Packs) != 1 {
				t.Errorf("key usage after the re-run: %+v", u)
			}
			b, _ := os.ReadFile(filepath.Join(f.dir, "tls", "key.sealed"))
			if got, err := keys.OpenSecret(r.Keyring, r.Config.StoreID, keys.PurposeTLSKey, b); err != nil || string(got) != string(tlsKey) {
				t.Errorf("sealed TLS key: %q, %v", got, err)
			}
		})
	}
}
