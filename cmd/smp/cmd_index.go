package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"smp/store"
)

// indexOptions are the flags of smp index rebuild.
type indexOptions struct {
	Store string
	JSON  bool
	keyFlags
	S3 s3Flags
}

func (o *indexOptions) AddFlags(fs *pflag.FlagSet) {
	storeLocVar(fs, &o.Store, &o.S3)
	o.keyFlags.AddFlags(fs)
	fs.BoolVar(&o.JSON, "json", false, "print the result as one JSON object")
}

func cmdIndex(ctx context.Context, args []string) error {
	var o indexOptions
	fs := newFlags("index rebuild", "--store DIR [--json]")
	o.AddFlags(fs)
	if len(args) > 0 && isHelpArg(args[0]) {
		// smp index has one subcommand: its help is the command's.
		fs.Usage()
		return pflag.ErrHelp
	}
	if len(args) == 0 || args[0] != "rebuild" {
		return usagef("want: smp index rebuild --store DIR [--json] (see smp index --help)")
	}
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	return runIndexRebuild(ctx, &o, os.Stdout)
}

func runIndexRebuild(_ context.Context, o *indexOptions, stdout io.Writer) error {
	if err := needStore(o.Store); err != nil {
		return err
	}
	rep, err := store.RebuildIndexAt(o.Store, o.S3.opts(), o.unlock())
	if err != nil {
		return err
	}
	if o.JSON {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "rebuilt the index from %d packs (%d blobs): %d records live, %d removed records left out\n",
			rep.Packs, rep.Blobs, rep.Records, rep.Removed)
		for _, s := range rep.DamagedSegments {
			fmt.Fprintf(stdout, "damaged index segment (its packs were read from their trailers): %s\n", s)
		}
		for _, p := range rep.DamagedPacks {
			fmt.Fprintf(stdout, "damaged pack skipped: %s\n", p)
		}
		for _, r := range rep.Incomplete {
			fmt.Fprintf(stdout, "record left out (incomplete): %s\n", r)
		}
		if rep.Duplicates > 0 {
			fmt.Fprintf(stdout, "%d blobs found in several packs: each indexed at a copy that reads back\n", rep.Duplicates)
		}
		for _, u := range rep.Unreadable {
			fmt.Fprintf(stdout, "no copy reads back: %s\n", u)
		}
	}
	if n := len(rep.DamagedPacks) + len(rep.Incomplete) + len(rep.Unreadable); n > 0 {
		return partialError{fmt.Sprintf("index rebuilt with problems: %d damaged packs, %d incomplete records, %d blobs without a readable copy (listed above); run smp verify", len(rep.DamagedPacks), len(rep.Incomplete), len(rep.Unreadable))}
	}
	return nil
}
