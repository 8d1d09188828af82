package repo_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"smp/cas"
	"smp/internal/seaweedtest"
	"smp/repo"
	"smp/storage"
)

// startS3 runs a SeaweedFS of the test's own (no TestMain in this
// package stops a shared one) and sets the environment's credentials.
func startS3(t *testing.T) *seaweedtest.Server {
	t.Helper()
	bin, err := seaweedtest.Binary()
	if err != nil {
		if seaweedtest.Required() {
			t.Fatalf("SMP_S3_REQUIRED is set: %v", err)
		}
		t.Skipf("skipping the S3 tests: %v", err)
	}
	dir, err := os.MkdirTemp("", "seaweedfs-")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := seaweedtest.Start(bin, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	t.Setenv("AWS_ACCESS_KEY_ID", srv.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", srv.SecretKey)
	return srv
}

// s3Keys lists the keys under prefix in bucket.
func s3Keys(t *testing.T, cl *minio.Client, bucket, prefix string) []string {
	t.Helper()
	var keys []string
	for o := range cl.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, o.Key)
	}
	return keys
}

// headerCounter counts the reads of a pack's header, which every read of
// a trailer starts with (a blob lies after the header).
type headerCounter struct {
	storage.Storage
	n            *atomic.Int64
	failSegments *atomic.Bool // fail every put of a segment
}

func (h headerCounter) Put(ctx context.Context, name string, data []byte) error {
	if strings.HasPrefix(name, "segments/") && h.failSegments.Load() {
		return errors.New("injected segment put failure")
	}
	return h.Storage.Put(ctx, name, data)
}

func (h headerCounter) Get(ctx context.Context, name string, offset, length int64, buf []byte) ([]byte, error) {
	if strings.HasPrefix(name, "packs/") && offset == 0 && length == cas.PackHeaderSize {
		h.n.Add(1)
	}
	return h.Storage.Get(ctx, name, offset, length, buf)
}

// cacheOf makes a new cache directory of the store at l.
func cacheOf(t *testing.T, l repo.Location) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "cache")
	if err := repo.WriteLocation(dir, l); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestSegmentsS3: on a store in a real SeaweedFS bucket, a writer lists
// its packs in index segments before its record is committed; another
// cache builds its index from the segments alone (index rebuild, then
// refresh) without reading a pack; a second refresh with nothing new reads
// nothing. When segments are lost, a refresh that may wait leaves the
// young unlisted packs for later, one that may not reads their trailers,
// and a record found before the blobs it references is made live by the
// next refresh. A reader lists the orphan packs it read from trailers in
// a segment of its own, which the next cache uses, and a damaged segment
// is reported and its packs read from their trailers.
func TestSegmentsS3(t *testing.T) {
	srv := startS3(t)
	cl, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	bucket := srv.NewBucket(t)
	l := repo.Location{URL: "s3://" + srv.Endpoint + "/" + bucket + "/seg", Insecure: true}
	var packReads atomic.Int64 // trailer reads: each starts with the pack's header
	var failSegments atomic.Bool
	defer repo.SetStorage(func(st storage.Storage) storage.Storage { return headerCounter{st, &packReads, &failSegments} })()
	cacheA := cacheOf(t, l)
	if _, err := repo.InitWith(cacheA, repo.InitOptions{Params: cas.DefaultChunkerParams()}); err != nil {
		t.Fatal(err)
	}
	a := openStore(t, cacheA)
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	// A segment that cannot be written fails the flush (no record is
	// committed over packs no segment lists); its packs are listed by the
	// next flush.
	failSegments.Store(true)
	if _, _, err := a.PutBlob(cas.BlobData, text("first", 3000)); err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(); err == nil || !strings.Contains(err.Error(), "injected segment put failure") {
		t.Fatalf("flush with segment puts failing: %v", err)
	}
	if segs := s3Keys(t, cl, bucket, "seg/segments/"); len(segs) != 0 {
		t.Fatalf("%d segments written while their puts fail", len(segs))
	}
	failSegments.Store(false)
	f1 := newFixture(t, a, "PC1", t0)
	packs := s3Keys(t, cl, bucket, "seg/packs/")
	if segs := s3Keys(t, cl, bucket, "seg/segments/"); len(segs) == 0 || len(packs) == 0 {
		t.Fatalf("after a commit: %d segments, %d packs", len(segs), len(packs))
	}

	// Another machine builds its index from the segments alone.
	cacheB := cacheOf(t, l)
	packReads.Store(0)
	rb, err := repo.RebuildIndex(cacheB)
	if err != nil {
		t.Fatal(err)
	}
	if rb.Packs != len(packs) || rb.FromSegments != rb.Packs || rb.Records != 1 || packReads.Load() != 0 {
		t.Fatalf("rebuild from segments: %+v with %d trailer reads; want %d packs all from segments, 1 record, no trailer read", rb, packReads.Load(), len(packs))
	}
	b := openStore(t, cacheB)
	f2 := newFixture(t, a, "PC2", t0.Add(time.Hour))
	packReads.Store(0)
	rr, err := b.Refresh()
	if err != nil {
		t.Fatal(err)
	}
	if rr.Packs == 0 || rr.FromSegments != rr.Packs || rr.Records != 1 || packReads.Load() != 0 {
		t.Fatalf("refresh: %+v with %d trailer reads; want every new pack from a segment and no trailer read", rr, packReads.Load())
	}
	if got, err := b.ReadChunk(f2.a1, nil); err != nil || !bytes.Equal(got, f2.aData[:len(got)]) {
		t.Fatalf("B reads A's new chunk: %v", err)
	}
	if rr, err = b.Refresh(); err != nil || rr.Packs != 0 || rr.Segments != 0 {
		t.Fatalf("refresh with nothing new: %+v, %v", rr, err)
	}

	// Lost segments: A's next capture lists its data packs and its
	// record's pack in separate segments; the data packs' one is lost.
	before := s3Keys(t, cl, bucket, "seg/segments/")
	f3 := newFixture(t, a, "PC3", t0.Add(2*time.Hour))
	var lost int
	for _, k := range s3Keys(t, cl, bucket, "seg/segments/") {
		if slices.Contains(before, k) {
			continue
		}
		obj, err := cl.GetObject(context.Background(), bucket, k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if _, err := buf.ReadFrom(obj); err != nil {
			t.Fatal(err)
		}
		sp, err := cas.DecodeSegment(buf.Bytes(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.ContainsFunc(sp, func(p cas.SegmentPack) bool {
			return slices.ContainsFunc(p.Entries, func(e cas.PackEntry) bool { return e.Type == cas.BlobRecord })
		}) {
			if err := cl.RemoveObject(context.Background(), bucket, k, minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			lost += len(sp)
		}
	}
	if lost == 0 {
		t.Fatal("no segment of data packs to lose")
	}
	rr, err = b.RefreshWith(repo.RefreshOptions{Defer: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if rr.Deferred != lost || rr.FromSegments != rr.Packs || rr.Records != 0 || len(rr.Incomplete) != 1 {
		t.Fatalf("refresh that may wait, with a segment lost: %+v; want %d packs deferred and PC3's record incomplete", rr, lost)
	}
	defer repo.SetSegmentGrace(0)()
	packReads.Store(0)
	if rr, err = b.Refresh(); err != nil || rr.Packs != lost || rr.FromSegments != 0 || rr.Records != 1 || packReads.Load() == 0 {
		t.Fatalf("refresh that may not wait: %+v, %v (%d trailer reads); want the %d lost packs from their trailers and PC3's record live", rr, err, packReads.Load(), lost)
	}
	if _, err := b.Record(f3.rec); err != nil {
		t.Fatal(err)
	}
	// B lists the orphans it read from trailers at its next flush.
	before = s3Keys(t, cl, bucket, "seg/segments/")
	if err := b.Flush(); err != nil {
		t.Fatal(err)
	}
	var adopted []string
	for _, k := range s3Keys(t, cl, bucket, "seg/segments/") {
		if !slices.Contains(before, k) {
			adopted = append(adopted, k)
		}
	}
	if len(adopted) != 1 {
		t.Fatalf("B wrote %d segments for the orphans, want 1", len(adopted))
	}
	packs = s3Keys(t, cl, bucket, "seg/packs/")
	packReads.Store(0)
	rc, err := repo.RebuildIndex(cacheOf(t, l))
	if err != nil {
		t.Fatal(err)
	}
	if rc.Packs != len(packs) || rc.FromSegments != rc.Packs || rc.Records != 3 || packReads.Load() != 0 {
		t.Fatalf("rebuild after B listed the orphans: %+v with %d trailer reads; want all %d packs from segments", rc, packReads.Load(), len(packs))
	}

	// A damaged segment is reported; its packs are read from trailers.
	if _, err := cl.PutObject(context.Background(), bucket, adopted[0], bytes.NewReader([]byte("SMPSEGMT garbage")), 16, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	rd, err := repo.RebuildIndex(cacheOf(t, l))
	if err != nil {
		t.Fatal(err)
	}
	if rd.Packs != len(packs) || rd.FromSegments != len(packs)-lost || rd.Records != 3 || len(rd.DamagedPacks) != 0 || len(rd.DamagedSegments) != 1 {
		t.Fatalf("rebuild with a damaged segment: %+v; want %d packs from trailers, the segment reported", rd, lost)
	}
	_ = f1

	// Compaction merges the small segments into one, leaving out a pack
	// deleted since (as gc would) and the damaged segment's list.
	id, _, err := a.PutBlob(cas.BlobData, text("orphan", 3000))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Flush(); err != nil {
		t.Fatal(err)
	}
	orphan := mustLookup(t, a, id).Pack
	if err := cl.RemoveObject(context.Background(), bucket, "seg/"+a.Packs().Name(orphan), minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	segs := s3Keys(t, cl, bucket, "seg/segments/")
	defer repo.SetCompactLimits(2, 0)()
	cr, err := a.CompactSegments()
	if err != nil {
		t.Fatal(err)
	}
	after := s3Keys(t, cl, bucket, "seg/segments/")
	if cr.Merged != len(segs) || cr.Written != 1 || len(after) != 1 || cr.Dropped != 1 || cr.Packs != len(packs)-lost {
		t.Fatalf("compaction of %d segments: %+v, %d left; want all merged into 1 listing the %d packs of the good segments, 1 dropped", len(segs), cr, len(after), len(packs)-lost)
	}
	if rr, err = b.Refresh(); err != nil {
		t.Fatal(err)
	}
	var keyed int
	if err := b.Index().Segments(func(cas.ID) error { keyed++; return nil }); err != nil || keyed != 1 {
		t.Fatalf("B's index keys %d segments after the compaction (%v), want the 1 left", keyed, err)
	}
	re, err := repo.RebuildIndex(cacheOf(t, l))
	if err != nil {
		t.Fatal(err)
	}
	if re.Packs != len(packs) || re.FromSegments != len(packs)-lost || re.Records != 3 {
		t.Fatalf("rebuild after the compaction: %+v; want %d packs, %d from the compacted segment", re, len(packs), len(packs)-lost)
	}
}
