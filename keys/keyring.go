// Package keys owns a store's key hierarchy: the random master keys that
// encrypt its blobs and index, the key slots that wrap them (passphrase,
// key file, recovery key), and where a key comes from when a command
// opens the store. Nothing here is written inside the store in clear.
package keys

import (
	"crypto/hkdf"
	"crypto/sha256"
	"fmt"
)

// KeyID names one master key of a store. Rotation adds a new master key
// with the next ID; blobs name the key that sealed them, so old data stays
// readable until it is re-encrypted (rekey) and the old key retired.
type KeyID uint32

// Keyring is the unlocked keys of one store: every master key still in
// use, and which one seals new data. It is safe for concurrent use once
// built (read-only).
type Keyring struct {
	current KeyID
	masters map[KeyID][32]byte
	// hashKey is the store's content hash key, unwrapped with the master
	// keys (see File); hasHash is false for a keyring built without one.
	hashKey [32]byte
	hasHash bool
	// from is the opened key slot file this keyring came from (nil when
	// built otherwise): what Reopen opens a newer version of it with.
	from *Unlocked
}

// Reopen returns the keyring of f, a newer version of the key slot file k
// was unlocked from, opened with the secrets k's unlock kept
// (Unlocked.Reopen): no key source is asked again. ErrWrongKey when they
// no longer open it (a revoking rotation removed the slot) or k was not
// unlocked from a file.
func (k *Keyring) Reopen(f *File) (*Keyring, error) {
	if k.from == nil {
		return nil, ErrWrongKey
	}
	u, err := k.from.Reopen(f)
	if err != nil {
		return nil, err
	}
	return u.Keyring(), nil
}

// HashKey returns the store's content hash key, which the key slot file
// keeps wrapped by a master key (not derived from one: a rotation keeps
// every ID).
func (k *Keyring) HashKey() ([32]byte, bool) { return k.hashKey, k.hasHash }

// NewKeyring returns a keyring sealing with masters[current].
func NewKeyring(current KeyID, masters map[KeyID][32]byte) (*Keyring, error) {
	if _, ok := masters[current]; !ok {
		return nil, fmt.Errorf("keyring: current key %d is not among the master keys", current)
	}
	m := make(map[KeyID][32]byte, len(masters))
	for id, k := range masters {
		m[id] = k
	}
	return &Keyring{current: current, masters: m}, nil
}

// Current returns the master key that seals new data.
func (k *Keyring) Current() (KeyID, [32]byte) { return k.current, k.masters[k.current] }

// Master returns master key id, if the keyring holds it.
func (k *Keyring) Master(id KeyID) ([32]byte, bool) {
	m, ok := k.masters[id]
	return m, ok
}

// IDs returns the IDs of the master keys the keyring holds.
func (k *Keyring) IDs() []KeyID {
	ids := make([]KeyID, 0, len(k.masters))
	for id := range k.masters {
		ids = append(ids, id)
	}
	return ids
}

// Subkey derives a 32-byte key for one purpose ("blob", "index", ...)
// from master key id with HKDF-SHA256, so no two uses share a key.
func (k *Keyring) Subkey(id KeyID, purpose string) ([32]byte, error) {
	var out [32]byte
	m, ok := k.masters[id]
	if !ok {
		return out, fmt.Errorf("keyring: no master key %d", id)
	}
	b, err := hkdf.Key(sha256.New, m[:], nil, "smp "+purpose+" v1", 32)
	if err != nil {
		return out, err
	}
	copy(out[:], b)
	return out, nil
}
