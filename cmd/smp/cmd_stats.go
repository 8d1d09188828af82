package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/spf13/pflag"

	"smp/store"
)

// statsOptions are the flags of smp stats.
type statsOptions struct {
	storeFlags
	Retention  string
	ByComputer bool
	JSON       bool
}

func (o *statsOptions) AddFlags(fs *pflag.FlagSet) {
	o.storeFlags.AddFlags(fs)
	fs.StringVar(&o.Retention, "retention", "", "also count released records whose retention (e.g. 7d) has run out: what smp gc --retention would remove")
	fs.BoolVar(&o.ByComputer, "computer", false, "also show each computer's and each record's cost: bytes only it references (what removing it and a gc would free)")
	fs.BoolVar(&o.JSON, "json", false, "print as JSON")
}

func cmdStats(ctx context.Context, args []string) error {
	var o statsOptions
	fs := newFlags("stats", "--store DIR [--computer] [--json]")
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return runStats(ctx, &o, os.Stdout)
}

func runStats(ctx context.Context, o *statsOptions, stdout io.Writer) error {
	so := store.StatsOptions{Usage: o.ByComputer}
	if o.Retention != "" {
		retention, err := parseDays(o.Retention)
		if err != nil {
			return usagef("--retention: %v", err)
		}
		so.Retention = &retention
	}
	st, err := o.open(ctx, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := st.Stats(ctx, so)
	if err != nil {
		return err
	}
	if o.JSON {
		if !o.ByComputer {
			return printJSON(stdout, struct {
				*store.Stats
				Expired  *int            `json:"expired,omitempty"`
				Capacity *store.Capacity `json:"capacity,omitempty"`
			}{rep.Stats, rep.Expired, rep.Capacity})
		}
		if rep.Computers == nil {
			rep.Computers = []store.ComputerUsage{}
		}
		if rep.PerRecord == nil {
			rep.PerRecord = []store.RecordUsage{}
		}
		return printJSON(stdout, rep)
	}
	printStats(stdout, rep, o.Retention)
	if o.ByComputer {
		return printUsage(stdout, rep)
	}
	return nil
}

func printStats(w io.Writer, rep *store.StatsReport, retention string) {
	s := rep.Stats
	fmt.Fprintf(w, "records        %d (%d captured, %d released)\n", s.Records, s.Captured, s.Released)
	if rep.Expired != nil {
		fmt.Fprintf(w, "expired        %d released records older than %s (smp gc --retention %s removes them)\n", *rep.Expired, retention, retention)
	}
	fmt.Fprintf(w, "logical bytes  %s (sum of every record's files)\n", bytesStr(s.LogicalBytes))
	fmt.Fprintf(w, "unique bytes   %s in %d chunks\n", bytesStr(s.UniqueBytes), s.Chunks)
	fmt.Fprintf(w, "stored bytes   %s in %d packs\n", bytesStr(s.StoredBytes), s.Packs)
	if s.LinkRecords > 0 {
		fmt.Fprintf(w, "hard-link      %d record(s) of %s hold %d files by link or clone, not in packs\n", s.LinkRecords, bytesStr(s.LinkRecordBytes), s.LinkedFiles)
	}
	if s.LinkRecords > 0 && s.LinkRecords == s.Records {
		fmt.Fprintf(w, "dedupe ratio   - (every record is held by links), compression %.2fx\n", s.Compression)
	} else {
		note := "logical / stored"
		if s.LinkRecords > 0 {
			note = "logical bytes of chunked records / stored"
		}
		fmt.Fprintf(w, "dedupe ratio   %.2fx (%s), compression %.2fx\n", s.DedupeRatio, note, s.Compression)
	}
	fmt.Fprintf(w, "free space     %s on the store's filesystem\n", bytesStr(s.FreeBytes))
	if c := rep.Capacity; c != nil {
		fmt.Fprintf(w, "in progress    %d capture(s): %s reserved, %s quota-committed (stored + reserved)\n", c.Captures, bytesStr(c.ReservedBytes), bytesStr(c.QuotaCommittedBytes))
		if c.MinFreeBytes > 0 {
			fmt.Fprintf(w, "free floor     %s (smp serve --min-free)\n", bytesStr(c.MinFreeBytes))
		}
		if c.QuotaBytes > 0 {
			fmt.Fprintf(w, "quota          %s per computer (smp serve --quota)\n", bytesStr(c.QuotaBytes))
		}
		if c.MaxStoreBytes > 0 {
			fmt.Fprintf(w, "store limit    %s stored at most (smp serve --max-store-bytes, smp admin limits)\n", bytesStr(c.MaxStoreBytes))
		}
	}
}

// printUsage prints each computer's and each record's cost.
func printUsage(w io.Writer, rep *store.StatsReport) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "\nCOMPUTER\tRECORDS\tLOGICAL\tONLY IT REFERENCES")
	for _, c := range rep.Computers {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.Computer, c.Records, bytesStr(c.Bytes), bytesStr(c.OnlyBytes))
	}
	fmt.Fprintln(tw, "\nRECORD\tCOMPUTER\tLOGICAL\tFREED BY RM + GC")
	for _, rec := range rep.PerRecord {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rec.ID[:12], rec.Computer, bytesStr(rec.Bytes), bytesStr(rec.OnlyBytes))
	}
	return tw.Flush()
}
