package main

import (
	"context"
	"fmt"
	"os"

	"smp/store"
)

func runIngest(ctx context.Context, args []string) error {
	fs := newFlags("ingest", "--store DIR --record ID [--json]")
	storeDir := storeFlag(fs)
	recordRef := fs.String("record", "", "hard-link record to convert (ID or unique prefix)")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *recordRef == "" {
		return usagef("--record ID is required")
	}
	d, err := store.OpenDir("ingest", *storeDir, false)
	if err != nil {
		return err
	}
	defer d.Close()
	res, err := d.Ingest(ctx, *recordRef)
	if err != nil {
		return err
	}
	old := res.Old
	if *asJSON {
		return printJSON(os.Stdout, map[string]any{"record": res.ID.String(), "replaces": old.ID.String(),
			"ingested_files": res.Ingested, "new_bytes": res.Record.NewBytes, "stored_bytes": res.Record.StoredBytes})
	}
	fmt.Printf("record %s of %s replaced by %s: %d linked files now stored as chunks (%s new, %s stored)\n",
		old.ID.Short(), old.Computer, res.ID.Short(), res.Ingested, bytesStr(res.Record.NewBytes), bytesStr(res.Record.StoredBytes))
	return nil
}
