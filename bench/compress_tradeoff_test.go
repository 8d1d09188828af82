package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dustin/go-humanize"

	"smp/bench/corpus"
	"smp/capture"
	"smp/cas"
	"smp/keys"
	"smp/repo"
)

// BenchmarkCompressionTradeoff measures, in one run, what each compression
// level and average chunk size costs a warm capture and what it stores, on
// the realistic corpus (`smp bench corpus`'s default shape), next to
// restic's and borg's backup of the same corpus (when installed, with
// their defaults), so that the level smp ships with is chosen by the
// trade-off the issue asks for: stored bytes at most 0.95x restic's while
// capture stays at least 2.5x restic's speed.
//
//	SMP_BENCH_SIZE=1GiB go test ./bench -run XXX -bench CompressionTradeoff -benchtime 1x -timeout 60m
//
// Every point captures every user in turn into a fresh encrypted store of
// that chunk size, in process, the corpus read just before; its wall and
// CPU seconds (this process's rusage) cover opening the store, the
// captures and closing it, as `smp capture` does per user. stored-MB is
// the store's pack bytes; the baselines' is du of their repository.
// Environment: SMP_BENCH_SIZE (corpus bytes, default 512 MiB),
// SMP_TRADEOFF_USERS (default 2), SMP_TRADEOFF_LEVELS (default
// "fastest,adaptive,default,better,best"), SMP_TRADEOFF_CHUNKS (default
// "256KiB,512KiB,1MiB"; the levels run at the default chunk size, the
// other sizes at fastest and adaptive), SMP_BENCH_SEED. The table is
// printed at the end.
func BenchmarkCompressionTradeoff(b *testing.B) {
	root, users := tradeoffCorpus(b)
	var rows []tradeoffRow
	add := func(b *testing.B, r tradeoffRow) {
		rows = append(rows, r)
		b.ReportMetric(r.wall.Seconds(), "wall-s")
		b.ReportMetric(r.cpu.Seconds(), "cpu-s")
		b.ReportMetric(float64(r.stored)/1e6, "stored-MB")
	}
	for _, tool := range []string{"restic", "borg"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Logf("%s not installed: no %s row", tool, tool)
			continue
		}
		b.Run(tool, func(b *testing.B) {
			for range b.N {
				add(b, baselineBackup(b, tool, root, users))
			}
		})
	}
	for _, p := range tradeoffPoints(b) {
		b.Run(fmt.Sprintf("chunk=%s/level=%v", humanize.IBytes(uint64(p.avg)), p.level), func(b *testing.B) {
			for range b.N {
				add(b, smpTradeoffCapture(b, root, users, p))
			}
		})
	}
	// On stdout, so that it shows without -v.
	fmt.Print("\n" + tradeoffTable(rows) + "\n")
}

type tradeoffPoint struct {
	avg   int
	level cas.Level
}

type tradeoffRow struct {
	name      string
	wall, cpu time.Duration
	stored    int64
}

// tradeoffPoints is every level at the default chunk size, then the
// other chunk sizes at fastest and adaptive.
func tradeoffPoints(b *testing.B) []tradeoffPoint {
	levels := envList(b, "SMP_TRADEOFF_LEVELS", "fastest,adaptive,default,better,best", func(s string) (cas.Level, error) { return cas.ParseLevel(s) })
	avgs := envList(b, "SMP_TRADEOFF_CHUNKS", "256KiB,512KiB,1MiB", func(s string) (int, error) {
		n, err := humanize.ParseBytes(s)
		if err == nil {
			_, err = cas.ChunkerParamsForAvg(int(n))
		}
		return int(n), err
	})
	var pts []tradeoffPoint
	for _, l := range levels {
		pts = append(pts, tradeoffPoint{avg: cas.DefaultAvgChunkSize, level: l})
	}
	for _, a := range avgs {
		if a == cas.DefaultAvgChunkSize {
			continue
		}
		for _, l := range []cas.Level{cas.LevelFastest, cas.LevelAdaptive} {
			pts = append(pts, tradeoffPoint{avg: a, level: l})
		}
	}
	return pts
}

func envList[T any](b *testing.B, name, def string, parse func(string) (T, error)) []T {
	s := os.Getenv(name)
	if s == "" {
		s = def
	}
	var out []T
	for _, f := range strings.Split(s, ",") {
		v, err := parse(strings.TrimSpace(f))
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		out = append(out, v)
	}
	return out
}

var (
	tradeoffOnce  sync.Once
	tradeoffRoot  string
	tradeoffUsers []string
	tradeoffErr   error
)

// tradeoffCorpus generates the realistic corpus once per process.
func tradeoffCorpus(b *testing.B) (root string, users []string) {
	tradeoffOnce.Do(func() {
		n := 2
		if s := os.Getenv("SMP_TRADEOFF_USERS"); s != "" {
			if _, err := fmt.Sscan(s, &n); err != nil || n < 1 {
				tradeoffErr = fmt.Errorf("SMP_TRADEOFF_USERS=%q: want a positive number", s)
				return
			}
		}
		tradeoffRoot = freshDir(b, "tradeoff-corpus")
		var info *corpus.OrgInfo
		info, tradeoffErr = corpus.GenerateOrg(corpus.OrgOptions{Out: tradeoffRoot, Users: n,
			Size: envSize(b, "SMP_BENCH_SIZE", defaultBenchSize), Seed: benchSeed(b), Shape: corpus.ShapeRealistic})
		if tradeoffErr == nil {
			tradeoffUsers = info.Users
		}
	})
	if tradeoffErr != nil {
		b.Fatal(tradeoffErr)
	}
	return tradeoffRoot, tradeoffUsers
}

// warmTree reads every file under dir, so that the capture that follows
// reads from the page cache.
func warmTree(b *testing.B, dir string) {
	var paths []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			paths = append(paths, p)
		}
		return err
	})
	if err == nil {
		err = readFloor(paths, 4)
	}
	if err != nil {
		b.Fatal(err)
	}
	syscall.Sync()
}

// smpTradeoffCapture captures every user in turn into a new encrypted
// store of p's chunk size at p's level.
func smpTradeoffCapture(b *testing.B, root string, users []string, p tradeoffPoint) tradeoffRow {
	dir := freshDir(b, "tradeoff-store")
	defer os.RemoveAll(dir)
	params, err := cas.ChunkerParamsForAvg(p.avg)
	if err != nil {
		b.Fatal(err)
	}
	var sid [16]byte
	rand.Read(sid[:])
	u, err := keys.Create(hex.EncodeToString(sid[:]))
	if err == nil {
		_, _, err = u.AddKeyFile()
	}
	if err == nil {
		_, err = repo.InitWith(dir, repo.InitOptions{Params: params, Keys: u})
	}
	if err != nil {
		b.Fatal(err)
	}
	open := func() (*repo.Repo, error) { return repo.OpenWith(dir, repo.OpenOptions{Keyring: u.Keyring()}) }
	warmTree(b, filepath.Join(root, "home"))
	b.ResetTimer()
	start, cpu0 := time.Now(), selfCPU()
	for i, user := range users {
		r, err := open()
		if err != nil {
			b.Fatal(err)
		}
		_, err = capture.Run(context.Background(), r, capture.Options{Computer: fmt.Sprintf("pc%02d", i+1), Root: root,
			Paths: []string{"home/" + user}, Version: "bench", Compression: p.level})
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	row := tradeoffRow{name: fmt.Sprintf("smp, chunks %s, level %v", humanize.IBytes(uint64(p.avg)), p.level),
		wall: time.Since(start), cpu: selfCPU() - cpu0}
	b.StopTimer()
	r, err := open()
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	n, err := r.PackBytes()
	if err != nil {
		b.Fatal(err)
	}
	row.stored = int64(n)
	return row
}

// baselineBackup backs every user up in turn into a new restic or borg
// repository with the tool's defaults (encrypted, restic's compression
// auto, borg's lz4), one child per user as `smp bench run` does.
func baselineBackup(b *testing.B, tool, root string, users []string) tradeoffRow {
	dir := freshDir(b, "tradeoff-"+tool)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	defer os.RemoveAll(dir)
	repoDir := filepath.Join(dir, "repo")
	env := append(os.Environ(), "RESTIC_PASSWORD=smp-bench", "RESTIC_CACHE_DIR="+filepath.Join(dir, "cache"),
		"RESTIC_REPOSITORY="+repoDir, "BORG_PASSPHRASE=smp-bench", "BORG_BASE_DIR="+filepath.Join(dir, "home"))
	run := func(args ...string) (wall, cpu time.Duration) {
		cmd := exec.Command(tool, args...)
		cmd.Dir, cmd.Env = root, env
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatalf("%s %s: %v: %s", tool, strings.Join(args, " "), err, stderr.String())
		}
		return time.Since(start), cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if tool == "restic" {
		run("init", "--quiet")
	} else {
		run("init", "--encryption", "repokey", repoDir)
	}
	warmTree(b, filepath.Join(root, "home"))
	b.ResetTimer()
	row := tradeoffRow{name: tool + " (defaults)"}
	for i, user := range users {
		var wall, cpu time.Duration
		if tool == "restic" {
			wall, cpu = run("backup", "--quiet", "--host", fmt.Sprintf("pc%02d", i+1), filepath.Join("home", user))
		} else {
			wall, cpu = run("create", fmt.Sprintf("%s::pc%02d-%s", repoDir, i+1, user), filepath.Join("home", user))
		}
		row.wall, row.cpu = row.wall+wall, row.cpu+cpu
	}
	b.StopTimer()
	row.stored = du(repoDir)
	return row
}

// tradeoffTable is the rows as a markdown table, with each smp row's
// speed and stored bytes relative to restic's when restic ran.
func tradeoffTable(rows []tradeoffRow) string {
	var ref *tradeoffRow
	for i := range rows {
		if strings.HasPrefix(rows[i].name, "restic") {
			ref = &rows[i]
		}
	}
	var s strings.Builder
	s.WriteString("| point | wall s | CPU s | stored MB | speed vs restic (wall) | CPU vs restic | stored vs restic |\n|---|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rows {
		speed, cpu, stored := "-", "-", "-"
		if ref != nil {
			speed = fmt.Sprintf("%.2fx", ref.wall.Seconds()/r.wall.Seconds())
			cpu = fmt.Sprintf("%.2fx", r.cpu.Seconds()/ref.cpu.Seconds())
			stored = fmt.Sprintf("%.3fx", float64(r.stored)/float64(ref.stored))
		}
		fmt.Fprintf(&s, "| %s | %.2f | %.2f | %.1f | %s | %s | %s |\n", r.name, r.wall.Seconds(), r.cpu.Seconds(), float64(r.stored)/1e6, speed, cpu, stored)
	}
	return s.String()
}
