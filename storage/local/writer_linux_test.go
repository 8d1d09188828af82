package local

import (
	"context"
	"testing"

	"golang.org/x/sys/unix"
)

// TestWriterGoesDirect: where the file system does direct I/O, a large
// object's file is in direct mode until Commit.
func TestWriterGoesDirect(t *testing.T) {
	s := openTest(t)
	w, err := s.NewWriterSize(context.Background(), 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	f := w.(*writer).f
	if directAlignment(int(f.Fd())) == 0 {
		t.Skip("the test directory's file system does no direct I/O")
	}
	flags, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
	if err != nil {
		t.Fatal(err)
	}
	if flags&unix.O_DIRECT == 0 || w.(*writer).align == 0 {
		t.Fatalf("not in direct mode: flags %#x align %d", flags, w.(*writer).align)
	}
	if w.(*writer).align&4095 != 0 {
		t.Fatalf("alignment %d is not a multiple of the page size", w.(*writer).align)
	}
}
