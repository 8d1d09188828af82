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

// PurposeTLSKey is the purpose of the sealed TLS private key smp serve
// --tls-self-signed keeps in the store (tls/key.sealed).
const PurposeTLSKey = "tls private key"

// SealedKeyID returns the master key that sealed b, a sealed file.
func SealedKeyID(b []byte) (KeyID, error) {
	if len(b) > MaxSealed || len(b) < sealedHeader+16 || string(b[:len(sealedMagic)]) != sealedMagic {
		return 0, ErrSealed
	}
	return KeyID(binary.BigEndian.Uint32(b[len(sealedMagic):])), nil
}

// ErrSealed is wrapped by the errors of OpenSecret.
var ErrSealed = errors.New("sealed file is damaged or not of this store")

func sealedAD(storeID, purpose string, id KeyID) []byte {
	return binary.BigEndian.AppendUint32([]byte(sealedMagic+"\x00"+storeID+"\x00"+purpose+"\x00"), uint32(id))
}

// SealSecret seals plain for purpose with the keyring's current master
// key.
func SealSecret(kr *Keyring, storeID, purpose string, plain []byte) ([]byte, error) {
	if len(plain)+sealedHeader+16 > MaxSealed {
		return nil, fmt.Errorf("a sealed secret is at most %d bytes", MaxSealed-sealedHeader-16)
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
	if len(b) > MaxSealed || len(b) < sealedHeader+16 || string(b[:len(sealedMagic)]) != sealedMagic {
		return nil, ErrSealed
	}
	id := KeyID(binary.BigEndian.Uint32(b[len(sealedMagic):]))
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
