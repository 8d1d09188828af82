package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/cas/manifest"
	"smp/filter"
	"smp/remote/client"
	"smp/repo"
)

func runCapture(ctx context.Context, args []string) error {
	fs := newFlags("capture", "--store DIR --computer NAME [--root R] [--user NAME]... [--exclude GLOB]... [--rules FILE] [--json] [PATH...]")
	store := storeFlag(fs)
	rf := addRemoteFlags(fs)
	computer := fs.String("computer", "", "name of the computer being captured (required)")
	root := fs.String("root", "/", "source root: PATHs and stored paths are relative to it")
	users := fs.StringArray("user", nil, "capture only this user's profile (repeatable)")
	excludes := fs.StringArray("exclude", nil, "skip paths matching GLOB (repeatable; rsync pattern rules)")
	rulesFile := fs.String("rules", "", "rsync-style filter file: '+ PATTERN' / '- PATTERN' lines, first match wins")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	full := fs.Bool("full", false, "read every file even if unchanged since this computer's last record")
	hardlinkFlag := fs.String("hardlink", string(capture.HardlinkNever), "never: chunk every file (a deduplicated copy); auto: hard-link (or clone) files into the store when it is on the same filesystem, chunk the rest; always: fail when a file cannot be linked. A hard-linked file is not a copy: an edit after capture changes it")
	progressPath := fs.String("progress-log", "", "append USMT-style progress lines to FILE (docs/PROGRESS.md)")
	hardlinkDedupe := fs.Bool("hardlink-dedupe", false, "with hard links: hash files so identical ones share one store object (reads every file)")
	reserveFirst := fs.Bool("reserve-first", false, "with --store https://...: read the files once first so the SMP reserves room for all the new data before anything is sent (a refusal then falls back to the next SMP before any upload); reads changed files twice")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *computer == "" {
		return usagef("--computer NAME is required")
	}
	if err := manifest.CheckName("computer", *computer); err != nil {
		return usagef("--computer: %v", err)
	}
	for _, u := range *users {
		if err := manifest.CheckName("user", u); err != nil {
			return usagef("--user: %v", err)
		}
	}
	for _, p := range fs.Args() {
		if c := path.Clean(filepath.ToSlash(p)); c == ".." || strings.HasPrefix(c, "../") {
			return usagef("PATH %q leaves the source root: give paths relative to --root", p)
		}
	}
	hardlink, err := capture.ParseHardlink(*hardlinkFlag)
	if err != nil {
		return usagef("%v", err)
	}
	if *hardlinkDedupe && hardlink == capture.HardlinkNever {
		return usagef("--hardlink-dedupe applies to hard links: add --hardlink auto or --hardlink always")
	}
	if *reserveFirst && !isRemoteStore(*store) {
		return usagef("--reserve-first reserves room on an SMP server: use it with --store https://...")
	}
	rootAbs, err := filepath.Abs(*root)
	if err != nil {
		return err
	}
	if st, err := os.Stat(rootAbs); err != nil || !st.IsDir() {
		return usagef("--root %s is not a directory", *root)
	}
	set := filter.NewSet()
	var ruleLines []string
	for _, g := range *excludes {
		r, err := filter.Exclude(g)
		if err != nil {
			return usagef("--exclude: %v", err)
		}
		set.Append(r)
		ruleLines = append(ruleLines, "- "+g)
	}
	if *rulesFile != "" {
		f, err := os.Open(*rulesFile)
		if err != nil {
			return usagef("--rules: %v", err)
		}
		rules, err := filter.ParseRules(f)
		f.Close()
		if err != nil {
			return usagef("--rules %s: %v", *rulesFile, err)
		}
		set.Append(rules...)
		for _, r := range rules {
			sign := "-"
			if r.Include {
				sign = "+"
			}
			ruleLines = append(ruleLines, sign+" "+r.Pattern)
		}
	}
	opts := capture.Options{
		Computer: *computer, Root: rootAbs, Paths: fs.Args(), Users: *users,
		Filter: set, Rules: ruleLines, Version: version,
		Progress: &capture.Progress{},
		Hardlink: hardlink, HardlinkDedupe: *hardlinkDedupe,
	}
	var st capture.Store
	var remote *client.Capture
	var deferred *repo.Deferred // a local store
	var planned int64 = -1      // new bytes the plan reserved; -1: no plan
	if isRemoteStore(*store) {
		// Hard links only make sense into a store on the same filesystem.
		if hardlink == capture.HardlinkAlways {
			return usagef("--hardlink always needs a local store on the same filesystem, not an SMP server")
		}
		opts.Hardlink = capture.HardlinkNever
		cl, err := rf.dialEach(ctx, *store, func(cl *client.Client) error {
			var parent cas.ID
			opts.Parent, opts.ParentID = nil, cas.ID{}
			if !*full {
				if id, e, err := cl.FindRecord(ctx, "", *computer); err == nil {
					opts.Parent, opts.ParentID, parent = e.Record, id, id
				}
			}
			cp, err := cl.StartCapture(ctx, *computer, parent)
			if err != nil {
				return err
			}
			if *reserveFirst {
				if planned, err = planCapture(ctx, cp, opts); err != nil {
					cp.Close()
					return err
				}
			}
			remote = cp
			return nil
		})
		if err != nil {
			return err
		}
		defer cl.Close()
		defer remote.Close()
		st = remote
	} else {
		// The index opens while the capture starts: a hard-link capture
		// walks and links without it (see capture.Options.ParentLookup).
		d, err := openStoreWith(*store, repo.OpenDeferred)
		if err != nil {
			return err
		}
		defer d.Close()
		deferred = d
		opts.SkipDirs, opts.LinkDir = []string{d.Dir}, d.LinkDir()
		if !*full {
			opts.ParentLookup = func() (*manifest.Record, cas.ID) {
				r, err := d.Repo()
				if err != nil {
					return nil, cas.ID{} // Run's first store call reports it
				}
				if prev, err := r.FindRecord("", *computer); err == nil {
					return prev.Record, prev.ID
				}
				return nil, cas.ID{}
			}
		}
		st = deferredStore{d}
	}
	var mu sync.Mutex
	var problems []string
	opts.Report = func(p capture.Problem) {
		kind := "error"
		if p.Warning {
			kind = "warning"
		}
		line := fmt.Sprintf("%s: %s: %v", kind, p.Path, p.Err)
		mu.Lock()
		problems = append(problems, line)
		mu.Unlock()
		if !*asJSON {
			printProblem(line)
		}
	}
	plog, err := openProgressLog(*progressPath, "Capture", func() (uint64, uint64) {
		return opts.Progress.BytesDone.Load(), opts.Progress.BytesSeen.Load()
	})
	if err != nil {
		return err
	}
	report := opts.Report
	opts.Report = func(p capture.Problem) {
		report(p)
		plog.problem(p.Path, p.Err, "skipped", p.Warning)
	}
	start := time.Now()
	stopBar := liveBar(!*asJSON && isTerminal(), func() (uint64, uint64, string) {
		p := opts.Progress
		return p.BytesDone.Load(), p.BytesSeen.Load(), fmt.Sprintf("%d/%d files", p.FilesDone.Load(), p.FilesSeen.Load())
	})
	res, err := capture.Run(ctx, st, opts)
	stopBar()
	if deferred != nil {
		if _, openErr := deferred.Repo(); openErr != nil {
			err = openErr // what Run failed on, said as opening the store says it
		}
	}
	if errors.Is(err, syscall.ENOSPC) {
		err = fmt.Errorf("%w: the store's filesystem is full; nothing of this capture was committed: free space (smp gc) or use another store, then run it again", err)
	}
	plog.finish(err)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	rec := res.Record
	var uploaded, held int64
	if remote != nil {
		uploaded, held = remote.SentBytes.Load(), remote.HeldBlobs.Load()
	}
	if *asJSON {
		if problems == nil {
			problems = []string{}
		}
		err = printJSON(map[string]any{
			"record": res.ID.String(), "computer": rec.Computer, "users": rec.Users,
			"files": rec.Files, "dirs": rec.Dirs, "symlinks": rec.Symlinks,
			"bytes": rec.Bytes, "new_bytes": rec.NewBytes, "stored_bytes": rec.StoredBytes,
			"unchanged_files": opts.Progress.Unchanged.Load(),
			"linked_files":    rec.LinkedFiles, "cloned_files": rec.ClonedFiles,
			"link_fallback_files": opts.Progress.LinkFallback.Load(),
			"errors":              rec.Errors, "problems": problems, "seconds": elapsed.Seconds(),
			"uploaded_bytes": uploaded, "chunks_already_on_smp": held,
			"reserved_first_bytes": planned,
		})
		if err != nil {
			return err
		}
	} else {
		dedupe := "-"
		if rec.StoredBytes > 0 {
			dedupe = fmt.Sprintf("%.1fx", float64(rec.Bytes)/float64(rec.StoredBytes))
		}
		fmt.Printf("record %s  computer %s  users %s\n", res.ID, rec.Computer, strings.Join(rec.Users, ","))
		fmt.Printf("%d files, %d dirs, %d symlinks, %s (%d unchanged files not read)\n", rec.Files, rec.Dirs, rec.Symlinks, bytesStr(rec.Bytes), opts.Progress.Unchanged.Load())
		if opts.Hardlink != capture.HardlinkNever {
			fmt.Printf("hard-link mode: %d files hard-linked, %d cloned, %d chunked (no link possible)\n",
				rec.LinkedFiles, rec.ClonedFiles, opts.Progress.LinkFallback.Load())
		}
		fmt.Printf("new data %s, stored %s (this capture's dedupe+compression %s), %s in %.1fs\n",
			bytesStr(rec.NewBytes), bytesStr(rec.StoredBytes), dedupe, rate(rec.Bytes, elapsed), elapsed.Seconds())
		if remote != nil {
			fmt.Printf("sent %s to the SMP; it already held %d of the chunks\n", bytesStr(uint64(uploaded)), held)
		}
		if planned >= 0 {
			fmt.Printf("room for %s of new data was reserved before the upload (--reserve-first)\n", bytesStr(uint64(planned)))
		}
	}
	if rec.Errors > 0 {
		return partialError{fmt.Sprintf("completed with errors: %d path(s) not captured (listed above); record %s holds the rest", rec.Errors, res.ID.Short())}
	}
	return nil
}

// planCapture runs the capture once against cp's plan, so the SMP reserves
// room for every blob it lacks before anything is uploaded, and returns
// the plaintext bytes reserved. Problems are reported by the real capture
// that follows, not twice.
func planCapture(ctx context.Context, cp *client.Capture, opts capture.Options) (int64, error) {
	plan := cp.Plan()
	opts.Progress, opts.Report = &capture.Progress{}, nil
	if _, err := capture.Run(ctx, plan, opts); err != nil {
		return 0, fmt.Errorf("reserve room on the SMP first (--reserve-first): %w", err)
	}
	return plan.NewBytes.Load(), nil
}

// deferredStore is a capture.Store over a local store whose index may
// still be opening (repo.OpenDeferred): what needs the index waits for it.
type deferredStore struct{ d *repo.Deferred }

// withRepo runs f on the store once its index is open.
func withRepo[T any](d *repo.Deferred, f func(*repo.Repo) (T, error)) (T, error) {
	r, err := d.Repo()
	if err != nil {
		var zero T
		return zero, err
	}
	return f(r)
}

func (s deferredStore) ChunkerParams() cas.ChunkerParams { return s.d.Config.Chunker }

func (s deferredStore) Sum(b []byte) cas.ID { return s.d.Hasher.Sum(b) }

func (s deferredStore) Reserve(t cas.BlobType, id cas.ID) (bool, error) {
	return withRepo(s.d, func(r *repo.Repo) (bool, error) { return r.Reserve(t, id) })
}

func (s deferredStore) AddBlob(t cas.BlobType, id cas.ID, c cas.Compression, stored []byte, rawLen int) error {
	_, err := withRepo(s.d, func(r *repo.Repo) (struct{}, error) { return struct{}{}, r.AddBlob(t, id, c, stored, rawLen) })
	return err
}

func (s deferredStore) PutTree(t *manifest.Tree) (cas.ID, error) {
	return withRepo(s.d, func(r *repo.Repo) (cas.ID, error) { return r.PutTree(t) })
}

func (s deferredStore) LoadTree(id cas.ID) (*manifest.Tree, error) {
	return withRepo(s.d, func(r *repo.Repo) (*manifest.Tree, error) { return r.LoadTree(id) })
}

func (s deferredStore) Has(t cas.BlobType, id cas.ID) (bool, error) {
	return withRepo(s.d, func(r *repo.Repo) (bool, error) { return r.Has(t, id) })
}

func (s deferredStore) CommitRecord(rec *manifest.Record) (cas.ID, error) {
	return withRepo(s.d, func(r *repo.Repo) (cas.ID, error) { return r.CommitRecord(rec) })
}
