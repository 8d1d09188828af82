package server_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/remote/access"
	"smp/remote/client"
	"smp/remote/server"
)

// TestCaptureOffersInFewRequests: a capture of 2,000 small files through
// an SMP sends its offers many per have-query and its blobs many per
// upload, with several queries in flight (the client waits no round trip
// per chunk or per directory), and every commit check of issue 14 still
// passes: the first capture, an incremental one whose unchanged files
// reuse the parent's chunks unoffered, and another computer's capture of
// the same files, whose chunks are all proved, none sent.
func TestCaptureOffersInFewRequests(t *testing.T) {
	const files = 2000
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, filepath.Join(src, "home", "user01"), files, 1)
	e := newEnv(t)
	m := &meter{h: e.srv}
	hs := httptest.NewServer(m)
	t.Cleanup(hs.Close)
	ctx := context.Background()

	run := func(computer string, parent cas.ID, maxRequests int64) (*capture.Result, *client.Capture) {
		t.Helper()
		cl, err := client.Dial(ctx, client.Options{URL: hs.URL, Token: e.token(computer, access.RoleClient, 0)})
		if err != nil {
			t.Fatal(err)
		}
		defer cl.Close()
		cp, err := cl.StartCapture(ctx, computer, parent)
		if err != nil {
			t.Fatal(err)
		}
		defer cp.Close()
		opts := capture.Options{Computer: computer, Root: src}
		if !parent.IsZero() {
			rec, err := e.repo.FindRecord(parent.String(), "")
			if err != nil {
				t.Fatal(err)
			}
			opts.Parent, opts.ParentID = rec.Record, parent
		}
		m.requests.Store(0)
		res, err := capture.Run(ctx, cp, opts)
		if err != nil {
			t.Fatalf("capture as %s: %v", computer, err)
		}
		if res.Record.Files != files {
			t.Fatalf("capture as %s recorded %d files, want %d", computer, res.Record.Files, files)
		}
		// About 2,100 offers (files and directories) and up to 2,000 new
		// blobs: a round trip each would be thousands of requests. (On a
		// quiet machine: about 15; the bound leaves room for a loaded one,
		// where queries go out with fewer offers each.)
		n := m.requests.Load()
		t.Logf("capture as %s: %d requests", computer, n)
		if n > maxRequests {
			t.Errorf("capture of %d files as %s took %d requests, want at most %d", files, computer, n, maxRequests)
		}
		return res, cp
	}

	first, cp := run("pc1", cas.ID{}, 100)
	if cp.SentBlobs.Load() < files {
		t.Errorf("first capture sent %d blobs, want at least %d", cp.SentBlobs.Load(), files)
	}
	if _, err := e.repo.FindRecord(first.ID.String(), ""); err != nil {
		t.Fatalf("first record: %v", err)
	}

	// Touch one directory's files: they are read and offered again, the
	// rest reuse the parent's chunks; the commit checks those against the
	// parent record, the new ones against the session's proofs.
	dir := filepath.Join(src, "home", "user01", "d00", "e00", "f00")
	later := time.Now().Add(time.Minute)
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range ents {
		if err := os.Chtimes(filepath.Join(dir, de.Name()), later, later); err != nil {
			t.Fatal(err)
		}
	}
	// The parent's trees cost one fetch per directory with subdirectories
	// (25 here), its subtrees fetched together ahead of the walk.
	second, cp := run("pc1", first.ID, 100+25)
	if second.Record.Tree == first.Record.Tree {
		t.Error("the incremental capture recorded the same root tree although mtimes changed")
	}
	if sent := cp.SentBlobs.Load(); sent > 20 {
		t.Errorf("incremental capture sent %d blobs, want only changed trees (at most 20)", sent)
	}

	// Another computer holds none of pc1's rights: every chunk is proved
	// in its session, none uploaded.
	other, cp := run("pc2", cas.ID{}, 100)
	if other.Record.Tree != second.Record.Tree {
		t.Error("the same files captured by another computer gave another root tree")
	}
	if sent := cp.SentBlobs.Load(); sent != 0 {
		t.Errorf("a capture of files the SMP holds sent %d blobs, want 0", sent)
	}
	if held := cp.HeldBlobs.Load(); held < files {
		t.Errorf("a capture of files the SMP holds proved %d blobs, want at least %d", held, files)
	}
}

// TestCaptureRefusedMidwayEnds: a have-query refused for capacity in the
// middle of a pipelined capture (many offers in flight, answers still
// due) ends the capture with the refusal, at once, and the session's
// workers stop (Close returns).
func TestCaptureRefusedMidwayEnds(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	smallTree(t, filepath.Join(src, "home", "user01"), 1500, 2)
	e := newEnv(t, func(o *server.Options) { o.Quota = 2 << 20 })
	tok := e.token("pc1", access.RoleClient, 0)
	ctx := context.Background()
	cl := e.client(tok)
	cp, err := cl.StartCapture(ctx, "pc1", cas.ID{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := capture.Run(ctx, cp, capture.Options{Computer: "pc1", Root: src})
		cp.Close()
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, client.ErrCapacity) {
			t.Fatalf("capture over quota: %v, want the SMP's capacity refusal", err)
		}
		checkLine(t, "capture over quota", err.Error(), "quota")
	case <-time.After(2 * time.Minute):
		t.Fatal("a capture refused midway did not end")
	}
}
