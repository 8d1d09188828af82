package main

import (
	"context"
	"fmt"
	"os"
	"path"
	"strings"
	"text/tabwriter"
	"time"

	"smp/cas"
	"smp/cas/manifest"
)

func runRecords(ctx context.Context, args []string) error {
	fs := newFlags("records", "--store DIR [--computer NAME] [--stale DURATION] [--json]")
	store := storeFlag(fs)
	rf := addRemoteFlags(fs)
	computer := fs.String("computer", "", "only this computer's records")
	staleFlag := fs.String("stale", "30d", "flag records never restored (released) that are older than this")
	asJSON := fs.Bool("json", false, "print as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	r, err := openRecordStore(ctx, *store, rf, false)
	if err != nil {
		return err
	}
	defer r.Close()
	all, err := r.Records()
	if err != nil {
		return err
	}
	stale, err := parseDays(*staleFlag)
	if err != nil {
		return usagef("--stale: %v", err)
	}
	released, err := r.ReleasedAt()
	if err != nil {
		return err
	}
	type row struct {
		ID string `json:"id"`
		*manifest.Record
		State      string     `json:"state"` // captured or released
		ReleasedAt *time.Time `json:"released_at,omitempty"`
		Stale      bool       `json:"stale,omitempty"` // never released and older than --stale
	}
	rows := []row{}
	now := time.Now()
	for _, rec := range all {
		if *computer == "" || rec.Computer == *computer {
			rw := row{ID: rec.ID.String(), Record: rec.Record, State: "captured"}
			if at, ok := released[rec.ID]; ok {
				rw.State, rw.ReleasedAt = "released", &at
			} else if now.Sub(rec.Created) > stale {
				rw.Stale = true
			}
			rows = append(rows, rw)
		}
	}
	if *asJSON {
		return printJSON(map[string]any{"records": rows})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCOMPUTER\tUSERS\tCREATED\tFILES\tSIZE\tERRORS\tSTATE")
	for _, r := range rows {
		state := r.State
		if r.ReleasedAt != nil {
			state += " " + r.ReleasedAt.Local().Format(time.DateTime)
		}
		if r.Stale {
			state += " STALE (never restored, older than " + *staleFlag + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s\n", r.ID[:12], r.Computer, strings.Join(r.Users, ","),
			r.Created.Local().Format(time.DateTime), r.Files, bytesStr(r.Bytes), r.Errors, state)
	}
	return tw.Flush()
}

func runFiles(ctx context.Context, args []string) error {
	fs := newFlags("files", "--store DIR (--record ID | --computer NAME) [--json]")
	store := storeFlag(fs)
	rf := addRemoteFlags(fs)
	recordRef := fs.String("record", "", "record ID or unique prefix")
	computer := fs.String("computer", "", "this computer's newest record")
	asJSON := fs.Bool("json", false, "print as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *recordRef == "" && *computer == "" {
		return usagef("give --record ID or --computer NAME")
	}
	r, err := openRecordStore(ctx, *store, rf, false)
	if err != nil {
		return err
	}
	defer r.Close()
	rec, err := r.FindRecord(*recordRef, *computer)
	if err != nil {
		return err
	}
	type fileRow struct {
		Path   string `json:"path"`
		Type   string `json:"type"`
		Size   uint64 `json:"size"`
		Mode   string `json:"mode"`
		MTime  string `json:"mtime"`
		Target string `json:"target,omitempty"`
	}
	var rows []fileRow
	var tw *tabwriter.Writer
	if !*asJSON {
		tw = tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	}
	err = walkTree(ctx, r, rec.Tree, func(p string, e *manifest.Entry) error {
		row := fileRow{Path: p, Type: string(e.Type), Size: e.Size, Mode: fmt.Sprintf("%04o", e.Mode),
			MTime: time.Unix(0, e.MTimeNs).UTC().Format(time.RFC3339Nano), Target: e.Target}
		if *asJSON {
			rows = append(rows, row)
			return nil
		}
		name := p
		if e.Type == manifest.TypeDir {
			name += "/"
		} else if e.Type == manifest.TypeSymlink {
			name += " -> " + e.Target
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.Mode, bytesStr(e.Size), time.Unix(0, e.MTimeNs).Local().Format(time.DateTime), name)
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		if rows == nil {
			rows = []fileRow{}
		}
		return printJSON(map[string]any{"record": rec.ID.String(), "files": rows})
	}
	return tw.Flush()
}

// walkTree calls fn for every entry below tree id in depth-first order,
// with its path.
func walkTree(ctx context.Context, r manifest.TreeLoader, id cas.ID, fn func(string, *manifest.Entry) error) error {
	w := manifest.Walker{Load: r, Entry: func(dir string, e *manifest.Entry) error {
		return fn(path.Join(dir, e.Name), e)
	}}
	return w.Walk(ctx, id)
}

func runRm(ctx context.Context, args []string) error {
	fs := newFlags("rm", "--store DIR --record ID")
	store := storeFlag(fs)
	rf := addRemoteFlags(fs)
	recordRef := fs.String("record", "", "record ID or unique prefix (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *recordRef == "" {
		return usagef("--record ID is required")
	}
	r, err := openRecordStore(ctx, *store, rf, true)
	if err != nil {
		return err
	}
	rec, err := r.FindRecord(*recordRef, "")
	if err == nil {
		err = r.Drop(rec)
	}
	// Success is printed only once the store is closed: its writes are
	// durable and nothing is left for Close to fail on.
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if rec.LinkSet != "" {
		fmt.Printf("removed the store's links of %d hard-linked and %d cloned files (the users' files are untouched)\n", rec.LinkedFiles, rec.ClonedFiles)
	}
	fmt.Printf("removed record %s of %s (%d files); its unique data is freed by smp gc\n", rec.ID.Short(), rec.Computer, rec.Files)
	return nil
}

func runRelease(ctx context.Context, args []string) error {
	fs := newFlags("release", "--store DIR --record ID")
	store := storeFlag(fs)
	rf := addRemoteFlags(fs)
	recordRef := fs.String("record", "", "record ID or unique prefix (required)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *recordRef == "" {
		return usagef("--record ID is required")
	}
	r, err := openRecordStore(ctx, *store, rf, true)
	if err != nil {
		return err
	}
	rec, err := r.FindRecord(*recordRef, "")
	if err == nil {
		err = r.Release(rec.ID, time.Now())
	}
	// As for rm: no success before the store is closed.
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Printf("released record %s of %s: smp gc --retention removes it once its retention has run out\n", rec.ID.Short(), rec.Computer)
	return nil
}
