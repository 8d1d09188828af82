package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/dustin/go-humanize"

	"smp/bench"
	"smp/bench/corpus"
)

const benchArgs = "corpus|run|gc [flags]"

func benchUsage() {
	fmt.Fprintf(os.Stderr, `Usage: smp bench %s

  smp bench corpus --out DIR [--users N] [--size SIZE] [--seed S] [--shape SHAPE] [--mutate] [--json]
      write a generated organisation corpus (DIR/home/userNN), or with
      --mutate apply a deterministic week of changes to one; --shape
      realistic (default: tens of thousands of mostly small files per
      profile) or large-files (a few hundred files of 64 KiB to MiBs)
  smp bench run [--corpus DIR | --users N --size SIZE --seed S --shape SHAPE] [--quick]
                [--rounds N] [--work DIR] [--keep] [--json] [--plot FILE.svg]
      measure capture, restore and incremental re-capture of the corpus with
      this smp binary and with cp -a, tar|zstd, cp -al, restic and borg (when
      installed: bench/install-baselines.sh), each run as child processes;
      capture and restore of every user also on an encrypted store, alternating
      rounds (what encryption costs: medians of wall and CPU), and
      through a store on S3 (a SeaweedFS on loopback that the bench starts
      from the binary .ci/seaweedfs.sh caches; skipped without it); as root
      also with a cold page cache, smp and the baselines, beside the disk's
      floors; the report ends with the issues' criteria (met, not met or
      not measured) and the time each phase took

  smp bench gc [--chunks N] [--work DIR] [--json]
      build a synthetic store of N chunks (half of them garbage) and time
      smp gc on it as a child process: wall, CPU and peak RSS, then a
      second gc with nothing to collect (default 1000000 chunks)

Run 'smp bench corpus --help', 'smp bench run --help' or 'smp bench gc --help' for their flags.
`, benchArgs)
}

func runBench(ctx context.Context, args []string) error {
	if len(args) == 0 {
		benchUsage()
		return usagef("want a subcommand: corpus, run or gc")
	}
	switch args[0] {
	case "corpus":
		return runBenchCorpus(ctx, args[1:])
	case "run":
		return runBenchRun(ctx, args[1:])
	case "gc":
		return runBenchGC(ctx, args[1:])
	case "-h", "--help", "help":
		benchUsage()
		return nil
	}
	return usagef("unknown subcommand %q: want corpus, run or gc (see smp bench --help)", args[0])
}

// sizeFlag parses a byte size such as 96MiB, 2GiB or 1000000.
func sizeFlag(name, value string) (int64, error) {
	n, err := humanize.ParseBytes(value)
	if err != nil || n == 0 || n > 1<<50 {
		return 0, usagef("--%s %q: want a positive size such as 96MiB or 2GiB", name, value)
	}
	return int64(n), nil
}

func runBenchCorpus(ctx context.Context, args []string) error {
	fs := newFlags("bench corpus", "--out DIR [--users N] [--size SIZE] [--seed S] [--shape SHAPE] [--mutate] [--json]")
	out := fs.String("out", "", "corpus directory: profiles go to DIR/home/userNN (required)")
	users := fs.Int("users", 8, "number of users")
	size := fs.String("size", "1GiB", "total bytes of file data across all users")
	seed := fs.Uint64("seed", 1, "generator seed (same seed, same corpus on this machine)")
	shape := fs.String("shape", "realistic", shapeHelp)
	mutate := fs.Bool("mutate", false, "apply a deterministic week of changes to the corpus in DIR instead of generating one")
	asJSON := fs.Bool("json", false, "print the corpus summary as one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *out == "" {
		return usagef("--out DIR is required")
	}
	start := time.Now()
	var info *corpus.OrgInfo
	var err error
	what := "generated"
	if *mutate {
		what = "mutated"
		if st, serr := os.Stat(*out); serr != nil || !st.IsDir() {
			return usagef("--out %s is not a corpus directory", *out)
		}
		info, err = corpus.MutateOrg(*out, *seed)
	} else {
		if *users < 1 || *users > 999 {
			return usagef("--users %d: want 1 to 999", *users)
		}
		n, serr := sizeFlag("size", *size)
		if serr != nil {
			return serr
		}
		sh, serr := shapeFlag(*shape)
		if serr != nil {
			return serr
		}
		info, err = corpus.GenerateOrg(corpus.OrgOptions{Out: *out, Users: *users, Size: n, Seed: *seed, Shape: sh})
	}
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(os.Stdout, info)
	}
	ratio := ""
	if info.ZstdRatio > 0 {
		ratio = fmt.Sprintf(", zstd ratio %.2f", info.ZstdRatio)
	}
	fmt.Printf("corpus %s %s: %d users, %d files, %s%s in %.1fs\n", info.Root, what, len(info.Users), info.Files,
		bytesStr(uint64(max(info.Bytes, 0))), ratio, time.Since(start).Seconds())
	return nil
}

const shapeHelp = "generated corpus: realistic (tens of thousands of files per profile, median a few KiB, deep trees, many dot-files, a long tail of large files) or large-files (a few hundred files per profile, most 64 KiB to a few MiB)"

// shapeFlag parses --shape.
func shapeFlag(value string) (corpus.Shape, error) {
	sh, err := corpus.ParseShape(value)
	if err != nil {
		return 0, usagef("--shape %q: want realistic or large-files", value)
	}
	return sh, nil
}

func runBenchRun(ctx context.Context, args []string) error {
	fs := newFlags("bench run", "[--corpus DIR | --users N --size SIZE --seed S --shape SHAPE] [--quick] [--rounds N] [--work DIR] [--keep] [--json] [--plot FILE.svg]")
	corpus := fs.String("corpus", "", "use this corpus (DIR/home/USER) instead of generating one; the incremental scenario mutates it in place")
	users := fs.Int("users", 8, "generated corpus: number of users")
	size := fs.String("size", "1GiB", "generated corpus: total bytes of file data")
	seed := fs.Uint64("seed", 1, "generator and mutation seed")
	shape := fs.String("shape", "realistic", shapeHelp)
	quick := fs.Bool("quick", false, "small corpus (3 users, 32MiB, 1 round unless --users/--size/--rounds say otherwise), for a run of about a minute")
	work := fs.String("work", "", "put the scratch directory (stores, copies, generated corpus) under DIR, on the disk to measure (default: the temp dir); it is removed at the end")
	keep := fs.Bool("keep", false, "keep the scratch directory")
	asJSON := fs.Bool("json", false, "print the report as one JSON object instead of a markdown table")
	plot := fs.String("plot", "", "also write a bar chart of throughput and stored bytes to FILE.svg")
	rounds := fs.Int("rounds", 5, "run the smp capture, restore and restore-all scenarios, every tool's restore-cold and smp's capture-cold and incremental-cold with their floors N times, capture and restore-all alternating an unencrypted and an encrypted store, the cold ones rotating the tools; their rows are the median rounds")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	if *rounds < 1 || *rounds > 99 {
		return usagef("--rounds %d: want 1 to 99", *rounds)
	}
	if *quick {
		if !fs.Changed("users") {
			*users = 3
		}
		if !fs.Changed("size") {
			*size = "32MiB"
		}
		if !fs.Changed("rounds") {
			*rounds = 1
		}
	}
	if *corpus != "" && (fs.Changed("users") || fs.Changed("size") || fs.Changed("shape")) {
		return usagef("--corpus takes an existing corpus: --users, --size and --shape are for a generated one")
	}
	sh, err := shapeFlag(*shape)
	if err != nil {
		return err
	}
	if *users < 1 || *users > 999 {
		return usagef("--users %d: want 1 to 999", *users)
	}
	n, err := sizeFlag("size", *size)
	if err != nil {
		return err
	}
	if *plot != "" {
		if dir := filepath.Dir(*plot); dir != "" {
			if st, err := os.Stat(dir); err != nil || !st.IsDir() {
				return usagef("--plot %s: directory %s does not exist", *plot, dir)
			}
		}
	}
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding the smp binary: %w", err)
	}
	opts := bench.RunOptions{Bin: bin, Corpus: *corpus, Users: *users, Size: n, Seed: *seed, Shape: sh, Quick: *quick, Work: *work, Keep: *keep, Rounds: *rounds}
	rep, runErr := bench.Run(ctx, opts, os.Stderr)
	if rep == nil {
		return runErr
	}
	if *plot != "" {
		if err := writeSVGFile(*plot, rep); err != nil {
			return errors.Join(runErr, err)
		}
		fmt.Fprintf(os.Stderr, "chart written to %s\n", *plot)
	}
	if *asJSON {
		if err := printJSON(os.Stdout, rep); err != nil {
			return errors.Join(runErr, err)
		}
	} else if err := rep.WriteMarkdown(os.Stdout); err != nil {
		return errors.Join(runErr, err)
	}
	return runErr
}

func writeSVGFile(path string, rep *bench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := rep.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func runBenchGC(ctx context.Context, args []string) error {
	fs := newFlags("bench gc", "[--chunks N] [--work DIR] [--json]")
	chunks := fs.Int("chunks", 1000000, "data chunks in the synthetic store (64 bytes each, half of them garbage)")
	work := fs.String("work", "", "parent of the scratch directory (default: the system temp dir); removed at the end")
	asJSON := fs.Bool("json", false, "print the report as one JSON object")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *chunks < 1000 || *chunks > 100000000 {
		return usagef("--chunks %d: want 1000 to 100000000", *chunks)
	}
	bin, err := os.Executable()
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(*work, "smp-bench-gc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var log io.Writer = os.Stderr
	if *asJSON {
		log = io.Discard
	}
	fmt.Fprintf(log, "building a store of %d chunks in %s\n", *chunks, dir)
	rep, err := bench.RunGCScale(ctx, bin, dir, *chunks, log)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(os.Stdout, rep)
	}
	fmt.Printf("store: %d chunks in %d records, %d removed (built in %.1fs)\n", rep.Chunks, rep.Records, rep.Removed, rep.BuildSeconds)
	fmt.Printf("smp gc: %.1fs wall, %.1fs CPU, peak RSS %.0f MiB: %d blobs removed, %d live, %d packs scanned, %s freed\n",
		rep.GCSeconds, rep.GCCPUSeconds, rep.GCPeakRSSMiB, rep.BlobsRemoved, rep.LiveBlobs, rep.PacksScanned, bytesStr(uint64(max(rep.BytesFreed, 0))))
	fmt.Printf("second gc (nothing to collect): %.1fs, peak RSS %.0f MiB\n", rep.IdleGCSeconds, rep.IdleGCRSSMiB)
	return nil
}
