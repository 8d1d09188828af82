package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"smp/cas"
	"smp/store"
)

// verifyOptions are the flags of smp verify.
type verifyOptions struct {
	Store, Record, Computer string
	ReadData, Repair, JSON  bool
	From                    []string
	keyFlags
	S3 s3Flags
}

func (o *verifyOptions) AddFlags(fs *pflag.FlagSet) {
	storeLocVar(fs, &o.Store, &o.S3)
	o.keyFlags.AddFlags(fs)
	fs.StringVar(&o.Record, "record", "", "verify only this record")
	fs.StringVar(&o.Computer, "computer", "", "verify only this computer's records")
	fs.BoolVar(&o.ReadData, "read-data", false, "read and re-hash every chunk (slow: reads the whole store)")
	fs.BoolVar(&o.Repair, "repair", false, "rewrite damaged or missing data chunks from the files under --from (implies --read-data)")
	fs.StringArrayVar(&o.From, "from", nil, "with --repair: a directory holding the original files (the captured root, or the same files elsewhere); repeatable")
	fs.BoolVar(&o.JSON, "json", false, "print as JSON")
}

func cmdVerify(ctx context.Context, args []string) error {
	var o verifyOptions
	fs := newFlags("verify", "--store DIR [--record ID | --computer NAME] [--read-data] [--repair --from DIR...] [--json]")
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return runVerify(ctx, &o, os.Stdout)
}

func (o *verifyOptions) check() error {
	if err := needStore(o.Store); err != nil {
		return err
	}
	if o.Repair && len(o.From) == 0 {
		return usagef("--repair needs --from DIR: where to read the original files from")
	}
	if !o.Repair && len(o.From) > 0 {
		return usagef("--from is only used with --repair")
	}
	if o.Record != "" && o.Computer != "" {
		return usagef("give --record or --computer, not both")
	}
	for _, d := range o.From {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return usagef("--from %s: not a directory", d)
		}
	}
	return nil
}

func runVerify(_ context.Context, o *verifyOptions, stdout io.Writer) error {
	if err := o.check(); err != nil {
		return err
	}
	// Only a repair writes: a plain verify opens the store read-only, so it
	// works (and never makes Badger write) on a full filesystem.
	d, err := store.OpenDir("verify", o.Store, store.Options{ReadOnly: !o.Repair, Unlock: o.unlock(), S3: o.S3.opts()})
	if err != nil {
		return err
	}
	defer d.Close()
	probs := newProblems(o.JSON)
	vo := store.VerifyOptions{Ref: o.Record, Computer: o.Computer, ReadData: o.ReadData || o.Repair}
	if o.Repair {
		vo.RepairFrom = o.From
		vo.Warn = func(path string, err error) { probs.add("skipped", path, err, "not read", true) }
	}
	res, err := d.Verify(vo)
	if err != nil {
		return err
	}
	if o.Repair {
		return printRepair(stdout, o, res, len(probs.list()))
	}
	rep := res.Report
	if o.JSON {
		if err := printJSON(stdout, map[string]any{"ok": len(rep.Damaged) == 0, "read_data": vo.ReadData, "report": rep}); err != nil {
			return err
		}
	} else {
		printVerify(stdout, rep, vo.ReadData)
	}
	if len(rep.Damaged) > 0 {
		return partialError{fmt.Sprintf("store is damaged: %d blobs unreadable, %d files affected; re-capture the affected computers, or repair from the original files with smp verify --repair --from DIR", len(rep.Damaged), rep.DamagedFiles)}
	}
	return nil
}

func printDamage(w io.Writer, d *store.Damage, what string) {
	pack := ""
	if d.Pack != "" {
		id, _ := cas.ParseID(d.Pack)
		pack = " in pack " + id.Short()
	}
	fmt.Fprintf(w, "%s %s %s%s: %s\n  affects: %s\n", what, d.Type, d.Blob[:12], pack, d.Reason, strings.Join(d.Users, ", "))
}

func printVerify(w io.Writer, rep *store.VerifyReport, readData bool) {
	for _, d := range rep.Damaged {
		printDamage(w, d, "DAMAGED")
	}
	mode := "index and pack presence"
	if readData {
		mode = "every chunk read and re-hashed"
	}
	fmt.Fprintf(w, "verified %d records, %d trees, %d chunks (%s): ", rep.Records, rep.Trees, rep.Chunks, mode)
	if len(rep.Damaged) == 0 {
		fmt.Fprintln(w, "all sound")
	} else {
		fmt.Fprintf(w, "%d damaged blobs affecting %d files\n", len(rep.Damaged), rep.DamagedFiles)
	}
	if n := len(rep.UnindexedPacks); n > 0 {
		// Not damage by itself (a crash between writing a pack and
		// indexing it leaves one; gc tidies it), but the only trace
		// of an index that lost tables along with their records.
		fmt.Fprintf(w, "note: %d pack files are not in the index (left by an interrupted capture, or lost from a damaged index that may have lost records too: if a record is missing, run smp index rebuild --store DIR)\n", n)
	}
}

// printRepair prints what a repair fixed; unreadable is the number of
// files under --from that could not be read.
func printRepair(w io.Writer, o *verifyOptions, res *store.VerifyResult, unreadable int) error {
	rep, fixed := res.Report, res.Repair
	if o.JSON {
		if err := printJSON(w, map[string]any{"ok": len(res.Remaining) == 0, "read_data": true, "report": rep,
			"repair": fixed, "unreadable_files": unreadable, "remaining": res.Remaining}); err != nil {
			return err
		}
	} else {
		repaired := map[string]bool{}
		for _, id := range fixed.Repaired {
			repaired[id] = true
		}
		for _, d := range rep.Damaged {
			if repaired[d.Blob] {
				fmt.Fprintf(w, "REPAIRED %s %s: found under --from, written to a new pack\n", d.Type, d.Blob[:12])
			}
		}
		for _, d := range res.Remaining {
			why := "not found under --from"
			if d.Type != cas.BlobData.String() {
				why = "a " + d.Type + " is not file data: files cannot repair it"
			}
			printDamage(w, d, "STILL DAMAGED ("+why+")")
		}
		fmt.Fprintf(w, "verified %d records, %d trees, %d chunks (every chunk read and re-hashed): %d damaged blobs; repaired %d of %d damaged data chunks from %s (%d chunks, %s read)\n",
			rep.Records, rep.Trees, rep.Chunks, len(rep.Damaged), len(fixed.Repaired), fixed.Wanted,
			strings.Join(o.From, ", "), fixed.ChunksOffered, bytesStr(fixed.BytesOffered))
		for _, p := range fixed.Problems {
			fmt.Fprintln(w, "problem:", p)
		}
	}
	if len(res.Remaining) > 0 {
		return partialError{fmt.Sprintf("%d damaged blobs could not be repaired (listed above), %d repaired", len(res.Remaining), len(fixed.Repaired))}
	}
	return nil
}
