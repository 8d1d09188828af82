package cas

import (
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync/atomic"

	"smp/keys"
)

// Sealing of an encrypted store's packs (sealed pack format versions 2
// and 3; see docs/FORMAT.md). Every blob is compressed first, then sealed
// with the store's Cipher under that cipher's subkey of the master key it
// names:
//
//	key ID (4 bytes, little endian) | nonce (24 random bytes) | ciphertext | tag (16)
//
// Both ciphers take 192-bit nonces, drawn at random for every blob and
// trailer: they cannot repeat in practice, whatever the number of blobs,
// processes or machines sealing under one key (docs/SECURITY.md gives the
// bound). The associated data binds a sealed blob to its store, type,
// compression, plaintext length, ID and key ID, so a blob copied to another
// ID, type or store, or an index or trailer entry pointing at the wrong
// blob, fails to open. The trailer that lists the blobs is sealed the same
// way (see SealTrailer). A pack's header version names its cipher; a
// store's packs are all sealed with the cipher its config.json names.

// SealOverhead is the bytes sealing adds to a blob or a trailer body.
// Every Cipher has 24-byte nonces and 16-byte tags.
const SealOverhead = sealHeaderSize + 16

const (
	sealNonceSize  = 24
	sealHeaderSize = 4 + sealNonceSize // key ID and nonce, before the ciphertext
)

// ErrNoKey is returned when a sealed blob or trailer names a master key
// the keyring does not hold.
var ErrNoKey = errors.New("sealed with a master key this keyring does not hold")

// Sealer seals and opens the blobs and trailers of one encrypted store.
// It is safe for concurrent use. Its keys may be replaced while it is in
// use (Adopt: a server taking up a rotation made by another smp); a pack
// writer seals with a Pin of it, so one pack is sealed under one key.
type Sealer struct {
	store  string
	cipher Cipher
	keys   atomic.Pointer[sealKeys]
}

// sealKeys is one keyring's AEADs: what a Sealer seals and opens with.
type sealKeys struct {
	current keys.KeyID
	aeads   map[keys.KeyID]cipher.AEAD
}

// NewSealer returns the sealer of store storeID with the keys of kr and
// cipher c (the store's: Config.Cipher in package repo); new blobs are
// sealed with kr's current key.
func NewSealer(storeID string, kr *keys.Keyring, c Cipher) (*Sealer, error) {
	if storeID == "" || kr == nil {
		return nil, fmt.Errorf("sealer: a store ID and a keyring are required")
	}
	if !c.Valid() {
		return nil, fmt.Errorf("sealer: unknown cipher %d", uint8(c))
	}
	s := &Sealer{store: storeID, cipher: c}
	if err := s.Adopt(kr); err != nil {
		return nil, err
	}
	return s, nil
}

// Adopt replaces s's keys by kr's (a newer version of the store's keys:
// kr's current key seals from now on, and only kr's keys open). Pins taken
// before keep the keys they had.
func (s *Sealer) Adopt(kr *keys.Keyring) error {
	if kr == nil {
		return fmt.Errorf("sealer: a keyring is required")
	}
	k := &sealKeys{aeads: map[keys.KeyID]cipher.AEAD{}}
	k.current, _ = kr.Current()
	for _, id := range kr.IDs() {
		sub, err := kr.Subkey(id, s.cipher.subkeyPurpose())
		if err != nil {
			return err
		}
		a, err := s.cipher.newAEAD(sub[:])
		if err != nil {
			return err
		}
		k.aeads[id] = a
	}
	if _, ok := k.aeads[k.current]; !ok {
		return fmt.Errorf("sealer: the keyring's current key %d is not among its keys", k.current)
	}
	s.keys.Store(k)
	return nil
}

// Pin returns a sealer with s's keys of now, which a later Adopt of s does
// not change: what seals one pack (nil for a nil s).
func (s *Sealer) Pin() *Sealer {
	if s == nil {
		return nil
	}
	p := &Sealer{store: s.store, cipher: s.cipher}
	p.keys.Store(s.keys.Load())
	return p
}

// Current returns the master key s seals with.
func (s *Sealer) Current() keys.KeyID { return s.keys.Load().current }

// Cipher returns the AEAD s seals and opens with.
func (s *Sealer) Cipher() Cipher { return s.cipher }

// blobAD is the associated data of blob e sealed under key kid.
func (s *Sealer) blobAD(e PackEntry, kid keys.KeyID) []byte {
	ad := make([]byte, 0, 64+len(s.store))
	ad = append(ad, "smp blob v1\x00"...)
	ad = append(ad, s.store...)
	ad = append(ad, 0, byte(e.Type), byte(e.Compression))
	ad = binary.LittleEndian.AppendUint32(ad, e.RawLen)
	ad = append(ad, e.ID[:]...)
	return binary.LittleEndian.AppendUint32(ad, uint32(kid))
}

func (s *Sealer) trailerAD(kid keys.KeyID) []byte {
	ad := append([]byte("smp trailer v1\x00"), s.store...)
	return binary.LittleEndian.AppendUint32(ad, uint32(kid))
}

// seal appends the sealed form of plain to dst under the current key.
func (s *Sealer) seal(dst, plain []byte, ad func(keys.KeyID) []byte) []byte {
	k := s.keys.Load()
	kid := k.current
	a := k.aeads[kid]
	dst = binary.LittleEndian.AppendUint32(dst, uint32(kid))
	nonce := randomNonce(&dst)
	return a.Seal(dst, nonce, plain, ad(kid))
}

// randomNonce appends 24 random bytes to *dst and returns them.
func randomNonce(dst *[]byte) []byte {
	n := len(*dst)
	*dst = append(*dst, make([]byte, sealNonceSize)...)
	nonce := (*dst)[n:]
	rand.Read(nonce) // never fails (crypto/rand crashes the program instead)
	return nonce
}

// open authenticates and decrypts sealed, appending the plaintext to dst.
func (s *Sealer) open(dst, sealed []byte, ad func(keys.KeyID) []byte) ([]byte, error) {
	if len(sealed) < SealOverhead {
		return nil, fmt.Errorf("sealed object of %d bytes is shorter than its header: %w", len(sealed), ErrCorrupt)
	}
	kid := keys.KeyID(binary.LittleEndian.Uint32(sealed[:4]))
	a, ok := s.keys.Load().aeads[kid]
	if !ok {
		return nil, fmt.Errorf("key %d: %w", kid, ErrNoKey)
	}
	nonce := sealed[4:sealHeaderSize]
	out, err := a.Open(dst, nonce, sealed[sealHeaderSize:], ad(kid))
	if err != nil {
		return nil, fmt.Errorf("does not authenticate (damaged, or not this store's): %w", ErrCorrupt)
	}
	return out, nil
}

// SealBlob appends blob e's stored (compressed) bytes, sealed, to dst. Only
// e's Type, Compression, ID and RawLen are used.
func (s *Sealer) SealBlob(dst []byte, e PackEntry, stored []byte) []byte {
	return s.seal(dst, stored, func(k keys.KeyID) []byte { return s.blobAD(e, k) })
}

// OpenBlob authenticates sealed blob e and appends its stored (compressed)
// bytes to dst. The result is exactly e.StoredLen-SealOverhead bytes long.
func (s *Sealer) OpenBlob(dst []byte, e PackEntry, sealed []byte) ([]byte, error) {
	if len(sealed) != int(e.StoredLen) || e.StoredLen < SealOverhead {
		return nil, fmt.Errorf("blob %s: sealed length %d does not match its entry: %w", e.ID.Short(), len(sealed), ErrCorrupt)
	}
	out, err := s.open(dst, sealed, func(k keys.KeyID) []byte { return s.blobAD(e, k) })
	if err != nil {
		return nil, fmt.Errorf("blob %s (%s) %w", e.ID.Short(), e.Type, err)
	}
	return out, nil
}

// SealTrailer appends the sealed trailer body (the encoded entries) to dst.
func (s *Sealer) SealTrailer(dst, body []byte) []byte { return s.seal(dst, body, s.trailerAD) }

// OpenTrailer authenticates a sealed trailer body and returns the entries'
// encoding.
func (s *Sealer) OpenTrailer(sealed []byte) ([]byte, error) {
	out, err := s.open(nil, sealed, s.trailerAD)
	if err != nil {
		return nil, fmt.Errorf("pack trailer %w", err)
	}
	return out, nil
}

// maxSealedTrailerBody bounds the sealed section of a trailer.
const maxSealedTrailerBody = MaxPackEntries*PackEntrySize + SealOverhead

// EncodeSealedTrailer returns the trailer of a sealed pack: the entries'
// encoding sealed by s, then a footer with the sealed section's length, its
// CRC-32C (to tell damage from a wrong key) and the trailer magic. Nothing
// of the entries (IDs, types, lengths) is in clear; their count is, within
// the trailer's length.
func EncodeSealedTrailer(s *Sealer, entries []PackEntry) []byte {
	body := make([]byte, 0, len(entries)*PackEntrySize)
	for _, e := range entries {
		body = e.appendBinary(body)
	}
	b := s.SealTrailer(make([]byte, 0, len(body)+SealOverhead+PackFooterSize), body)
	sum := crc32.Checksum(b, castagnoli)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(b)))
	b = binary.LittleEndian.AppendUint32(b, sum)
	return append(b, trailerMagic...)
}

// SealedTrailerLen reads the footer of a sealed pack and returns the whole
// trailer's length, checked against the bounds of a trailer and the pack.
func SealedTrailerLen(footer []byte, packSize int64) (int64, error) {
	if len(footer) != PackFooterSize || string(footer[8:]) != trailerMagic {
		return 0, fmt.Errorf("pack trailer magic missing (truncated or damaged pack): %w", ErrCorrupt)
	}
	body := binary.LittleEndian.Uint32(footer[0:4])
	if body < SealOverhead || body > maxSealedTrailerBody || (body-SealOverhead)%PackEntrySize != 0 {
		return 0, fmt.Errorf("sealed pack trailer claims %d bytes: %w", body, ErrCorrupt)
	}
	n := int64(body) + PackFooterSize
	if n+PackHeaderSize > packSize {
		return 0, fmt.Errorf("pack trailer (%d bytes) larger than pack (%d bytes): %w", n, packSize, ErrCorrupt)
	}
	return n, nil
}

// DecodeSealedTrailer opens and decodes the trailer of a sealed pack of
// packSize bytes, checking every entry as DecodeTrailer does.
func DecodeSealedTrailer(s *Sealer, trailer []byte, packSize int64) ([]PackEntry, error) {
	if len(trailer) < PackFooterSize {
		return nil, fmt.Errorf("pack trailer too short: %w", ErrCorrupt)
	}
	n, err := SealedTrailerLen(trailer[len(trailer)-PackFooterSize:], packSize)
	if err != nil {
		return nil, err
	}
	if int64(len(trailer)) != n {
		return nil, fmt.Errorf("pack trailer is %d bytes, footer says %d: %w", len(trailer), n, ErrCorrupt)
	}
	sealed := trailer[:len(trailer)-PackFooterSize]
	if crc32.Checksum(sealed, castagnoli) != binary.LittleEndian.Uint32(trailer[len(sealed)+4:]) {
		return nil, fmt.Errorf("pack trailer checksum mismatch: %w", ErrCorrupt)
	}
	body, err := s.OpenTrailer(sealed)
	if err != nil {
		return nil, err
	}
	return decodeEntries(body, uint64(packSize-n), SealOverhead)
}

// readSealedBlob reads sealed blob e from r, opens it, decompresses it into
// buf and verifies its ID with h.
func readSealedBlob(r io.ReaderAt, e PackEntry, h *Hasher, s *Sealer, buf []byte) ([]byte, error) {
	if e.StoredLen < SealOverhead || e.StoredLen-SealOverhead > MaxBlobSize || e.RawLen > MaxBlobSize {
		return nil, fmt.Errorf("blob %s length out of bounds: %w", e.ID.Short(), ErrCorrupt)
	}
	var plain []byte
	if e.Compression == CompressionNone {
		var err error
		if plain, err = readUnseal(r, e, s, buf[:0]); err != nil {
			return nil, err
		}
		if len(plain) != int(e.RawLen) {
			return nil, fmt.Errorf("blob %s: raw length mismatch: %w", e.ID.Short(), ErrCorrupt)
		}
	} else {
		// The compressed form is opened in place, over the ciphertext in
		// the one scratch buffer, so decompression reads what decryption
		// just wrote.
		sealed := getScratch(int(e.StoredLen))
		defer putScratch(sealed)
		b := (*sealed)[:e.StoredLen]
		if err := readFull(r, b, e); err != nil {
			return nil, err
		}
		c, err := s.OpenBlob(b[sealHeaderSize:sealHeaderSize], e, b)
		if err != nil {
			return nil, err
		}
		if plain, err = Decompress(buf, c, e.Compression, int(e.RawLen)); err != nil {
			return nil, fmt.Errorf("blob %s: %w", e.ID.Short(), err)
		}
	}
	if err := h.Verify(e.Type, e.ID, plain); err != nil {
		return nil, err
	}
	return plain, nil
}

// readUnseal reads sealed blob e from r and appends its stored
// (compressed) form to dst.
func readUnseal(r io.ReaderAt, e PackEntry, s *Sealer, dst []byte) ([]byte, error) {
	sealed := getScratch(int(e.StoredLen))
	defer putScratch(sealed)
	b := (*sealed)[:e.StoredLen]
	if err := readFull(r, b, e); err != nil {
		return nil, err
	}
	return s.OpenBlob(dst, e, b)
}

// accepts returns nil when s (nil: a store in clear) reads packs of
// format version v: sealed ones with its own cipher, or unsealed ones
// without a sealer.
func (s *Sealer) accepts(v uint16) error {
	switch {
	case v != PackVersion && s == nil:
		return fmt.Errorf("pack is encrypted but the store is not: %w", ErrCorrupt)
	case v == PackVersion && s != nil:
		return fmt.Errorf("pack is not encrypted but the store is: %w", ErrCorrupt)
	case s != nil && cipherOfPack(v) != s.cipher:
		return fmt.Errorf("pack is sealed with %s but the store seals with %s: %w", cipherOfPack(v), s.cipher, ErrCorrupt)
	}
	return nil
}
