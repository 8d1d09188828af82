package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"

	"golang.org/x/sys/unix"

	"smp/cas"
	"smp/cas/manifest"
)

// Ingest converts a hard-link record into a normal deduplicated record:
// every linked file is read from its store object (after the same checks a
// restore makes), chunked and stored, and a new record with the same
// computer, users and metadata is committed. The caller removes the old
// record and its links once this returns. A file whose object changed since
// capture fails the ingest: nothing half-converted is committed.
func Ingest(ctx context.Context, store Store, old *manifest.Record, linkDir string) (*IngestResult, error) {
	in := &ingester{store: store, linkDir: linkDir, chunker: cas.NewChunker(nil, store.ChunkerParams())}
	root, err := in.tree(ctx, old.Tree, "")
	if err != nil {
		return nil, err
	}
	rec := *old
	rec.Tree, rec.LinkSet, rec.LinkedFiles, rec.ClonedFiles = root, "", 0, 0
	rec.NewBytes, rec.StoredBytes = in.newBytes, in.stored
	id, err := store.CommitRecord(&rec)
	if err != nil {
		return nil, fmt.Errorf("commit ingested record: %w", err)
	}
	return &IngestResult{ID: id, Record: &rec, Ingested: in.files}, nil
}

type ingester struct {
	store            Store
	linkDir          string
	chunker          *cas.Chunker
	buf              []byte
	files            uint64
	newBytes, stored uint64
}

func (in *ingester) tree(ctx context.Context, id cas.ID, dir string) (cas.ID, error) {
	t, err := in.store.LoadTree(id)
	if err != nil {
		return cas.ID{}, err
	}
	changed := false
	for i := range t.Entries {
		if err := ctx.Err(); err != nil {
			return cas.ID{}, err
		}
		e := &t.Entries[i]
		p := path.Join(dir, e.Name)
		switch {
		case e.Type == manifest.TypeDir:
			sub, err := in.tree(ctx, e.Subtree, p)
			if err != nil {
				return cas.ID{}, err
			}
			if sub != e.Subtree {
				e.Subtree, changed = sub, true
			}
		case e.Type == manifest.TypeFile && e.Link != nil:
			chunks, err := in.file(e)
			if err != nil {
				return cas.ID{}, fmt.Errorf("%s: %w", p, err)
			}
			e.Chunks, e.Link, changed = chunks, nil, true
			in.files++
		}
	}
	if !changed {
		return id, nil
	}
	return in.store.PutTree(t)
}

func (in *ingester) file(e *manifest.Entry) ([]manifest.Chunk, error) {
	if err := manifest.CheckObject(e.Link.Object); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(in.linkDir, filepath.FromSlash(e.Link.Object)), os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("store object %s: %w", e.Link.Object, err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, err
	}
	if uint64(st.Size) != e.Size || (e.Link.Hash.IsZero() && st.Mtim.Nano() != e.MTimeNs) {
		return nil, errors.New("changed since capture (size or mtime differ); re-capture this computer instead")
	}
	in.chunker.Reset(f)
	var chunks []manifest.Chunk
	var total uint64
	for {
		chunk, err := in.chunker.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		total += uint64(len(chunk))
		id := in.store.Sum(chunk)
		isNew, err := in.store.Reserve(cas.BlobData, id)
		if err != nil {
			return nil, err
		}
		if isNew {
			stored, c := cas.Compress(in.buf, chunk)
			if c == cas.CompressionZstd {
				in.buf = stored[:0]
			}
			if err := in.store.AddBlob(cas.BlobData, id, c, stored, len(chunk)); err != nil {
				return nil, err
			}
			in.newBytes += uint64(len(chunk))
			in.stored += uint64(len(stored))
		}
		chunks = append(chunks, manifest.Chunk{ID: id, Size: uint32(len(chunk))})
	}
	if total != e.Size {
		return nil, errors.New("changed while being ingested")
	}
	if !e.Link.Hash.IsZero() {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, err
		}
		got, err := cas.SumStream(f, in.store.Sum)
		if err != nil {
			return nil, err
		}
		if got != e.Link.Hash {
			return nil, errors.New("contents changed since capture; re-capture this computer instead")
		}
	}
	return chunks, nil
}
