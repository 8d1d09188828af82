package keys

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// The key slot file, keys.json in the store (see docs/FORMAT.md, "Key
// slots"). It holds no key in clear:
//
//   - slots: each wraps the store's wrapping key (a random 256-bit key
//     made at init) under a key derived from one secret: a passphrase
//     (argon2id), a key file or a recovery key (HKDF-SHA256);
//   - masters: every master key still in use, each wrapped by the
//     wrapping key; current names the one that seals new data;
//   - hash_key: the store's content hash key, wrapped by a master key, so
//     a rotation re-wraps it and every ID stays the same.
//
// Every wrap is XChaCha20-Poly1305 with a random 192-bit nonce and
// associated data binding it to the store ID and to what it is (slot ID
// and kind, master key ID), so a box cannot be moved to another store or
// another place in the file.

// FileName is the key slot file's name in the store.
const FileName = "keys.json"

// FileVersion is the key slot file format this smp reads and writes.
const FileVersion = 1

// Bounds of the decoder: taken from what smp writes, never from what the
// file claims.
const (
	maxFileSize = 64 << 10
	maxSlots    = 32
	maxMasters  = 64
	nonceSize   = 24
	boxSize     = 32 + 16 // a 32-byte key and its Poly1305 tag
	minSalt     = 16
	maxSalt     = 64
	slotIDLen   = 8 // hex digits
)

// Kinds of key slot.
const (
	KindPassphrase = "passphrase"
	KindKeyFile    = "keyfile"
	KindRecovery   = "recovery"
)

// File is the decoded key slot file.
type File struct {
	Version int      `json:"version"`
	StoreID string   `json:"store_id"`
	Current KeyID    `json:"current"`
	Masters []Master `json:"masters"`
	HashKey Wrapped  `json:"hash_key"`
	Slots   []Slot   `json:"slots"`
}

// Wrapped is a 32-byte key sealed with XChaCha20-Poly1305.
type Wrapped struct {
	// KeyID names the master key that wraps it (hash_key only).
	KeyID KeyID  `json:"key_id,omitempty"`
	Nonce []byte `json:"nonce"`
	Box   []byte `json:"box"`
}

// Master is one master key, wrapped by the store's wrapping key.
type Master struct {
	ID      KeyID     `json:"id"`
	Created time.Time `json:"created"`
	Wrapped
}

// Slot is one way in: a secret that unwraps the store's wrapping key.
type Slot struct {
	ID      string    `json:"id"`
	Kind    string    `json:"kind"`
	Created time.Time `json:"created"`
	// KDF is how a passphrase becomes the slot's key; nil for the other
	// kinds, whose secrets are random 256-bit keys (HKDF only).
	KDF *KDF `json:"kdf,omitempty"`
	Wrapped
}

// KDF is the argon2id cost and salt of a passphrase slot.
type KDF struct {
	Name      string `json:"name"` // "argon2id"
	Time      uint32 `json:"time"`
	MemoryKiB uint32 `json:"memory_kib"`
	Threads   uint8  `json:"threads"`
	Salt      []byte `json:"salt"`
}

// ErrDamaged is wrapped by every decoding error of the key slot file.
var ErrDamaged = errors.New("key slot file is damaged")

// Decode parses and checks a key slot file.
func Decode(b []byte) (*File, error) {
	if len(b) > maxFileSize {
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrDamaged, maxFileSize)
	}
	var probe struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	if probe.Version != FileVersion {
		return nil, fmt.Errorf("%w: format version %d is not supported by this smp (reads %d)", ErrDamaged, probe.Version, FileVersion)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: data after the object", ErrDamaged)
	}
	if err := f.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrDamaged, err)
	}
	return &f, nil
}

// Encode returns the file as written to the store.
func (f *File) Encode() ([]byte, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func checkWrapped(w Wrapped) error {
	if len(w.Nonce) != nonceSize || len(w.Box) != boxSize {
		return fmt.Errorf("nonce of %d or box of %d bytes (want %d and %d)", len(w.Nonce), len(w.Box), nonceSize, boxSize)
	}
	return nil
}

func validStoreID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

func (f *File) check() error {
	switch {
	case !validStoreID(f.StoreID):
		return fmt.Errorf("store ID %q is not 32 hex digits", f.StoreID)
	case len(f.Masters) == 0 || len(f.Masters) > maxMasters:
		return fmt.Errorf("%d master keys (want 1 to %d)", len(f.Masters), maxMasters)
	case len(f.Slots) == 0 || len(f.Slots) > maxSlots:
		return fmt.Errorf("%d key slots (want 1 to %d)", len(f.Slots), maxSlots)
	}
	seen := map[KeyID]bool{}
	for _, m := range f.Masters {
		if m.ID == 0 || seen[m.ID] {
			return fmt.Errorf("master key ID %d is zero or repeated", m.ID)
		}
		seen[m.ID] = true
		if err := checkWrapped(m.Wrapped); err != nil {
			return fmt.Errorf("master key %d: %v", m.ID, err)
		}
	}
	if !seen[f.Current] {
		return fmt.Errorf("current master key %d is not in the file", f.Current)
	}
	if !seen[f.HashKey.KeyID] {
		return fmt.Errorf("hash key is wrapped by master key %d, which is not in the file", f.HashKey.KeyID)
	}
	if err := checkWrapped(f.HashKey); err != nil {
		return fmt.Errorf("hash key: %v", err)
	}
	ids := map[string]bool{}
	for _, s := range f.Slots {
		if err := s.check(); err != nil {
			return err
		}
		if ids[s.ID] {
			return fmt.Errorf("key slot %s repeated", s.ID)
		}
		ids[s.ID] = true
	}
	return nil
}

func (s *Slot) check() error {
	if len(s.ID) != slotIDLen {
		return fmt.Errorf("key slot ID %q is not %d hex digits", s.ID, slotIDLen)
	}
	if _, err := hex.DecodeString(s.ID); err != nil {
		return fmt.Errorf("key slot ID %q is not %d hex digits", s.ID, slotIDLen)
	}
	if s.KeyID != 0 {
		return fmt.Errorf("key slot %s names a key ID", s.ID)
	}
	switch s.Kind {
	case KindPassphrase:
		if s.KDF == nil {
			return fmt.Errorf("passphrase slot %s has no kdf", s.ID)
		}
		if err := s.KDF.check(); err != nil {
			return fmt.Errorf("key slot %s: %v", s.ID, err)
		}
	case KindKeyFile, KindRecovery:
		if s.KDF != nil {
			return fmt.Errorf("%s slot %s has a kdf", s.Kind, s.ID)
		}
	default:
		return fmt.Errorf("key slot %s has unknown kind %q", s.ID, s.Kind)
	}
	if err := checkWrapped(s.Wrapped); err != nil {
		return fmt.Errorf("key slot %s: %v", s.ID, err)
	}
	return nil
}

// Argon2id cost bounds: a file may not make an open take unbounded time
// or memory (a tampered slot asking for 64 GiB).
const (
	maxKDFTime      = 16
	minKDFMemoryKiB = 8
	maxKDFMemoryKiB = 1 << 20 // 1 GiB
	maxKDFThreads   = 16
)

func (k *KDF) check() error {
	switch {
	case k.Name != "argon2id":
		return fmt.Errorf("unknown kdf %q", k.Name)
	case k.Time < 1 || k.Time > maxKDFTime:
		return fmt.Errorf("argon2id time %d out of range 1-%d", k.Time, maxKDFTime)
	case k.MemoryKiB < minKDFMemoryKiB || k.MemoryKiB > maxKDFMemoryKiB:
		return fmt.Errorf("argon2id memory %d KiB out of range %d-%d", k.MemoryKiB, minKDFMemoryKiB, maxKDFMemoryKiB)
	case k.Threads < 1 || k.Threads > maxKDFThreads:
		return fmt.Errorf("argon2id threads %d out of range 1-%d", k.Threads, maxKDFThreads)
	case len(k.Salt) < minSalt || len(k.Salt) > maxSalt:
		return fmt.Errorf("argon2id salt of %d bytes (want %d-%d)", len(k.Salt), minSalt, maxSalt)
	}
	return nil
}
