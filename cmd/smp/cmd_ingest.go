package main

import (
	"context"
	"fmt"

	"smp/capture"
)

func runIngest(ctx context.Context, args []string) error {
	fs := newFlags("ingest", "--store DIR --record ID [--json]")
	store := storeFlag(fs)
	recordRef := fs.String("record", "", "hard-link record to convert (ID or unique prefix)")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *recordRef == "" {
		return usagef("--record ID is required")
	}
	r, err := openStore(*store)
	if err != nil {
		return err
	}
	defer r.Close()
	old, err := r.FindRecord(*recordRef, "")
	if err != nil {
		return err
	}
	if old.LinkSet == "" {
		return fmt.Errorf("record %s holds no hard-linked files: nothing to ingest", old.ID.Short())
	}
	res, err := capture.Ingest(ctx, r, old.Record, r.LinkDir())
	if err != nil {
		return fmt.Errorf("ingest record %s: %w (the record and its links are unchanged)", old.ID.Short(), err)
	}
	// The new record is committed: only now may the old one and its links go.
	if err := r.RemoveRecord(old.ID); err != nil {
		return fmt.Errorf("ingested as %s, but removing the old record: %w", res.ID.Short(), err)
	}
	if err := r.RemoveLinks(old.LinkSet); err != nil {
		return fmt.Errorf("ingested as %s, but removing the old links: %w", res.ID.Short(), err)
	}
	if *asJSON {
		return printJSON(map[string]any{"record": res.ID.String(), "replaces": old.ID.String(),
			"ingested_files": res.Ingested, "new_bytes": res.Record.NewBytes, "stored_bytes": res.Record.StoredBytes})
	}
	fmt.Printf("record %s of %s replaced by %s: %d linked files now stored as chunks (%s new, %s stored)\n",
		old.ID.Short(), old.Computer, res.ID.Short(), res.Ingested, bytesStr(res.Record.NewBytes), bytesStr(res.Record.StoredBytes))
	return nil
}
