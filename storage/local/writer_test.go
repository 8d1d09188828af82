package local

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// writeMode is how a large object's writer is driven in the tests.
type writeMode int

const (
	modeDirect   writeMode = iota // O_DIRECT where the file system takes it
	modeBuffered                  // the fallback chosen at the start
	modeRefused                   // direct, until a write is refused midway
)

func (m writeMode) String() string { return [...]string{"direct", "buffered", "refused"}[m] }

func openTest(t *testing.T) *Storage {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// refuseSecondDirectWrite makes the second direct write write part of its
// bytes and fail as a file system refusing O_DIRECT would.
func refuseSecondDirectWrite(t *testing.T) {
	calls := 0
	writeDirect = func(f *os.File, b []byte) (int, error) {
		calls++
		if calls < 2 {
			return f.Write(b)
		}
		n, err := f.Write(b[:(len(b)/2)&^4095])
		if err != nil {
			return n, err
		}
		return n, errDirectRefused
	}
	t.Cleanup(func() { writeDirect = (*os.File).Write })
}

func tmpEntries(t *testing.T, s *Storage) []os.DirEntry {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(s.dir, s.tmp))
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// TestWriterSizes: an object expected to be large reads back as written,
// whatever its size and the sizes of the writes, with O_DIRECT, without,
// and when a direct write is refused midway; no temporary file is left.
func TestWriterSizes(t *testing.T) {
	sizes := []int{0, 1, 4095, 4096, 4097, directBuffer, 2*directBuffer + 4095, 3<<20 + 12345}
	pieces := []int{1, 7, 4093, 65537, directBuffer + 3}
	for _, mode := range []writeMode{modeDirect, modeBuffered, modeRefused} {
		for _, size := range sizes {
			for _, piece := range pieces {
				if piece == 1 && size > 8192 {
					continue
				}
				t.Run(mode.String(), func(t *testing.T) { writeAndCheck(t, mode, size, piece) })
			}
		}
	}
}

func writeAndCheck(t *testing.T, mode writeMode, size, piece int) {
	s := openTest(t)
	s.noDirect = mode == modeBuffered
	if mode == modeRefused {
		refuseSecondDirectWrite(t)
	}
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(size), uint64(piece)))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	sw, err := s.NewWriterSize(context.Background(), 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	w := sw.(*writer)
	if w.buf == nil {
		t.Fatal("a writer for a large object does not buffer")
	}
	if mode == modeBuffered && w.align != 0 {
		t.Fatal("direct mode with noDirect set")
	}
	for p := data; len(p) > 0; {
		c := min(piece, len(p))
		n, err := w.Write(p[:c])
		if err != nil || n != c {
			t.Fatalf("size %d piece %d: write %d of %d: %v", size, piece, n, c, err)
		}
		p = p[c:]
	}
	if err := w.Commit(context.Background(), "a/obj"); err != nil {
		t.Fatalf("size %d piece %d: %v", size, piece, err)
	}
	if mode == modeRefused && size >= 2*directBuffer && w.align != 0 {
		t.Fatalf("size %d piece %d: still direct after a refused write", size, piece)
	}
	got, err := s.Get(context.Background(), "a/obj", 0, -1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%s size %d piece %d: read back %d bytes that differ from the %d written", mode, size, piece, len(got), len(data))
	}
	if e := tmpEntries(t, s); len(e) != 0 {
		t.Fatalf("temporary files left: %v", e)
	}
}

// TestWriterSmallPlain: an object expected to be small is written
// straight to its file.
func TestWriterSmallPlain(t *testing.T) {
	s := openTest(t)
	for _, size := range []int64{0, directMin - 1} {
		w, err := s.NewWriterSize(context.Background(), size)
		if err != nil {
			t.Fatal(err)
		}
		if w.(*writer).buf != nil || w.(*writer).align != 0 {
			t.Fatalf("expected size %d: buffered or direct", size)
		}
		w.Abort()
	}
}

// TestWriterAbort: Abort, before and after writes reached the file, in
// direct mode and not, leaves no temporary file and no object.
func TestWriterAbort(t *testing.T) {
	for _, noDirect := range []bool{false, true} {
		for _, size := range []int{0, 4097, 3*directBuffer + 1} {
			s := openTest(t)
			s.noDirect = noDirect
			w, err := s.NewWriterSize(context.Background(), 32<<20)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(make([]byte, size)); err != nil {
				t.Fatal(err)
			}
			w.Abort()
			if e := tmpEntries(t, s); len(e) != 0 {
				t.Fatalf("noDirect %v size %d: temporary files left: %v", noDirect, size, e)
			}
			if list, _, err := s.List(context.Background(), "", "", 0); err != nil || len(list) != 0 {
				t.Fatalf("objects after Abort: %v %v", list, err)
			}
		}
	}
}

// TestWriterFailedWrite: a direct write failing otherwise than by a
// refusal (a full disk) fails the writer: the Writes after the next
// buffer is handed over report it, and the Commit, and no object or temporary file is left.
func TestWriterFailedWrite(t *testing.T) {
	s := openTest(t)
	full := errors.New("no space left")
	writeDirect = func(*os.File, []byte) (int, error) { return 0, full }
	t.Cleanup(func() { writeDirect = (*os.File).Write })
	w, err := s.NewWriterSize(context.Background(), 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	if w.(*writer).align == 0 {
		t.Skip("the test directory's file system does no direct I/O")
	}
	var werr error
	for i := 0; i < 8 && werr == nil; i++ {
		_, werr = w.Write(make([]byte, directBuffer/2+1))
	}
	err = w.Commit(context.Background(), "obj")
	if !errors.Is(err, full) {
		t.Fatalf("Commit after a failed write: %v (a Write returned %v)", err, werr)
	}
	if !errors.Is(werr, full) {
		t.Fatalf("4 MiB written after a failed direct write: Write returned %v", werr)
	}
	if e := tmpEntries(t, s); len(e) != 0 {
		t.Fatalf("temporary files left: %v", e)
	}
	if _, err := s.Stat(context.Background(), "obj"); err == nil {
		t.Fatal("an object after a failed write")
	}
}
