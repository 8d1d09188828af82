package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"smp/filter"
	"smp/remote/client"
	"smp/repo"
	"smp/restore"
)

func runRestore(ctx context.Context, args []string) error {
	fs := newFlags("restore", "--store DIR (--record ID | --computer NAME) [--root T] [--map FROM=TO]... [--include GLOB]... [--exclude GLOB]... [--overwrite never|always|older] [--allow-system] [--json]")
	store := storeFlag(fs)
	rf := addRemoteFlags(fs)
	recordRef := fs.String("record", "", "record ID or unique prefix")
	computer := fs.String("computer", "", "restore this computer's newest record")
	target := fs.String("root", "/", "target root: stored paths are written under it")
	maps := fs.StringArray("map", nil, "rewrite a stored path prefix, e.g. home/alice=home/bob (repeatable)")
	includes := fs.StringArray("include", nil, "restore only paths matching GLOB (repeatable)")
	excludes := fs.StringArray("exclude", nil, "do not restore paths matching GLOB (repeatable)")
	overwrite := fs.String("overwrite", "never", "existing files: never (report them), always, or older (replace older files); existing directories keep their mode, owner and times unless always")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	workers := fs.Int("workers", 0, "files restored in parallel (0: twice the CPU count)")
	progressPath := fs.String("progress-log", "", "append USMT-style progress lines to FILE (docs/PROGRESS.md)")
	keep := fs.Bool("keep", false, "do not release the record after a successful restore (its retention clock does not start)")
	allowUnreachable := fs.Bool("allow-unreachable", false, "with several SMPs in --store: when some do not answer, restore the newest record of the others (default: refuse, one of them may hold a newer record)")
	allowSystem := fs.Bool("allow-system", false, "restore the record as it is: paths outside home/USER and root, setuid bits, privileged xattrs and root ownership in user profiles (trust the record's source)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *recordRef == "" && *computer == "" {
		return usagef("give --record ID or --computer NAME")
	}
	ow, err := restore.ParseOverwrite(*overwrite)
	if err != nil {
		return usagef("%v", err)
	}
	if *workers < 0 || *workers > 256 {
		return usagef("--workers %d: want 0 to 256", *workers)
	}
	opts := restore.Options{Overwrite: ow, Owners: os.Geteuid() == 0, Progress: &restore.Progress{}, Workers: *workers, AllowSystem: *allowSystem}
	for _, m := range *maps {
		mp, err := restore.ParseMapping(m)
		if err != nil {
			return usagef("%v", err)
		}
		opts.Maps = append(opts.Maps, mp)
	}
	set := filter.NewSet()
	for _, g := range *excludes {
		r, err := filter.Exclude(g)
		if err != nil {
			return usagef("--exclude: %v", err)
		}
		set.Append(r)
	}
	for _, g := range *includes {
		r, err := filter.Include(g)
		if err != nil {
			return usagef("--include: %v", err)
		}
		set.Append(r)
	}
	opts.Filter = set
	if opts.Target, err = filepath.Abs(*target); err != nil {
		return err
	}
	var st restore.Store
	var rec repo.RecordInfo
	var release func() error
	if isRemoteStore(*store) {
		var cl *client.Client
		cl, rec, err = rf.findRecord(ctx, *store, recordQuery{ref: *recordRef, computer: *computer, allowUnreachable: *allowUnreachable})
		if err != nil {
			return err
		}
		defer cl.Close()
		reader := cl.Reader(rec.ID)
		defer reader.Close()
		if rec.LinkSet != "" {
			return fmt.Errorf("record %s is a hard-link record: restore it from the local store it was captured to", rec.ID.Short())
		}
		st, opts.Hash = reader, cl.Sum
		release = func() error { return cl.Release(ctx, rec.ID) }
	} else {
		// A restore that keeps its record writes nothing to the store.
		open := openStore
		if *keep {
			open = openStoreReadOnly
		}
		r, err := open(*store)
		if err != nil {
			return err
		}
		defer r.Close()
		if rec, err = r.FindRecord(*recordRef, *computer); err != nil {
			return err
		}
		st, opts.LinkDir, opts.Hash = r, r.LinkDir(), r.Sum
		release = func() error { return r.Release(rec.ID, time.Now()) }
	}
	var mu sync.Mutex
	problems := []string{}
	opts.Report = func(p restore.Problem) {
		kind := "error"
		if p.Warning {
			kind = "skipped"
		}
		line := fmt.Sprintf("%s: %s: %v", kind, filepath.Join(opts.Target, p.Path), p.Err)
		mu.Lock()
		problems = append(problems, line)
		mu.Unlock()
		if !*asJSON {
			printProblem(line)
		}
	}
	plog, err := openProgressLog(*progressPath, "Restore", func() (uint64, uint64) {
		return opts.Progress.BytesDone.Load(), rec.Bytes
	})
	if err != nil {
		return err
	}
	report := opts.Report
	opts.Report = func(p restore.Problem) {
		report(p)
		action := "not restored"
		if p.Warning {
			action = "left alone"
		}
		plog.problem(filepath.Join(opts.Target, p.Path), p.Err, action, p.Warning)
	}
	start := time.Now()
	stopBar := liveBar(!*asJSON && isTerminal(), func() (uint64, uint64, string) {
		p := opts.Progress
		return p.BytesDone.Load(), rec.Bytes, fmt.Sprintf("%d/%d files", p.FilesDone.Load(), rec.Files)
	})
	res, err := restore.Run(ctx, st, rec.Record, opts)
	stopBar()
	if err == nil && res.Dropped > 0 && plog != nil {
		plog.line(0x080000, "warning", "policy, "+strings.ReplaceAll(droppedLine(res), ",", ";"))
	}
	plog.finish(err)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	released := false
	// A restore that left paths of the record out (the policy) is not
	// complete either: the record stays unreleased for a rerun.
	if res.Errors == 0 && res.Outside == 0 && !*keep {
		if err := release(); err != nil {
			return err
		}
		released = true
	}
	if *asJSON {
		if err := printJSON(map[string]any{
			"record": rec.ID.String(), "target": opts.Target, "files": res.Files, "dirs": res.Dirs,
			"bytes": res.Bytes, "skipped": res.Skipped, "dirs_kept": res.DirsKept, "errors": res.Errors, "problems": problems,
			"linked_files": opts.Progress.Linked.Load(), "cloned_files": opts.Progress.Cloned.Load(),
			"dropped": res.Dropped, "dropped_outside": res.Outside, "dropped_paths": res.DroppedPaths,
			"seconds": elapsed.Seconds(), "released": released,
		}); err != nil {
			return err
		}
	} else {
		fmt.Printf("restored record %s of %s to %s\n", rec.ID.Short(), rec.Computer, opts.Target)
		// Existing directories are restored into but keep their own mode,
		// owner and times: they count as left alone.
		fmt.Printf("%d files, %d dirs, %s in %.1fs (%s); %d existing left alone\n",
			res.Files, res.Dirs, bytesStr(res.Bytes), elapsed.Seconds(), rate(res.Bytes, elapsed), res.Skipped+res.DirsKept)
		if rec.LinkSet != "" {
			fmt.Printf("hard-link record: %d files linked into place, %d cloned, the rest copied\n", opts.Progress.Linked.Load(), opts.Progress.Cloned.Load())
		}
		if res.Dropped > 0 {
			fmt.Println(droppedLine(res))
		}
	}
	var msgs []string
	if res.Errors > 0 {
		msgs = append(msgs, fmt.Sprintf("completed with errors: %d path(s) not restored (listed above)", res.Errors))
	}
	if res.Outside > 0 {
		msgs = append(msgs, fmt.Sprintf("%d path(s) outside the profile paths (home/USER, root) not restored: pass --allow-system to restore them as recorded", res.Outside))
	}
	if len(msgs) > 0 {
		return partialError{strings.Join(msgs, "; ")}
	}
	return nil
}

// droppedLine says in one line what the restore policy kept from the
// target, with the first few paths.
func droppedLine(res *restore.Result) string {
	more := ""
	if n := res.Dropped - uint64(len(res.DroppedPaths)); n > 0 {
		more = fmt.Sprintf(" and %d more", n)
	}
	return fmt.Sprintf("dropped by the restore policy (pass --allow-system to restore as recorded): %d: %s%s",
		res.Dropped, strings.Join(res.DroppedPaths, ", "), more)
}
