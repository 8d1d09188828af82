package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"smp/capture"
	"smp/repo"
	"smp/restore"
)

// BenchmarkHardlink measures the hard-link fast path per file, in process
// (no process start, index open or close: the `smp bench run` rows
// hardlink-machine and hardlink-restore include those), next to `cp -al`
// of the same tree: SMP_BENCH_HL_FILES small files (default 20,000), 250 to
// a directory, in profiles of nested directories.
//
//	go test ./bench -run XXX -bench Hardlink -benchtime 3x
//
// Each iteration runs `cp -al` of the tree, a hard-link capture of it into
// a new store on the same filesystem, and a restore of that record into a
// new directory (every file linked into place), and reports each one's
// milliseconds and the ratios to `cp -al` (target: at most 1.5). Nothing is
// deleted before the process ends (see the package comment on ext4's
// recently-deleted inodes).
func BenchmarkHardlink(b *testing.B) {
	b.StopTimer()
	files := 20000
	if s := os.Getenv("SMP_BENCH_HL_FILES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("SMP_BENCH_HL_FILES=%q: want a number of files", s)
		}
		files = n
	}
	root := hardlinkTree(b, files)
	cp, err := exec.LookPath("cp")
	if err != nil {
		b.Skip("no cp")
	}
	var cpT, capT, restT time.Duration
	for i := 0; i < b.N; i++ {
		syscall.Sync()
		start := time.Now()
		b.StartTimer()
		out, err := exec.Command(cp, "-al", filepath.Join(root, "home"), freshDir(b, "cp-al")).CombinedOutput()
		b.StopTimer()
		cpT += time.Since(start)
		if err != nil {
			b.Fatalf("cp -al: %v: %s", err, out)
		}

		dir := freshDir(b, "hl-store")
		initStore(b, dir)
		r, err := repo.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		opts := capture.Options{Computer: "pc", Root: root, Version: "bench", Hardlink: capture.HardlinkAlways, LinkDir: r.LinkDir(), SkipDirs: []string{dir}}
		syscall.Sync()
		start = time.Now()
		b.StartTimer()
		res, err := capture.Run(context.Background(), r, opts)
		b.StopTimer()
		capT += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if res.Record.LinkedFiles != uint64(files) || res.Record.Errors != 0 {
			b.Fatalf("capture linked %d of %d files, %d errors", res.Record.LinkedFiles, files, res.Record.Errors)
		}

		target := freshDir(b, "hl-restore")
		syscall.Sync()
		start = time.Now()
		b.StartTimer()
		rres, err := restore.Run(context.Background(), r, res.Record, restore.Options{Target: target, LinkDir: r.LinkDir()})
		b.StopTimer()
		restT += time.Since(start)
		r.Close()
		if err != nil {
			b.Fatal(err)
		}
		if rres.Errors != 0 || rres.Files != uint64(files) {
			b.Fatalf("restore: %d files, %d errors", rres.Files, rres.Errors)
		}
	}
	n := float64(b.N)
	b.ReportMetric(float64(cpT.Milliseconds())/n, "cp-al-ms")
	b.ReportMetric(float64(capT.Milliseconds())/n, "capture-ms")
	b.ReportMetric(float64(restT.Milliseconds())/n, "restore-ms")
	b.ReportMetric(capT.Seconds()/cpT.Seconds(), "capture/cp-al")
	b.ReportMetric(restT.Seconds()/cpT.Seconds(), "restore/cp-al")
}

// hardlinkTree writes files small files under a new root's home/, in four
// profiles of nested directories of 250 files each.
func hardlinkTree(b *testing.B, files int) string {
	root := freshDir(b, "hl-tree")
	for i := 0; i < files; i++ {
		d := i / 250
		dir := filepath.Join(root, "home", fmt.Sprintf("user%d", d%4), "Documents", fmt.Sprintf("project-%03d", d/4), fmt.Sprintf("part-%d", d%3))
		if i%250 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		data := make([]byte, i%4096)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("note-%05d.txt", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return root
}
