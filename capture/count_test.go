package capture_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"smp/capture"
	"smp/filter"
)

// Count's totals are what the capture that follows reads: every selected
// file on a first capture (rules and --user applied, a hard link's later
// names left out), then only what changed since the parent record.
func TestCountIsWhatTheCaptureReads(t *testing.T) {
	src := t.TempDir()
	write(t, src, "home/alice/a", randBytes(1, 300<<10))
	write(t, src, "home/alice/b", []byte("hello"))
	write(t, src, "home/alice/skip.tmp", randBytes(2, 1<<20))
	write(t, src, "home/bob/c", randBytes(3, 70<<10))
	if err := os.Link(filepath.Join(src, "home/bob/c"), filepath.Join(src, "home/bob/c-link")); err != nil {
		t.Fatal(err)
	}
	rule, err := filter.ParseRule("- *.tmp")
	if err != nil {
		t.Fatal(err)
	}
	rules := filter.NewSet(rule)
	r := newRepo(t)
	opts := capture.Options{Computer: "pc", Root: src, Filter: rules}
	ctx := context.Background()

	tot, err := capture.Count(ctx, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := (capture.Totals{Files: 3, Bytes: 300<<10 + 5 + 70<<10}); tot != want {
		t.Fatalf("first count %+v, want %+v", tot, want)
	}
	res, err := capture.Run(ctx, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Record.Files != 4 {
		t.Fatalf("capture took %d files, want 4 (3 read, a hard link)", res.Record.Files)
	}

	// Changed since the record: b grows, d is new; a and c are unchanged.
	write(t, src, "home/alice/b", []byte("hello, world"))
	write(t, src, "home/bob/d", randBytes(4, 10<<10))
	opts.Parent, opts.ParentID = res.Record, res.ID
	tot, err = capture.Count(ctx, r, opts)
	if err != nil {
		t.Fatal(err)
	}
	if want := (capture.Totals{Files: 2, Bytes: 12 + 10<<10}); tot != want {
		t.Fatalf("count against the parent %+v, want %+v", tot, want)
	}
	progress := &capture.Progress{}
	opts.Progress = progress
	if _, err := capture.Run(ctx, r, opts); err != nil {
		t.Fatal(err)
	}
	if got := progress.FilesDone.Load() - progress.Unchanged.Load(); got != tot.Files {
		t.Fatalf("capture read %d files (done - unchanged), the count said %d", got, tot.Files)
	}

	// Count stores nothing.
	before, err := r.Records()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := capture.Count(ctx, r, opts); err != nil {
		t.Fatal(err)
	}
	after, err := r.Records()
	if err != nil || len(after) != len(before) {
		t.Fatalf("records %d before a count, %d after (%v)", len(before), len(after), err)
	}
}
