package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/dustin/go-humanize"

	"smp/cas"
	"smp/store"
)

func runInit(_ context.Context, args []string) error {
	fs := newFlags("init", "--store DIR [--chunk-avg SIZE]")
	storeDir := storeFlag(fs)
	avg := fs.String("chunk-avg", "1MiB", "average chunk size, a power of two from 64KiB to 64MiB")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := needStore(*storeDir); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	n, err := humanize.ParseBytes(*avg)
	if err != nil {
		return usagef("--chunk-avg %q: %v (e.g. 1MiB)", *avg, err)
	}
	params, err := cas.ChunkerParamsForAvg(int(n))
	if err != nil {
		return usagef("--chunk-avg %q: %v", *avg, err)
	}
	dir, err := filepath.Abs(*storeDir)
	if err != nil {
		return err
	}
	cfg, err := store.Init(dir, params)
	if err != nil {
		return err
	}
	fmt.Printf("initialised store %s (id %s, chunks %s average, %s-%s)\n", dir, cfg.StoreID,
		humanize.IBytes(uint64(params.Avg)), humanize.IBytes(uint64(params.Min)), humanize.IBytes(uint64(params.Max)))
	return nil
}
