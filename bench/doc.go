// Package bench measures smp: the organisation benchmark behind `smp bench`
// (corpus.go generates and mutates an organisation of user profiles;
// run.go drives the smp binary and the cp -a, tar|zstd, cp -al and restic
// baselines as child processes and reports a table, JSON and an SVG chart,
// svg.go), and the in-process Go benchmarks against the store's targets, on
// a 2-core machine, with realistic generated data:
//
//	capture of new data                      >= 250 MB/s   BenchmarkCaptureNew
//	capture of data already in the store     >= 600 MB/s   BenchmarkCaptureDuplicate
//	restore                                  >= 400 MB/s   BenchmarkRestore
//	peak RSS of a capture of a 5 GB tree     <= 300 MiB    BenchmarkCaptureRSS
//
// Everything is a `go test -bench` benchmark, never a timed unit test, so
// `go test ./...` only runs the generator's small correctness tests.
//
// # Running
//
//	go test ./bench -run XXX -bench 'Capture|Restore' -benchtime 1x -count 3
//	SMP_BENCH_SIZE=2GiB go test ./bench -run XXX -bench 'Capture|Restore' -benchtime 1x -timeout 1h
//	SMP_BENCH_RSS_SIZE=5GiB go test ./bench -run XXX -bench CaptureRSS -benchtime 1x -timeout 2h
//	go test ./bench -run XXX -bench CaptureNew -benchtime 3x -cpuprofile cpu.out
//	go tool pprof -top -tagfocus bench=capture-new bench.test cpu.out
//	go test ./bench -run XXX -bench Limit -count 3        # this machine's ceilings
//
// (-bench . also runs the Limit benchmarks, which want the default
// -benchtime, and skips CaptureRSS and Sweep unless their variables are
// set.) The Go CPU profile shows kernel time only as the system call that
// spent it; `perf record -g` on the test binary shows where in the kernel.
//
// SMP_BENCH_SIZE (default 512MiB) sizes the in-process benchmarks' tree;
// SMP_BENCH_RSS_SIZE (default unset: skipped) BenchmarkCaptureRSS's;
// SMP_BENCH_SEED (default 1) picks the tree; SMP_BENCH_DIR keeps generated
// trees across runs (otherwise they go to a temporary directory removed at
// exit, as stores and restore targets always do). Trees are generated
// outside the timer, once per process. MB/s is 10^6 bytes per second. See
// pipeline_bench_test.go for what each benchmark times and for the extra
// metrics (cpu-util, MB/cpu-s, gc/op), and limits_bench_test.go for the
// machine's limits (BLAKE3, zstd, FastCDC, memcpy, page-cache reads, and
// each pipeline's CPU work alone on one and on all cores).
//
// # Generated trees
//
// GenerateTree(dir, size, seed) writes exactly size bytes of file data. The
// same seed on the same machine gives the same names and bytes (tested by
// TestGenerateDeterministic); different machines have different source
// material, so compare numbers from one machine only. The material is real
// files, read once per process:
//
//   - text (about 40% of the bytes): up to 48 MiB of source code and
//     documentation from $GOROOT/src and /usr/share/doc (files without NUL
//     bytes, thinned evenly across the whole list). A text file is a run of
//     blocks of 8-160 consecutive lines, each from a random line of a random
//     file, one block in three with an identifier renamed throughout and a
//     few digits edited, interleaved with bursts of generated log lines and
//     key = value lines built from the corpus' identifiers;
//   - binary (about 30%): pieces of 4-128 KiB, at random 16-byte-aligned
//     offsets, of the Go toolchain's executables ($GOROOT/pkg/tool/*/*,
//     $GOROOT/bin/*), with an 8-byte word replaced by a pointer-like value
//     every 0.5-4 KiB, as relocated or rebuilt binaries differ;
//   - compressed (about 30%): most small ones are real .gz and .png files
//     from /usr/share copied whole (each used at most once); the rest are
//     multi-member gzip streams (compress/gzip, BestSpeed) of generated
//     text, the last member cut at the planned size.
//
// Because every text block, binary piece and gzip member starts at a random
// place and is shorter than the store's minimum chunk (256 KiB), the tree
// does not deduplicate against itself: a capture of it into an empty store
// stores every byte (BenchmarkCaptureNew checks at least 90%).
//
// Sizes: 8% of the bytes are small files of 1-20 KiB (so most files are
// small: ~4000 of ~4200 files at 512 MiB), up to 30% are large files of
// 50-300 MiB when the tree is at least 256 MiB, and the rest medium files,
// log-uniform from 20 KiB to 16 MiB (at most size/8). Each file's class is
// chosen greedily to keep the classes' byte shares on target. Files go into
// about one directory per 25 files, nested 2-4 deep under names like
// Documents/reports/2024 or .config/build-17/tmp, with extensions that
// name their class (ClassOf). Modification times are fixed (2024-01-01
// plus a minute per file).
//
// MeasureRatio compresses a tree in 1 MiB blocks through cas.Compress, the
// store's own zstd setting (SpeedFastest, stored raw when it saves under
// 3%). Seed 1 gives about 1.7 overall: text ~2.8, binary ~2.3, compressed
// 1.0.
//
// cmd/smpgen writes a tree from the command line, for trying the smp CLI:
//
//	go run ./bench/cmd/smpgen -size 2GiB /tmp/src/home/alice
package bench
