package cas

import (
	"bytes"
	"testing"

	"smp/storage"
	"smp/storage/local"
	"smp/storage/storagetest"
)

// TestPackDirGatheringWriters checks that a pending pack buffers in front
// of its storage writer exactly when that writer does not gather writes
// itself, and that every way writes a pack that reads back, with Unwritten
// bounding what a local file still has to take.
func TestPackDirGatheringWriters(t *testing.T) {
	tests := []struct {
		name     string
		faulty   bool  // behind storagetest.Faulty: storage.NewWriter's buffered fallback
		expect   int64 // ExpectSize
		buffered bool  // the pending pack keeps its own bufio.Writer
	}{
		{"local, small pack expected", false, 0, true},
		{"local, large pack expected", false, 4 << 20, false},
		{"generic storage", true, 4 << 20, false},
	}
	h := testHasher()
	blobs := append(mixedBlobs(), testBlob{typ: BlobData, plain: textBytes(3 << 20)},
		testBlob{typ: BlobData, plain: randomBytes(9, 1500<<10)})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := local.Open(t.TempDir(), local.Options{TempDir: "tmp"})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			var st storage.Storage = l
			if tt.faulty {
				st = &storagetest.Faulty{Storage: l}
			}
			d := NewPacks(st, "packs/").ExpectSize(tt.expect)
			defer d.Close()
			p, err := d.Create()
			if err != nil {
				t.Fatal(err)
			}
			if got := p.buf != nil; got != tt.buffered {
				t.Fatalf("pending pack buffers itself: %v, want %v", got, tt.buffered)
			}
			for _, b := range blobs {
				stored, c := Compress(nil, b.plain)
				if err := p.Add(b.typ, h.SumBlob(b.typ, b.plain), c, stored, len(b.plain)); err != nil {
					t.Fatal(err)
				}
			}
			trailer := int64(p.Count())*PackEntrySize + PackFooterSize + SealOverhead
			if u := p.Unwritten(); u < trailer || (!tt.faulty && u > trailer+2*packBound) {
				t.Errorf("Unwritten = %d, trailer %d", u, trailer)
			}
			id, entries, _, err := p.Commit()
			if err != nil {
				t.Fatal(err)
			}
			for i, e := range entries {
				got, err := d.ReadBlob(id, e, h, nil)
				if err != nil || !bytes.Equal(got, blobs[i].plain) {
					t.Errorf("blob %d: %d bytes, %v", i, len(got), err)
				}
			}
		})
	}
}

// packBound is the most a local writer or a pending pack holds in memory
// at once (the local writer's direct buffer).
const packBound = 1 << 20
