// Package bench measures smp. It owns two things:
//
//   - the organisation benchmark behind `smp bench run`: Run drives the smp
//     binary and the cp -a, tar|zstd, cp -al, restic and borg baselines as child
//     processes on a corpus from smp/bench/corpus and reports a table, JSON
//     and an SVG chart. run.go holds the scenarios in order; tool_smp.go,
//     tool_smp_restore.go (smp's restore rows: the first user, and
//     every user's record on both stores), tool_smp_encrypted.go (the
//     same captures and restores on an encrypted store, in alternating
//     rounds, and what encryption costs), tool_smp_hardlink.go and
//     tool_smp_serve.go (with serve_proc.go, a running `smp serve`)
//     measure smp; cold.go the cold-cache rows (page cache dropped first,
//     as root: smp's capture, restore and incremental, and every
//     baseline's restore of the same profile) and the disk's floors they
//     are compared with (every file read by 4 parallel readers, a walk
//     and lstat of every entry); cold_baseline.go the baselines' cold
//     captures, each into a fresh repository; tool_cp.go, tool_tar.go,
//     tool_restic.go and tool_borg.go one baseline each, on
//     baseline.go's shared steps; child.go times a child process (wall,
//     CPU, peak RSS); disk.go measures what a tool left on disk;
//     verify.go compares a restored tree with the corpus; environment.go
//     finds the tools and prepares the corpus; phases.go times each part
//     of the run in all, to plan a larger one; report.go holds the
//     report, compare.go its ratios to the baselines, criteria.go the
//     issues' criteria checked on them (met, not met, or not measured
//     when a row is missing), table.go and svg.go what is written from
//     it. These files never import capture,
//     restore or repo: they measure the binary, not the library. scale.go
//     (a million files and a sparse file, for TestScale) and gcscale.go
//     (`smp bench gc`, whose synthetic store is built through repo) drive
//     the binary the same way;
//   - the in-process Go benchmarks (*_bench_test.go) against the store's
//     targets.
//
// The in-process benchmarks measure, on a 2-core machine with realistic
// generated data:
//
//	capture of new data                      >= 250 MB/s   BenchmarkCaptureNew
//	capture of data already in the store     >= 600 MB/s   BenchmarkCaptureDuplicate
//	restore                                  >= 400 MB/s   BenchmarkRestore
//	peak RSS of a capture of a 5 GB tree     <= 300 MiB    BenchmarkCaptureRSS
//
// and the per-file path on 10,000 small files (BenchmarkSmallFiles:
// capture into a local store beside the bare open+fstat+read floor).
//
// Everything is a `go test -bench` benchmark, never a timed unit test, so
// `go test ./...` only runs small correctness tests.
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
// The trees come from package smp/bench/corpus (GenerateTree: one
// profile that does not deduplicate against itself), which documents what
// they hold. SMP_BENCH_SEED picks the tree; the same seed on the same
// machine gives the same bytes.
//
// cmd/smpgen writes a tree from the command line, for trying the smp CLI:
//
//	go run ./bench/cmd/smpgen -size 2GiB /tmp/src/home/alice
package bench
