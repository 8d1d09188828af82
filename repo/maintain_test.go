package repo

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"smp/cas"
)

// TestMaintain: the one maintenance routine removes released records past
// their retention by the injected clock, then link sets no record names,
// then collects what they held; a dry run reports the same and changes
// nothing.
func TestMaintain(t *testing.T) {
	f, r := newGCFix(t)
	released := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)
	if err := r.Release(f.drop, released); err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(r.LinkDir(), "stray-set")
	if err := os.MkdirAll(filepath.Join(stray, "0"), 0o700); err != nil {
		t.Fatal(err)
	}
	var dropped []cas.ID
	maintain := func(now time.Time, dry bool) *MaintainReport {
		t.Helper()
		rep, err := r.Maintain(context.Background(), MaintainOptions{
			GCOptions: GCOptions{DryRun: dry, RepackBelow: 0.5, Now: func() time.Time { return now }},
			Expire:    true, Retention: 7 * 24 * time.Hour,
			Dropped: func(rec RecordInfo) { dropped = append(dropped, rec.ID) },
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rep.OrphanLinkSets, []string{"stray-set"}) || rep.GCReport == nil {
			t.Fatalf("report %+v", rep)
		}
		return rep
	}

	// Within retention: nothing expires, but the stray set is an orphan.
	if rep := maintain(released.Add(6*24*time.Hour), true); len(rep.Expired) != 0 {
		t.Fatalf("expired within retention: %v", rep.Expired)
	}
	rep := maintain(released.Add(8*24*time.Hour), true)
	if !slices.Equal(rep.Expired, []string{f.drop.String()}) || len(dropped) != 0 {
		t.Fatalf("dry run expired %v, dropped %v", rep.Expired, dropped)
	}
	if _, err := os.Stat(stray); err != nil {
		t.Fatalf("dry run removed the orphan link set: %v", err)
	}
	mustHave(t, r, cas.BlobData, "the expired record's chunk after a dry run", f.dropOnly...)

	rep = maintain(released.Add(8*24*time.Hour), false)
	if !slices.Equal(rep.Expired, []string{f.drop.String()}) || !slices.Equal(dropped, []cas.ID{f.drop}) {
		t.Fatalf("expired %v, dropped %v", rep.Expired, dropped)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Fatalf("orphan link set still there: %v", err)
	}
	if rep.Records != 1 || rep.BlobsRemoved == 0 {
		t.Fatalf("gc after retention: %+v", rep.GCReport)
	}
	mustGone(t, r, "the expired record's chunk", f.dropOnly...)
	f.checkKept(t, r)
}
