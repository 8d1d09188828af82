package cas

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"fmt"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// BenchmarkAEADOpen measures opening (authenticating and decrypting) one
// blob with each AEAD a sealed pack could use, at the sizes of a tree or
// record (4 KiB), a small chunk (64 KiB) and a large one (1 MiB): MB/s
// of ciphertext, and the process's CPU time per open (cpu-ns/op, steadier
// than wall time on a shared machine). XAES-256-GCM includes its
// per-message key derivation.
func BenchmarkAEADOpen(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	aeads := []struct {
		name string
		new  func() (cipher.AEAD, error)
	}{
		{"xchacha20poly1305", func() (cipher.AEAD, error) { return chacha20poly1305.NewX(key) }},
		{"aes256gcm", func() (cipher.AEAD, error) {
			blk, err := aes.NewCipher(key)
			if err != nil {
				return nil, err
			}
			return cipher.NewGCM(blk)
		}},
		{"xaes256gcm", func() (cipher.AEAD, error) { return newXAES(key) }},
	}
	ad := []byte("smp blob v1\x00store\x00\x01\x01")
	for _, size := range []int{4 << 10, 64 << 10, 1 << 20} {
		for _, a := range aeads {
			b.Run(fmt.Sprintf("%s/%dKiB", a.name, size>>10), func(b *testing.B) {
				aead, err := a.new()
				if err != nil {
					b.Fatal(err)
				}
				plain := make([]byte, size)
				rand.Read(plain)
				nonce := make([]byte, aead.NonceSize())
				rand.Read(nonce)
				sealed := aead.Seal(nil, nonce, plain, ad)
				out := make([]byte, 0, size)
				b.SetBytes(int64(len(sealed)))
				cpu := processCPU()
				for b.Loop() {
					if _, err := aead.Open(out[:0], nonce, sealed, ad); err != nil {
						b.Fatal(err)
					}
				}
				reportCPU(b, cpu)
			})
		}
	}
}
