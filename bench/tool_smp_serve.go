package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dustin/go-humanize"
)

// serveClients is the number of concurrent clients of ScenarioServeLoad.
const serveClients = 16

// smpServeScenarios measures capture through `smp serve`: every user in
// turn (ScenarioServe), then serveClients clients at once on overlapping
// users (ScenarioServeLoad), verified by restores through the server and
// by the store's chunk count. A build without serve gives rows that say
// so; smp failing fails the run.
func (r *runner) smpServeScenarios(ctx context.Context) error {
	if _, err := r.combined(ctx, r.opts.Bin, "serve", "--help"); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		for _, sc := range []string{ScenarioServe, ScenarioServeLoad} {
			r.add(Row{Tool: ToolSMP, Scenario: sc, Status: StatusUnavailable, Note: "not available in this build (no smp serve)"})
		}
		return nil
	}
	r.note("serve: a fresh store served by `smp serve --insecure` on 127.0.0.1, one client token per computer; the captures are the capture scenario's (after the incremental scenario's changes to the corpus), sent through the server. CPU s adds the server's own CPU time (its rusage after SIGTERM) to the clients'; peak RSS is the largest client's, the server's is in the note")
	r.note("serve-16: another fresh store and server; %d capture clients run at once, client i capturing user (i mod users) as computer loadNN with its own token, so several computers send the same data concurrently. Wall is first start to last finish, MB/s the aggregate of all %d; every record is then restored through the server (restarted, not timed) and compared byte for byte with the corpus, and smp stats must show the serve scenario's chunk set", serveClients, serveClients)
	// Every serve store is a copy of one new store: an encrypted store's
	// chunk boundaries are keyed by its own secret, so only stores with
	// the same keys cut the same chunks, as serve-16's check requires.
	tmpl := filepath.Join(r.work, "smp-serve-template")
	if _, err := r.output(ctx, r.opts.Bin, initArgs(tmpl, true)...); err != nil {
		return fmt.Errorf("smp init: %w", err)
	}
	r.serveTemplate = tmpl
	defer func() {
		removeAll(tmpl)
		r.serveTemplate = ""
	}()
	seq, err := r.smpServe(ctx)
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioServeLoad, Status: StatusSkipped, Note: "the serve scenario failed"})
		return fmt.Errorf("smp capture through smp serve: %w", err)
	}
	if err := r.smpServeLoad(ctx, seq); err != nil {
		return fmt.Errorf("smp serve with %d concurrent clients: %w", serveClients, err)
	}
	if err := r.smpServeSplit(ctx); err != nil {
		return fmt.Errorf("smp serve, client and server on separate CPUs: %w", err)
	}
	return nil
}

// smpServeSplit measures what the serve scenario cannot on a small host.
// There the client and the server share the host's CPUs, so the server's
// work (decompressing and re-hashing every upload, writing packs) is taken
// from the client's. Here, as on two machines, the server runs on one CPU
// and the client on another; the baseline is the same captures into a
// local store by smp alone on the client's CPU.
func (r *runner) smpServeSplit(ctx context.Context) error {
	clientCPU, serverCPU, ok := twoCPUs()
	if !ok || r.tools["taskset"] == "" {
		for _, sc := range []string{ScenarioCapture1CPU, ScenarioServeSplit} {
			r.add(Row{Tool: ToolSMP, Scenario: sc, Status: StatusSkipped, Note: "needs two CPUs and taskset"})
		}
		return nil
	}
	r.note("capture-1cpu and serve-split: the capture scenario's captures (after the incremental scenario's changes) with smp pinned by taskset to CPU %s, into a fresh local store, then through `smp serve --insecure` on 127.0.0.1 pinned to CPU %s (client and server on separate CPUs, as on two machines; serve-split's CPU s includes the server's)", clientCPU, serverCPU)
	local := filepath.Join(r.work, "smp-1cpu-store")
	defer removeAll(local)
	if _, err := r.output(ctx, r.opts.Bin, initArgs(local, true)...); err != nil {
		return err
	}
	la, _, err := r.smpCaptureEachOn(ctx, clientCPU, local, func(int) []string { return r.chunked() })
	if err != nil {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioCapture1CPU, Status: StatusFailed, Note: err.Error()})
		return err
	}
	removeAll(local)
	store := filepath.Join(r.work, "smp-split-store")
	defer removeAll(store)
	fail := func(err error) error {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioServeSplit, Status: StatusFailed, Note: err.Error()})
		return err
	}
	srv, tokens, err := r.freshServer(ctx, serverCPU, store, r.computers)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	ra, outs, err := r.smpCaptureEachOn(ctx, clientCPU, srv.url, func(i int) []string { return []string{"--token", tokens[i]} })
	if err != nil {
		return fail(srv.clientError(err))
	}
	sc, err := srv.stop()
	if err != nil {
		return fail(err)
	}
	var logical int64
	for _, o := range outs {
		logical += o.Bytes
	}
	lrow := la.row(ToolSMP, ScenarioCapture1CPU, logical)
	lrow.Note = "local store, smp on CPU " + clientCPU
	r.add(lrow)
	row := ra.row(ToolSMP, ScenarioServeSplit, logical)
	row.CPUSeconds += sc.cpu.Seconds()
	row.Note = fmt.Sprintf("client on CPU %s, smp serve on CPU %s", clientCPU, serverCPU)
	if lrow.MBps > 0 {
		row.Note += fmt.Sprintf(": %.0f%% of capture-1cpu's throughput", 100*row.MBps/lrow.MBps)
	}
	row.Note += fmt.Sprintf("; server CPU %.1fs (included), peak RSS %.0f MiB", sc.cpu.Seconds(), kibToMiB(sc.maxRSS))
	r.add(row)
	return nil
}

// smpServe captures every user in turn through a server on a fresh store
// and returns that store's stats (taken after the server stopped).
func (r *runner) smpServe(ctx context.Context) (smpStatsOut, error) {
	store := filepath.Join(r.work, "smp-serve-store")
	defer removeAll(store)
	fail := func(err error) (smpStatsOut, error) {
		r.add(Row{Tool: ToolSMP, Scenario: ScenarioServe, Status: StatusFailed, Note: err.Error()})
		return smpStatsOut{}, err
	}
	srv, tokens, err := r.freshServer(ctx, "", store, r.computers)
	if err != nil {
		return fail(err)
	}
	defer srv.stop()
	a, outs, err := r.smpCaptureEach(ctx, srv.url, func(i int) []string { return []string{"--token", tokens[i]} })
	if err != nil {
		return fail(srv.clientError(err))
	}
	sc, err := srv.stop()
	if err != nil {
		return fail(err)
	}
	st, err := r.smpStats(ctx, store)
	if err != nil {
		return fail(fmt.Errorf("smp stats: %w", err))
	}
	var logical, sent int64
	for _, o := range outs {
		logical += o.Bytes
		sent += o.UploadedBytes
	}
	row := a.row(ToolSMP, ScenarioServe, logical)
	row.CPUSeconds += sc.cpu.Seconds()
	row.StoredBytes = st.StoredBytes
	row.DiskBytes = du(store)
	row.DedupeRatio = ratio(logical, st.StoredBytes)
	row.Note = "through smp serve on loopback"
	if local, ok := r.rep.Row(ToolSMP, ScenarioCapture); ok && local.OK() && local.MBps > 0 {
		row.Note += fmt.Sprintf(": %.0f%% of local capture throughput", 100*row.MBps/local.MBps)
	}
	row.Note += fmt.Sprintf("; %s sent; server CPU %.1fs (included), peak RSS %.0f MiB",
		humanize.IBytes(uint64(sent)), sc.cpu.Seconds(), kibToMiB(sc.maxRSS))
	r.add(row)
	return st, nil
}

// smpServeLoad runs serveClients captures at once through one server on a
// fresh store, then checks that every record restores byte for byte and
// that the store holds the chunk set of the sequential serve store (seq):
// data sent by several computers at once is stored once.
func (r *runner) smpServeLoad(ctx context.Context, seq smpStatsOut) error {
	store := filepath.Join(r.work, "smp-serve16-store")
	defer removeAll(store)
	row := Row{Tool: ToolSMP, Scenario: ScenarioServeLoad, Status: StatusFailed}
	fail := func(err error) error {
		row.Status, row.Note = StatusFailed, err.Error()
		r.add(row)
		return err
	}
	l := &loadClients{computers: make([]string, serveClients), users: make([]string, serveClients)}
	for i := range l.computers {
		l.computers[i] = fmt.Sprintf("load%02d", i)
		l.users[i] = r.users[i%len(r.users)]
	}
	srv, tokens, err := r.freshServer(ctx, "", store, l.computers)
	if err != nil {
		return fail(err)
	}
	l.tokens = tokens
	defer srv.stop()
	if err := r.settle(r.root); err != nil {
		return fail(err)
	}
	a, logical, err := r.captureAtOnce(ctx, srv, l)
	if err != nil {
		return fail(err)
	}
	sc, err := srv.stop()
	if err != nil {
		return fail(err)
	}
	row = a.row(ToolSMP, ScenarioServeLoad, logical)
	row.CPUSeconds += sc.cpu.Seconds()
	server := fmt.Sprintf("server CPU %.1fs (included), peak RSS %.0f MiB", sc.cpu.Seconds(), kibToMiB(sc.maxRSS))

	// (a) Every record restores through the server, byte for byte.
	verified := false
	row.Verified = &verified
	if err := r.restoreEach(ctx, store, l); err != nil {
		return fail(err)
	}
	verified = true

	// (b) The same corpus makes the same chunk set, however many computers
	// sent it at once: each shared chunk is stored once.
	st, err := r.smpStats(ctx, store)
	if err != nil {
		return fail(fmt.Errorf("smp stats: %w", err))
	}
	row.StoredBytes = st.StoredBytes
	row.DiskBytes = du(store)
	row.DedupeRatio = ratio(logical, st.StoredBytes)
	if len(r.users) > serveClients {
		// Not every user was captured: no chunk set to compare with.
		row.Note = fmt.Sprintf("%d concurrent clients, %d records verified byte-identical; %s; %d chunks (the chunk set is not compared: %d users, %d clients)",
			serveClients, serveClients, server, st.Chunks, len(r.users), serveClients)
		r.add(row)
		return nil
	}
	if st.Chunks != seq.Chunks || st.UniqueBytes != seq.UniqueBytes {
		return fail(fmt.Errorf("%d records verified byte-identical, but the chunks are not stored once: %d chunks of %d unique bytes, where one client at a time stored %d chunks of %d bytes",
			serveClients, st.Chunks, st.UniqueBytes, seq.Chunks, seq.UniqueBytes))
	}
	row.Note = fmt.Sprintf("%d concurrent clients, %d records verified byte-identical, chunks stored once (%d = %d); %s",
		serveClients, serveClients, st.Chunks, seq.Chunks, server)
	r.add(row)
	return nil
}

// loadClients are the clients of ScenarioServeLoad: client i captures
// users[i] as computers[i] with tokens[i], and made records[i].
type loadClients struct {
	computers, users, tokens []string
	records                  []string
}

// captureAtOnce runs every client's capture through srv at once; the
// first failure stops the others. It returns the children's usage, with
// the wall time from the first start to the last finish (not the sum),
// and the bytes captured.
func (r *runner) captureAtOnce(ctx context.Context, srv *serveProc, l *loadClients) (a agg, logical int64, err error) {
	type result struct {
		c   child
		out smpCaptureOut
		err error
	}
	results := make([]result, len(l.computers))
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range results {
		wg.Go(func() {
			c, out, err := r.smpCaptureOne(cctx, srv.url, l.computers[i], l.users[i], "--token", l.tokens[i])
			if err != nil {
				cancel()
			}
			results[i] = result{c, out, err}
		})
	}
	wg.Wait()
	wall := time.Since(start)
	if err := ctx.Err(); err != nil {
		return a, 0, err
	}
	// The first real failure, not the cancellations it caused.
	for i, res := range results {
		if res.err != nil && !errors.Is(res.err, context.Canceled) {
			return a, 0, srv.clientError(fmt.Errorf("client %s (%s): %w", l.computers[i], l.users[i], res.err))
		}
	}
	for i, res := range results {
		if res.err != nil {
			return a, 0, fmt.Errorf("client %s (%s): %w", l.computers[i], l.users[i], res.err)
		}
		a.add(res.c)
		logical += res.out.Bytes
		l.records = append(l.records, res.out.Record)
	}
	a.wall = wall
	return a, logical, nil
}

// restoreEach restores every client's record through a server on store
// and compares it with the corpus. The server is a new one, so that
// serving the restores is not in the capture server's figures.
func (r *runner) restoreEach(ctx context.Context, store string, l *loadClients) error {
	srv, err := r.startServe(ctx, store)
	if err != nil {
		return fmt.Errorf("restarting smp serve for the restores: %w", err)
	}
	defer srv.stop()
	target := filepath.Join(r.work, "restore-serve16")
	for i, rec := range l.records {
		if err := r.serveRestore(ctx, srv.url, l.tokens[i], rec, l.users[i], target); err != nil {
			return srv.clientError(fmt.Errorf("record %d of %d (%s, %s): %w", i+1, len(l.records), l.computers[i], l.users[i], err))
		}
	}
	_, err = srv.stop()
	return err
}

// freshServer makes a fresh store with a client token for each computer
// and starts `smp serve` on it, pinned to cpus ("" for no pinning).
func (r *runner) freshServer(ctx context.Context, cpus, store string, computers []string) (*serveProc, []string, error) {
	tokens, err := r.serveStore(ctx, store, computers)
	if err != nil {
		return nil, nil, err
	}
	srv, err := r.startServeOn(ctx, cpus, store)
	if err != nil {
		return nil, nil, err
	}
	return srv, tokens, nil
}

// serveStore makes a fresh store, a copy of r.serveTemplate when set,
// and a client token for each computer.
func (r *runner) serveStore(ctx context.Context, store string, computers []string) (tokens []string, err error) {
	if r.serveTemplate != "" {
		if err := copyNewStore(r.serveTemplate, store); err != nil {
			return nil, err
		}
	} else if _, err := r.output(ctx, r.opts.Bin, initArgs(store, true)...); err != nil {
		return nil, err
	}
	for _, c := range computers {
		out, err := r.output(ctx, r.opts.Bin, "token", "create", "--store", store, "--computer", c)
		if err != nil {
			return nil, err
		}
		tok := strings.TrimSpace(out)
		if tok == "" || strings.ContainsAny(tok, " \n") {
			return nil, fmt.Errorf("smp token create printed %q, want one secret", out)
		}
		tokens = append(tokens, tok)
	}
	return tokens, nil
}

// serveRestore restores record through the SMP at url into an empty
// target, compares user's profile with the corpus' and removes target.
func (r *runner) serveRestore(ctx context.Context, url, token, record, user, target string) error {
	if err := os.Mkdir(target, 0o755); err != nil {
		return err
	}
	defer removeAll(target)
	c, err := r.exec(ctx, execSpec{name: r.opts.Bin, args: []string{"restore", "--store", url, "--token", token, "--record", record, "--root", target, "--keep", "--json"}})
	if err != nil {
		return err
	}
	var out struct {
		Errors int64 `json:"errors"`
	}
	if err := json.Unmarshal(c.stdout, &out); err != nil {
		return fmt.Errorf("smp restore output: %w: %q", err, c.stdout)
	}
	if out.Errors > 0 {
		return fmt.Errorf("smp restore: %d errors", out.Errors)
	}
	if err := compareTrees(filepath.Join(r.root, "home", user), filepath.Join(target, "home", user)); err != nil {
		return fmt.Errorf("restored tree differs from the corpus: %w", err)
	}
	return nil
}

// copyNewStore copies src, a store smp init made and nothing opened since
// (directories and a few small files), to dst, which must not exist. The
// copy has the same ID and keys: smp finds its key file by that ID.
func copyNewStore(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.Mkdir(target, info.Mode().Perm())
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, info.Mode().Perm())
		}
		return fmt.Errorf("copy store %s: %s is not a file or directory", src, rel)
	})
}
