package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"smp/internal/seaweedtest"
	"smp/store"
)

// gcRaceRounds is SMP_GC_RACE_ROUNDS (default 2, which CI's -race run
// takes); .ci/run runs 20 without -race in a step of its own:
//
//	SMP_GC_RACE_ROUNDS=20 go test ./cmd/smp -run TestE2ES3GCRace -count=1
func gcRaceRounds(t *testing.T) int {
	t.Helper()
	s := os.Getenv("SMP_GC_RACE_ROUNDS")
	if s == "" {
		return 2
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("SMP_GC_RACE_ROUNDS=%q: want a positive number", s)
	}
	return n
}

// runBackground runs the smp binary bin (the test's smpPath) in the
// environment env (the test's childEnv and more) from a goroutine other
// than the test's: it returns what happened instead of failing the test.
func runBackground(bin string, env []string, args ...string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	if ee, ok := err.(*exec.ExitError); ok && ee.Exited() {
		r.code, err = ee.ExitCode(), nil
	}
	return r, err
}

// smpJSONEnv is smpJSON with extra environment, exit 0 wanted.
func smpJSONEnv(t *testing.T, env []string, v any, args ...string) {
	t.Helper()
	r := smpWith(t, runOpts{env: env}, args...)
	if r.code != exitOK {
		t.Fatalf("want exit 0\n%s", r)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		t.Fatalf("decode JSON: %v\n%s", err, r)
	}
}

// gcRaceOut is what smp gc --json says of the two-phase deletion.
type gcRaceOut struct {
	Marked   int      `json:"packs_marked"`
	Deleted  int      `json:"packs_deleted"`
	Waiting  int      `json:"packs_waiting"`
	Aborted  int      `json:"uploads_aborted"`
	Problems []string `json:"problems"`
}

// TestE2ES3GCRace: gc through one store handle (cache A, smp gc with a
// 2 s grace) while a second server (smp serve on cache B) captures data
// that dedupes against the chunks gc is about to free, in a loop. Each
// round A captures a file and removes its record, so its chunks are
// garbage; then A runs gc twice, a grace apart (the first condemns their
// packs, the second deletes the ripe ones), while a client captures
// through B, starting at a random moment, a profile holding the same file
// and one of its own. B either reuses the chunks before their pack is
// condemned (and its commit is refused once a mark it could not outlast
// appears: the client is told to run again, and the re-run sends them
// anew), or is told they are not held and sends them. After every round
// smp verify --read-data is clean and the round's record restores
// byte-identical; at the end every record does, through B and through a
// new cache. A stale multipart upload in the store's prefix is aborted.
//
// The grace is short through SMP_TEST_SHORT_GC_GRACE=1, which only tests
// set: a store on S3 otherwise refuses a grace under an hour.
func TestE2ES3GCRace(t *testing.T) {
	t.Parallel()
	srv := seaweedtest.Shared(t)
	setChildEnv(t, "AWS_ACCESS_KEY_ID="+srv.AccessKey, "AWS_SECRET_ACCESS_KEY="+srv.SecretKey, "SMP_CACHE=") // for every smp the test starts
	rounds := gcRaceRounds(t)
	bin := smpPath(t)
	dir := tmpDir(t)
	bucket := srv.NewBucket(t)
	loc := "s3://" + srv.Endpoint + "/" + bucket + "/race"
	cacheA, cacheB := filepath.Join(dir, "cache-a"), filepath.Join(dir, "cache-b")
	s3a := []string{"--store", loc, "--s3-insecure", "--cache", cacheA}
	mustSMP(t, append([]string{"init"}, s3a...)...)

	// A short grace is refused without the test switch.
	if r := smp(t, append([]string{"gc", "--grace", "2s"}, s3a...)...); r.code == exitOK || !strings.Contains(r.stderr, "too short") {
		t.Fatalf("gc --grace 2s on S3 without the test switch: %v", r)
	}
	// A multipart upload some other client left in the store's prefix.
	mc, err := srv.Client()
	if err != nil {
		t.Fatal(err)
	}
	core := minio.Core{Client: mc}
	if _, err := core.NewMultipartUpload(context.Background(), bucket, "race/packs/stray.part", minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}

	tok := strings.TrimSpace(mustSMP(t, "token", "create", "--store", loc, "--s3-insecure", "--cache", cacheB, "--computer", "PCB").stdout)
	b := startServer(t, loc, "--insecure", "--s3-insecure", "--cache", cacheB)
	gcEnv := []string{"SMP_TEST_SHORT_GC_GRACE=1"}
	bgEnv := append(childEnv(t), gcEnv...) // for the gc goroutine
	gcArgs := append([]string{"gc", "--grace", "2s", "--json"}, s3a...)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 18))
	type kept struct{ record, src string }
	var records []kept
	var reused, refused, aborted, deleted int
	for round := range rounds {
		// A: a file whose record is removed at once: its chunks are garbage.
		freed := rnd(uint64(1000+round), 3<<20)
		old := tmpDir(t)
		writeFile(t, filepath.Join(old, "home/alice/freed.bin"), freed, 0o644)
		var c captureOut
		smpJSON(t, exitOK, &c, append([]string{"capture", "--computer", "old", "--root", old, "--user", "alice", "--json"}, s3a...)...)
		mustSMP(t, append([]string{"rm", "--record", c.Record}, s3a...)...)
		time.Sleep(2500 * time.Millisecond) // older than the grace: gc may condemn its packs

		// B's capture of the same file plus one of its own.
		src := tmpDir(t)
		writeFile(t, filepath.Join(src, "home/alice/freed-"+strconv.Itoa(round)+".bin"), freed, 0o644)
		writeFile(t, filepath.Join(src, "home/alice/own-"+strconv.Itoa(round)+".bin"), rnd(uint64(5000+round), 256<<10), 0o644)

		type gcDone struct {
			outs []gcRaceOut
			err  error
		}
		done := make(chan gcDone, 1)
		go func() {
			var d gcDone
			for i := range 2 {
				// The capture starts before, between or after the runs.
				time.Sleep([]time.Duration{1500 * time.Millisecond, 2200 * time.Millisecond}[i])
				r, err := runBackground(bin, bgEnv, gcArgs...)
				if err == nil && r.code != exitOK {
					err = fmt.Errorf("gc exit %d: %s", r.code, r.stderr)
				}
				var out gcRaceOut
				if err == nil {
					err = json.Unmarshal([]byte(r.stdout), &out)
				}
				if err != nil {
					d.err = err
					break
				}
				d.outs = append(d.outs, out)
			}
			done <- d
		}()
		time.Sleep(time.Duration(rng.Int64N(int64(5 * time.Second))))
		var out remoteCaptureOut
		args := []string{"capture", "--store", b.url, "--token", tok, "--computer", "PCB", "--json", "--root", src}
		r := smp(t, args...)
		var d gcDone
		gcEnded := false
		for attempt := 1; r.code != exitOK; attempt++ {
			// Refused because a chunk it reused was condemned meanwhile:
			// run again, it must then send what it lacks and commit. A
			// re-run that overlaps the second gc run may be refused again
			// for the same reason, so after a second refusal the test
			// waits for both gc runs to end: the next run must commit.
			if !strings.Contains(r.stderr, "marked for deletion") {
				t.Fatalf("round %d: capture through B failed otherwise:\n%v", round, r)
			}
			if gcEnded {
				t.Fatalf("round %d: the capture was refused again after both gc runs ended:\n%v", round, r)
			}
			refused++
			if attempt >= 2 {
				d, gcEnded = <-done, true
			}
			r = smp(t, args...)
		}
		if err := json.Unmarshal([]byte(r.stdout), &out); err != nil {
			t.Fatalf("round %d: %v\n%v", round, err, r)
		}
		if out.Held > 0 {
			reused++
		}
		if !gcEnded {
			d = <-done
		}
		if d.err != nil {
			t.Fatalf("round %d: %v", round, d.err)
		}
		for _, o := range d.outs {
			if len(o.Problems) > 0 {
				t.Fatalf("round %d: gc problems: %v", round, o.Problems)
			}
			aborted += o.Aborted
			deleted += o.Deleted
		}
		records = append(records, kept{out.Record, src})

		// No record references a missing chunk, and the round's restores.
		if r := smp(t, append([]string{"verify", "--read-data"}, s3a...)...); r.code != exitOK {
			t.Fatalf("round %d: verify --read-data:\n%v", round, r)
		}
		dst := tmpDir(t)
		restoreJSON(t, exitOK, b.url, "--token", tok, "--computer", "PCB", "--record", out.Record, "--root", dst)
		compareTrees(t, src, dst, compareOpts{})
	}
	// Once B has refreshed after a mark, it answers "not held" for the
	// condemned packs' chunks: the client sends them anew, and gc then
	// deletes the old packs under the new record's feet harmlessly.
	freed := rnd(9999, 2<<20)
	old := tmpDir(t)
	writeFile(t, filepath.Join(old, "home/alice/freed.bin"), freed, 0o644)
	var c captureOut
	smpJSON(t, exitOK, &c, append([]string{"capture", "--computer", "old", "--root", old, "--user", "alice", "--json"}, s3a...)...)
	mustSMP(t, append([]string{"rm", "--record", c.Record}, s3a...)...)
	time.Sleep(2500 * time.Millisecond)
	var marked gcRaceOut
	smpJSONEnv(t, gcEnv, &marked, gcArgs...)
	if marked.Marked == 0 {
		t.Fatalf("gc condemned nothing: %+v", marked)
	}
	time.Sleep(2 * store.S3RefreshEvery)
	src := tmpDir(t)
	writeFile(t, filepath.Join(src, "home/alice/again.bin"), freed, 0o644)
	again := remoteCapture(t, exitOK, b.url, tok, "PCB", "--root", src)
	if again.Held != 0 || again.Uploaded < 2<<20 {
		t.Fatalf("B reused chunks gc condemned: %+v", again)
	}
	records = append(records, kept{again.Record, src})
	time.Sleep(2200 * time.Millisecond)
	var swept gcRaceOut
	smpJSONEnv(t, gcEnv, &swept, gcArgs...)
	if swept.Deleted == 0 {
		t.Fatalf("gc deleted nothing a grace after condemning: %+v", swept)
	}

	t.Logf("%d rounds: B reused chunks in %d, had its commit refused in %d; gc deleted %d packs", rounds, reused, refused, deleted)
	if deleted == 0 {
		t.Errorf("gc deleted no pack in %d rounds", rounds)
	}
	if aborted == 0 {
		t.Errorf("the stale multipart upload was not aborted")
	}
	for u := range mc.ListIncompleteUploads(context.Background(), bucket, "race/", true) {
		t.Errorf("multipart upload left: %+v", u)
	}
	// Every record restores, through B and through a new cache (built
	// from the bucket alone, gc's marks applied).
	cacheC := filepath.Join(dir, "cache-c")
	for _, k := range records {
		dst := tmpDir(t)
		restoreJSON(t, exitOK, b.url, "--token", tok, "--computer", "PCB", "--record", k.record, "--root", dst)
		compareTrees(t, k.src, dst, compareOpts{})
		dstC := tmpDir(t)
		mustSMP(t, "restore", "--store", loc, "--s3-insecure", "--cache", cacheC, "--record", k.record, "--root", dstC)
		compareTrees(t, k.src, dstC, compareOpts{})
	}
	mustSMP(t, "verify", "--store", loc, "--s3-insecure", "--cache", cacheC, "--read-data")
}
