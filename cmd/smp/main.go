// Command smp captures users' files into a deduplicating State Migration
// Point store and restores them on a new or reinstalled system.
//
// Exit status: 0 success; 1 error; 2 bad usage; 3 completed with errors
// (some files were not captured, restored or verified).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"smp/store"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const (
	exitOK      = 0
	exitError   = 1
	exitUsage   = 2
	exitPartial = 3
)

// usageError marks bad command-line input (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// partialError marks an operation that finished but skipped something (exit 3).
type partialError struct{ msg string }

func (p partialError) Error() string { return p.msg }

type command struct {
	name, args, summary string
	run                 func(ctx context.Context, args []string) error
}

var commands = []command{
	{"init", "--store DIR [--chunk-avg SIZE] [--key-file FILE] [--no-encrypt]", "create a new store, encrypted unless --no-encrypt", cmdInit},
	{"capture", "--store DIR --computer NAME [--root R] [--user NAME]... [--exclude GLOB]... [--rules FILE] [PATH...]", "capture files into a state record", cmdCapture},
	{"restore", "--store DIR (--record ID | --computer NAME) [--root T] [--map FROM=TO]... [--include GLOB]... [--exclude GLOB]... [--overwrite never|always|older] [--allow-system]", "restore a record's files", cmdRestore},
	{"rules", rulesArgs, "list the built-in rule sets, or print one as a starting rules file", cmdRules},
	{"records", "--store DIR [--computer NAME]", "list state records", cmdRecords},
	{"files", "--store DIR --record ID", "list the files of a record", cmdFiles},
	{"diff", "--store DIR (REC1 REC2 | --computer NAME)", "list the files added, removed, modified and renamed between two records", cmdDiff},
	{"stats", "--store DIR", "show store size and dedupe figures", cmdStats},
	{"release", "--store DIR --record ID", "mark a record restored: its retention clock starts", cmdRelease},
	{"rm", "--store DIR --record ID", "remove a record (data is freed by gc)", cmdRm},
	{"ingest", "--store DIR --record ID", "turn a hard-link record into a normal deduplicated one", cmdIngest},
	{"gc", gcArgs, "free data that no live record uses", cmdGC},
	{"encrypt", encryptArgs, "convert an unencrypted store to an encrypted one in place", cmdEncrypt},
	{"key", keyArgs, "list, add, remove, rotate and retire the keys of an encrypted store", cmdKey},
	{"index", "rebuild --store DIR [--json]", "recreate the index from the pack files alone", cmdIndex},
	{"verify", "--store DIR [--record ID] [--read-data]", "check that records are complete and chunks intact", cmdVerify},
	{"serve", serveArgs, "serve the store over HTTPS to many computers (the State Migration Point)", cmdServe},
	{"token", tokenArgs, "create, list and revoke the access tokens of a remote server", cmdToken},
	{"associate", associateArgs, "let one computer restore another's records through a remote server", cmdAssociate},
	{"admin", adminArgs, "switch a remote server to restore-only, set the store's capacity limits, or show them", cmdAdmin},
	{"bench", benchArgs, "generate a test corpus; benchmark smp against cp, tar|zstd, restic and borg", runBench},
	{"version", "", "print the version", func(context.Context, []string) error { fmt.Println("smp", version); return nil }},
}

func usage() {
	fmt.Fprintf(os.Stderr, "smp %s: capture and restore user state through a deduplicating store\n\nUsage:\n", version)
	for _, c := range commands {
		fmt.Fprintf(os.Stderr, "  smp %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun 'smp COMMAND --help' for a command's flags. SMP_STORE may replace --store;\nSMP_TOKEN (or --token-file FILE) gives the token of an SMP server.\n")
}

func main() {
	// SMP_TRACE=FILE writes an execution trace of the whole run (go tool
	// trace FILE): where goroutines wait on I/O, syscalls and each other,
	// which a CPU profile does not show.
	if path := os.Getenv("SMP_TRACE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if err := trace.Start(f); err == nil {
				code := run(os.Args[1:])
				trace.Stop()
				f.Close()
				os.Exit(code)
			}
		}
	}
	// SMP_CPUPROFILE=FILE writes a CPU profile of the whole run, for
	// performance work on real trees.
	if path := os.Getenv("SMP_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			if err := pprof.StartCPUProfile(f); err == nil {
				code := run(os.Args[1:])
				pprof.StopCPUProfile()
				f.Close()
				os.Exit(code)
			}
		}
	}
	// SMP_MEMPROFILE=FILE writes an allocation profile (every allocation
	// of 4 KiB or more sampled) at exit, to find where a run's heap goes.
	if path := os.Getenv("SMP_MEMPROFILE"); path != "" {
		runtime.MemProfileRate = 4096
		code := run(os.Args[1:])
		runtime.GC() // the profile holds allocations up to the last collection
		if f, err := os.Create(path); err == nil {
			pprof.Lookup("allocs").WriteTo(f, 0)
			f.Close()
		}
		os.Exit(code)
	}
	// SMP_HEAPPROFILE=FILE writes the in-use heap profile of the largest
	// live heap of the run at exit: what holds a run's peak memory.
	if path := os.Getenv("SMP_HEAPPROFILE"); path != "" {
		p := startPeakHeapProfile(path)
		code := run(os.Args[1:])
		p.stop()
		os.Exit(code)
	}
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	if args[0] == "--version" {
		args[0] = "version"
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		if c.name == "capture" {
			setMemoryLimit()
		}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		err := c.run(ctx, args[1:])
		reportS3Retries(c.name)
		return exitCode(c.name, err)
	}
	fmt.Fprintf(os.Stderr, "smp: unknown command %q: run smp --help for the list\n", args[0])
	return exitUsage
}

// clientMemoryLimit is the soft heap limit of capture, which runs on every
// migrated machine. Its live heap is bounded by design (pipelines of fixed
// size, one directory's entries at a time), but between collections the
// garbage of a long run, mostly Badger's compaction buffers on a store of
// many small files, let the heap grow to twice that: a 300,000-file
// capture peaked at 245 MiB RSS, 172 MiB with this limit and the same
// time; a 600 MiB capture of large files was unchanged (about 115 MiB).
// Restore does not get it: with it, restoring 300,000 small files took
// 105 s instead of 60 s in one measurement (most of it system time), with
// the heap far below the limit; not understood, so not risked. Admin
// commands and the server keep Go's default; GOMEMLIMIT overrides it.
const clientMemoryLimit = 192 << 20

// dirCaptureMemoryLimit is the soft limit of a capture into a store
// directory (setCaptureMemoryLimit), above its live heap with the
// defaults: the chunker buffers (capture.Options.ChunkBuffers of 5 MiB
// and a small one per file worker), the chunk copies and compressed
// chunks on their way to a pack, Badger's block cache and memtable, the
// zstd encoders and pack buffers; the process's RSS adds the file-backed
// pages of the binary and the index tables to it. Without
// a limit Go lets the heap reach twice the live heap, and unused pages
// linger until the scavenger returns them; under it, most of the heap is
// chunk bytes, which a collection does not scan, so collecting more often
// costs little (figures: docs/BENCHMARKS.md, "Capture memory"). A capture
// through an SMP holds many small chunk copies while their offers travel,
// and one to a bucket holds the packs it uploads, so they keep
// clientMemoryLimit.
const dirCaptureMemoryLimit = 56 << 20

func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(clientMemoryLimit)
	}
}

// setCaptureMemoryLimit lowers the limit of a capture into the store
// directory location to dirCaptureMemoryLimit, unless GOMEMLIMIT set one,
// and keeps it above the live heap (followLiveHeap).
func setCaptureMemoryLimit(location string) {
	if os.Getenv("GOMEMLIMIT") == "" && store.IsDir(location) {
		debug.SetMemoryLimit(dirCaptureMemoryLimit)
		go followLiveHeap(dirCaptureMemoryLimit)
	}
}

// followLiveHeap raises the soft limit whenever the live heap comes
// within a third of it, or the collector took more than gcShareRaise of
// the process's CPU over the last second: the limit is there to bound
// garbage, and a live heap near it (a store whose index work needs more,
// a directory of very many entries, the runtime's own memory on top of
// the heap) would have the collector run back to back, up to half the
// CPU. The limit is never lowered; the process ends with the capture.
func followLiveHeap(limit int64) {
	samples := []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/cpu/classes/gc/total:cpu-seconds"},
		{Name: "/cpu/classes/total:cpu-seconds"},
	}
	var lastGC, lastTotal float64
	for i := 0; ; i++ {
		time.Sleep(200 * time.Millisecond)
		metrics.Read(samples)
		gcShare := -1.0
		if i%5 == 4 { // CPU shares over a second: a single tick is too coarse
			gc, total := samples[1].Value.Float64(), samples[2].Value.Float64()
			if total > lastTotal {
				gcShare = (gc - lastGC) / (total - lastTotal)
			}
			lastGC, lastTotal = gc, total
		}
		if l := raisedLimit(limit, int64(samples[0].Value.Uint64()), gcShare); l != limit {
			limit = l
			debug.SetMemoryLimit(limit)
		}
	}
}

// gcShareRaise is the collector's share of CPU above which followLiveHeap
// raises the limit although the live heap is under it.
const gcShareRaise = 0.3

// raisedLimit is the soft limit for a live heap of live bytes under limit,
// with the collector's recent share of CPU gcShare (negative: not
// measured): limit, or half again the live heap once that passes it (a
// collection then comes after at least half the live heap of new
// allocations, at most twice as often as Go's default pacing), or a
// quarter more than limit while the collector takes more than
// gcShareRaise of the CPU.
func raisedLimit(limit, live int64, gcShare float64) int64 {
	switch {
	case live+live/2 > limit:
		return live + live/2
	case gcShare > gcShareRaise:
		return limit / 4 * 5
	}
	return limit
}

func exitCode(name string, err error) int {
	var u usageError
	var su *store.UsageError
	var p partialError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, pflag.ErrHelp):
		return exitOK
	case errors.As(err, &u) || errors.As(err, &su):
		fmt.Fprintf(os.Stderr, "smp %s: %v\n", name, err)
		return exitUsage
	case errors.As(err, &p):
		fmt.Fprintf(os.Stderr, "smp %s: %v\n", name, err)
		return exitPartial
	case errors.Is(err, context.Canceled):
		fmt.Fprintf(os.Stderr, "smp %s: interrupted; nothing partial was committed\n", name)
		return exitError
	}
	fmt.Fprintf(os.Stderr, "smp %s: %v\n", name, err)
	return exitError
}

// reportS3Retries prints, when requests to an S3 object store had to be
// retried, one line saying how often, why and for how long: an operator
// sees an ailing object store before it fails a command.
func reportS3Retries(name string) {
	if st := store.S3Retries(); st.Total() > 0 || st.TotalGaveUp() > 0 {
		fmt.Fprintf(os.Stderr, "smp %s: the S3 object store needed %v\n", name, st)
	}
}

// isHelpArg reports whether a command's first argument asks for its help.
func isHelpArg(arg string) bool { return arg == "-h" || arg == "--help" || arg == "help" }

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name, args string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SortFlags = false
	fs.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: smp %s %s\n\nFlags:\n%s", name, args, fs.FlagUsages())
	}
	return fs
}

// parse parses flags, mapping pflag errors to usage errors.
func parse(fs *pflag.FlagSet, args []string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return err
		}
		return usagef("%v (see smp %s --help)", err, fs.Name())
	}
	if f := fs.Lookup("store"); f != nil && f.Value.String() != "" {
		// Every command that takes --store parses its flags here, so this
		// is the one place a store location is checked before anything
		// opens it. Commands that can reach an SMP register --token, and
		// those that work on a store on S3 --s3-insecure.
		if store.IsS3(f.Value.String()) && fs.Lookup("s3-insecure") == nil {
			return usagef("--store %s: smp %s does not work on a store on S3 yet: give a store directory", f.Value.String(), fs.Name())
		}
		if fs.Lookup("token") != nil {
			return store.CheckLocation(f.Value.String())
		}
		return store.CheckDir(fs.Name(), f.Value.String())
	}
	return nil
}

// storeDirVar adds --store DIR, defaulting to $SMP_STORE, for the
// commands that work on a store directory only.
func storeDirVar(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, "store", os.Getenv("SMP_STORE"), "store directory (or $SMP_STORE)")
}

// storeLocVar registers --store for the commands that take a store
// directory or a store on S3, and the flags of S3 (s3Flags).
func storeLocVar(fs *pflag.FlagSet, p *string, s3 *s3Flags) {
	fs.StringVar(p, "store", os.Getenv("SMP_STORE"), "store directory or s3://ENDPOINT/BUCKET/PREFIX (or $SMP_STORE)")
	s3.AddFlags(fs)
}

func needStore(dir string) error {
	if dir == "" {
		return usagef("--store DIR is required (or set SMP_STORE)")
	}
	return nil
}
