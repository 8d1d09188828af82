package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"smp/store"
)

// ingestOptions are the flags of smp ingest.
type ingestOptions struct {
	Store, Record string
	JSON          bool
	keyFlags
	S3 s3Flags
}

func (o *ingestOptions) AddFlags(fs *pflag.FlagSet) {
	storeLocVar(fs, &o.Store, &o.S3)
	o.keyFlags.AddFlags(fs)
	fs.StringVar(&o.Record, "record", "", "hard-link record to convert (ID or unique prefix)")
	fs.BoolVar(&o.JSON, "json", false, "print the result as one JSON object")
}

func cmdIngest(ctx context.Context, args []string) error {
	var o ingestOptions
	fs := newFlags("ingest", "--store DIR --record ID [--json]")
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	return runIngest(ctx, &o, os.Stdout)
}

func runIngest(ctx context.Context, o *ingestOptions, stdout io.Writer) error {
	if o.Record == "" {
		return usagef("--record ID is required")
	}
	if err := needStore(o.Store); err != nil {
		return err
	}
	d, err := store.OpenDir("ingest", o.Store, store.Options{Unlock: o.unlock(), S3: o.S3.opts()})
	if err != nil {
		return err
	}
	defer d.Close()
	res, err := d.Ingest(ctx, o.Record)
	if err != nil {
		return err
	}
	old := res.Old
	if o.JSON {
		return printJSON(stdout, map[string]any{"record": res.ID.String(), "replaces": old.ID.String(),
			"ingested_files": res.Ingested, "new_bytes": res.Record.NewBytes, "stored_bytes": res.Record.StoredBytes})
	}
	fmt.Fprintf(stdout, "record %s of %s replaced by %s: %d linked files now stored as chunks (%s new, %s stored)\n",
		old.ID.Short(), old.Computer, res.ID.Short(), res.Ingested, bytesStr(res.Record.NewBytes), bytesStr(res.Record.StoredBytes))
	return nil
}
