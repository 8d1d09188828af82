package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"smp/cas"
	"smp/store"
)

// initOptions are the flags of smp init.
type initOptions struct {
	Store, ChunkAvg string
}

func (o *initOptions) AddFlags(fs *pflag.FlagSet) {
	storeDirVar(fs, &o.Store)
	fs.StringVar(&o.ChunkAvg, "chunk-avg", "1MiB", "average chunk size, a power of two from 64KiB to 64MiB")
}

func cmdInit(ctx context.Context, args []string) error {
	var o initOptions
	fs := newFlags("init", "--store DIR [--chunk-avg SIZE]")
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := needStore(o.Store); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return runInit(ctx, &o, os.Stdout)
}

func runInit(_ context.Context, o *initOptions, stdout io.Writer) error {
	if err := needStore(o.Store); err != nil {
		return err
	}
	n, err := humanize.ParseBytes(o.ChunkAvg)
	if err != nil {
		return usagef("--chunk-avg %q: %v (e.g. 1MiB)", o.ChunkAvg, err)
	}
	params, err := cas.ChunkerParamsForAvg(int(n))
	if err != nil {
		return usagef("--chunk-avg %q: %v", o.ChunkAvg, err)
	}
	dir, err := filepath.Abs(o.Store)
	if err != nil {
		return err
	}
	cfg, err := store.Init(dir, params)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "initialised store %s (id %s, chunks %s average, %s-%s)\n", dir, cfg.StoreID,
		humanize.IBytes(uint64(params.Avg)), humanize.IBytes(uint64(params.Min)), humanize.IBytes(uint64(params.Max)))
	return nil
}
