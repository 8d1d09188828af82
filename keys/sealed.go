package keys

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"

	"golang.org/x/crypto/chacha20poly1305"
)

// A sealed secret is a small secret the store keeps in a file of its own
// (the TLS private key of smp serve --tls-self-signed), sealed with a
// subkey of a master key:
//
//	"SMPSEAL1" | key ID (uint32, big-endian) | nonce (24) | XChaCha20-Poly1305 box
//
// The associated data binds it to the store ID and its purpose, so it
// cannot be swapped with another store's or another secret's file.
const (
	sealedMagic  = "SMPSEAL1"
	sealedHeader = len(sealedMagic) + 4 + nonceSize
	// MaxSealed bounds a sealed file: a PEM private key is a few KiB.
	MaxSealed = 64 << 10
)

// SealedOverhead is what sealing adds to a secret: the header and the
// AEAD tag.
const SealedOverhead = sealedHeader + 16

// PurposeTLSKey is the purpose of the sealed TLS private key smp serve
// --tls-self-signed keeps in the store (tls/key.sealed).
const PurposeTLSKey = "tls private key"

// PurposeAccess is the purpose of the sealed access file of an encrypted
// store (access.sealed: tokens, computer names, associations).
const PurposeAccess = "access file"

// SealedKeyID returns the master key that sealed b, a sealed file of at
// most MaxSealed bytes.
func SealedKeyID(b []byte) (KeyID, error) { return sealedKeyID(b, MaxSealed) }

// SealedHeaderKeyID returns the master key that sealed the file whose
// first bytes are b (at least SealedOverhead of them), whatever its size:
// what key retire reads of a large sealed file.
func SealedHeaderKeyID(b []byte) (KeyID, error) {
	if len(b) < SealedOverhead || string(b[:len(sealedMagic)]) != sealedMagic {
		return 0, ErrSealed
	}
	return KeyID(binary.BigEndian.Uint32(b[len(sealedMagic):])), nil
}

func sealedKeyID(b []byte, maxSealed int) (KeyID, error) {
	if len(b) > maxSealed {
		return 0, ErrSealed
	}
	return SealedHeaderKeyID(b)
}

// ErrSealed is wrapped by the errors of OpenSecret.
var ErrSealed = errors.New("sealed file is damaged or not of this store")

func sealedAD(storeID, purpose string, id KeyID) []byte {
	return binary.BigEndian.AppendUint32([]byte(sealedMagic+"\x00"+storeID+"\x00"+purpose+"\x00"), uint32(id))
}

// SealSecret seals plain for purpose with the keyring's current master
// key.
func SealSecret(kr *Keyring, storeID, purpose string, plain []byte) ([]byte, error) {
	return sealMax(kr, storeID, purpose, plain, MaxSealed)
}

func sealMax(kr *Keyring, storeID, purpose string, plain []byte, maxSealed int) ([]byte, error) {
	if len(plain)+SealedOverhead > maxSealed {
		return nil, fmt.Errorf("a sealed %s is at most %d bytes", purpose, maxSealed-SealedOverhead)
	}
	id, _ := kr.Current()
	k, err := kr.Subkey(id, "sealed "+purpose)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return nil, err
	}
	out := binary.BigEndian.AppendUint32([]byte(sealedMagic), uint32(id))
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return aead.Seal(out, nonce, plain, sealedAD(storeID, purpose, id)), nil
}

// OpenSecret opens what SealSecret sealed.
func OpenSecret(kr *Keyring, storeID, purpose string, b []byte) ([]byte, error) {
	return openMax(kr, storeID, purpose, b, MaxSealed)
}

func openMax(kr *Keyring, storeID, purpose string, b []byte, maxSealed int) ([]byte, error) {
	id, err := sealedKeyID(b, maxSealed)
	if err != nil {
		return nil, err
	}
	k, err := kr.Subkey(id, "sealed "+purpose)
	if err != nil {
		return nil, fmt.Errorf("%w: sealed with master key %d, which the keyring does not hold", ErrSealed, id)
	}
	aead, err := chacha20poly1305.NewX(k[:])
	if err != nil {
		return nil, err
	}
	nonce := b[len(sealedMagic)+4 : sealedHeader]
	plain, err := aead.Open(nil, nonce, b[sealedHeader:], sealedAD(storeID, purpose, id))
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}

// A Sealer seals and opens one kind of sealed file of one store, of up to
// a given size: the codec of the sealed access file (package
// remote/access), which gets it from whoever unlocked the store.
type Sealer struct {
	kr        *Keyring
	storeID   string
	purpose   string
	maxSealed int
}

// NewSealer returns the sealer of purpose's files of the store, whose
// plaintext is at most maxPlain bytes.
func NewSealer(kr *Keyring, storeID, purpose string, maxPlain int) *Sealer {
	return &Sealer{kr: kr, storeID: storeID, purpose: purpose, maxSealed: maxPlain + SealedOverhead}
}

// Seal seals plain under the keyring's current master key, with a fresh
// random nonce.
func (s *Sealer) Seal(plain []byte) ([]byte, error) {
	return sealMax(s.kr, s.storeID, s.purpose, plain, s.maxSealed)
}

// Open opens what Seal sealed, under any master key of the keyring; its
// errors wrap ErrSealed.
func (s *Sealer) Open(b []byte) ([]byte, error) {
	return openMax(s.kr, s.storeID, s.purpose, b, s.maxSealed)
}

// MaxSealed is the largest sealed file Open accepts.
func (s *Sealer) MaxSealed() int { return s.maxSealed }
