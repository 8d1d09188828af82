package repo_test

import (
	"slices"
	"strings"
	"testing"
)

// TestVerifyNamesDamagedRecordBlob: a record's own blob is read and checked
// by verify (with and without --read-data): listing and restore use the
// index's copy, so only verify can notice that an index rebuild would lose
// the record. It breaks no file.
func TestVerifyNamesDamagedRecordBlob(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, f *repairFix, path string, off, n int64)
	}{
		{"byte flipped", func(t *testing.T, f *repairFix, path string, off, n int64) { flipAt(t, path, off+n/2) }},
		{"first byte flipped", func(t *testing.T, f *repairFix, path string, off, n int64) { flipAt(t, path, off) }},
	}
	for _, tt := range tests {
		for _, readData := range []bool{true, false} {
			t.Run(tt.name, func(t *testing.T) {
				f := newRepairFix(t, newStore(t))
				loc := mustLookup(t, f.r, f.rec)
				tt.damage(t, f, f.r.Packs().Path(loc.Pack), int64(loc.Offset), int64(loc.StoredLen))
				f.r.Packs().Close()
				recs, err := f.r.Records()
				if err != nil || len(recs) != 1 {
					t.Fatalf("Records = %d, %v: a damaged record blob must not hide the record", len(recs), err)
				}
				rep, err := f.r.Verify(recs, readData, nil)
				if err != nil {
					t.Fatal(err)
				}
				if len(rep.Damaged) != 1 {
					t.Fatalf("Verify(readData %v) names %d blobs, want the record blob: %+v", readData, len(rep.Damaged), rep.Damaged)
				}
				d := rep.Damaged[0]
				if d.Blob != f.rec.String() || d.Type != "record" || d.Pack != loc.Pack.String() ||
					!slices.Equal(d.Users, []string{f.rec.Short() + ":"}) || !strings.Contains(d.Reason, "index rebuild") {
					t.Errorf("Damage = %+v; want record %s in pack %s, affecting %s:", *d, f.rec.Short(), loc.Pack.Short(), f.rec.Short())
				}
				if rep.DamagedFiles != 0 || rep.Trees != 2 {
					t.Errorf("damaged files %d, trees %d; want 0 and 2 (the walk goes on)", rep.DamagedFiles, rep.Trees)
				}
			})
		}
	}
}
