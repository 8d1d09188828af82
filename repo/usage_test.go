package repo

import (
	"reflect"
	"testing"
)

// TestUsageKept: Usage gives its kept answer while the live records and
// the blob locations are unchanged, a copy the caller may change, and a
// fresh one (equal to a computation from scratch) after a record is
// removed and after gc moves or deletes blobs.
func TestUsageKept(t *testing.T) {
	f, r := newGCFix(t)
	fresh := func() ([]RecordUsage, []ComputerUsage) {
		t.Helper()
		recs, err := r.Records()
		if err != nil {
			t.Fatal(err)
		}
		per, comps, err := r.usageOf(recs)
		if err != nil {
			t.Fatal(err)
		}
		return per, comps
	}
	check := func(what string) {
		t.Helper()
		per, comps, err := r.Usage()
		if err != nil {
			t.Fatal(err)
		}
		wantPer, wantComps := fresh()
		if !reflect.DeepEqual(per, wantPer) || !reflect.DeepEqual(comps, wantComps) {
			t.Errorf("%s: Usage %+v %+v, computed afresh %+v %+v", what, per, comps, wantPer, wantComps)
		}
		// The caller owns what it gets: changing it changes no later answer.
		for i := range per {
			per[i].OnlyBytes = 1 << 60
		}
	}
	check("first")
	gen := r.ix.RetiredGeneration()
	check("kept")
	if r.ix.RetiredGeneration() != gen {
		t.Fatal("Usage moved the retired generation")
	}
	per, _, _ := r.Usage()
	if len(per) != 2 {
		t.Fatalf("%d records before rm, want 2", len(per))
	}
	f.remove(t, r)
	check("after rm")
	if per, _, _ := r.Usage(); len(per) != 1 {
		t.Fatalf("%d records after rm, want 1", len(per))
	}
	runGC(t, r, GCOptions{RepackBelow: 1})
	if r.ix.RetiredGeneration() == gen {
		t.Fatal("gc retired packs without moving the retired generation")
	}
	check("after gc")
}
