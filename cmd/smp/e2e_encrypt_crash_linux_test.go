package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"smp/internal/leaktest"
)

// The conversion rounds of the crash harness (issue 16): smp encrypt is
// SIGKILLed at random points while it converts an unencrypted store with
// sentinel records. After every kill, before anything finishes the job,
// every record restores byte-identical and the store verifies with
// --read-data; the next round runs smp encrypt again on the same store
// (a re-run must finish the job), or, once a run finished, on a fresh
// copy. Every store a run finished is scanned for sentinels (packs, index
// tables, value log, config, keys, TLS key: every file).
//
// SMP_CRASH_ROUNDS sets the rounds (default 2, which CI's -race run
// takes); .ci/run runs 20 without -race in a step of its own:
//
//	SMP_CRASH_ROUNDS=20 go test ./cmd/smp -run TestE2EEncryptCrash -count=1
//
// SMP_CRASH_SEED replays a campaign's delays.

func encryptCrashRounds(t *testing.T) int {
	t.Helper()
	s := os.Getenv("SMP_CRASH_ROUNDS")
	if s == "" {
		return 2
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("SMP_CRASH_ROUNDS=%q: want a positive number", s)
	}
	return n
}

// conversionPhase names how far a conversion got, from what is on disk.
func conversionPhase(t *testing.T, store string) string {
	t.Helper()
	c := readStoreConfig(t, store)
	switch {
	case c.Conversion == "mixed":
		return "mixed"
	case c.Conversion == "done":
		return "done"
	}
	if _, err := os.Stat(filepath.Join(store, "keys.json")); err == nil {
		return "keys written"
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	return "clear"
}

// encryptRun is one smp encrypt on a copy of the fixture's store.
type encryptCopy struct {
	*convertFixture
	runs int // smp encrypt started on it
}

// copyFixture copies the fixture's store, with a user config directory of
// its own (the keys a conversion makes go there by store ID, which every
// copy shares).
func copyFixture(t *testing.T, f *convertFixture) *encryptCopy {
	t.Helper()
	c := *f
	c.store = copyStore(t, f.store, filepath.Join(tmpDir(t), "store"))
	c.cfgDir = tmpDir(t)
	c.env = keyEnv(c.cfgDir)
	return &encryptCopy{convertFixture: &c}
}

// startEncrypt starts smp encrypt on the copy.
func (c *encryptCopy) startEncrypt(t *testing.T) *proc {
	t.Helper()
	c.runs++
	p := &proc{args: []string{"encrypt", "--store", c.store}}
	p.cmd = exec.Command(smpPath(t), p.args...)
	p.cmd.Env = append(os.Environ(), c.env...)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.start = time.Now()
	return p
}

// checkFinished requires what a finished conversion must give: config
// done, every record identical, verify --read-data clean, and no
// sentinel, random block or hash key in any file under the store.
func (c *encryptCopy) checkFinished(t *testing.T, when string) {
	t.Helper()
	if ph := conversionPhase(t, c.store); ph != "done" {
		t.Fatalf("%s: conversion is %q, want done", when, ph)
	}
	c.restoreAll(t, when)
	if r := c.run(t, "verify", "--store", c.store, "--read-data"); r.code != exitOK {
		t.Fatalf("%s: verify --read-data:\n%s", when, r)
	}
	leaktest.CheckNoPlaintext(t, when, c.store, c.sec)
}

// finish runs smp encrypt on a copy left unfinished by kills, which must
// finish the job, and checks the result; it returns 1.
func (c *encryptCopy) finish(t *testing.T) int {
	t.Helper()
	r := c.run(t, "encrypt", "--store", c.store)
	if r.code != exitOK {
		t.Fatalf("re-run after %d killed runs:\n%s", c.runs, r)
	}
	c.checkFinished(t, fmt.Sprintf("re-run after %d killed runs", c.runs))
	return 1
}

// TestE2EEncryptCrash: see the comment at the top of this file.
func TestE2EEncryptCrash(t *testing.T) {
	t.Parallel()
	rounds := encryptCrashRounds(t)
	rng, seed := crashRand(t)
	start := time.Now()
	f := newConvertFixture(t, "--chunk-avg", "64KiB")
	// More records and the smallest packs (1 MiB): many packs to rewrite,
	// so kills land between any two steps of the conversion.
	for i, name := range []string{"carol", "dave"} {
		src := filepath.Join(tmpDir(t), name)
		crashOldTree(t, src, name, uint64(100*(i+1)), rnd(9, 200<<10))
		out := doCaptureEnv(t, f, "pc-"+name, "--root", src, "home")
		f.live[out] = src
	}
	setPackSize(t, f.store, 1<<20)

	ref := copyFixture(t, f)
	p := ref.startEncrypt(t)
	r, _, total := p.wait(t)
	if r.code != exitOK {
		t.Fatalf("uninterrupted encrypt:\n%s", r)
	}
	ref.checkFinished(t, "uninterrupted conversion")
	t.Logf("fixture: %d records, %d bytes of packs; uninterrupted smp encrypt %v", len(f.live), treeBytes(t, filepath.Join(f.store, "packs")), total)

	phases := map[string]int{}
	kills, late, finishedByRerun, fresh := 0, 0, 0, 0
	var cur *encryptCopy
	for round := range rounds {
		// A fresh copy every fourth round too, so that several
		// conversions start from a store in clear and are finished by
		// re-runs.
		if cur == nil || round%4 == 0 || conversionPhase(t, cur.store) == "done" {
			if cur != nil && conversionPhase(t, cur.store) != "done" {
				finishedByRerun += cur.finish(t)
			}
			cur, fresh = copyFixture(t, f), fresh+1
		}
		limit := total
		switch {
		case cur.runs > 0:
			limit = total / 2 // a re-run has less left to do
		case rng.IntN(2) == 0:
			// The keys and config.json are written within the first
			// tens of milliseconds: aim there half of the time.
			limit = min(total, 80*time.Millisecond)
		}
		delay := time.Duration(rng.Float64() * float64(limit))
		point := fmt.Sprintf("round %d (run %d on this copy, kill after %v)", round, cur.runs+1, delay)
		p := cur.startEncrypt(t)
		time.Sleep(delay)
		p.kill()
		r, killed, _ := p.wait(t)
		switch {
		case killed:
			kills++
		case r.code != exitOK:
			t.Fatalf("%s: smp encrypt failed:\n%s", point, r)
		default:
			late++
			if cur.runs > 1 {
				finishedByRerun++
			}
		}
		ph := conversionPhase(t, cur.store)
		phases[ph]++
		// Before anything finishes the job: every record restores.
		cur.restoreAll(t, point+" in phase "+ph)
		if r := cur.run(t, "verify", "--store", cur.store, "--read-data"); r.code != exitOK {
			t.Fatalf("%s: verify --read-data in phase %s:\n%s", point, ph, r)
		}
		if ph == "done" {
			cur.checkFinished(t, point)
		}
	}
	if conversionPhase(t, cur.store) != "done" {
		finishedByRerun += cur.finish(t)
	}
	if kills == 0 {
		t.Errorf("no kill landed while smp encrypt ran")
	}
	t.Logf("RESULT encrypt conversion: seed %d: %d rounds on %d fresh copies: %d SIGKILLs while smp encrypt ran, %d runs finished before the kill; phases found after the kills: %v; %d conversions finished by a re-run after kills; every record restored identical after every round; %.1fs in all",
		seed, rounds, fresh, kills, late, phases, finishedByRerun, time.Since(start).Seconds())
}

// doCaptureEnv captures into the fixture's store and returns the record.
func doCaptureEnv(t *testing.T, f *convertFixture, computer string, args ...string) string {
	t.Helper()
	r := f.run(t, append([]string{"capture", "--store", f.store, "--computer", computer, "--json"}, args...)...)
	var out captureOut
	if r.code != exitOK || json.Unmarshal([]byte(r.stdout), &out) != nil || out.Record == "" {
		t.Fatalf("capture:\n%s", r)
	}
	return out.Record
}

// setPackSize sets config.json's pack_size of an unencrypted store.
func setPackSize(t *testing.T, store string, n int64) {
	t.Helper()
	path := filepath.Join(store, "config.json")
	var m map[string]any
	if err := json.Unmarshal([]byte(readFile(t, path)), &m); err != nil {
		t.Fatal(err)
	}
	m["pack_size"] = n
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
