package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"smp/cas/manifest"
	"smp/store"
)

// diffOptions are the flags of smp diff.
type diffOptions struct {
	recordRefOptions
	Old, New string // the two record refs (positional)
}

func cmdDiff(ctx context.Context, args []string) error {
	var o diffOptions
	fs := newFlags("diff", "--store DIR (REC1 REC2 | --computer NAME) [--json]")
	o.storeFlags.AddFlags(fs)
	fs.StringVar(&o.Computer, "computer", "", "compare this computer's last two records (older first)")
	fs.BoolVar(&o.JSON, "json", false, "print as JSON")
	o.addUnreachableFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	switch rest := fs.Args(); {
	case len(rest) == 2 && o.Computer == "":
		o.Old, o.New = rest[0], rest[1]
	case len(rest) == 0 && o.Computer != "":
	default:
		return usagef("give two record IDs (older first), or --computer NAME for its last two records")
	}
	return runDiff(ctx, &o, os.Stdout)
}

// diffOut is smp diff --json.
type diffOut struct {
	Old     string            `json:"old"`
	New     string            `json:"new"`
	Changes []manifest.Change `json:"changes"`
	Counts  map[string]int    `json:"counts"`
	Bytes   map[string]uint64 `json:"bytes"`
}

func runDiff(ctx context.Context, o *diffOptions, stdout io.Writer) error {
	st, err := o.open(ctx, store.Options{ReadOnly: true, AllowUnreachable: o.AllowUnreachable})
	if err != nil {
		return err
	}
	defer st.Close()
	oldRec, newRec, err := diffRecords(ctx, st, o)
	if err != nil {
		return err
	}
	oldRd, err := st.Reader(ctx, oldRec)
	if err != nil {
		return err
	}
	defer oldRd.Close()
	newRd, err := st.Reader(ctx, newRec)
	if err != nil {
		return err
	}
	defer newRd.Close()
	ch, err := manifest.Diff(ctx, manifest.DiffOptions{OldLoad: oldRd, NewLoad: newRd, Old: oldRec.Tree, New: newRec.Tree})
	if err != nil {
		return err
	}
	out := diffOut{Old: oldRec.ID.String(), New: newRec.ID.String(), Changes: ch, Counts: map[string]int{}, Bytes: map[string]uint64{}}
	for _, k := range []string{manifest.ChangeAdded, manifest.ChangeRemoved, manifest.ChangeModified, manifest.ChangeRenamed} {
		out.Counts[k], out.Bytes[k] = 0, 0
	}
	for _, c := range ch {
		out.Counts[c.Kind]++
		out.Bytes[c.Kind] += c.Size
	}
	if o.JSON {
		return printJSON(stdout, out)
	}
	return printDiff(stdout, &out)
}

// diffRecords resolves the two records: the refs given, or the
// computer's last two.
func diffRecords(ctx context.Context, st store.Store, o *diffOptions) (store.Record, store.Record, error) {
	if o.Computer == "" {
		a, err := st.FindRecord(ctx, o.Old, "")
		if err != nil {
			return a, a, err
		}
		b, err := st.FindRecord(ctx, o.New, "")
		return a, b, err
	}
	all, err := st.Records(ctx)
	if err != nil {
		return store.Record{}, store.Record{}, err
	}
	var mine []store.Record
	for _, r := range all {
		if r.Computer == o.Computer {
			mine = append(mine, r)
		}
	}
	if len(mine) < 2 {
		return store.Record{}, store.Record{}, fmt.Errorf("computer %q has %d records, diff needs two: %w", o.Computer, len(mine), store.ErrNoRecord)
	}
	return mine[len(mine)-2], mine[len(mine)-1], nil
}

// diffMarks are the one-letter marks of the text output.
var diffMarks = map[string]string{manifest.ChangeAdded: "A", manifest.ChangeRemoved: "D", manifest.ChangeModified: "M", manifest.ChangeRenamed: "R"}

func printDiff(w io.Writer, d *diffOut) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range d.Changes {
		name := c.Path
		if c.Type == manifest.TypeDir {
			name += "/"
		}
		size := bytesStr(c.Size)
		switch c.Kind {
		case manifest.ChangeRenamed:
			name = c.From + " -> " + c.Path
		case manifest.ChangeModified:
			if c.OldSize != c.Size {
				size = bytesStr(c.OldSize) + " -> " + bytesStr(c.Size)
			}
			name += " (" + strings.Join(c.What, ",") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", diffMarks[c.Kind], size, name)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%s..%s: %d added (%s), %d removed (%s), %d modified (%s), %d renamed (%s)\n",
		d.Old[:12], d.New[:12],
		d.Counts[manifest.ChangeAdded], bytesStr(d.Bytes[manifest.ChangeAdded]),
		d.Counts[manifest.ChangeRemoved], bytesStr(d.Bytes[manifest.ChangeRemoved]),
		d.Counts[manifest.ChangeModified], bytesStr(d.Bytes[manifest.ChangeModified]),
		d.Counts[manifest.ChangeRenamed], bytesStr(d.Bytes[manifest.ChangeRenamed]))
	return err
}
