package access

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"
)

// FuzzDecode checks that the access file decoder never panics, accepts only
// files that satisfy its invariants, and that what it accepts is written back
// stably (decode → encode → decode → encode gives the same bytes).
func FuzzDecode(f *testing.F) {
	h := sha256.Sum256([]byte("smp_example"))
	hash := hex.EncodeToString(h[:])
	valid := &file{
		Version: Version,
		Tokens: []tokenRecord{
			{ID: hash[:idLen], Hash: hash, Computer: "PC01", Role: RoleClient, Created: t0, Expires: t0.Add(time.Hour)},
			{ID: strings.Repeat("0", idLen), Hash: strings.Repeat("0", 64), Role: RoleAdmin, Created: t0, Revoked: t0},
		},
		Associations: []Association{{Source: "PC01", Dest: "PC02", Created: t0}},
		RestoreOnly:  true,
		Limits:       Limits{MaxRecords: 100, MaxStoreBytes: 1 << 40},
	}
	b, err := valid.encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	empty, err := emptyFile().encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(empty)
	for _, s := range []string{
		``,
		`null`,
		`{"version":1}`,
		`{"version":2}`,
		`{"version":1,"tokens":null,"associations":null,"restore_only":false}`,
		`{"version":1,"tokens":[{"id":"` + hash[:idLen] + `","hash":"` + hash + `","computer":"PC01","role":"client","created":"2025-01-01T00:00:00+23:59"}]}`,
		`{"version":1,"tokens":[{"id":"` + hash[:idLen] + `","hash":"` + hash + `","computer":"PC01","role":"client","created":"0000-01-01T00:00:00+01:00"}]}`,
		`{"version":1,"tokens":[{"id":"` + hash[:idLen] + `","hash":"` + hash + `","computer":"\u0085","role":"client","created":"2025-01-01T00:00:00Z"}]}`,
		`{"version":1,"tokens":[{"id":"` + hash[:idLen] + `","hash":"` + hash + `","computer":"\ud800","role":"admin","created":"2025-01-01T00:00:00Z"}]}`,
		`{"VERSION":1,"Tokens":[],"RESTORE_ONLY":true}`,
		`{"version":1,"associations":[{"source":"a","dest":"b","created":"2025-01-01T00:00:00Z"},{"source":"a","dest":"b","created":"2025-01-01T00:00:00Z"}]}`,
		`{"version":1,"version":2}`,
		`{"version":1} x`,
		`{"version":2,"limits":{"max_records":3,"max_store_bytes":1099511627776,"quota":1}}`,
		`{"version":1,"limits":{"max_records":3}}`,
		`{"version":2,"limits":{"max_records":-3}}`,
		`{"version":2,"limits":{"max_store_bytes":-1}}`,
	} {
		f.Add([]byte(s))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decode(b)
		if err != nil {
			if got != nil {
				t.Fatalf("decode returned a file with error %v", err)
			}
			return
		}
		if got.Version < 1 || got.Version > Version || got.Version == 1 && got.Limits != (Limits{}) || got.Limits.MaxRecords < 0 {
			t.Fatalf("accepted version %d with limits %+v", got.Version, got.Limits)
		}
		ids := map[string]bool{}
		for _, tok := range got.Tokens {
			if !tok.Role.valid() || len(tok.Hash) != 64 || tok.ID != tok.Hash[:idLen] || ids[tok.ID] || tok.Created.IsZero() {
				t.Fatalf("accepted invalid token %+v", tok)
			}
			ids[tok.ID] = true
			if tok.Role == RoleClient && checkComputer(tok.Computer) != nil {
				t.Fatalf("accepted client token with computer %q", tok.Computer)
			}
		}
		for _, a := range got.Associations {
			if checkComputer(a.Source) != nil || checkComputer(a.Dest) != nil || a.Source == a.Dest {
				t.Fatalf("accepted invalid association %+v", a)
			}
		}
		enc, err := got.encode()
		if err != nil {
			t.Fatalf("accepted a file that cannot be written back: %v", err)
		}
		again, err := decode(enc)
		if err != nil {
			t.Fatalf("re-encoded file refused: %v\n%s", err, enc)
		}
		enc2, err := again.encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc, enc2)
		}
		// A snapshot of an accepted file must be usable.
		sn := newSnapshot(got)
		for _, tok := range sn.Tokens() {
			sn.MayRestore(tok, tok.Computer)
			sn.MayCapture(tok, tok.Computer)
		}
		if _, err := sn.Authenticate("smp_example", t0); err != nil && err != ErrUnknownToken && err != ErrRevoked && err != ErrExpired {
			t.Fatalf("Authenticate: %v", err)
		}
	})
}
