package keys

import "testing"

func TestSubkeysDiffer(t *testing.T) {
	var a, b [32]byte
	b[0] = 1
	k, err := NewKeyring(2, map[KeyID][32]byte{1: a, 2: b})
	if err != nil {
		t.Fatal(err)
	}
	if id, m := k.Current(); id != 2 || m != b {
		t.Fatalf("Current = %d %x, want 2 and key b", id, m)
	}
	seen := map[[32]byte]string{}
	for _, id := range []KeyID{1, 2} {
		for _, p := range []string{"blob", "index"} {
			s, err := k.Subkey(id, p)
			if err != nil {
				t.Fatal(err)
			}
			if prev, ok := seen[s]; ok {
				t.Fatalf("subkey %d/%s equals %s", id, p, prev)
			}
			seen[s] = p
		}
	}
	if _, err := k.Subkey(3, "blob"); err == nil {
		t.Fatal("Subkey of a missing master key: no error")
	}
	if _, err := NewKeyring(9, map[KeyID][32]byte{1: a}); err == nil {
		t.Fatal("NewKeyring with a current key it does not hold: no error")
	}
}
