package cas

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/zeebo/blake3"
)

// IDSize is the length in bytes of an ID.
const IDSize = 32

// ID names a blob by the keyed BLAKE3-256 hash of its plaintext. It is
// comparable and usable as a map key.
type ID [IDSize]byte

// ErrNotFound is returned when a blob, pack or record does not exist.
var ErrNotFound = errors.New("not found")

// ErrCorrupt is returned when stored bytes fail a check (hash, length, format).
var ErrCorrupt = errors.New("corrupt data")

// String returns the lowercase hex form of the ID.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits, enough to name an ID to a human.
func (id ID) Short() string { return id.String()[:12] }

// IsZero reports whether id is the zero ID (used as "none").
func (id ID) IsZero() bool { return id == ID{} }

// MarshalText encodes the ID as hex.
func (id ID) MarshalText() ([]byte, error) {
	out := make([]byte, hex.EncodedLen(IDSize))
	hex.Encode(out, id[:])
	return out, nil
}

// UnmarshalText decodes a hex ID, rejecting any other length.
func (id *ID) UnmarshalText(b []byte) error {
	parsed, err := ParseID(string(b))
	if err != nil {
		return err
	}
	*id = parsed
	return nil
}

// ParseID parses the 64-digit hex form of an ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != hex.EncodedLen(IDSize) {
		return id, fmt.Errorf("parse id %q: want %d hex digits: %w", s, hex.EncodedLen(IDSize), ErrCorrupt)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("parse id %q: %w", s, ErrCorrupt)
	}
	return id, nil
}

// Hasher computes chunk IDs with a per-store key, so IDs from one store say
// nothing about content in another (no cross-store confirmation of files).
// A Hasher is safe for concurrent use.
type Hasher struct {
	key [32]byte
	// states holds keyed BLAKE3 states for reuse: a fresh state is a large
	// allocation that costs more than hashing a tree or a small chunk
	// (BenchmarkHasherSum shows it).
	states sync.Pool
}

// NewHasher returns a Hasher keyed with key.
func NewHasher(key [32]byte) *Hasher { return &Hasher{key: key} }

// state returns a keyed BLAKE3 state ready for input; put it back with
// h.states.Put after use.
func (h *Hasher) state() *blake3.Hasher {
	if s, ok := h.states.Get().(*blake3.Hasher); ok {
		s.Reset()
		return s
	}
	s, err := blake3.NewKeyed(h.key[:])
	if err != nil {
		panic(err) // key length is fixed at 32, NewKeyed cannot fail
	}
	return s
}

// Sum returns the ID of data.
func (h *Hasher) Sum(data []byte) ID {
	s := h.state()
	_, _ = s.Write(data)
	var id ID
	s.Sum(id[:0])
	h.states.Put(s)
	return id
}

// metaDomain prefixes the hashed bytes of every blob that is not file data,
// one distinct prefix per type, so no two metadata blobs of different types
// share an ID. File chunk IDs stay the plain keyed hash of their bytes
// (every stored record names them so), so a file holding a prefix plus an
// encoding has the ID of that metadata blob: stores tell the two apart by
// keying blobs by type and ID together (BlobKey), never by ID alone.
const metaDomain = "smp blob type \x00"

// SumBlob returns the ID of a blob of type t.
func (h *Hasher) SumBlob(t BlobType, data []byte) ID {
	if t == BlobData {
		return h.Sum(data)
	}
	s := h.state()
	var prefix [len(metaDomain)]byte
	copy(prefix[:], metaDomain)
	prefix[len(prefix)-1] = byte(t)
	_, _ = s.Write(prefix[:])
	_, _ = s.Write(data)
	var id ID
	s.Sum(id[:0])
	h.states.Put(s)
	return id
}

// Verify reports whether data is the blob of type t named want.
func (h *Hasher) Verify(t BlobType, want ID, data []byte) error {
	if got := h.SumBlob(t, data); got != want {
		return fmt.Errorf("%s blob %s hashes to %s: %w", t, want.Short(), got.Short(), ErrCorrupt)
	}
	return nil
}

// SumStream returns the whole-stream ID used for hard-link objects: the
// stream is cut into fixed 1 MiB pieces, each hashed with sum, and sum of
// the concatenated piece IDs is the result. Memory stays at one piece.
func SumStream(r io.Reader, sum func([]byte) ID) (ID, error) {
	buf := make([]byte, 1<<20)
	var acc []byte
	for {
		n, err := io.ReadFull(r, buf)
		if n > 0 {
			id := sum(buf[:n])
			acc = append(acc, id[:]...)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return sum(acc), nil
		}
		if err != nil {
			return ID{}, fmt.Errorf("hash stream: %w", err)
		}
	}
}

// BlobKey names a blob within a store: its type and its ID. An ID alone
// does not: a data chunk's ID is the keyed hash of its bytes, unprefixed,
// so a file may hold exactly the bytes whose hash is some tree's ID (the
// tree's prefix plus its encoding). Every index entry, dedup set and
// reachability set is keyed by BlobKey, so such a chunk and that tree are
// two distinct blobs that never stand in for each other.
type BlobKey struct {
	Type BlobType
	ID   ID
}

// String names the blob to a human: "tree 0123456789ab".
func (k BlobKey) String() string { return k.Type.String() + " " + k.ID.Short() }
