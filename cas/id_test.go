package cas

import (
	"testing"

	"github.com/zeebo/blake3"
)

// TestHasherReusesStatesCorrectly: a pooled state reset after any input
// gives the same IDs as a fresh keyed state, for data and typed blobs.
func TestHasherReusesStatesCorrectly(t *testing.T) {
	key := [32]byte{9, 8, 7}
	h := NewHasher(key)
	want := func(prefix, data []byte) ID {
		s, err := blake3.NewKeyed(key[:])
		if err != nil {
			t.Fatal(err)
		}
		s.Write(prefix)
		s.Write(data)
		var id ID
		s.Sum(id[:0])
		return id
	}
	big := make([]byte, 3<<20+17)
	for i := range big {
		big[i] = byte(i * 7)
	}
	treePrefix := []byte(metaDomain)
	treePrefix[len(treePrefix)-1] = byte(BlobTree)
	for round := range 3 { // later rounds reuse states left by earlier inputs
		for _, tc := range []struct {
			name string
			data []byte
		}{
			{"empty", nil},
			{"small", []byte("hello")},
			{"one chunk", big[:1024]},
			{"large", big},
			{"odd", big[:70001]},
		} {
			if got, w := h.Sum(tc.data), want(nil, tc.data); got != w {
				t.Errorf("round %d %s: Sum %s, want %s", round, tc.name, got.Short(), w.Short())
			}
			if got, w := h.SumBlob(BlobTree, tc.data), want(treePrefix, tc.data); got != w {
				t.Errorf("round %d %s: SumBlob %s, want %s", round, tc.name, got.Short(), w.Short())
			}
			if got := h.SumBlob(BlobData, tc.data); got != h.Sum(tc.data) {
				t.Errorf("round %d %s: data blob ID differs from Sum", round, tc.name)
			}
		}
	}
}
