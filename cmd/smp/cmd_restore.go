package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
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
	UserMaps                 []string
	CreateUsers              bool
	CreateUsersDisabled      bool
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
	fs.StringArrayVar(&o.UserMaps, "map-user", nil, "give OLD's files to the account NEW without moving them, e.g. alice=alice.smith (repeatable; USMT /mu); NEW must exist on the target unless --create-users")
	fs.BoolVar(&o.CreateUsers, "create-users", false, "as root: create the accounts the restored files go to that the target lacks (useradd --root TARGET; home where the profile is restored, password locked; USMT /lac)")
	fs.BoolVar(&o.CreateUsersDisabled, "create-users-disabled", false, "as --create-users, with the new accounts disabled (expired) until an administrator enables them (USMT /lae)")
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
	for _, m := range o.UserMaps {
		from, to, err := restore.ParseUserMapping(m)
		if err != nil {
			return none, usagef("%v", err)
		}
		if opts.Users == nil {
			opts.Users = map[string]string{}
		}
		opts.Users[from] = to
	}
	if (o.CreateUsers || o.CreateUsersDisabled) && !opts.Owners {
		return none, usagef("--create-users adds accounts to the target's etc/passwd and needs root: run the restore as root, or create the accounts first")
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
	var missed notRestored
	opts.Report = func(p restore.Problem) {
		kind, action := "error", "not restored"
		if p.Warning {
			kind, action = "skipped", "left alone"
		}
		path := filepath.Join(opts.Target, p.Path)
		probs.add(kind, path, p.Err, action, p.Warning)
		missed.add(path, p.Reason())
	}
	if probs.log, err = openProgressLog(o.ProgressLog, "Restore", func() (uint64, uint64) {
		return opts.Progress.BytesDone.Load(), rec.Bytes
	}); err != nil {
		return err
	}
	created, err := o.createUsers(ctx, rec, &opts, stdout)
	if err != nil {
		return err
	}
	if !opts.Owners {
		// Said once, before the first file: what a non-root restore does
		// with owners is not an error per file.
		fmt.Fprintf(os.Stderr, "smp: restoring as uid %d, not root: every restored file is owned by you, not by the owners the record names (--map-user has no effect); run as root to restore ownership\n", os.Geteuid())
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
	if err == nil && probs.log != nil {
		for _, l := range missed.counts() {
			probs.log.line(0x080000, "notRestored", l)
		}
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
	out := restoreOutput{rec: rec, opts: &opts, res: res, problems: probs.list(), elapsed: elapsed, released: released, created: created, missed: missed.list()}
	if err := out.print(stdout, o.JSON); err != nil {
		return err
	}
	return restoreOutcome(res, len(out.missed))
}

// restoreOutput is what a finished restore prints.
type restoreOutput struct {
	rec      store.Record
	opts     *restore.Options
	res      *restore.Result
	problems []string
	elapsed  time.Duration
	released bool
	created  []restore.NewAccount
	missed   []missedPath
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
			"owners_restored": r.opts.Owners, "created_users": r.created, "not_restored": r.missed,
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
	if len(r.missed) > 0 {
		// The loadstate-style summary: every path not restored, by reason,
		// after the lines that reported each as it happened.
		fmt.Fprintf(w, "not restored: %d path(s)\n", len(r.missed))
		for _, m := range r.missed {
			fmt.Fprintf(w, "  %s: %s\n", m.Reason, m.Path)
		}
	}
	return nil
}

// missedPath is a path a restore did not write, with its reason
// (restore.Reason*).
type missedPath struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// notRestored collects the paths a restore did not write. Safe for
// concurrent use (restore reports from its workers).
type notRestored struct {
	mu    sync.Mutex
	paths []missedPath
}

func (n *notRestored) add(path, reason string) {
	n.mu.Lock()
	n.paths = append(n.paths, missedPath{path, reason})
	n.mu.Unlock()
}

// list returns the paths sorted by reason, then path (never nil).
func (n *notRestored) list() []missedPath {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := append([]missedPath{}, n.paths...)
	slices.SortFunc(out, func(a, b missedPath) int {
		if c := strings.Compare(a.Reason, b.Reason); c != 0 {
			return c
		}
		return strings.Compare(a.Path, b.Path)
	})
	return out
}

// counts returns one "REASON, N" line per reason, for the progress log.
func (n *notRestored) counts() []string {
	by := map[string]int{}
	for _, m := range n.list() {
		by[m.Reason]++
	}
	var out []string
	for r, c := range by {
		out = append(out, fmt.Sprintf("%s, %d", r, c))
	}
	slices.Sort(out)
	return out
}

// restoreOutcome is the partial error of a restore that left paths out.
func restoreOutcome(res *restore.Result, missed int) error {
	var msgs []string
	if res.Errors > 0 {
		msgs = append(msgs, fmt.Sprintf("completed with errors: %d path(s) not restored (listed above)", res.Errors))
	}
	// As loadstate does, a restore that left a recorded file alone (it
	// exists on the target, or changed since a hard-link capture) did not
	// restore everything: the caller's script sees exit 3, not success.
	if left := missed - int(res.Errors); left > 0 {
		msgs = append(msgs, fmt.Sprintf("%d path(s) left alone (listed above; --overwrite always or older replaces existing files)", left))
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

// createUsers creates, with --create-users, the accounts the restore's
// files go to that the target lacks, before any file is written; it
// says which. Without it, a missing destination of --map or --map-user
// fails the restore before anything is written (the policy's check).
func (o *restoreOptions) createUsers(ctx context.Context, rec store.Record, opts *restore.Options, stdout io.Writer) ([]restore.NewAccount, error) {
	created := []restore.NewAccount{}
	if !o.CreateUsers && !o.CreateUsersDisabled {
		return created, nil
	}
	accts, err := restore.AccountsToCreate(rec.Record, *opts)
	if err != nil {
		return nil, err
	}
	if err := restore.CreateAccounts(ctx, accts, restore.CreateOptions{Target: opts.Target, Disabled: o.CreateUsersDisabled}); err != nil {
		return nil, err
	}
	if !o.JSON {
		for _, a := range accts {
			state := "password locked"
			if o.CreateUsersDisabled {
				state = "disabled"
			}
			fmt.Fprintf(stdout, "created account %s on %s (home %s, %s)\n", a.Name, opts.Target, a.Home, state)
		}
	}
	return append(created, accts...), nil
}
