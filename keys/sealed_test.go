package keys

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealedSecret(t *testing.T) {
	u, _, _ := newFile(t)
	kr := u.Keyring()
	plain := []byte("-----BEGIN PRIVATE KEY----- secret")
	b, err := SealSecret(kr, testStore, "tls key", plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(b, []byte("secret")) {
		t.Fatal("sealed file holds the plaintext")
	}
	got, err := OpenSecret(kr, testStore, "tls key", b)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("open: %v", err)
	}
	// Still opens after a rotation (sealed by key 1), not as another purpose
	// or store, nor with a flipped byte.
	if _, err := u.Rotate(); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSecret(u.Keyring(), testStore, "tls key", b); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	b2 := bytes.Clone(b)
	b2[len(b2)-1] ^= 1
	for name, c := range map[string]func() error{
		"purpose": func() error { _, err := OpenSecret(kr, testStore, "other", b); return err },
		"store":   func() error { _, err := OpenSecret(kr, "ffffffffffffffffffffffffffffffff", "tls key", b); return err },
		"flipped": func() error { _, err := OpenSecret(kr, testStore, "tls key", b2); return err },
	} {
		if err := c(); !errors.Is(err, ErrSealed) {
			t.Errorf("%s: want ErrSealed, got %v", name, err)
		}
	}
}

func FuzzOpenSecret(f *testing.F) {
	u, err := Create(testStore)
	if err != nil {
		f.Fatal(err)
	}
	kr := u.Keyring()
	b, _ := SealSecret(kr, testStore, "tls key", []byte("x"))
	f.Add(b)
	f.Add([]byte(sealedMagic))
	cur, _ := kr.Current()
	f.Fuzz(func(t *testing.T, b []byte) {
		_, err := OpenSecret(kr, testStore, "tls key", b)
		if err != nil && !errors.Is(err, ErrSealed) {
			t.Fatalf("error not ErrSealed: %v", err)
		}
		// SealedKeyID (what smp key retire reads) accepts what opens,
		// and names the key that opened it.
		kid, kerr := SealedKeyID(b)
		if kerr != nil && !errors.Is(kerr, ErrSealed) {
			t.Fatalf("SealedKeyID error not ErrSealed: %v", kerr)
		}
		if err == nil && (kerr != nil || kid != cur) {
			t.Fatalf("opened, but SealedKeyID says %d, %v", kid, kerr)
		}
	})
}

// TestSealerBounds: a Sealer takes files up to its own bound (larger than
// MaxSealed), refuses larger ones both ways, and its files are not
// another purpose's.
func TestSealerBounds(t *testing.T) {
	u, _, _ := newFile(t)
	s := NewSealer(u.Keyring(), testStore, PurposeAccess, MaxSealed*2)
	big := bytes.Repeat([]byte("a"), MaxSealed*2)
	b, err := s.Seal(big)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open(b); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("open: %v", err)
	}
	if kid, err := SealedHeaderKeyID(b[:SealedOverhead]); err != nil || kid != 1 {
		t.Fatalf("SealedHeaderKeyID: %d, %v", kid, err)
	}
	if _, err := s.Seal(append(big, 'a')); err == nil {
		t.Fatal("sealed more than the bound")
	}
	if _, err := s.Open(append(b, 0)); !errors.Is(err, ErrSealed) {
		t.Fatalf("opened more than the bound: %v", err)
	}
	small, err := s.Seal([]byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSecret(u.Keyring(), testStore, PurposeTLSKey, small); !errors.Is(err, ErrSealed) {
		t.Fatalf("opened as a TLS key: %v", err)
	}
}
