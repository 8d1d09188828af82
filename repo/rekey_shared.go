package repo

import (
	"context"
	"errors"
	"fmt"
	"io"

	"smp/cas"
	"smp/keys"
	"smp/remote/access"
	"smp/storage"
)

// gc --rekey on a store several smp share (a bucket) moves the store's
// objects under the current master key by the same two phases as every gc
// there (gcshared.go), never deleting a pack at once:
//
//  1. every indexed pack not sealed under the current key is condemned
//     like a sparse pack: its live blobs (every blob of a pack younger
//     than the grace counts as live) are copied, sealed under the current
//     key, into new packs, indexed, and a marks object names the old pack
//     and its replacements. A gc at least a grace later deletes it: until
//     then the old key still opens it, and smp key retire refuses;
//  2. the index segments not sealed under the current key are written
//     anew under it and the old ones deleted, in batches of about
//     cas.MaxSegmentBody (rewriteSegments): after a rotation that is every
//     segment, so the whole index never is in memory at once. Each batch's
//     new segments are written first, so every pack stays listed;
//  3. this machine's index copy and TLS key, and the bucket's access
//     file, are sealed anew as on a store directory (rekey.go).
//
// Every other smp with the store open takes the rotation up at its next
// refresh and seals under the new key from then on, or refuses to write
// when its secrets no longer open the keys (keysshared.go); none stores
// an object under a key it has not confirmed current within
// SharedRefreshBound, and smp key retire reads the usage only once
// keys.json is older than that bound. What a writer stored under the old
// key before it took the rotation up is found by gc --rekey (rekeyed, or
// reported when stored after its listing) and by retire (a refusal).

// rekeySegments does step 2.
func (r *Repo) rekeySegments(ctx context.Context) error {
	cur := r.currentKey()
	var ids []cas.ID
	var sizes []int64
	err := storage.Walk(ctx, r.st, segmentPrefix, func(info storage.Info) error {
		id, ok := parseSegmentName(info.Name)
		if !ok {
			return nil
		}
		sealed, kid, err := r.segmentKey(ctx, info.Name)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return nil // compacted away since the listing
		case err != nil && !errors.Is(err, cas.ErrCorrupt):
			return err
		case err == nil && sealed && kid == cur:
			return nil
		}
		ids, sizes = append(ids, id), append(sizes, info.Size)
		return nil
	})
	if err != nil {
		return fmt.Errorf("rekey index segments: %w", err)
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := r.rewriteSegments(ctx, ids, sizes); err != nil {
		return fmt.Errorf("rekey index segments: %w", err)
	}
	return nil
}

// segmentKey reads the key a segment object says it is sealed under.
func (r *Repo) segmentKey(ctx context.Context, name string) (bool, keys.KeyID, error) {
	b, err := r.st.Get(ctx, name, 0, cas.SegmentHeadSize, nil)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return false, 0, fmt.Errorf("index segment %s is too short: %w", name, cas.ErrCorrupt)
	}
	if err != nil {
		return false, 0, err
	}
	return cas.SegmentKeyID(b)
}

// sharedKeyUsage adds to u what a shared store keeps in its bucket: the
// index segments by key, the access object's key, and which packs under
// each key are condemned (deleted by a gc after their grace).
func (r *Repo) sharedKeyUsage(ctx context.Context, u *KeyUsage) error {
	err := storage.Walk(ctx, r.st, segmentPrefix, func(info storage.Info) error {
		if _, ok := parseSegmentName(info.Name); !ok {
			return nil
		}
		sealed, kid, err := r.segmentKey(ctx, info.Name)
		switch {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			u.Unknown = append(u.Unknown, info.Name)
		case !sealed:
			u.Segments[0]++
		default:
			u.Segments[kid]++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("list index segments: %w", err)
	}
	if _, err := r.st.Stat(ctx, access.ObjectName); err == nil {
		u.Sealed[access.ObjectName] = 0
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	hdr, err := r.st.Get(ctx, access.SealedObjectName, 0, int64(keys.SealedOverhead), nil)
	switch {
	case errors.Is(err, storage.ErrNotFound):
	case err != nil:
		return fmt.Errorf("%s: %w", access.SealedObjectName, err)
	default:
		kid, err := keys.SealedHeaderKeyID(hdr)
		if err != nil {
			return fmt.Errorf("%s: %w", access.SealedObjectName, err)
		}
		u.Sealed[access.SealedObjectName] = kid
	}
	// The marks as they are in the bucket now, read without applying
	// them (key retire opens the store read-only).
	counted := map[cas.ID]bool{}
	return storage.Walk(ctx, r.st, marksPrefix, func(info storage.Info) error {
		if info.Size > maxMarksBytes {
			return fmt.Errorf("gc marks %s: %d bytes, more than a marks object holds: %w", info.Name, info.Size, cas.ErrCorrupt)
		}
		b, err := r.st.Get(ctx, info.Name, 0, info.Size, nil)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read gc marks: %w", err)
		}
		m, err := decodeMarks(b)
		if err != nil {
			return fmt.Errorf("gc marks %s: %w", info.Name, err)
		}
		for _, id := range m.condemned {
			if pi, err := r.packs.Info(id); err != nil || !pi.Created.Before(info.Created) || counted[id] {
				continue // gone, written again since its mark, or counted
			}
			counted[id] = true
			if sealed, kid, err := r.packs.KeyOf(id); err == nil && sealed {
				u.Condemned[kid]++
			}
		}
		return nil
	})
}
