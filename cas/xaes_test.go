package cas

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha3"
	"encoding/hex"
	"testing"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestXAESVectors checks newXAES against the two vectors of
// https://c2sp.org/XAES-256-GCM, intermediate values included: the first
// has MSB(L) = 0, the second MSB(L) = 1 (the reduced CMAC subkey).
func TestXAESVectors(t *testing.T) {
	for _, tv := range []struct {
		key       byte
		l, k1, kx string
		aad       string
		ct        string
	}{
		{
			key: 0x01,
			l:   "7298caa565031eadc6ce23d23ea66378",
			k1:  "e531954aca063d5b8d9c47a47d4cc6f0",
			kx:  "c8612c9ed53fe43e8e005b828a1631a0bbcb6ab2f46514ec4f439fcfd0fa969b",
			ct:  "ce546ef63c9cc60765923609b33a9a1974e96e52daf2fcf7075e2271",
		},
		{
			key: 0x03,
			l:   "91c08762876dccf9ba204a33768fa5fe",
			k1:  "23810ec50edb99f374409466ed1f4b7b",
			kx:  "e9c621d4cdd9b11b00a6427ad7e559aeedd66b3857646677748f8ca796cb3fd8",
			aad: "c2sp.org/XAES-256-GCM",
			ct:  "986ec1832593df5443a179437fd083bf3fdb41abd740a21f71eb769d",
		},
	} {
		key := bytes.Repeat([]byte{tv.key}, 32)
		nonce := []byte("ABCDEFGHIJKLMNOPQRSTUVWX")
		a, err := newXAES(key)
		if err != nil {
			t.Fatal(err)
		}
		x := a.(*xaes)
		b, _ := aes.NewCipher(key)
		var l [16]byte
		b.Encrypt(l[:], l[:])
		if got := hex.EncodeToString(l[:]); got != tv.l {
			t.Errorf("key %02x: L = %s, want %s", tv.key, got, tv.l)
		}
		if got := hex.EncodeToString(x.k1[:]); got != tv.k1 {
			t.Errorf("key %02x: K1 = %s, want %s", tv.key, got, tv.k1)
		}
		// Kx: the derived GCM must be AES-256-GCM under the vector's Kx.
		kb, _ := aes.NewCipher(unhex(t, tv.kx))
		want := gcmSeal(t, kb, nonce[12:], []byte("XAES-256-GCM"), []byte(tv.aad))
		got := x.derive(nonce).Seal(nil, nonce[12:], []byte("XAES-256-GCM"), []byte(tv.aad))
		if !bytes.Equal(got, want) {
			t.Errorf("key %02x: derived key is not Kx", tv.key)
		}
		ct := a.Seal(nil, nonce, []byte("XAES-256-GCM"), []byte(tv.aad))
		if got := hex.EncodeToString(ct); got != tv.ct {
			t.Errorf("key %02x: ciphertext %s, want %s", tv.key, got, tv.ct)
		}
		pt, err := a.Open(nil, nonce, ct, []byte(tv.aad))
		if err != nil || string(pt) != "XAES-256-GCM" {
			t.Errorf("key %02x: open = %q, %v", tv.key, pt, err)
		}
		ct[len(ct)-1] ^= 1
		if _, err := a.Open(nil, nonce, ct, []byte(tv.aad)); err == nil {
			t.Errorf("key %02x: a flipped tag bit opened", tv.key)
		}
	}
}

// TestXAESAccumulated reproduces the specification's accumulated
// randomized vector over 10 000 messages (key, nonce, plaintext and
// associated data of 0-255 bytes drawn from one SHAKE-128 stream, the
// ciphertexts hashed by another).
func TestXAESAccumulated(t *testing.T) {
	const want = "e6b9edf2df6cec60c8cbd864e2211b597fb69a529160cd040d56c0c210081939"
	if got := xaesAccumulate(t, 10_000); got != want {
		t.Errorf("10 000 iterations hash to %s, want %s", got, want)
	}
}

// TestXAESAccumulatedLong is the specification's 1 000 000 message
// vector; -short skips it (it takes a few seconds).
func TestXAESAccumulatedLong(t *testing.T) {
	if testing.Short() {
		t.Skip("a million messages")
	}
	const want = "2163ae1445985a30b60585ee67daa55674df06901b890593e824b8a7c885ab15"
	if got := xaesAccumulate(t, 1_000_000); got != want {
		t.Errorf("1 000 000 iterations hash to %s, want %s", got, want)
	}
}

func xaesAccumulate(t *testing.T, iterations int) string {
	t.Helper()
	s, d := sha3.NewSHAKE128(), sha3.NewSHAKE128()
	first := make([]byte, 16)
	s.Read(first)
	if got := hex.EncodeToString(first); got != "7f9c2ba4e88f827d616045507605853e" {
		t.Fatalf("SHAKE-128 stream starts %s", got)
	}
	s.Reset()
	key, nonce, n := make([]byte, 32), make([]byte, 24), make([]byte, 1)
	var ct, pt []byte
	for range iterations {
		s.Read(key)
		s.Read(nonce)
		s.Read(n)
		plain := make([]byte, n[0])
		s.Read(plain)
		s.Read(n)
		aad := make([]byte, n[0])
		s.Read(aad)
		a, err := newXAES(key)
		if err != nil {
			t.Fatal(err)
		}
		ct = a.Seal(ct[:0], nonce, plain, aad)
		pt, err = a.Open(pt[:0], nonce, ct, aad)
		if err != nil || !bytes.Equal(pt, plain) {
			t.Fatalf("round trip failed: %v", err)
		}
		d.Write(ct)
	}
	sum := make([]byte, 32)
	d.Read(sum)
	return hex.EncodeToString(sum)
}

func gcmSeal(t *testing.T, b cipher.Block, nonce, plain, aad []byte) []byte {
	t.Helper()
	g, err := cipher.NewGCM(b)
	if err != nil {
		t.Fatal(err)
	}
	return g.Seal(nil, nonce, plain, aad)
}

// BenchmarkXAESDerive measures the per-message key derivation alone.
func BenchmarkXAESDerive(b *testing.B) {
	a, _ := newXAES(make([]byte, 32))
	x := a.(*xaes)
	nonce := make([]byte, 24)
	b.ReportAllocs()
	for b.Loop() {
		x.derive(nonce)
	}
}

// FuzzXAESOpen: opening any nonce, ciphertext and associated data never
// panics, and nothing opens but the message sealed with them.
func FuzzXAESOpen(f *testing.F) {
	key := bytes.Repeat([]byte{0x03}, 32)
	a, err := newXAES(key)
	if err != nil {
		f.Fatal(err)
	}
	nonce, plain, aad := []byte("ABCDEFGHIJKLMNOPQRSTUVWX"), []byte("XAES-256-GCM"), []byte("c2sp.org/XAES-256-GCM")
	sealed := a.Seal(nil, nonce, plain, aad)
	f.Add(nonce, sealed, aad)
	f.Add(nonce[:23], sealed, aad)
	f.Add(nonce, sealed[:15], []byte{})
	f.Fuzz(func(t *testing.T, n, ct, ad []byte) {
		got, err := a.Open(nil, n, ct, ad)
		if err != nil {
			return
		}
		if !bytes.Equal(n, nonce) || !bytes.Equal(ct, sealed) || !bytes.Equal(ad, aad) || !bytes.Equal(got, plain) {
			t.Fatalf("opened a forged message: nonce %x, %d bytes", n, len(ct))
		}
	})
}
