package repo

import (
	"encoding/binary"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"smp/cas"
	"smp/cas/manifest"
)

// tinyChunkRecords stores n distinct tiny data chunks in files of
// perFile chunks, and commits them as records of perRecord files each;
// the last record repeats the first file (its chunks are shared).
func tinyChunkRecords(t testing.TB, r *Repo, n, perFile, perRecord int) ([]RecordInfo, []manifest.Entry) {
	t.Helper()
	var files []manifest.Entry
	for i := 0; i < n; i += perFile {
		e := manifest.Entry{Name: "f" + strconv.Itoa(i), Type: manifest.TypeFile, Mode: 0o644, MTimeNs: 1}
		for j := i; j < min(i+perFile, n); j++ {
			piece := binary.LittleEndian.AppendUint64([]byte("verify by pack "), uint64(j))
			id, _, err := r.PutBlob(cas.BlobData, piece)
			if err != nil {
				t.Fatal(err)
			}
			e.Chunks = append(e.Chunks, manifest.Chunk{ID: id, Size: uint32(len(piece))})
			e.Size += uint64(len(piece))
		}
		files = append(files, e)
	}
	commit := func(name string, entries []manifest.Entry) {
		root, err := r.PutTree(&manifest.Tree{Entries: entries})
		if err == nil {
			_, err = r.CommitRecord(&manifest.Record{Computer: name, Created: time.Unix(1, 0).UTC(), Tree: root, Files: uint64(len(entries))})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < len(files); i += perRecord {
		commit("pc"+strconv.Itoa(i), files[i:min(i+perRecord, len(files))])
	}
	commit("again", files[:1])
	recs, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	return recs, files
}

// byPack runs verifyDataByPack on records with batches of batch chunks.
func byPack(t testing.TB, r *Repo, records []RecordInfo, batch int, progress func(int)) (map[cas.BlobKey]*Damage, *VerifyReport) {
	t.Helper()
	old := verifyBatch
	verifyBatch = batch
	defer func() { verifyBatch = old }()
	checked := map[cas.BlobKey]*Damage{}
	rep := &VerifyReport{}
	if err := r.verifyDataByPack(records, checked, map[cas.ID]int64{}, rep, progress); err != nil {
		t.Fatal(err)
	}
	return checked, rep
}

// TestVerifyByPackBatches: verify --read-data's reading by pack, in one
// batch or in many, checks each chunk the records reference once and
// reaches the verdicts Verify's chunk-by-chunk reading does: a byte
// flipped in a stored chunk names that chunk, every other is sound.
func TestVerifyByPackBatches(t *testing.T) {
	r := gcOpen(t, gcNewStore(t))
	const n = 3000
	records, files := tinyChunkRecords(t, r, n, 100, 7)
	damaged := files[12].Chunks[34].ID
	loc, err := r.ix.Get(cas.BlobData, damaged)
	if err != nil {
		t.Fatal(err)
	}
	path := r.packs.Path(loc.Pack)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[loc.Offset+uint64(loc.StoredLen)-1] ^= 0x21
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}

	var sound uint64 // the stored bytes of the sound chunks, each once
	for _, f := range files {
		for _, ch := range f.Chunks {
			if l, err := r.ix.Get(cas.BlobData, ch.ID); err != nil {
				t.Fatal(err)
			} else if ch.ID != damaged {
				sound += uint64(l.StoredLen)
			}
		}
	}
	want, err := r.Verify(records, true, nil) // local: chunk by chunk
	if err != nil {
		t.Fatal(err)
	}
	if want.Chunks != n || len(want.Damaged) != 1 || want.Damaged[0].Blob != damaged.String() {
		t.Fatalf("Verify: %d chunks, damaged %+v; want %d and %s", want.Chunks, want.Damaged, n, damaged.Short())
	}
	for _, batch := range []int{1 << 17, 500, 1} {
		checked, rep := byPack(t, r, records, batch, nil)
		if rep.Chunks != n || len(checked) != n {
			t.Errorf("batch %d: %d chunks counted, %d checked; want %d", batch, rep.Chunks, len(checked), n)
		}
		if len(rep.Damaged) != 1 || rep.Damaged[0].Blob != damaged.String() {
			t.Errorf("batch %d: damaged %+v, want %s alone", batch, rep.Damaged, damaged.Short())
		}
		for k, d := range checked {
			if (d != nil) != (k.ID == damaged) {
				t.Errorf("batch %d: chunk %s: damage %+v", batch, k.ID.Short(), d)
			}
		}
		if rep.BytesRead != sound {
			t.Errorf("batch %d: %d bytes read, want %d (each sound chunk once)", batch, rep.BytesRead, sound)
		}
	}
}

// TestVerifyByPackMemory measures the heap verify --read-data's reading
// by pack keeps per chunk: the live heap (after a collection) at its
// progress reports, less the heap before, over the chunks. Every chunk's
// verdict in checked is the floor (Verify keeps it on every store); the
// located list is one batch. SMP_VERIFY_MEM_CHUNKS sets the chunks
// (default 50000); with many more, the index's own background work moves
// the heap by megabytes and the figure is noisy.
func TestVerifyByPackMemory(t *testing.T) {
	n := 50000
	if s := os.Getenv("SMP_VERIFY_MEM_CHUNKS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	r := gcOpen(t, gcNewStore(t))
	records, _ := tinyChunkRecords(t, r, n, 1000, 50)
	byPack(t, r, records, verifyBatch, nil) // the index's caches filled: they are bounded, and not what is measured
	var ms runtime.MemStats
	live := func() uint64 { runtime.GC(); runtime.ReadMemStats(&ms); return ms.HeapAlloc }
	base := live()
	peak := base
	calls := 0
	progress := func(int) {
		if calls++; calls%8 == 0 {
			peak = max(peak, live())
		}
	}
	checked, rep := byPack(t, r, records, verifyBatch, progress)
	after := live()
	runtime.KeepAlive(checked)
	if rep.Chunks != n || len(rep.Damaged) != 0 {
		t.Fatalf("%d chunks, damaged %v; want %d sound", rep.Chunks, rep.Damaged, n)
	}
	perChunk := float64(peak-base) / float64(n)
	t.Logf("%d chunks: peak live heap %.1f MiB over the %.1f MiB before, %.0f bytes per chunk (%.0f kept after: the verdicts)",
		n, float64(peak-base)/(1<<20), float64(base)/(1<<20), perChunk, float64(int64(after)-int64(base))/float64(n))
	// checked (60-110 bytes a chunk) and a batch of 88-byte locations
	// (grown by append: up to 110 bytes each), with room for the walk's
	// trees and the spans' bytes.
	if limit := 110 + 110*float64(min(n, verifyBatch))/float64(n) + 60; perChunk > limit {
		t.Errorf("%.0f bytes per chunk, want at most %.0f", perChunk, limit)
	}
}
