package keys

import (
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/chacha20poly1305"
)

// Argon2id cost of new passphrase slots: RFC 9106's second recommended
// setting scaled to 64 MiB, about a quarter second on a current core.
// Tests lower it through kdfParams.
var kdfParams = KDF{Name: "argon2id", Time: 3, MemoryKiB: 64 << 10, Threads: 2}

// ErrWrongKey is returned when a secret opens no slot of the file.
var ErrWrongKey = errors.New("the key opens no key slot of this store")

// Unlocked is a key slot file opened with one of its secrets: it can
// give the store's keyring and edit the file (add, remove slots, rotate).
type Unlocked struct {
	File *File
	// Slot is the ID of the slot that opened it ("" when just created).
	Slot    string
	slotKey [32]byte // of Slot, to re-wrap it (RotateRevoking)
	wrapKey [32]byte
	masters map[KeyID][32]byte
	hashKey [32]byte
}

// Keyring returns the store's keyring: its master keys and hash key.
func (u *Unlocked) Keyring() *Keyring {
	kr, _ := NewKeyring(u.File.Current, u.masters)
	kr.hashKey = u.hashKey
	kr.hasHash = true
	kr.from = u
	return kr
}

// Create makes the keys of a new encrypted store: a wrapping key, master
// key 1 and a hash key, all random. The file has no slot yet: add at
// least one before encoding it.
func Create(storeID string) (*Unlocked, error) {
	var hk [32]byte
	if _, err := rand.Read(hk[:]); err != nil {
		return nil, err
	}
	return CreateWithHashKey(storeID, hk)
}

// CreateWithHashKey is Create keeping the hash key of an existing store
// (smp encrypt converting it): its IDs stay the same.
func CreateWithHashKey(storeID string, hashKey [32]byte) (*Unlocked, error) {
	if !validStoreID(storeID) {
		return nil, fmt.Errorf("store ID %q is not 32 hex digits", storeID)
	}
	u := &Unlocked{File: &File{Version: FileVersion, StoreID: storeID}, masters: map[KeyID][32]byte{}, hashKey: hashKey}
	if _, err := rand.Read(u.wrapKey[:]); err != nil {
		return nil, err
	}
	if _, err := u.addMaster(1); err != nil {
		return nil, err
	}
	return u, nil
}

// addMaster makes master key id, makes it current and re-wraps the hash
// key under it.
func (u *Unlocked) addMaster(id KeyID) (KeyID, error) {
	var m [32]byte
	if _, err := rand.Read(m[:]); err != nil {
		return 0, err
	}
	w, err := seal(u.wrapKey, m, masterAD(u.File.StoreID, id))
	if err != nil {
		return 0, err
	}
	u.masters[id] = m
	u.File.Masters = append(u.File.Masters, Master{ID: id, Created: time.Now().UTC().Truncate(time.Second), Wrapped: w})
	u.File.Current = id
	hw, err := seal(hashWrapKey(m), u.hashKey, hashAD(u.File.StoreID, id))
	if err != nil {
		return 0, err
	}
	hw.KeyID = id
	u.File.HashKey = hw
	return id, nil
}

// Rotate makes a new master key, which seals new data from now on. The
// old ones stay, so what they sealed stays readable, until retired.
func (u *Unlocked) Rotate() (KeyID, error) {
	var next KeyID
	for _, m := range u.File.Masters {
		next = max(next, m.ID)
	}
	if len(u.File.Masters) >= maxMasters {
		return 0, fmt.Errorf("the store has %d master keys, the most it may: retire one first", maxMasters)
	}
	return u.addMaster(next + 1)
}

// RotateRevoking rotates as Rotate does and also replaces the wrapping
// key, keeping only the slot that opened the file: every other slot is
// removed. A removed slot's secret then opens nothing of the new file,
// even for someone who kept a copy of the old one: such a copy gives the
// old wrapping key and the master keys of then (the data sealed until
// now), never the new master key. It needs an opened file (not Create).
func (u *Unlocked) RotateRevoking() (KeyID, []string, error) {
	i := slices.IndexFunc(u.File.Slots, func(s Slot) bool { return s.ID == u.Slot })
	if i < 0 {
		return 0, nil, errors.New("the slot that opened the keys is gone: open them again")
	}
	var wk [32]byte
	if _, err := rand.Read(wk[:]); err != nil {
		return 0, nil, err
	}
	keep := u.File.Slots[i]
	w, err := seal(u.slotKey, wk, slotAD(u.File.StoreID, keep.ID, keep.Kind))
	if err != nil {
		return 0, nil, err
	}
	var removed []string
	for _, s := range u.File.Slots {
		if s.ID != keep.ID {
			removed = append(removed, s.ID)
		}
	}
	masters := make([]Master, 0, len(u.File.Masters))
	for _, m := range u.File.Masters {
		mw, err := seal(wk, u.masters[m.ID], masterAD(u.File.StoreID, m.ID))
		if err != nil {
			return 0, nil, err
		}
		m.Wrapped = mw
		masters = append(masters, m)
	}
	keep.Wrapped = w
	u.File.Slots, u.File.Masters, u.wrapKey = []Slot{keep}, masters, wk
	id, err := u.Rotate()
	return id, removed, err
}

func newSlotID(f *File) (string, error) {
	for {
		var b [slotIDLen / 2]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		id := hex.EncodeToString(b[:])
		if !slices.ContainsFunc(f.Slots, func(s Slot) bool { return s.ID == id }) {
			return id, nil
		}
	}
}

func (u *Unlocked) addSlot(kind string, kdf *KDF, slotKey func(id string) ([32]byte, error)) (string, error) {
	if len(u.File.Slots) >= maxSlots {
		return "", fmt.Errorf("the store has %d key slots, the most it may: remove one first", maxSlots)
	}
	id, err := newSlotID(u.File)
	if err != nil {
		return "", err
	}
	k, err := slotKey(id)
	if err != nil {
		return "", err
	}
	w, err := seal(k, u.wrapKey, slotAD(u.File.StoreID, id, kind))
	if err != nil {
		return "", err
	}
	u.File.Slots = append(u.File.Slots, Slot{ID: id, Kind: kind, Created: time.Now().UTC().Truncate(time.Second), KDF: kdf, Wrapped: w})
	return id, nil
}

// AddKeyFile adds a key file slot and returns the new key file's 32 bytes.
func (u *Unlocked) AddKeyFile() ([]byte, string, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, "", err
	}
	id, err := u.AddKeyFileWith(secret)
	return secret, id, err
}

// AddKeyFileWith adds a key file slot opened by an existing key file's
// 32 bytes (a re-run of smp encrypt finding the key file its first run
// wrote). The slot key is derived with the store and slot IDs, so one key
// file opening several stores gives each its own slot key.
func (u *Unlocked) AddKeyFileWith(secret []byte) (string, error) {
	if len(secret) != 32 {
		return "", fmt.Errorf("a key file holds 32 bytes, not %d", len(secret))
	}
	return u.addSlot(KindKeyFile, nil, func(id string) ([32]byte, error) {
		return randomSlotKey(secret, u.File.StoreID, id, KindKeyFile)
	})
}

// CheckRetire tells whether master key id could be retired as far as the
// file goes: it is one of the store's, and not the current one (which
// also wraps the hash key).
func (f *File) CheckRetire(id KeyID) error {
	switch {
	case !slices.ContainsFunc(f.Masters, func(m Master) bool { return m.ID == id }):
		return fmt.Errorf("the store has no master key %d: see smp key list", id)
	case id == f.Current || f.HashKey.KeyID == id:
		return fmt.Errorf("master key %d is the current one: rotate first (smp key rotate), then smp gc --rekey", id)
	}
	return nil
}

// Retire removes master key id from the file: what it sealed can no
// longer be opened, so the caller first makes sure nothing still uses it
// (repo.RetireKey). The current key is never retired.
func (u *Unlocked) Retire(id KeyID) error {
	if err := u.File.CheckRetire(id); err != nil {
		return err
	}
	i := slices.IndexFunc(u.File.Masters, func(m Master) bool { return m.ID == id })
	u.File.Masters = slices.Delete(u.File.Masters, i, i+1)
	delete(u.masters, id)
	return nil
}

// AddRecovery adds a recovery key slot and returns the recovery key, in
// the form a person types back (see FormatRecovery).
func (u *Unlocked) AddRecovery() (string, string, error) {
	var secret [32]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return "", "", err
	}
	id, err := u.addSlot(KindRecovery, nil, func(id string) ([32]byte, error) {
		return randomSlotKey(secret[:], u.File.StoreID, id, KindRecovery)
	})
	return FormatRecovery(secret), id, err
}

// AddPassphrase adds a passphrase slot.
func (u *Unlocked) AddPassphrase(pass []byte) (string, error) {
	if len(pass) == 0 {
		return "", errors.New("the passphrase is empty")
	}
	kdf := kdfParams
	kdf.Salt = make([]byte, 32)
	if _, err := rand.Read(kdf.Salt); err != nil {
		return "", err
	}
	return u.addSlot(KindPassphrase, &kdf, func(string) ([32]byte, error) { return passphraseKey(pass, &kdf), nil })
}

// RemoveSlot removes slot id; the last slot is never removed, as the
// store could then not be opened at all.
func (u *Unlocked) RemoveSlot(id string) error {
	i := slices.IndexFunc(u.File.Slots, func(s Slot) bool { return s.ID == id })
	if i < 0 {
		return fmt.Errorf("the store has no key slot %q: see smp key list", id)
	}
	if len(u.File.Slots) == 1 {
		return fmt.Errorf("key slot %s is the store's last: add another (smp key add) before removing it", id)
	}
	u.File.Slots = slices.Delete(u.File.Slots, i, i+1)
	return nil
}

// Secret is what a key source gives: key file bytes, a passphrase, or a
// recovery key. Unlock tries it on the slots of the matching kind.
type Secret struct {
	KeyFile    []byte
	Passphrase []byte
}

// Unlock opens the file with s.
func (f *File) Unlock(s Secret) (*Unlocked, error) {
	var recovery []byte
	if s.Passphrase != nil {
		if r, err := ParseRecovery(string(s.Passphrase)); err == nil {
			recovery = r[:]
		}
	}
	for _, slot := range f.Slots {
		var k [32]byte
		var err error
		switch {
		case slot.Kind == KindKeyFile && s.KeyFile != nil:
			k, err = randomSlotKey(s.KeyFile, f.StoreID, slot.ID, slot.Kind)
		case slot.Kind == KindRecovery && recovery != nil:
			k, err = randomSlotKey(recovery, f.StoreID, slot.ID, slot.Kind)
		case slot.Kind == KindPassphrase && s.Passphrase != nil && recovery == nil:
			k = passphraseKey(s.Passphrase, slot.KDF)
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		wk, err := open(k, slot.Wrapped, slotAD(f.StoreID, slot.ID, slot.Kind))
		if err != nil {
			continue
		}
		u, err := f.unlockWith(wk, slot.ID)
		if err != nil {
			return nil, err
		}
		u.slotKey = k
		return u, nil
	}
	return nil, ErrWrongKey
}

func (f *File) unlockWith(wk [32]byte, slot string) (*Unlocked, error) {
	u := &Unlocked{File: f, Slot: slot, wrapKey: wk, masters: map[KeyID][32]byte{}}
	for _, m := range f.Masters {
		k, err := open(wk, m.Wrapped, masterAD(f.StoreID, m.ID))
		if err != nil {
			return nil, fmt.Errorf("%w: master key %d does not open with the slot's key", ErrDamaged, m.ID)
		}
		u.masters[m.ID] = k
	}
	hk, err := open(hashWrapKey(u.masters[f.HashKey.KeyID]), f.HashKey, hashAD(f.StoreID, f.HashKey.KeyID))
	if err != nil {
		return nil, fmt.Errorf("%w: the hash key does not open with master key %d", ErrDamaged, f.HashKey.KeyID)
	}
	u.hashKey = hk
	return u, nil
}

func slotAD(storeID, slotID, kind string) []byte {
	return []byte("smp keys v1 slot\x00" + storeID + "\x00" + slotID + "\x00" + kind)
}

func masterAD(storeID string, id KeyID) []byte {
	return fmt.Appendf(nil, "smp keys v1 master\x00%s\x00%d", storeID, id)
}

func hashAD(storeID string, id KeyID) []byte {
	return fmt.Appendf(nil, "smp keys v1 hash key\x00%s\x00%d", storeID, id)
}

// hashWrapKey is the key that wraps the hash key under master key m: a
// subkey, so the master key itself seals only data.
func hashWrapKey(m [32]byte) [32]byte {
	k, _ := NewKeyring(1, map[KeyID][32]byte{1: m})
	sk, _ := k.Subkey(1, "hash key wrap")
	return sk
}

// randomSlotKey derives a slot's key from a random 256-bit secret (a key
// file, a recovery key): no stretching is needed, HKDF binds it to the
// slot.
func randomSlotKey(secret []byte, storeID, slotID, kind string) ([32]byte, error) {
	var k [32]byte
	if len(secret) != 32 {
		return k, fmt.Errorf("a %s key is 32 bytes, not %d", kind, len(secret))
	}
	b, err := hkdf.Key(sha256.New, secret, []byte(storeID), "smp slot "+kind+" "+slotID, 32)
	if err != nil {
		return k, err
	}
	copy(k[:], b)
	return k, nil
}

func passphraseKey(pass []byte, kdf *KDF) [32]byte {
	var k [32]byte
	copy(k[:], argon2.IDKey(pass, kdf.Salt, kdf.Time, kdf.MemoryKiB, kdf.Threads, 32))
	return k
}

func seal(key, plain [32]byte, ad []byte) (Wrapped, error) {
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return Wrapped{}, err
	}
	nonce := make([]byte, nonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return Wrapped{}, err
	}
	return Wrapped{Nonce: nonce, Box: aead.Seal(nil, nonce, plain[:], ad)}, nil
}

func open(key [32]byte, w Wrapped, ad []byte) ([32]byte, error) {
	var out [32]byte
	aead, err := chacha20poly1305.NewX(key[:])
	if err != nil {
		return out, err
	}
	b, err := aead.Open(nil, w.Nonce, w.Box, ad)
	if err != nil {
		return out, err
	}
	copy(out[:], b)
	return out, nil
}

// Reopen opens f, a newer version of the key slot file u was opened from
// (another smp rotated or edited it), with the secrets u holds, asking no
// key source again: the wrapping key (a rotation keeps it), else the key
// of the slot that opened u when f still has that slot (a revoking
// rotation made through it). ErrWrongKey when neither opens f.
func (u *Unlocked) Reopen(f *File) (*Unlocked, error) {
	if f.StoreID != u.File.StoreID {
		return nil, fmt.Errorf("key slot file of store %s, not %s", f.StoreID, u.File.StoreID)
	}
	if len(f.Masters) > 0 {
		m := f.Masters[0]
		if _, err := open(u.wrapKey, m.Wrapped, masterAD(f.StoreID, m.ID)); err == nil {
			n, err := f.unlockWith(u.wrapKey, u.Slot)
			if err != nil {
				return nil, err
			}
			n.slotKey = u.slotKey
			return n, nil
		}
	}
	for _, s := range f.Slots {
		if s.ID != u.Slot || u.Slot == "" {
			continue
		}
		wk, err := open(u.slotKey, s.Wrapped, slotAD(f.StoreID, s.ID, s.Kind))
		if err != nil {
			break
		}
		n, err := f.unlockWith(wk, s.ID)
		if err != nil {
			return nil, err
		}
		n.slotKey = u.slotKey
		return n, nil
	}
	return nil, ErrWrongKey
}
