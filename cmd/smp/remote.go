package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"smp/cas"
	"smp/cas/manifest"
	"smp/remote/client"
	"smp/repo"
)

// remoteFlags are the flags of every command that can reach an SMP server.
type remoteFlags struct {
	fs                                *pflag.FlagSet
	token, tokenFile, fingerprint, ca *string
	warned                            bool
}

func addRemoteFlags(fs *pflag.FlagSet) *remoteFlags {
	return &remoteFlags{
		fs:          fs,
		token:       fs.String("token", os.Getenv("SMP_TOKEN"), "with --store https://...: access token; with several SMPs, one per SMP separated by commas. Every local user can read a command line (ps): prefer --token-file or $SMP_TOKEN"),
		tokenFile:   fs.String("token-file", "", "with --store https://...: read the token(s) of --token from FILE (mode 0600, or a pipe such as /dev/stdin)"),
		fingerprint: fs.String("tls-fingerprint", os.Getenv("SMP_TLS_FINGERPRINT"), "with --store https://...: trust the server certificate with this SHA-256 (as smp serve printed it)"),
		ca:          fs.String("ca", os.Getenv("SMP_CA"), "with --store https://...: PEM file of the CA that signed the server certificate"),
	}
}

// maxTokenFile bounds what --token-file reads: a few tokens, never a
// file named by mistake.
const maxTokenFile = 64 << 10

// secret returns the token list from --token-file, --token or $SMP_TOKEN
// (the default of --token). A token given on the command line is visible
// to every local user through ps and /proc, so using it draws a warning.
func (rf *remoteFlags) secret() (string, error) {
	onCmdline := rf.fs.Changed("token")
	if *rf.tokenFile != "" {
		if onCmdline {
			return "", usagef("give --token or --token-file, not both")
		}
		return readTokenFile(*rf.tokenFile)
	}
	if onCmdline && !rf.warned {
		rf.warned = true
		fmt.Fprintln(os.Stderr, "smp: warning: --token on the command line can be read by every local user (ps): use --token-file FILE or $SMP_TOKEN")
	}
	return *rf.token, nil
}

// readTokenFile reads a token (list) from path, without one trailing
// newline. Like ssh with private keys, it refuses a regular file that
// other users may read or write: its secret would not be one. A pipe or
// terminal (/dev/stdin, <(cmd)) has no such permissions to check.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path) // symlinks followed: /dev/stdin is one; the checks are on what was opened
	if err != nil {
		return "", usagef("--token-file: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", usagef("--token-file: %v", err)
	}
	switch {
	case st.IsDir():
		return "", usagef("--token-file %s is a directory: give the file holding the token", path)
	case st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0:
		return "", usagef("--token-file %s has mode %04o: other users may read it; run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", usagef("--token-file %s: %v", path, err)
	}
	if len(b) > maxTokenFile {
		return "", usagef("--token-file %s is larger than %d bytes: give the file holding the token", path, maxTokenFile)
	}
	tok := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case strings.TrimSpace(tok) == "":
		return "", usagef("--token-file %s is empty", path)
	case strings.ContainsAny(tok, "\r\n"):
		return "", usagef("--token-file %s holds more than one line: give one token, or one per SMP separated by commas", path)
	}
	return tok, nil
}

// smpList splits a --store value naming one or more SMP servers.
func smpList(store string) []string {
	var out []string
	for _, s := range strings.Split(store, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func isRemoteStore(store string) bool { return client.IsRemote(strings.TrimSpace(store)) }

// smpTarget is one SMP of a --store list with its token.
type smpTarget struct{ url, token string }

// targets pairs each SMP of store with its token: each SMP has its own
// tokens, so the token list gives one for all, or one per SMP in the same
// order.
func (rf *remoteFlags) targets(store string) ([]smpTarget, error) {
	urls := smpList(store)
	secret, err := rf.secret()
	if err != nil {
		return nil, err
	}
	tokens := strings.Split(secret, ",")
	if len(tokens) != 1 && len(tokens) != len(urls) {
		return nil, usagef("the token list (--token, --token-file or $SMP_TOKEN) has %d tokens for %d SMPs: give one, or one per SMP in --store order", len(tokens), len(urls))
	}
	out := make([]smpTarget, len(urls))
	for i, u := range urls {
		if !client.IsRemote(u) {
			return nil, usagef("--store %q: a list of SMPs must all be https:// URLs", u)
		}
		out[i] = smpTarget{url: u, token: strings.TrimSpace(tokens[0])}
		if len(tokens) > 1 {
			out[i].token = strings.TrimSpace(tokens[i])
		}
	}
	return out, nil
}

func (rf *remoteFlags) dial(ctx context.Context, t smpTarget) (*client.Client, error) {
	return client.Dial(ctx, client.Options{URL: t.url, Token: t.token, Fingerprint: *rf.fingerprint, CAFile: *rf.ca})
}

// dialEach tries each SMP of the list in turn: one that cannot be reached,
// or whose use (try) fails with a capacity refusal or a missing record,
// gives way to the next, as SCCM clients fall back between state migration
// points. The error of the last one is returned when all fail.
func (rf *remoteFlags) dialEach(ctx context.Context, store string, try func(*client.Client) error) (*client.Client, error) {
	targets, err := rf.targets(store)
	if err != nil {
		return nil, err
	}
	var errs []string
	for _, t := range targets {
		cl, err := rf.dial(ctx, t)
		if err == nil {
			if err = try(cl); err == nil {
				return cl, nil
			}
			cl.Close()
		}
		var ce *client.Error
		fallback := !errors.As(err, &ce) || ce.Capacity || ce.Status == 404
		if !fallback || len(targets) == 1 {
			return nil, err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", t.url, err))
		fmt.Fprintf(os.Stderr, "smp: %s: %v; trying the next SMP\n", t.url, err)
	}
	return nil, fmt.Errorf("no SMP could be used: %s", strings.Join(errs, "; "))
}

// recordStore is a store as the record commands (records, files, release,
// rm) see it: embedded or an SMP server.
type recordStore interface {
	Records() ([]repo.RecordInfo, error)
	ReleasedAt() (map[cas.ID]time.Time, error)
	FindRecord(ref, computer string) (repo.RecordInfo, error)
	LoadTree(id cas.ID) (*manifest.Tree, error) // trees of the last record found
	Release(id cas.ID, now time.Time) error
	Drop(rec repo.RecordInfo) error
	Close() error
}

// openRecordStore opens the store for a record command; a local store is
// opened read-only unless write is set (rm, release), so listing works on
// a full filesystem and never makes Badger write.
func openRecordStore(ctx context.Context, store string, rf *remoteFlags, write bool) (recordStore, error) {
	if !isRemoteStore(store) {
		if write {
			return openStore(store)
		}
		return openStoreReadOnly(store)
	}
	rs := &remoteStore{ctx: ctx}
	cl, err := rf.dialEach(ctx, store, func(*client.Client) error { return nil })
	if err != nil {
		return nil, err
	}
	rs.cl = cl
	return rs, nil
}

// remoteStore adapts an SMP client to recordStore.
type remoteStore struct {
	ctx      context.Context
	cl       *client.Client
	released map[cas.ID]time.Time
	reader   *client.Reader
}

func (rs *remoteStore) Records() ([]repo.RecordInfo, error) {
	entries, err := rs.cl.Records(rs.ctx, "")
	if err != nil {
		return nil, err
	}
	rs.released = map[cas.ID]time.Time{}
	out := make([]repo.RecordInfo, 0, len(entries))
	for _, e := range entries {
		id, err := cas.ParseID(e.ID)
		if err != nil {
			return nil, fmt.Errorf("SMP listed record %q: %w", e.ID, err)
		}
		if e.Released != nil {
			rs.released[id] = *e.Released
		}
		out = append(out, repo.RecordInfo{ID: id, Record: e.Record})
	}
	return out, nil
}

func (rs *remoteStore) ReleasedAt() (map[cas.ID]time.Time, error) {
	if rs.released == nil {
		if _, err := rs.Records(); err != nil {
			return nil, err
		}
	}
	return rs.released, nil
}

func (rs *remoteStore) FindRecord(ref, computer string) (repo.RecordInfo, error) {
	id, e, err := rs.cl.FindRecord(rs.ctx, ref, computer)
	if err != nil {
		return repo.RecordInfo{}, err
	}
	if rs.reader != nil {
		rs.reader.Close()
	}
	rs.reader = rs.cl.Reader(id)
	return repo.RecordInfo{ID: id, Record: e.Record}, nil
}

func (rs *remoteStore) LoadTree(id cas.ID) (*manifest.Tree, error) {
	if rs.reader == nil {
		return nil, fmt.Errorf("tree %s: no record chosen", id.Short())
	}
	return rs.reader.LoadTree(id)
}

func (rs *remoteStore) Release(id cas.ID, _ time.Time) error { return rs.cl.Release(rs.ctx, id) }

func (rs *remoteStore) Drop(rec repo.RecordInfo) error { return rs.cl.Remove(rs.ctx, rec.ID) }

func (rs *remoteStore) Close() error {
	if rs.reader != nil {
		rs.reader.Close()
	}
	rs.cl.Close()
	return nil
}
