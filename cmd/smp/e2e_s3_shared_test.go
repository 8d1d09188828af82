package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"smp/cas"
	"smp/internal/seaweedtest"
)

// runQuiet runs the smp binary bin (the test's smpPath) in the
// environment env (the test's childEnv) without touching t, for
// goroutines (which must not call t.Fatal).
func runQuiet(bin string, env []string, args ...string) result {
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if err != nil {
		r.code = -1
		if e, ok := err.(*exec.ExitError); ok {
			r.code = e.ExitCode()
		}
	}
	return r
}

// dataCopies counts, for every data chunk in the packs under prefix of an
// unencrypted store's bucket, the packs that hold it.
func dataCopies(t *testing.T, cl *minio.Client, bucket, prefix string) map[cas.ID]int {
	t.Helper()
	out := map[cas.ID]int{}
	for _, k := range s3Keys(t, cl, bucket, prefix+"packs/") {
		obj, err := cl.GetObject(context.Background(), bucket, k, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if _, err := b.ReadFrom(obj); err != nil {
			t.Fatal(err)
		}
		obj.Close()
		entries, _, err := cas.ReadTrailer(bytes.NewReader(b.Bytes()), int64(b.Len()))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		for _, e := range entries {
			if e.Type == cas.BlobData {
				out[e.ID]++
			}
		}
	}
	return out
}

// copyStats returns the most copies of one chunk and how many chunks have
// more than one.
func copyStats(c map[cas.ID]int) (most, duplicated int) {
	for _, n := range c {
		most = max(most, n)
		if n > 1 {
			duplicated++
		}
	}
	return most, duplicated
}

// TestE2ES3EightClients is the first "must be shown" end to end
// on a real SeaweedFS: two smp serve share one store on S3 (each with its
// own cache directory), and 8 clients capture overlapping profiles (4 MiB
// alike in each, 512 KiB of their own), half through each server.
// Captured at once (closer than the visibility bound), a shared chunk is
// stored at most once per server: no chunk is in more than two packs.
// Then one client captures new shared files through A; once B lists its
// record (within the bound: store.S3RefreshEvery, 2 s, plus slack), the 7
// others capture them through both servers and send only their own
// files: the new chunks are stored once, and no chunk gained a copy.
// Both servers list all 16 records; every record
// restores byte-identical through either server, and verify
// --read-data of the bucket is clean. Then gc, two runs a grace apart
// while both servers run, leaves every chunk stored once, and every
// record still verifies. The store is unencrypted so that the test reads
// the pack trailers to count copies.
func TestE2ES3EightClients(t *testing.T) {
	t.Parallel()
	if raceEnabled() {
		// .ci/run runs it without -race in a step of its own, beside the
		// -race run: 8 clients, 2 servers and 32 restores at once would
		// only slow that run down.
		t.Skip("runs without -race, in its own .ci/run step")
	}
	srv := seaweedtest.Shared(t)
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "SMP_CACHE=") // for every smp the test starts
	bin, env := smpPath(t), childEnv(t)
	cl, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	dir := tmpDir(t)
	bucket := srv.NewBucket(t)
	loc := "s3://" + srv.Endpoint + "/" + bucket + "/shared"
	caches := []string{filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")}
	mustSMP(t, "init", "--store", loc, "--s3-insecure", "--cache", caches[0], "--no-encrypt")
	const clients = 8
	pcs := make([]string, clients)
	tokens := make([][2]string, clients) // per computer: its token on A, on B
	for i := range clients {
		pcs[i] = fmt.Sprintf("PC%02d", i)
		for s, cache := range caches {
			r := mustSMP(t, "token", "create", "--store", loc, "--s3-insecure", "--cache", cache, "--computer", pcs[i])
			tokens[i][s] = strings.TrimSpace(r.stdout)
		}
	}
	servers := [2]*testServer{}
	for s, cache := range caches {
		servers[s] = startServer(t, loc, "--insecure", "--s3-insecure", "--cache", cache)
	}
	// Client i captures through server i%2.
	profile := func(sharedSeed, ownSeed uint64) []string {
		roots := make([]string, clients)
		for i := range clients {
			roots[i] = tmpDir(t)
			serveProfile(t, roots[i], sharedSeed, 4)
			writeFile(t, filepath.Join(roots[i], "home", "alice", "own.bin"), rnd(ownSeed+uint64(i), 512<<10), 0o644)
		}
		return roots
	}
	capture := func(i int, root string) result {
		return runQuiet(bin, env, "capture", "--store", servers[i%2].url, "--token", tokens[i][i%2], "--computer", pcs[i], "--root", root, "--json")
	}
	captureAll := func(which []int, roots []string) map[int]remoteCaptureOut {
		results := make([]result, clients)
		var wg sync.WaitGroup
		for _, i := range which {
			wg.Go(func() { results[i] = capture(i, roots[i]) })
		}
		wg.Wait()
		outs := map[int]remoteCaptureOut{}
		for _, i := range which {
			var out remoteCaptureOut
			if results[i].code != exitOK || json.Unmarshal([]byte(results[i].stdout), &out) != nil {
				t.Fatalf("capture of %s:\n%v", pcs[i], results[i])
			}
			outs[i] = out
		}
		return outs
	}
	all := []int{0, 1, 2, 3, 4, 5, 6, 7}

	// Round 1: all at once.
	roots1 := profile(500, 1000)
	round1 := captureAll(all, roots1)
	most, dup1 := copyStats(dataCopies(t, cl, bucket, "shared/"))
	t.Logf("round 1, 8 captures at once: %d chunks stored twice (once per server), at most %d copies of one", dup1, most)
	if most > 2 {
		t.Fatalf("a chunk is in %d packs after captures through 2 servers: want at most one copy per server", most)
	}

	// Round 2: PC00 first, through A; the others once B lists its record.
	roots2 := profile(600, 2000)
	first := captureAll([]int{0}, roots2)[0]
	committed := time.Now()
	for {
		var recs recordsOut
		smpJSON(t, exitOK, &recs, "records", "--store", servers[1].url, "--token", tokens[0][1], "--json")
		if slices.Contains(recs.ids(), first.Record) {
			break
		}
		if time.Since(committed) > 20*time.Second {
			t.Fatalf("B does not list A's record %s after 20 s", first.Record)
		}
		time.Sleep(100 * time.Millisecond)
	}
	seen := time.Since(committed)
	t.Logf("PC00's record through A listed on B after %v", seen)
	if seen > 8*time.Second {
		t.Errorf("A's record took %v to be listed on B; the bound is 2 s", seen)
	}
	round2 := captureAll(all[1:], roots2)
	round2[0] = first
	// Both servers list every record (the bound itself is timed above:
	// these 16 checks, one smp process each, take longer than it under
	// -race).
	done := time.Now()
	for s := range servers {
		for i := range clients {
			for {
				var recs recordsOut
				smpJSON(t, exitOK, &recs, "records", "--store", servers[s].url, "--token", tokens[i][s], "--json")
				if ids := recs.ids(); slices.Contains(ids, round1[i].Record) && slices.Contains(ids, round2[i].Record) {
					break
				}
				if time.Since(done) > 2*time.Minute {
					t.Fatalf("server %d does not list both records of %s 2 minutes after the captures", s, pcs[i])
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
	}
	t.Logf("every record listed on both servers, checked in %v after the last capture", time.Since(done))
	copies := dataCopies(t, cl, bucket, "shared/")
	most, dup2 := copyStats(copies)
	t.Logf("round 2, captures apart: %d chunks in all, %d stored twice, at most %d copies of one", len(copies), dup2, most)
	if most > 2 || dup2 != dup1 {
		t.Fatalf("after round 2: at most %d copies of a chunk, %d chunks duplicated (%d before): want the new shared chunks stored once", most, dup2, dup1)
	}

	// Every record restores byte-identical through either server.
	type job struct {
		i, server int
		rec, src  string
		dst       string
	}
	var jobs []job
	for i := range clients {
		for s := range servers {
			jobs = append(jobs, job{i, s, round1[i].Record, roots1[i], tmpDir(t)}, job{i, s, round2[i].Record, roots2[i], tmpDir(t)})
		}
	}
	results := make([]result, len(jobs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for n, j := range jobs {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			results[n] = runQuiet(bin, env, "restore", "--store", servers[j.server].url, "--token", tokens[j.i][j.server], "--record", j.rec, "--root", j.dst, "--json")
		})
	}
	wg.Wait()
	for n, j := range jobs {
		if results[n].code != exitOK {
			t.Fatalf("restore of %s's record %s through server %d:\n%v\nserver log:\n%s", pcs[j.i], j.rec, j.server, results[n], servers[j.server].logText())
		}
		compareTrees(t, j.src, j.dst, compareOpts{})
	}
	mustSMP(t, "verify", "--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "cache-c"), "--read-data")

	// Each server indexed the other's packs from its index segments.
	for s, srv := range servers {
		packs, fromSegments := refreshTotals(srv)
		t.Logf("server %d: refreshes indexed %d packs, %d from index segments", s, packs, fromSegments)
		if packs == 0 || fromSegments != packs {
			t.Errorf("server %d indexed %d packs, %d from index segments: want all from segments", s, packs, fromSegments)
		}
	}

	// gc: the first run condemns the packs holding a second copy of a
	// chunk (garbage where the index locates the chunk elsewhere) after
	// copying their live blobs; the next, a grace later, deletes them.
	// The grace is short through SMP_TEST_SHORT_GC_GRACE=1 (tests only).
	gcArgs := []string{"gc", "--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "cache-c"), "--grace", "2s", "--repack-below", "1", "--json"}
	for run := 1; ; run++ {
		time.Sleep(2500 * time.Millisecond) // every pack older than the grace
		if r, err := runBackground(bin, append(env, "SMP_TEST_SHORT_GC_GRACE=1"), gcArgs...); err != nil || r.code != exitOK {
			t.Fatalf("gc: %v\n%v", err, r)
		}
		copies = dataCopies(t, cl, bucket, "shared/")
		most, dup := copyStats(copies)
		if most == 1 && dup == 0 {
			t.Logf("after %d gc runs: %d chunks, each stored once", run, len(copies))
			break
		}
		if run == 6 {
			t.Fatalf("after %d gc runs: at most %d copies of a chunk, %d chunks duplicated: want every chunk once", run, most, dup)
		}
	}
	mustSMP(t, "verify", "--store", loc, "--s3-insecure", "--cache", filepath.Join(dir, "cache-c"), "--read-data")
}
