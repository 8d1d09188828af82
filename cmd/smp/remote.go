package main

import (
	"context"
	"errors"
	"fmt"
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
	token, fingerprint, ca *string
}

func addRemoteFlags(fs *pflag.FlagSet) *remoteFlags {
	return &remoteFlags{
		token:       fs.String("token", os.Getenv("SMP_TOKEN"), "with --store https://...: access token (or $SMP_TOKEN); with several SMPs, one per SMP separated by commas"),
		fingerprint: fs.String("tls-fingerprint", os.Getenv("SMP_TLS_FINGERPRINT"), "with --store https://...: trust the server certificate with this SHA-256 (as smp serve printed it)"),
		ca:          fs.String("ca", os.Getenv("SMP_CA"), "with --store https://...: PEM file of the CA that signed the server certificate"),
	}
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

// dialEach tries each SMP of the list in turn: one that cannot be reached,
// or whose use (try) fails with a capacity refusal or a missing record,
// gives way to the next, as SCCM clients fall back between state migration
// points. The error of the last one is returned when all fail.
func (rf *remoteFlags) dialEach(ctx context.Context, store string, try func(*client.Client) error) (*client.Client, error) {
	urls := smpList(store)
	// Each SMP has its own tokens: --token gives one for all, or one per
	// SMP in the same order.
	tokens := strings.Split(*rf.token, ",")
	if len(tokens) != 1 && len(tokens) != len(urls) {
		return nil, usagef("--token lists %d tokens for %d SMPs: give one, or one per SMP in --store order", len(tokens), len(urls))
	}
	var errs []string
	for i, u := range urls {
		if !client.IsRemote(u) {
			return nil, usagef("--store %q: a list of SMPs must all be https:// URLs", u)
		}
		tok := tokens[0]
		if len(tokens) > 1 {
			tok = tokens[i]
		}
		cl, err := client.Dial(ctx, client.Options{URL: u, Token: strings.TrimSpace(tok), Fingerprint: *rf.fingerprint, CAFile: *rf.ca})
		if err == nil {
			if err = try(cl); err == nil {
				return cl, nil
			}
			cl.Close()
		}
		var ce *client.Error
		fallback := !errors.As(err, &ce) || ce.Capacity || ce.Status == 404
		if !fallback || len(urls) == 1 {
			return nil, err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", u, err))
		fmt.Fprintf(os.Stderr, "smp: %s: %v; trying the next SMP\n", u, err)
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
