// Package storagetest is the conformance suite every storage.Storage runs
// (Run), and a fault-injecting wrapper for tests of the layers above
// (Faulty).
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"smp/storage"
)

// Run checks s against the contract of package storage. newStorage returns
// an empty storage; each subtest gets its own.
func Run(t *testing.T, newStorage func(t *testing.T) storage.Storage) {
	tests := []struct {
		name string
		fn   func(*testing.T, storage.Storage)
	}{
		{"PutGet", testPutGet},
		{"RangedGet", testRangedGet},
		{"Stat", testStat},
		{"NotFound", testNotFound},
		{"InvalidName", testInvalidName},
		{"Delete", testDelete},
		{"ListPaging", testListPaging},
		{"PutIfAbsentRace", testPutIfAbsentRace},
		{"Swap", testSwap},
		{"SwapRace", testSwapRace},
		{"GetIfChanged", testGetIfChanged},
		{"Writer", testWriter},
		{"Open", testOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStorage(t)
			t.Cleanup(func() { s.Close() })
			tt.fn(t, s)
		})
	}
}

var ctx = context.Background()

func put(t *testing.T, s storage.Storage, name string, data []byte) {
	t.Helper()
	if err := s.Put(ctx, name, data); err != nil {
		t.Fatalf("Put(%s): %v", name, err)
	}
}

func get(t *testing.T, s storage.Storage, name string) []byte {
	t.Helper()
	b, err := s.Get(ctx, name, 0, -1, nil)
	if err != nil {
		t.Fatalf("Get(%s): %v", name, err)
	}
	return b
}

func data(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func testPutGet(t *testing.T, s storage.Storage) {
	want := data(1000, 1)
	put(t, s, "packs/ab/one.pack", want)
	if got := get(t, s, "packs/ab/one.pack"); !bytes.Equal(got, want) {
		t.Fatalf("Get returned %d bytes, not the %d put", len(got), len(want))
	}
	put(t, s, "empty", nil)
	if got := get(t, s, "empty"); len(got) != 0 {
		t.Fatalf("Get of an empty object = %d bytes", len(got))
	}
	// Put replaces.
	put(t, s, "packs/ab/one.pack", data(10, 2))
	if got := get(t, s, "packs/ab/one.pack"); !bytes.Equal(got, data(10, 2)) {
		t.Fatalf("Put did not replace the object: %d bytes", len(got))
	}
}

func testRangedGet(t *testing.T, s storage.Storage) {
	all := data(4096, 3)
	put(t, s, "r", all)
	for _, r := range []struct{ off, n int64 }{{0, 1}, {100, 200}, {4095, 1}, {4000, -1}, {4096, 0}, {0, 4096}} {
		got, err := s.Get(ctx, "r", r.off, r.n, make([]byte, 0, 16))
		end := r.off + r.n
		if r.n < 0 {
			end = int64(len(all))
		}
		if err != nil || !bytes.Equal(got, all[r.off:end]) {
			t.Errorf("Get(off %d, len %d) = %d bytes, %v; want %d bytes", r.off, r.n, len(got), err, end-r.off)
		}
	}
	for _, r := range []struct{ off, n int64 }{{4000, 97}, {5000, 1}, {5000, -1}} {
		if _, err := s.Get(ctx, "r", r.off, r.n, nil); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Get(off %d, len %d) past the end = %v, want io.ErrUnexpectedEOF", r.off, r.n, err)
		}
	}
}

func testStat(t *testing.T, s storage.Storage) {
	before, err := s.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "dir/stat", data(333, 4))
	after, err := s.Now(ctx)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Stat(ctx, "dir/stat")
	if err != nil {
		t.Fatal(err)
	}
	// File systems stamp with a coarser clock than time.Now reads.
	const slack = 2 * time.Second
	if info.Name != "dir/stat" || info.Size != 333 || info.Created.Before(before.Add(-slack)) || info.Created.After(after.Add(slack)) {
		t.Fatalf("Stat = %+v, want dir/stat of 333 bytes created in [%v, %v]", info, before, after)
	}
}

func testNotFound(t *testing.T, s storage.Storage) {
	put(t, s, "there/x", []byte("x"))
	for _, name := range []string{"missing", "there/missing", "there"} {
		if _, err := s.Get(ctx, name, 0, -1, nil); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get(%s) = %v, want ErrNotFound", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Stat(%s) = %v, want ErrNotFound", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Delete(%s) = %v, want ErrNotFound", name, err)
		}
		if _, _, err := s.GetVersioned(ctx, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetVersioned(%s) = %v, want ErrNotFound", name, err)
		}
		if _, err := storage.Open(ctx, s, name); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Open(%s) = %v, want ErrNotFound", name, err)
		}
	}
	if got := get(t, s, "there/x"); string(got) != "x" {
		t.Errorf("a Delete of a missing name changed a neighbour: %q", got)
	}
}

func testInvalidName(t *testing.T, s storage.Storage) {
	for _, name := range []string{"", "/abs", "a/../b", "..", "a//b", "a/", "./a", "a\\b", "a\x00b"} {
		if err := s.Put(ctx, name, []byte("x")); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Put(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Get(ctx, name, 0, -1, nil); !errors.Is(err, storage.ErrInvalidName) {
			t.Errorf("Get(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	if page, _, err := s.List(ctx, "", "", 0); err != nil || len(page) != 0 {
		t.Errorf("invalid names left objects: %v, %v", page, err)
	}
}

func testDelete(t *testing.T, s storage.Storage) {
	put(t, s, "d/a", []byte("a"))
	put(t, s, "d/b", []byte("b"))
	if err := s.Delete(ctx, "d/a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "d/a", 0, -1, nil); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get after Delete = %v, want ErrNotFound", err)
	}
	if got := names(t, s, "d/", 0); !slices.Equal(got, []string{"d/b"}) {
		t.Errorf("List after Delete = %v", got)
	}
}

// names lists prefix page by page, checking each page's size and order.
func names(t *testing.T, s storage.Storage, prefix string, limit int) []string {
	t.Helper()
	var out []string
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > 1000 {
			t.Fatal("List does not end")
		}
		page, next, err := s.List(ctx, prefix, cursor, limit)
		if err != nil {
			t.Fatalf("List(%q, %q, %d): %v", prefix, cursor, limit, err)
		}
		if limit > 0 && len(page) > limit {
			t.Fatalf("List returned %d objects, over the limit %d", len(page), limit)
		}
		for _, info := range page {
			out = append(out, info.Name)
		}
		if next == "" {
			return out
		}
		if len(page) == 0 {
			t.Fatalf("List returned an empty page with next cursor %q", next)
		}
		cursor = next
	}
}

func testListPaging(t *testing.T, s storage.Storage) {
	// Names where a directory and a file share a stem ("p/x" and
	// "p/x.z"): byte order puts "p/x.z" before "p/x/…".
	var all []string
	for i := range 23 {
		all = append(all, fmt.Sprintf("p/%02x/%04d.pack", i%5, i))
	}
	all = append(all, "p/x.z", "p/x/y", "p/x/z/deep", "p/xa", "pa", "q/p/1", "p0")
	sizes := map[string]int{}
	for i, name := range all {
		put(t, s, name, data(i, byte(i)))
		sizes[name] = i
	}
	slices.Sort(all)
	want := func(prefix string) []string {
		var out []string
		for _, n := range all {
			if len(n) >= len(prefix) && n[:len(prefix)] == prefix {
				out = append(out, n)
			}
		}
		return out
	}
	for _, prefix := range []string{"", "p/", "p", "p/x", "p/x/", "p/03/", "q/", "none/", "p/0"} {
		for _, limit := range []int{0, 1, 4, 7, 100} {
			if got := names(t, s, prefix, limit); !slices.Equal(got, want(prefix)) {
				t.Errorf("List(%q, limit %d) = %v, want %v", prefix, limit, got, want(prefix))
			}
		}
	}
	// A cursor in the middle resumes after it, whether or not it names
	// an object.
	page, _, err := s.List(ctx, "p/", "p/02/0007.pack", 3)
	if err != nil || len(page) != 3 || page[0].Name != "p/02/0012.pack" {
		t.Errorf("List after a cursor = %v, %v", page, err)
	}
	page, _, err = s.List(ctx, "p/", "p/02/0007", 1)
	if err != nil || len(page) != 1 || page[0].Name != "p/02/0007.pack" {
		t.Errorf("List after a non-object cursor = %v, %v", page, err)
	}
	// Sizes come with the listing.
	page, _, err = s.List(ctx, "", "", 0)
	if err != nil || len(page) != len(all) {
		t.Fatalf("List of everything = %d objects, %v", len(page), err)
	}
	for _, info := range page {
		if info.Size != int64(sizes[info.Name]) {
			t.Errorf("List size of %s = %d, want %d", info.Name, info.Size, sizes[info.Name])
		}
	}
	// Every object put before a paged listing and kept is listed once,
	// even when others are deleted meanwhile.
	var got []string
	cursor := ""
	for {
		page, next, err := s.List(ctx, "p/", cursor, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, info := range page {
			got = append(got, info.Name)
		}
		if next == "" {
			break
		}
		if err := s.Delete(ctx, "p/xa"); err != nil && !errors.Is(err, storage.ErrNotFound) {
			t.Fatal(err)
		}
		cursor = next
	}
	for _, n := range want("p/") {
		if n != "p/xa" && slices.Index(got, n) < 0 {
			t.Errorf("object %s missing from a listing during deletes", n)
		}
	}
	if !slices.IsSorted(got) || len(slices.Compact(slices.Clone(got))) != len(got) {
		t.Errorf("listing during deletes is not strictly ascending: %v", got)
	}
}

func testPutIfAbsentRace(t *testing.T, s storage.Storage) {
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.PutIfAbsent(ctx, "race/obj", data(100000, byte(i)))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("PutIfAbsent succeeded twice (%d and %d)", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrExists):
			t.Fatalf("losing PutIfAbsent = %v, want ErrExists", err)
		}
	}
	if winner < 0 {
		t.Fatal("no PutIfAbsent succeeded")
	}
	if got := get(t, s, "race/obj"); !bytes.Equal(got, data(100000, byte(winner))) {
		t.Fatal("the object does not hold the winner's bytes")
	}
	if err := s.PutIfAbsent(ctx, "race/obj", nil); !errors.Is(err, storage.ErrExists) {
		t.Fatalf("PutIfAbsent over an existing object = %v", err)
	}
	if got := names(t, s, "", 0); !slices.Equal(got, []string{"race/obj"}) {
		t.Fatalf("PutIfAbsent left %v", got)
	}
}

func testSwap(t *testing.T, s storage.Storage) {
	if _, err := s.Swap(ctx, "config.json", "bogus", []byte("x")); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Swap of an absent object from a version = %v, want ErrConflict", err)
	}
	v1, err := s.Swap(ctx, "config.json", storage.NoVersion, []byte("one"))
	if err != nil || v1 == storage.NoVersion {
		t.Fatalf("Swap creating = %q, %v", v1, err)
	}
	if _, err := s.Swap(ctx, "config.json", storage.NoVersion, []byte("again")); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Swap from NoVersion over an object = %v, want ErrConflict", err)
	}
	b, v, err := s.GetVersioned(ctx, "config.json")
	if err != nil || string(b) != "one" || v != v1 {
		t.Fatalf("GetVersioned = %q, %q, %v; want one, %q", b, v, err, v1)
	}
	v2, err := s.Swap(ctx, "config.json", v1, []byte("two"))
	if err != nil || v2 == v1 {
		t.Fatalf("Swap from the current version = %q, %v", v2, err)
	}
	if _, err := s.Swap(ctx, "config.json", v1, []byte("stale")); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Swap from a stale version = %v, want ErrConflict", err)
	}
	if got := get(t, s, "config.json"); string(got) != "two" {
		t.Fatalf("a conflicting Swap changed the object to %q", got)
	}
	// Put is an unconditional write: it changes the version.
	put(t, s, "config.json", []byte("three"))
	if _, err := s.Swap(ctx, "config.json", v2, []byte("four")); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("Swap after a Put = %v, want ErrConflict", err)
	}
}

// testGetIfChanged checks storage.GetIfChanged through s (its own
// ChangeGetter when it has one): a missing object, a first read, an
// unchanged version answered without bytes, a change seen, the limit.
func testGetIfChanged(t *testing.T, s storage.Storage) {
	if _, _, _, err := storage.GetIfChanged(ctx, s, "access.json", storage.NoVersion, 0); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetIfChanged of a missing object = %v, want ErrNotFound", err)
	}
	v1, err := s.Swap(ctx, "access.json", storage.NoVersion, []byte("one"))
	if err != nil {
		t.Fatal(err)
	}
	b, v, changed, err := storage.GetIfChanged(ctx, s, "access.json", storage.NoVersion, 0)
	if err != nil || !changed || string(b) != "one" || v != v1 {
		t.Fatalf("first GetIfChanged = %q, %q, %v, %v; want one, %q, changed", b, v, changed, err, v1)
	}
	b, v, changed, err = storage.GetIfChanged(ctx, s, "access.json", v1, 0)
	if err != nil || changed || b != nil || v != v1 {
		t.Fatalf("GetIfChanged of an unchanged object = %q, %q, %v, %v; want no bytes, %q, unchanged", b, v, changed, err, v1)
	}
	v2, err := s.Swap(ctx, "access.json", v1, []byte("two!"))
	if err != nil {
		t.Fatal(err)
	}
	b, v, changed, err = storage.GetIfChanged(ctx, s, "access.json", v1, 0)
	if err != nil || !changed || string(b) != "two!" || v != v2 {
		t.Fatalf("GetIfChanged after a Swap = %q, %q, %v, %v; want two!, %q, changed", b, v, changed, err, v2)
	}
	if _, _, _, err := storage.GetIfChanged(ctx, s, "access.json", v1, 3); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("GetIfChanged of 4 bytes with limit 3 = %v, want ErrTooLarge", err)
	}
	if _, _, changed, err := storage.GetIfChanged(ctx, s, "access.json", v2, 4); err != nil || changed {
		t.Fatalf("GetIfChanged at the limit, unchanged = %v, %v", changed, err)
	}
}

func testSwapRace(t *testing.T, s storage.Storage) {
	v0, err := s.Swap(ctx, "settings", storage.NoVersion, []byte("0"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	vers := make([]storage.Version, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			vers[i], errs[i] = s.Swap(ctx, "settings", v0, fmt.Appendf(nil, "writer %d", i))
		})
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("two Swaps from one version succeeded (%d and %d)", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("losing Swap = %v, want ErrConflict", err)
		}
	}
	if winner < 0 {
		t.Fatal("no Swap succeeded")
	}
	b, v, err := s.GetVersioned(ctx, "settings")
	if err != nil || string(b) != fmt.Sprintf("writer %d", winner) || v != vers[winner] {
		t.Fatalf("after the race: %q, %q, %v; want writer %d, %q", b, v, err, winner, vers[winner])
	}
}

func testWriter(t *testing.T, s storage.Storage) {
	w, err := storage.NewWriter(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	want := data(300000, 9)
	for off := 0; off < len(want); off += 70000 {
		if _, err := w.Write(want[off:min(off+70000, len(want))]); err != nil {
			t.Fatal(err)
		}
	}
	if got := names(t, s, "", 0); len(got) != 0 {
		t.Fatalf("an uncommitted writer is listed: %v", got)
	}
	if err := w.Commit(ctx, "packs/cd/streamed.pack"); err != nil {
		t.Fatal(err)
	}
	if got := get(t, s, "packs/cd/streamed.pack"); !bytes.Equal(got, want) {
		t.Fatalf("streamed object is %d bytes, want %d", len(got), len(want))
	}
	aborted, err := storage.NewWriter(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := aborted.Write([]byte("never")); err != nil {
		t.Fatal(err)
	}
	aborted.Abort()
	if got := names(t, s, "", 0); !slices.Equal(got, []string{"packs/cd/streamed.pack"}) {
		t.Fatalf("after an abort the storage lists %v", got)
	}
	if sw, ok := s.(storage.Sweeper); ok {
		left, err := storage.NewWriter(ctx, s)
		if err != nil {
			t.Fatal(err)
		}
		left.Write([]byte("interrupted"))
		if err := sw.RemoveTemporary(ctx); err != nil {
			t.Fatal(err)
		}
		if err := left.Commit(ctx, "swept"); err == nil {
			t.Fatal("a writer survived RemoveTemporary")
		}
	}
}

func testOpen(t *testing.T, s storage.Storage) {
	all := data(10000, 5)
	put(t, s, "o", all)
	o, err := storage.Open(ctx, s, "o")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Size() != int64(len(all)) {
		t.Fatalf("Size = %d", o.Size())
	}
	p := make([]byte, 100)
	if n, err := o.ReadAt(p, 5000); n != 100 || err != nil || !bytes.Equal(p, all[5000:5100]) {
		t.Fatalf("ReadAt(5000) = %d, %v", n, err)
	}
	if n, err := o.ReadAt(p, 9950); n != 50 || err != io.EOF || !bytes.Equal(p[:50], all[9950:]) {
		t.Fatalf("ReadAt over the end = %d, %v; want 50, io.EOF", n, err)
	}
}
