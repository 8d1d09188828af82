package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"smp/filter"
	"smp/restore"
	"smp/store"
)

const restoreArgs = "--store DIR (--record ID | --computer NAME) [--root T] [--map FROM=TO]... [--include GLOB]... [--exclude GLOB]... [--overwrite never|always|older] [--allow-system] [--json]"

// restoreOptions are the flags of smp restore.
type restoreOptions struct {
	storeFlags
	Record, Computer, Root   string
	Maps, Includes, Excludes []string
	Overwrite                string
	JSON                     bool
	Workers                  int
	ProgressLog              string
	Keep                     bool
	AllowUnreachable         bool
	AllowSystem              bool
}

func (o *restoreOptions) AddFlags(fs *pflag.FlagSet) {
	o.storeFlags.AddFlags(fs)
	fs.StringVar(&o.Record, "record", "", "record ID or unique prefix")
	fs.StringVar(&o.Computer, "computer", "", "restore this computer's newest record")
	fs.StringVar(&o.Root, "root", "/", "target root: stored paths are written under it")
	fs.StringArrayVar(&o.Maps, "map", nil, "rewrite a stored path prefix, e.g. home/alice=home/bob (repeatable)")
	fs.StringArrayVar(&o.Includes, "include", nil, "restore only paths matching GLOB (repeatable)")
	fs.StringArrayVar(&o.Excludes, "exclude", nil, "do not restore paths matching GLOB (repeatable)")
	fs.StringVar(&o.Overwrite, "overwrite", "never", "existing files: never (report them), always, or older (replace older files); existing directories keep their mode, owner and times unless always")
	fs.BoolVar(&o.JSON, "json", false, "print the result as one JSON object")
	fs.IntVar(&o.Workers, "workers", 0, "files restored in parallel (0: twice the CPU count)")
	fs.StringVar(&o.ProgressLog, "progress-log", "", "append USMT-style progress lines to FILE (docs/PROGRESS.md)")
	fs.BoolVar(&o.Keep, "keep", false, "do not release the record after a successful restore (its retention clock does not start)")
	fs.BoolVar(&o.AllowUnreachable, "allow-unreachable", false, "with several SMPs in --store: when some do not answer, restore the newest record of the others (default: refuse, one of them may hold a newer record)")
	fs.BoolVar(&o.AllowSystem, "allow-system", false, "restore the record as it is: paths outside home/USER and root, setuid bits, privileged xattrs and root ownership in user profiles (trust the record's source)")
}

func cmdRestore(ctx context.Context, args []string) error {
	var o restoreOptions
	fs := newFlags("restore", restoreArgs)
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return runRestore(ctx, &o, os.Stdout)
}

// options checks the flags and turns them into how to restore.
func (o *restoreOptions) options() (restore.Options, error) {
	var none restore.Options
	if o.Record == "" && o.Computer == "" {
		return none, usagef("give --record ID or --computer NAME")
	}
	ow, err := restore.ParseOverwrite(o.Overwrite)
	if err != nil {
		return none, usagef("%v", err)
	}
	if o.Workers < 0 || o.Workers > 256 {
		return none, usagef("--workers %d: want 0 to 256", o.Workers)
	}
	opts := restore.Options{Overwrite: ow, Owners: os.Geteuid() == 0, Progress: &restore.Progress{}, Workers: o.Workers, AllowSystem: o.AllowSystem}
	for _, m := range o.Maps {
		mp, err := restore.ParseMapping(m)
		if err != nil {
			return none, usagef("%v", err)
		}
		opts.Maps = append(opts.Maps, mp)
	}
	set := filter.NewSet()
	for _, g := range o.Excludes {
		r, err := filter.Exclude(g)
		if err != nil {
			return none, usagef("--exclude: %v", err)
		}
		set.Append(r)
	}
	for _, g := range o.Includes {
		r, err := filter.Include(g)
		if err != nil {
			return none, usagef("--include: %v", err)
		}
		set.Append(r)
	}
	opts.Filter = set
	if opts.Target, err = filepath.Abs(o.Root); err != nil {
		return none, err
	}
	return opts, nil
}

func runRestore(ctx context.Context, o *restoreOptions, stdout io.Writer) error {
	opts, err := o.options()
	if err != nil {
		return err
	}
	// A restore that keeps its record writes nothing to the store.
	st, rec, rd, err := o.openRecord(ctx, store.Options{ReadOnly: o.Keep, AllowUnreachable: o.AllowUnreachable}, o.Record, o.Computer)
	if err != nil {
		return err
	}
	defer st.Close()
	defer rd.Close()
	opts.Hash = rd.Sum
	if lr, ok := rd.(store.LinkReader); ok {
		opts.LinkDir = lr.LinkDir()
	} else if rec.LinkSet != "" {
		return fmt.Errorf("record %s is a hard-link record: restore it from the local store it was captured to", rec.ID.Short())
	}
	probs := newProblems(o.JSON)
	opts.Report = func(p restore.Problem) {
		kind, action := "error", "not restored"
		if p.Warning {
			kind, action = "skipped", "left alone"
		}
		probs.add(kind, filepath.Join(opts.Target, p.Path), p.Err, action, p.Warning)
	}
	if probs.log, err = openProgressLog(o.ProgressLog, "Restore", func() (uint64, uint64) {
		return opts.Progress.BytesDone.Load(), rec.Bytes
	}); err != nil {
		return err
	}
	start := time.Now()
	stopBar := liveBar(!o.JSON && isTerminal(), func() (uint64, uint64, string) {
		p := opts.Progress
		return p.BytesDone.Load(), rec.Bytes, fmt.Sprintf("%d/%d files", p.FilesDone.Load(), rec.Files)
	})
	res, err := restore.Run(ctx, rd, rec.Record, opts)
	stopBar()
	if err == nil && res.Dropped > 0 && probs.log != nil {
		probs.log.line(0x080000, "warning", "policy, "+strings.ReplaceAll(droppedLine(res), ",", ";"))
	}
	probs.log.finish(err)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	released := false
	// A restore that left paths of the record out (the policy) is not
	// complete either: the record stays unreleased for a rerun.
	if res.Errors == 0 && res.Outside == 0 && !o.Keep {
		if err := st.Release(ctx, rec); err != nil {
			return err
		}
		released = true
	}
	out := restoreOutput{rec: rec, opts: &opts, res: res, problems: probs.list(), elapsed: elapsed, released: released}
	if err := out.print(stdout, o.JSON); err != nil {
		return err
	}
	return restoreOutcome(res)
}

// restoreOutput is what a finished restore prints.
type restoreOutput struct {
	rec      store.Record
	opts     *restore.Options
	res      *restore.Result
	problems []string
	elapsed  time.Duration
	released bool
}

func (r *restoreOutput) print(w io.Writer, asJSON bool) error {
	res, rec, prog := r.res, r.rec, r.opts.Progress
	if asJSON {
		return printJSON(w, map[string]any{
			"record": rec.ID.String(), "target": r.opts.Target, "files": res.Files, "dirs": res.Dirs,
			"bytes": res.Bytes, "skipped": res.Skipped, "dirs_kept": res.DirsKept, "errors": res.Errors, "problems": r.problems,
			"linked_files": prog.Linked.Load(), "cloned_files": prog.Cloned.Load(),
			"dropped": res.Dropped, "dropped_outside": res.Outside, "dropped_paths": res.DroppedPaths,
			"seconds": r.elapsed.Seconds(), "released": r.released, "smp": rec.SMP,
		})
	}
	fmt.Fprintf(w, "restored record %s of %s to %s\n", rec.ID.Short(), rec.Computer, r.opts.Target)
	// Existing directories are restored into but keep their own mode,
	// owner and times: they count as left alone.
	fmt.Fprintf(w, "%d files, %d dirs, %s in %.1fs (%s); %d existing left alone\n",
		res.Files, res.Dirs, bytesStr(res.Bytes), r.elapsed.Seconds(), rate(res.Bytes, r.elapsed), res.Skipped+res.DirsKept)
	if rec.LinkSet != "" {
		fmt.Fprintf(w, "hard-link record: %d files linked into place, %d cloned, the rest copied\n", prog.Linked.Load(), prog.Cloned.Load())
	}
	if res.Dropped > 0 {
		fmt.Fprintln(w, droppedLine(res))
	}
	return nil
}

// restoreOutcome is the partial error of a restore that left paths out.
func restoreOutcome(res *restore.Result) error {
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
