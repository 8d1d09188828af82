package cas

import (
	"crypto/aes"
	"crypto/cipher"
	"errors"
	"fmt"
)

// XAES-256-GCM (https://c2sp.org/XAES-256-GCM), written here because the
// standard library keeps its implementation internal and no module for it
// is available to this build.
//
// It extends AES-256-GCM to 192-bit nonces: the first 96 bits of the
// nonce and the key derive a per-nonce AES-256 key through the NIST SP
// 800-108r1 counter KDF with CMAC-AES-256 (two single-block CMACs), and
// AES-256-GCM then runs under that key with the last 96 bits of the
// nonce. Random nonces are safe for about 2^80 messages under one key.

const (
	xaesNonceSize = 24
	xaesOverhead  = 16
)

// xaes is an XAES-256-GCM cipher.AEAD. It is safe for concurrent use.
type xaes struct {
	block cipher.Block
	k1    [aes.BlockSize]byte // the CMAC subkey K1 of the input key
}

// newXAES returns the XAES-256-GCM AEAD with the 32-byte key.
func newXAES(key []byte) (cipher.AEAD, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("xaes-256-gcm: key of %d bytes, want 32", len(key))
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	x := &xaes{block: b}
	// K1 = L<<1, reduced by the GF(2^128) polynomial when L's top bit is
	// set (the CMAC subkey of NIST SP 800-38B, section 6.1), L = AES_K(0).
	var l [aes.BlockSize]byte
	b.Encrypt(l[:], l[:])
	msb := l[0] >> 7
	for i := range aes.BlockSize - 1 {
		x.k1[i] = l[i]<<1 | l[i+1]>>7
	}
	x.k1[aes.BlockSize-1] = l[aes.BlockSize-1]<<1 ^ msb*0x87
	return x, nil
}

func (*xaes) NonceSize() int { return xaesNonceSize }
func (*xaes) Overhead() int  { return xaesOverhead }

// derive returns the AES-256-GCM of the derived key Kx for nonce's first
// 12 bytes: Kx = AES_K(M1 ^ K1) || AES_K(M2 ^ K1), where Mi is
// 0x00 || i || 'X' || 0x00 || nonce[:12].
func (x *xaes) derive(nonce []byte) cipher.AEAD {
	var kx [32]byte
	var m [aes.BlockSize]byte
	m[2] = 'X'
	copy(m[4:], nonce[:12])
	for i := range 2 {
		m[1] = byte(i + 1)
		var in [aes.BlockSize]byte
		for j := range in {
			in[j] = m[j] ^ x.k1[j]
		}
		x.block.Encrypt(kx[i*aes.BlockSize:], in[:])
	}
	b, err := aes.NewCipher(kx[:])
	if err != nil {
		panic(err) // unreachable: a 32-byte key
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		panic(err) // unreachable: the standard nonce and tag sizes
	}
	return g
}

func (x *xaes) Seal(dst, nonce, plaintext, additionalData []byte) []byte {
	if len(nonce) != xaesNonceSize {
		panic("xaes-256-gcm: bad nonce length")
	}
	return x.derive(nonce).Seal(dst, nonce[12:], plaintext, additionalData)
}

// errXAESOpen is returned for a ciphertext that does not authenticate.
var errXAESOpen = errors.New("xaes-256-gcm: message authentication failed")

func (x *xaes) Open(dst, nonce, ciphertext, additionalData []byte) ([]byte, error) {
	if len(nonce) != xaesNonceSize {
		return nil, errXAESOpen
	}
	out, err := x.derive(nonce).Open(dst, nonce[12:], ciphertext, additionalData)
	if err != nil {
		return nil, errXAESOpen
	}
	return out, nil
}
