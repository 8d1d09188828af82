package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"smp/capture"
	"smp/cas/manifest"
	"smp/filter"
	"smp/store"
)

const captureArgs = "--store DIR --computer NAME [--root R] [--user NAME]... [--exclude GLOB]... [--rules FILE] [--json] [PATH...]"

// captureOptions are the flags of smp capture.
type captureOptions struct {
	storeFlags
	Computer, Root  string
	Users, Excludes []string
	ExcludeUsers    []string
	InactiveFor     string
	RulesFile       string
	JSON, Full      bool
	Hardlink        string
	ProgressLog     string
	HardlinkDedupe  bool
	ReserveFirst    bool
	Estimate        bool
	EstimateFile    string
	Paths           []string // PATH arguments, relative to Root

	profiles []capture.ProfileChoice // what selectProfiles decided
}

func (o *captureOptions) AddFlags(fs *pflag.FlagSet) {
	o.storeFlags.AddFlags(fs)
	fs.StringVar(&o.Computer, "computer", "", "name of the computer being captured (required)")
	fs.StringVar(&o.Root, "root", "/", "source root: PATHs and stored paths are relative to it")
	fs.StringArrayVar(&o.Users, "user", nil, "capture only this user's profile (repeatable)")
	fs.StringArrayVar(&o.ExcludeUsers, "exclude-user", nil, "leave out the profiles of users matching PATTERN (a glob: svc-*; repeatable; USMT /ue)")
	fs.StringVar(&o.InactiveFor, "inactive-for", "", "leave out the profiles whose owner has not logged in for DURATION (90d, 36h): the last login in <root>/var/log/wtmp* and lastlog, else the profile's newest mtime (USMT /uel)")
	fs.StringArrayVar(&o.Excludes, "exclude", nil, "skip paths matching GLOB (repeatable; rsync pattern rules)")
	fs.StringVar(&o.RulesFile, "rules", "", "rsync-style filter file: '+ PATTERN' / '- PATTERN' lines, first match wins, paths relative to --root (docs/RULES.md); or a built-in set: builtin:documents, builtin:everything (smp rules show NAME prints one)")
	fs.BoolVar(&o.JSON, "json", false, "print the result as one JSON object")
	fs.BoolVar(&o.Full, "full", false, "read every file even if unchanged since this computer's last record")
	fs.StringVar(&o.Hardlink, "hardlink", string(capture.HardlinkNever), "never: chunk every file (a deduplicated copy); auto: hard-link (or clone) files into the store when it is on the same filesystem, chunk the rest; always: fail when a file cannot be linked. A hard-linked file is not a copy: an edit after capture changes it, and it is not encrypted, even in an encrypted store (smp ingest makes an encrypted copy)")
	fs.StringVar(&o.ProgressLog, "progress-log", "", "append USMT-style progress lines to FILE (docs/PROGRESS.md)")
	fs.BoolVar(&o.HardlinkDedupe, "hardlink-dedupe", false, "with hard links: hash files so identical ones share one store object (reads every file)")
	fs.BoolVar(&o.Estimate, "estimate", false, "store nothing: walk, select, chunk and compress as this capture would, and print its files, bytes, the bytes new to the store and the bytes it would store (USMT scanstate /p); through an SMP it uses an estimate session, which reserves, pins, uploads and commits nothing")
	fs.StringVar(&o.EstimateFile, "estimate-file", "", "with --estimate (implied): also write the estimate to FILE as USMT's /p size XML, for task sequences")
	fs.BoolVar(&o.ReserveFirst, "reserve-first", false, "with --store https://...: read the files once first so the SMP reserves room for all the new data before anything is sent (a refusal then falls back to the next SMP before any upload); reads changed files twice")
}

func cmdCapture(ctx context.Context, args []string) error {
	var o captureOptions
	fs := newFlags("capture", captureArgs)
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	o.Paths = fs.Args()
	return runCapture(ctx, &o, os.Stdout)
}

// options checks the flags and turns them into what to capture.
func (o *captureOptions) options() (capture.Options, error) {
	var none capture.Options
	if o.Computer == "" {
		return none, usagef("--computer NAME is required")
	}
	if err := manifest.CheckName("computer", o.Computer); err != nil {
		return none, usagef("--computer: %v", err)
	}
	for _, u := range o.Users {
		if err := manifest.CheckName("user", u); err != nil {
			return none, usagef("--user: %v", err)
		}
	}
	for _, p := range o.Paths {
		if c := path.Clean(filepath.ToSlash(p)); c == ".." || strings.HasPrefix(c, "../") {
			return none, usagef("PATH %q leaves the source root: give paths relative to --root", p)
		}
	}
	hardlink, err := capture.ParseHardlink(o.Hardlink)
	if err != nil {
		return none, usagef("%v", err)
	}
	if o.HardlinkDedupe && hardlink == capture.HardlinkNever {
		return none, usagef("--hardlink-dedupe applies to hard links: add --hardlink auto or --hardlink always")
	}
	if hardlink != capture.HardlinkNever && store.IsS3(o.Location) {
		// Checked before the store is opened (and its cache refreshed).
		return none, usagef("--hardlink %s: a store on S3 holds no hard links: capture with --hardlink never", hardlink)
	}
	rootAbs, err := filepath.Abs(o.Root)
	if err != nil {
		return none, err
	}
	if st, err := os.Stat(rootAbs); err != nil || !st.IsDir() {
		return none, usagef("--root %s is not a directory", o.Root)
	}
	set, ruleLines, err := o.filter()
	if err != nil {
		return none, err
	}
	users, err := o.selectProfiles(rootAbs)
	if err != nil {
		return none, err
	}
	return capture.Options{
		Computer: o.Computer, Root: rootAbs, Paths: o.Paths, Users: users,
		Filter: set, Rules: ruleLines, Version: version,
		Progress: &capture.Progress{},
		Hardlink: hardlink, HardlinkDedupe: o.HardlinkDedupe,
	}, nil
}

// selectProfiles applies --exclude-user and --inactive-for, keeping the
// decisions for the output (o.profiles), and returns the users to
// capture: o.Users as given when neither is set.
func (o *captureOptions) selectProfiles(root string) ([]string, error) {
	var inactive time.Duration
	if o.InactiveFor != "" {
		d, err := parseDays(o.InactiveFor)
		if err != nil || d <= 0 {
			return nil, usagef("--inactive-for %q: want a duration such as 90d or 36h", o.InactiveFor)
		}
		inactive = d
	}
	for _, p := range o.ExcludeUsers {
		if err := capture.CheckUserPattern(p); err != nil {
			return nil, usagef("--exclude-user: %v", err)
		}
	}
	if len(o.ExcludeUsers) == 0 && inactive == 0 {
		return o.Users, nil
	}
	choices, err := capture.SelectProfiles(capture.ProfileOptions{Root: root, Users: o.Users,
		ExcludeUsers: o.ExcludeUsers, InactiveFor: inactive, Now: time.Now()})
	if err != nil {
		return nil, err
	}
	o.profiles = choices
	taken := []string{}
	for _, c := range choices {
		if c.Taken {
			taken = append(taken, c.User)
		}
	}
	if len(taken) == 0 {
		why := []string{}
		for _, c := range choices {
			why = append(why, c.User+": "+c.Reason)
		}
		return nil, fmt.Errorf("every profile under %s was left out (%s): %w", root, strings.Join(why, "; "), capture.ErrNothingSelected)
	}
	return taken, nil
}

// filter builds the capture filter of --exclude and --rules, and the rule
// lines the record keeps.
func (o *captureOptions) filter() (*filter.Set, []string, error) {
	set := filter.NewSet()
	var ruleLines []string
	for _, g := range o.Excludes {
		r, err := filter.Exclude(g)
		if err != nil {
			return nil, nil, usagef("--exclude: %v", err)
		}
		set.Append(r)
		ruleLines = append(ruleLines, "- "+g)
	}
	if o.RulesFile == "" {
		return set, ruleLines, nil
	}
	rules, err := readRules(o.RulesFile)
	if err != nil {
		return nil, nil, err
	}
	set.Append(rules...)
	for _, r := range rules {
		sign := "-"
		if r.Include {
			sign = "+"
		}
		ruleLines = append(ruleLines, sign+" "+r.Pattern)
	}
	return set, ruleLines, nil
}

// readRules reads the rules of --rules: a file, or builtin:NAME.
func readRules(name string) ([]filter.Rule, error) {
	if strings.HasPrefix(name, filter.BuiltinPrefix) {
		rules, err := filter.BuiltinRules(name)
		if err != nil {
			return nil, usagef("--rules: %v", err)
		}
		return rules, nil
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, usagef("--rules: %v", err)
	}
	defer f.Close()
	rules, err := filter.ParseRules(f)
	if err != nil {
		return nil, usagef("--rules %s: %v", name, err)
	}
	return rules, nil
}

func runCapture(ctx context.Context, o *captureOptions, stdout io.Writer) error {
	opts, err := o.options()
	if err != nil {
		return err
	}
	if o.Estimate || o.EstimateFile != "" {
		return runEstimate(ctx, o, opts, stdout)
	}
	setCaptureMemoryLimit(o.Location)
	st, err := o.open(ctx, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	probs := newProblems(o.JSON)
	opts.Report = func(p capture.Problem) {
		kind := "error"
		if p.Warning {
			kind = "warning"
		}
		probs.add(kind, p.Path, p.Err, "skipped", p.Warning)
	}
	if probs.log, err = openProgressLog(o.ProgressLog, "Capture", func() (uint64, uint64) {
		return opts.Progress.BytesDone.Load(), opts.Progress.BytesSeen.Load()
	}); err != nil {
		return err
	}
	start := time.Now()
	stopBar := liveBar(!o.JSON && isTerminal(), func() (uint64, uint64, string) {
		p := opts.Progress
		return p.BytesDone.Load(), p.BytesSeen.Load(), fmt.Sprintf("%d/%d files", p.FilesDone.Load(), p.FilesSeen.Load())
	})
	res, err := st.Capture(ctx, store.CaptureOptions{Options: opts, Full: o.Full, ReserveFirst: o.ReserveFirst})
	stopBar()
	probs.log.finish(err)
	if err != nil {
		return err
	}
	if err := printCapture(stdout, o, opts.Progress, res, probs.list(), time.Since(start)); err != nil {
		return err
	}
	if rec := res.Record; rec.Errors > 0 {
		return partialError{fmt.Sprintf("completed with errors: %d path(s) not captured (listed above); record %s holds the rest", rec.Errors, res.ID.Short())}
	}
	return nil
}

// printCapture prints a committed capture, as text or one JSON object.
func printCapture(w io.Writer, o *captureOptions, prog *capture.Progress, res *store.CaptureResult, problems []string, elapsed time.Duration) error {
	rec := res.Record
	notes := captureNotes(res)
	if o.JSON {
		return printJSON(w, map[string]any{
			"record": res.ID.String(), "computer": rec.Computer, "users": rec.Users,
			"files": rec.Files, "dirs": rec.Dirs, "symlinks": rec.Symlinks,
			"bytes": rec.Bytes, "new_bytes": rec.NewBytes, "stored_bytes": rec.StoredBytes,
			"unchanged_files": prog.Unchanged.Load(),
			"linked_files":    rec.LinkedFiles, "cloned_files": rec.ClonedFiles,
			"link_fallback_files": prog.LinkFallback.Load(),
			"errors":              rec.Errors, "problems": problems, "seconds": elapsed.Seconds(),
			"uploaded_bytes": res.Sent, "chunks_already_on_smp": res.Held,
			"reserved_first_bytes": res.Reserved, "smp": res.SMP, "notes": notes,
			"profiles": o.profiles,
		})
	}
	printProfiles(w, o.profiles)
	dedupe := "-"
	if rec.StoredBytes > 0 {
		dedupe = fmt.Sprintf("%.1fx", float64(rec.Bytes)/float64(rec.StoredBytes))
	}
	fmt.Fprintf(w, "record %s  computer %s  users %s\n", res.ID, rec.Computer, strings.Join(rec.Users, ","))
	fmt.Fprintf(w, "%d files, %d dirs, %d symlinks, %s (%d unchanged files not read)\n", rec.Files, rec.Dirs, rec.Symlinks, bytesStr(rec.Bytes), prog.Unchanged.Load())
	if res.Hardlink != capture.HardlinkNever {
		fmt.Fprintf(w, "hard-link mode: %d files hard-linked, %d cloned, %d chunked (no link possible)\n",
			rec.LinkedFiles, rec.ClonedFiles, prog.LinkFallback.Load())
	}
	for _, n := range notes {
		fmt.Fprintln(w, "note:", n)
	}
	fmt.Fprintf(w, "new data %s, stored %s (this capture's dedupe+compression %s), %s in %.1fs\n",
		bytesStr(rec.NewBytes), bytesStr(rec.StoredBytes), dedupe, rate(rec.Bytes, elapsed), elapsed.Seconds())
	if res.SMP != "" {
		fmt.Fprintf(w, "sent %s to the SMP %s; it already held %d of the chunks\n", bytesStr(uint64(res.Sent)), res.SMP, res.Held)
	}
	if res.Reserved >= 0 {
		fmt.Fprintf(w, "room for %s of new data was reserved before the upload (--reserve-first)\n", bytesStr(uint64(res.Reserved)))
	}
	return nil
}

// printProfiles says which profiles --exclude-user and --inactive-for
// left out, and where each one's last activity came from.
func printProfiles(w io.Writer, choices []capture.ProfileChoice) {
	for _, c := range choices {
		switch {
		case !c.Taken:
			fmt.Fprintf(w, "profile %s (%s) left out: %s\n", c.User, c.Path, c.Reason)
		case c.LastActive != nil:
			fmt.Fprintf(w, "profile %s (%s) taken: last active %s, from %s\n", c.User, c.Path, c.LastActive.Local().Format(time.DateTime), c.Source)
		}
	}
}

// captureNotes are what the user must know about a committed capture,
// said once: the files a hard-link capture placed in an encrypted store
// are not encrypted.
func captureNotes(res *store.CaptureResult) []string {
	notes := []string{}
	if n := res.Record.LinkedFiles + res.Record.ClonedFiles; res.Encrypted && n > 0 {
		notes = append(notes, fmt.Sprintf("the %d files hard-linked (or cloned) into the store's links/ area are your own files, in place: "+
			"they are NOT encrypted, unlike the rest of the store (smp ingest --record %s makes the record an encrypted copy)", n, res.ID.Short()))
	}
	return notes
}
