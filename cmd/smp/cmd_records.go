package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"smp/cas"
	"smp/cas/manifest"
	"smp/store"
)

// recordsOptions are the flags of smp records.
type recordsOptions struct {
	storeFlags
	Computer, Stale string
	JSON            bool
}

func (o *recordsOptions) AddFlags(fs *pflag.FlagSet) {
	o.storeFlags.AddFlags(fs)
	fs.StringVar(&o.Computer, "computer", "", "only this computer's records")
	fs.StringVar(&o.Stale, "stale", "30d", "flag records never restored (released) that are older than this")
	fs.BoolVar(&o.JSON, "json", false, "print as JSON")
}

func cmdRecords(ctx context.Context, args []string) error {
	var o recordsOptions
	fs := newFlags("records", "--store DIR [--computer NAME] [--stale DURATION] [--json]")
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return runRecords(ctx, &o, os.Stdout)
}

// recordRow is one line of smp records.
type recordRow struct {
	ID string `json:"id"`
	*manifest.Record
	State      string     `json:"state"` // captured or released
	ReleasedAt *time.Time `json:"released_at,omitempty"`
	Stale      bool       `json:"stale,omitempty"` // never released and older than --stale
	SMP        string     `json:"smp,omitempty"`   // the SMP that holds it
}

func runRecords(ctx context.Context, o *recordsOptions, stdout io.Writer) error {
	stale, err := parseDays(o.Stale)
	if err != nil {
		return usagef("--stale: %v", err)
	}
	st, err := o.open(ctx, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	all, err := st.Records(ctx)
	if err != nil {
		return err
	}
	rows := []recordRow{}
	now := time.Now()
	for _, rec := range all {
		if o.Computer == "" || rec.Computer == o.Computer {
			rw := recordRow{ID: rec.ID.String(), Record: rec.Record, State: "captured", SMP: rec.SMP}
			if rec.Released != nil {
				rw.State, rw.ReleasedAt = "released", rec.Released
			} else if now.Sub(rec.Created) > stale {
				rw.Stale = true
			}
			rows = append(rows, rw)
		}
	}
	if o.JSON {
		return printJSON(stdout, map[string]any{"records": rows})
	}
	return printRecords(stdout, rows, o.Stale)
}

// printRecords prints the rows as a table, with the SMP holding each
// record when they come from SMPs.
func printRecords(w io.Writer, rows []recordRow, stale string) error {
	withSMP := false
	for _, r := range rows {
		withSMP = withSMP || r.SMP != ""
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := "ID\tCOMPUTER\tUSERS\tCREATED\tFILES\tSIZE\tERRORS\tSTATE"
	if withSMP {
		head += "\tSMP"
	}
	fmt.Fprintln(tw, head)
	for _, r := range rows {
		state := r.State
		if r.ReleasedAt != nil {
			state += " " + r.ReleasedAt.Local().Format(time.DateTime)
		}
		if r.Stale {
			state += " STALE (never restored, older than " + stale + ")"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s\t%d\t%s\t%d\t%s", r.ID[:12], r.Computer, strings.Join(r.Users, ","),
			r.Created.Local().Format(time.DateTime), r.Files, bytesStr(r.Bytes), r.Errors, state)
		if withSMP {
			line += "\t" + r.SMP
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// recordRefOptions are the flags of the commands on one record.
type recordRefOptions struct {
	storeFlags
	Record, Computer string
	JSON             bool
	Long             bool // smp files --long
	AllowUnreachable bool
}

// addUnreachableFlag adds --allow-unreachable, for a group of SMPs.
func (o *recordRefOptions) addUnreachableFlag(fs *pflag.FlagSet) {
	fs.BoolVar(&o.AllowUnreachable, "allow-unreachable", false, "with several SMPs in --store: when some do not answer, look for the record on the others (default: refuse, one of them may hold it or a newer one)")
}

func cmdFiles(ctx context.Context, args []string) error {
	var o recordRefOptions
	fs := newFlags("files", "--store DIR (--record ID | --computer NAME) [--long] [--json]")
	o.storeFlags.AddFlags(fs)
	fs.StringVar(&o.Record, "record", "", "record ID or unique prefix")
	fs.StringVar(&o.Computer, "computer", "", "this computer's newest record")
	fs.BoolVar(&o.Long, "long", false, "print as ls -l does: mode, owner, group, size in bytes, mtime, path")
	fs.BoolVar(&o.JSON, "json", false, "print as JSON")
	o.addUnreachableFlag(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return runFiles(ctx, &o, os.Stdout)
}

// fileRow is one line of smp files.
type fileRow struct {
	Path   string `json:"path"`
	Type   string `json:"type"`
	Size   uint64 `json:"size"`
	Mode   string `json:"mode"`
	MTime  string `json:"mtime"`
	Target string `json:"target,omitempty"`
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	User   string `json:"user,omitempty"`
	Group  string `json:"group,omitempty"`
}

func runFiles(ctx context.Context, o *recordRefOptions, stdout io.Writer) error {
	if o.Record == "" && o.Computer == "" {
		return usagef("give --record ID or --computer NAME")
	}
	st, rec, rd, err := o.openRecord(ctx, store.Options{ReadOnly: true, AllowUnreachable: o.AllowUnreachable}, o.Record, o.Computer)
	if err != nil {
		return err
	}
	defer st.Close()
	defer rd.Close()
	rows := []fileRow{}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	err = walkTree(ctx, rd, rec.Tree, func(p string, e *manifest.Entry) error {
		row := fileRow{Path: p, Type: string(e.Type), Size: e.Size, Mode: fmt.Sprintf("%04o", e.Mode),
			MTime: time.Unix(0, e.MTimeNs).UTC().Format(time.RFC3339Nano), Target: e.Target,
			UID: e.UID, GID: e.GID, User: e.User, Group: e.Group}
		if o.JSON {
			rows = append(rows, row)
			return nil
		}
		name := p
		if e.Type == manifest.TypeDir {
			name += "/"
		} else if e.Type == manifest.TypeSymlink {
			name += " -> " + e.Target
		}
		if o.Long {
			_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", lsMode(e), ownerName(e.User, e.UID), ownerName(e.Group, e.GID),
				e.Size, time.Unix(0, e.MTimeNs).Local().Format(time.DateTime), name)
			return err
		}
		_, err := fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.Mode, bytesStr(e.Size), time.Unix(0, e.MTimeNs).Local().Format(time.DateTime), name)
		return err
	})
	if err != nil {
		return err
	}
	if o.JSON {
		return printJSON(stdout, map[string]any{"record": rec.ID.String(), "files": rows})
	}
	return tw.Flush()
}

// lsMode is an entry's mode as ls -l prints it: the type, then rwx for
// user, group and others, with s/S for setuid and setgid, t/T for sticky
// (a record keeps the Unix permission bits, 07777).
func lsMode(e *manifest.Entry) string {
	b := []byte("----------")
	switch e.Type {
	case manifest.TypeDir:
		b[0] = 'd'
	case manifest.TypeSymlink:
		b[0] = 'l'
	}
	for i, c := range "rwxrwxrwx" {
		if e.Mode&(1<<(8-i)) != 0 {
			b[1+i] = byte(c)
		}
	}
	special := func(bit uint32, pos int, set, unset byte) {
		if e.Mode&bit != 0 {
			if b[pos] == 'x' {
				b[pos] = set
			} else {
				b[pos] = unset
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b)
}

// ownerName is the name a record gives an owner, or its number.
func ownerName(name string, id uint32) string {
	if name != "" {
		return name
	}
	return strconv.FormatUint(uint64(id), 10)
}

// openRecord opens the store and a reader of the record ref names (or
// with ref empty, computer's newest); the caller closes both.
func (sf *storeFlags) openRecord(ctx context.Context, o store.Options, ref, computer string) (store.Store, store.Record, store.Reader, error) {
	st, err := sf.open(ctx, o)
	if err != nil {
		return nil, store.Record{}, nil, err
	}
	rec, err := st.FindRecord(ctx, ref, computer)
	if err != nil {
		st.Close()
		return nil, store.Record{}, nil, err
	}
	rd, err := st.Reader(ctx, rec)
	if err != nil {
		st.Close()
		return nil, store.Record{}, nil, err
	}
	return st, rec, rd, nil
}

// walkTree calls fn for every entry below tree id in depth-first order,
// with its path: the one tree walk (manifest.Walker).
func walkTree(ctx context.Context, r manifest.TreeLoader, id cas.ID, fn func(string, *manifest.Entry) error) error {
	w := manifest.Walker{Load: r, Entry: func(dir string, e *manifest.Entry) error {
		return fn(path.Join(dir, e.Name), e)
	}}
	return w.Walk(ctx, id)
}

func cmdRm(ctx context.Context, args []string) error {
	o, err := parseRecordRef("rm", args)
	if err != nil {
		return err
	}
	return runRm(ctx, o, os.Stdout)
}

func cmdRelease(ctx context.Context, args []string) error {
	o, err := parseRecordRef("release", args)
	if err != nil {
		return err
	}
	return runRelease(ctx, o, os.Stdout)
}

// parseRecordRef parses the flags of rm and release: a store and one
// record.
func parseRecordRef(name string, args []string) (*recordRefOptions, error) {
	var o recordRefOptions
	fs := newFlags(name, "--store DIR --record ID")
	o.storeFlags.AddFlags(fs)
	fs.StringVar(&o.Record, "record", "", "record ID or unique prefix (required)")
	o.addUnreachableFlag(fs)
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	if o.Record == "" {
		return nil, usagef("--record ID is required")
	}
	return &o, nil
}

// onRecord runs do on the record o names and closes the store, returning
// the first error: success is printed only once the store is closed, when
// its writes are durable and nothing is left for Close to fail on.
func onRecord(ctx context.Context, o *recordRefOptions, do func(store.Store, store.Record) error) (store.Record, error) {
	st, err := o.open(ctx, store.Options{AllowUnreachable: o.AllowUnreachable})
	if err != nil {
		return store.Record{}, err
	}
	rec, err := st.FindRecord(ctx, o.Record, "")
	if err == nil {
		err = do(st, rec)
	}
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	return rec, err
}

func runRm(ctx context.Context, o *recordRefOptions, stdout io.Writer) error {
	rec, err := onRecord(ctx, o, func(st store.Store, rec store.Record) error { return st.Remove(ctx, rec) })
	if err != nil {
		return err
	}
	if rec.LinkSet != "" {
		fmt.Fprintf(stdout, "removed the store's links of %d hard-linked and %d cloned files (the users' files are untouched)\n", rec.LinkedFiles, rec.ClonedFiles)
	}
	fmt.Fprintf(stdout, "removed record %s of %s (%d files); its unique data is freed by smp gc\n", rec.ID.Short(), rec.Computer, rec.Files)
	return nil
}

func runRelease(ctx context.Context, o *recordRefOptions, stdout io.Writer) error {
	rec, err := onRecord(ctx, o, func(st store.Store, rec store.Record) error { return st.Release(ctx, rec) })
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "released record %s of %s: smp gc --retention removes it once its retention has run out\n", rec.ID.Short(), rec.Computer)
	return nil
}
