package repo

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"smp/cas"
	"smp/storage"
	"smp/storage/storagetest"
)

// segmentPacks returns the packs the segments in st list, leaving out the
// segment named skip, decoded by r.
func segmentPacks(t *testing.T, r *Repo, st storage.Storage, skip string) (map[cas.ID]bool, int64) {
	t.Helper()
	out := map[cas.ID]bool{}
	var total int64
	err := storage.Walk(context.Background(), st, segmentPrefix, func(info storage.Info) error {
		id, ok := parseSegmentName(info.Name)
		if !ok || info.Name == skip {
			return nil
		}
		total += info.Size
		packs, err := r.readSegment(id, info.Size)
		if err != nil {
			return fmt.Errorf("segment %s: %w", id.Short(), err)
		}
		for _, p := range packs {
			out[p.ID] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, total
}

// TestRekeySegmentsInBatches: after a key rotation, gc --rekey's step 2
// rewrites every index segment, batch by batch (a small batch size here):
// several batches each write their new segments before deleting their old
// ones, every pack stays listed at each deletion, and in the end every
// segment is sealed under the new key, listing every pack, and every
// record reads back.
func TestRekeySegmentsInBatches(t *testing.T) {
	u := testKeys(t)
	a, _, _ := sharedPairWith(t, u)
	for i := range 12 {
		content := []byte(strings.Repeat(fmt.Sprintf("segment batch %d ", i), 4000))
		if _, _, err := commitFile(t, a, fmt.Sprintf("pc%d", i), content); err != nil {
			t.Fatal(err)
		}
	}
	dir := a.Dir
	gcClose(t, a)
	if _, err := u.Rotate(); err != nil {
		t.Fatal(err)
	}
	gcKeyrings.Store(dir, u.Keyring())
	r := gcOpen(t, dir)
	r.shared, r.sh = true, newSharedState()
	cur, _ := r.Keyring.Current()

	base := r.st
	all := map[cas.ID]bool{}
	if err := r.packs.Walk(func(id cas.ID, _ int64) error { all[id] = true; return nil }); err != nil {
		t.Fatal(err)
	}
	before, total := segmentPacks(t, r, base, "")
	nseg := 0
	_ = storage.Walk(context.Background(), base, segmentPrefix, func(storage.Info) error { nseg++; return nil })
	if nseg < 8 || len(before) != len(all) {
		t.Fatalf("before: %d segments listing %d packs of %d; want at least 8 listing every pack", nseg, len(before), len(all))
	}

	old := rewriteBatchBytes
	rewriteBatchBytes = total / 4 // about four batches
	t.Cleanup(func() { rewriteBatchBytes = old })
	var ops []storagetest.Op // segment puts and deletes, in order
	r.st = &storagetest.Faulty{Storage: base, Hook: func(op storagetest.Op, name string) error {
		if !strings.HasPrefix(name, segmentPrefix) || (op != storagetest.OpPut && op != storagetest.OpDelete) {
			return nil
		}
		ops = append(ops, op)
		if op == storagetest.OpDelete {
			listed, _ := segmentPacks(t, r, base, name)
			for id := range all {
				if !listed[id] {
					t.Errorf("deleting %s would leave pack %s listed by no segment", name, id.Short())
				}
			}
		}
		return nil
	}}
	if err := r.rekeySegments(context.Background()); err != nil {
		t.Fatal(err)
	}
	r.st = base

	batches := 0
	for i, op := range ops {
		if op == storagetest.OpDelete && (i+1 == len(ops) || ops[i+1] == storagetest.OpPut) {
			batches++ // the last delete of a batch
		}
	}
	t.Logf("%d segments rewritten in %d batches", nseg, batches)
	if batches < 3 {
		t.Errorf("%d batches (ops %v), want several", batches, ops)
	}
	if ops[0] != storagetest.OpPut {
		t.Errorf("the first segment operation is %s, want a put", ops[0])
	}
	after, _ := segmentPacks(t, r, base, "")
	if len(after) != len(all) {
		t.Errorf("after: segments list %d packs, want %d", len(after), len(all))
	}
	err := storage.Walk(context.Background(), base, segmentPrefix, func(info storage.Info) error {
		sealed, kid, err := r.segmentKey(context.Background(), info.Name)
		if err != nil || !sealed || kid != cur {
			t.Errorf("%s: sealed %v under key %d (%v), want key %d", info.Name, sealed, kid, err, cur)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, r, "after the rekey")
}
