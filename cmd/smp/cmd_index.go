package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"smp/store"
)

func runIndex(_ context.Context, args []string) error {
	if len(args) == 0 || args[0] != "rebuild" {
		return usagef("want: smp index rebuild --store DIR [--json]")
	}
	fs := newFlags("index rebuild", "--store DIR [--json]")
	storeDir := storeFlag(fs)
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if err := needStore(*storeDir); err != nil {
		return err
	}
	rep, err := store.RebuildIndex(*storeDir)
	if err != nil {
		return err
	}
	if *asJSON {
		if err := printJSON(os.Stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Printf("rebuilt the index from %d packs (%d blobs): %d records live, %d removed records left out\n",
			rep.Packs, rep.Blobs, rep.Records, rep.Removed)
		for _, p := range rep.DamagedPacks {
			fmt.Printf("damaged pack skipped: %s\n", p)
		}
		for _, r := range rep.Incomplete {
			fmt.Printf("record left out (incomplete): %s\n", r)
		}
		if rep.Duplicates > 0 {
			fmt.Printf("%d blobs found in several packs: each indexed at a copy that reads back\n", rep.Duplicates)
		}
		for _, u := range rep.Unreadable {
			fmt.Printf("no copy reads back: %s\n", u)
		}
	}
	if n := len(rep.DamagedPacks) + len(rep.Incomplete) + len(rep.Unreadable); n > 0 {
		return partialError{fmt.Sprintf("index rebuilt with problems: %s", strings.TrimSpace(fmt.Sprintf("%d damaged packs, %d incomplete records, %d blobs without a readable copy (listed above); run smp verify", len(rep.DamagedPacks), len(rep.Incomplete), len(rep.Unreadable))))}
	}
	return nil
}
