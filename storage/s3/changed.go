package s3

import (
	"context"
	"fmt"
	"net/http"

	"github.com/minio/minio-go/v7"

	"smp/storage"
)

var _ storage.ChangeGetter = (*Storage)(nil)

// GetIfChanged reads name unless its ETag is still have. It first sends
// a HEAD with "If-None-Match: <have>", which the object store answers 304
// Not Modified while the object is unchanged: a poll of an unchanged
// object is one request without a body. An object store that ignores the
// header answers the object's ETag, compared here, so the answer is right
// either way. The HEAD's size is checked against limit before the object
// is read; the read that follows is GetVersioned's, and its bytes are
// checked again (the object may have been replaced in between).
func (s *Storage) GetIfChanged(ctx context.Context, name string, have storage.Version, limit int64) ([]byte, storage.Version, bool, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, storage.NoVersion, false, err
	}
	var oi minio.ObjectInfo
	err = s.idempotent(ctx, func() error {
		var opts minio.StatObjectOptions
		if have != storage.NoVersion {
			if err := opts.SetMatchETagExcept(string(have)); err != nil {
				return err
			}
		}
		var err error
		oi, err = s.c.StatObject(ctx, s.bucket, key, opts)
		return err
	})
	switch {
	case err == nil && have != storage.NoVersion && oi.ETag == string(have):
		return nil, have, false, nil
	case err == nil:
		if limit > 0 && oi.Size > limit {
			return nil, storage.NoVersion, false, fmt.Errorf("s3 get %s: %d bytes: %w (%d)", name, oi.Size, storage.ErrTooLarge, limit)
		}
	case minio.ToErrorResponse(err).StatusCode == http.StatusNotModified:
		return nil, have, false, nil
	default:
		return nil, storage.NoVersion, false, s.opErr("get", name, err)
	}
	b, v, err := s.GetVersioned(ctx, name)
	if err != nil {
		return nil, storage.NoVersion, false, err
	}
	if limit > 0 && int64(len(b)) > limit {
		return nil, storage.NoVersion, false, fmt.Errorf("s3 get %s: %d bytes: %w (%d)", name, len(b), storage.ErrTooLarge, limit)
	}
	if have != storage.NoVersion && v == have {
		return nil, v, false, nil
	}
	return b, v, true, nil
}
