package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// Get returns length bytes of name from offset (length < 0: to the end).
func (s *Storage) Get(ctx context.Context, name string, offset, length int64, buf []byte) ([]byte, error) {
	key, err := s.key(name)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3 get %s: negative offset %d", name, offset)
	}
	if length == 0 {
		info, err := s.Stat(ctx, name)
		if err != nil {
			return nil, err
		}
		if offset > info.Size {
			return nil, fmt.Errorf("s3 get %s: range past the end: %w", name, io.ErrUnexpectedEOF)
		}
		return buf[:0], nil
	}
	b, _, err := s.get(ctx, name, key, offset, length, buf)
	return b, err
}

// get reads [offset, offset+length) of key (length < 0: to the end) into
// buf, and returns the object's ETag. A failed request is retried, and a
// body that breaks off or stalls is read again from where it stopped,
// pinned to the first answer's ETag so the pieces are of one object, as
// long as the retrier allows.
func (s *Storage) get(ctx context.Context, name, key string, offset, length int64, buf []byte) ([]byte, string, error) {
	var (
		out  []byte // what was read so far, in buf
		etag string
		r    = retrier{s: s}
	)
	for {
		var opts minio.GetObjectOptions
		start := offset + int64(len(out))
		switch {
		case length >= 0:
			opts.SetRange(start, offset+length-1)
		case start > 0:
			opts.SetRange(start, 0)
		}
		if etag != "" {
			opts.SetMatchETag(etag)
		}
		rc, oi, _, err := s.core.GetObject(ctx, s.bucket, key, opts)
		if err != nil {
			if r.again(ctx, err) {
				continue
			}
			if ctx.Err() != nil {
				return nil, "", ctx.Err()
			}
			return s.getError(ctx, name, start, length, err)
		}
		if etag == "" {
			etag = oi.ETag
			want := oi.Size // this answer's Content-Length
			if length >= 0 && want < length {
				rc.Close()
				return nil, "", fmt.Errorf("s3 get %s: range past the end: %w", name, io.ErrUnexpectedEOF)
			}
			if length < 0 {
				length = want // resume a whole read as a range
			}
			if int64(cap(buf)) < length {
				buf = make([]byte, 0, length)
			}
			out = buf[:0]
		}
		n, err := s.readBody(ctx, rc, buf[len(out):length])
		rc.Close()
		out = buf[:len(out)+n]
		if err == nil {
			return out, etag, nil
		}
		if ctx.Err() != nil {
			return nil, "", ctx.Err()
		}
		if !r.again(ctx, err) {
			return nil, "", fmt.Errorf("s3 get %s: the body broke off after %d attempts: %w", name, r.attempts, err)
		}
	}
}

// getError maps a failed GET: a missing object, a range past the end (an
// open range starting exactly at the end is an empty read), or an object
// replaced between the pieces of a resumed read.
func (s *Storage) getError(ctx context.Context, name string, start, length int64, err error) ([]byte, string, error) {
	r := minio.ToErrorResponse(err)
	switch {
	case isNotFound(err):
		return nil, "", s.opErr("get", name, err)
	case r.StatusCode == http.StatusRequestedRangeNotSatisfiable || r.Code == "InvalidRange":
		if length < 0 {
			if info, serr := s.Stat(ctx, name); serr == nil && info.Size == start {
				return []byte{}, "", nil
			}
		}
		return nil, "", fmt.Errorf("s3 get %s: range past the end: %w", name, io.ErrUnexpectedEOF)
	case isPrecondition(err):
		return nil, "", fmt.Errorf("s3 get %s: the object was replaced during the read", name)
	}
	return nil, "", s.opErr("get", name, err)
}

// readBody fills p from rc, failing when no byte arrives for s.readIdle.
func (s *Storage) readBody(ctx context.Context, rc io.ReadCloser, p []byte) (int, error) {
	var (
		mu      sync.Mutex
		stalled bool
	)
	t := time.AfterFunc(s.readIdle, func() {
		mu.Lock()
		stalled = true
		mu.Unlock()
		rc.Close() // unblocks the Read
	})
	defer t.Stop()
	n := 0
	for n < len(p) {
		m, err := rc.Read(p[n:])
		n += m
		if m > 0 {
			t.Reset(s.readIdle)
		}
		if err == io.EOF {
			if n < len(p) {
				return n, io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			mu.Lock()
			idle := stalled
			mu.Unlock()
			if idle {
				return n, fmt.Errorf("no data for %v: %w", s.readIdle, errStalled)
			}
			return n, err
		}
	}
	return n, nil
}

var errStalled = errors.New("read stalled")

// jitter returns a uniform duration in [0, d] (full jitter).
func jitter(d int64) int64 {
	if d <= 0 {
		return 0
	}
	return rand.Int64N(d + 1)
}
