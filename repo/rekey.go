package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"smp/cas"
	"smp/index"
	"smp/internal/sysfile"
	"smp/keys"
)

// Rekeying (GC with GCOptions.Rekey, smp gc --rekey; also the core of smp
// encrypt) moves everything an encrypted store keeps sealed under its
// keyring's current master key, so that the older ones seal nothing and
// can be retired (RetireKey):
//
//  1. every pack not sealed under the current key (a pack in clear, in a
//     store being converted, counts) is rewritten by gc's own steps: its
//     live blobs are opened, re-sealed into new packs, indexed, and the
//     old pack retired, then deleted. A crash anywhere leaves what gc's
//     crash leaves: every record readable, and the next run finishes;
//  2. the index is copied, entry by entry, into index.rekey under the
//     current key's subkey (Badger encrypts a database only when it is
//     created, and its own key rotation keeps the old data keys), then
//     swapped with index in one atomic rename (RENAME_EXCHANGE) and the
//     old one, now index.rekey, deleted. A crash before the swap leaves
//     the old index in place and a partial index.rekey the next run
//     deletes first; after it, the new index in place and the old one in
//     index.rekey, deleted the same way;
//  3. the sealed files (tls/key.sealed, access.sealed) are opened and
//     sealed anew under the current key; a TLS key or an access file
//     still in clear (tls/key.pem, access.json: a converted store's) is
//     sealed and the clear file removed.
//
// Finally KeyUsage is read back and anything still under another key is
// reported as a problem (a damaged pack gc kept, an unindexed pack).

// rekeyDir is where the index is copied under the current key.
const rekeyDir = "index.rekey"

// rekeyHook, when set by a test, runs at named points of a rekey and of a
// conversion (convert.go); an error stops it there, as a crash would.
var rekeyHook func(point string) error

func rekeyPoint(point string) error {
	if rekeyHook != nil {
		return rekeyHook(point)
	}
	return nil
}

// planRekey adds to sparse every pack with live blobs not sealed under
// the current key that is not already in empty or sparse.
func (g *gcRun) planRekey(empty, sparse []cas.ID) []cas.ID {
	cur := g.r.currentKey()
	planned := map[cas.ID]bool{}
	for _, id := range slices.Concat(empty, sparse) {
		planned[id] = true
	}
	ids := make([]cas.ID, 0, len(g.packs))
	for id := range g.packs {
		if !planned[id] {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b cas.ID) int { return strings.Compare(a.String(), b.String()) })
	for _, id := range ids {
		sealed, kid, err := g.r.packs.KeyOf(id)
		if err != nil {
			g.rep.Problems = append(g.rep.Problems, fmt.Sprintf("pack %s not rekeyed: %v", id.Short(), err))
			continue
		}
		if !sealed || kid != cur {
			sparse = append(sparse, id)
			g.rep.PacksRekeyed++
		}
	}
	return sparse
}

// finishRekey does steps 2 and 3 and reports what still is not under the
// current key.
func (r *Repo) finishRekey(rep *GCReport) error {
	if r.shared {
		if err := r.rekeySegments(context.Background()); err != nil {
			return fmt.Errorf("gc --rekey: %w", err)
		}
	}
	if err := r.rekeyIndex(); err != nil {
		return fmt.Errorf("gc --rekey: %w", err)
	}
	rep.IndexRekeyed = true
	if err := r.resealFiles(); err != nil {
		return fmt.Errorf("gc --rekey: %w", err)
	}
	u, err := r.KeyUsage()
	if err != nil {
		return fmt.Errorf("gc --rekey: %w", err)
	}
	cur := r.currentKey()
	for _, id := range r.sealingKeyring().IDs() {
		if id == cur {
			continue
		}
		// A condemned pack is on its way out (rep.PacksWaiting says
		// when): only what nothing will delete is a problem.
		rep.PacksCondemnedOldKey += u.Condemned[id]
		u.Packs[id] -= u.Condemned[id]
		u.Condemned[id] = 0 // counted above; Uses names the rest
		if uses := u.Uses(id); len(uses) > 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("master key %d still seals %s", id, strings.Join(uses, ", ")))
		}
	}
	if uses := u.Uses(0); len(uses) > 0 {
		rep.Problems = append(rep.Problems, "still in clear: "+strings.Join(uses, ", "))
	}
	return nil
}

// rekeyIndex copies the index under the current key and swaps it in.
func (r *Repo) rekeyIndex() error {
	ixDir, tmp := filepath.Join(r.Dir, "index"), filepath.Join(r.Dir, rekeyDir)
	if err := os.RemoveAll(tmp); err != nil { // an interrupted run's, either copy
		return fmt.Errorf("remove %s: %w", tmp, err)
	}
	if err := r.ix.CopyTo(tmp, r.crypt.index); err != nil {
		return fmt.Errorf("copy the index under the current key: %w", err)
	}
	if err := rekeyPoint("index copied"); err != nil {
		return err
	}
	if err := r.ix.Close(); err != nil {
		return fmt.Errorf("close the index: %w", err)
	}
	swapErr := exchangeDirs(ixDir, tmp)
	if swapErr == nil {
		swapErr = syncDir(r.Dir)
	}
	ix, kid, err := r.crypt.openIndexWith(func(o index.Options) (*index.Index, error) { return index.OpenExisting(ixDir, o) })
	if err != nil {
		return fmt.Errorf("reopen the index: %w", err)
	}
	r.ix, r.ixKey = ix, kid
	if swapErr != nil {
		return fmt.Errorf("swap in the rekeyed index: %w", swapErr)
	}
	if err := rekeyPoint("index swapped"); err != nil {
		return err
	}
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove the old index: %w", err)
	}
	return syncDir(r.Dir)
}

// tlsFiles are the TLS key files of smp serve --tls-self-signed.
func (r *Repo) tlsFiles() (plain, sealed string) {
	d := filepath.Join(r.Dir, "tls")
	return filepath.Join(d, "key.pem"), filepath.Join(d, "key.sealed")
}

// resealFiles seals the store's sealed files under the current key.
func (r *Repo) resealFiles() error {
	if err := r.resealTLSKey(); err != nil {
		return err
	}
	// Under the access file's own lock, so a token created meanwhile
	// (smp token create needs no store lock) is neither lost nor left
	// under the old key.
	acc, err := r.Access()
	if err != nil {
		return err
	}
	return acc.Reseal()
}

// resealTLSKey seals the TLS key under the current key.
func (r *Repo) resealTLSKey() error {
	plain, sealed := r.tlsFiles()
	cur := r.currentKey()
	b, err := os.ReadFile(plain)
	if err == nil {
		// Sealed first, then the clear file removed: a crash between
		// leaves both, and the next run (or smp serve) seals again.
		return r.sealTLSKey(b, sealed, plain)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	b, err = os.ReadFile(sealed)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if kid, err := keys.SealedKeyID(b); err == nil && kid == cur {
		return nil
	}
	key, err := keys.OpenSecret(r.sealingKeyring(), r.Config.StoreID, keys.PurposeTLSKey, b)
	if err != nil {
		return fmt.Errorf("TLS key %s: %w", sealed, err)
	}
	return r.sealTLSKey(key, sealed, "")
}

// sealTLSKey writes key sealed under the current key to sealed, then
// removes plain when given.
func (r *Repo) sealTLSKey(key []byte, sealed, plain string) error {
	b, err := keys.SealSecret(r.sealingKeyring(), r.Config.StoreID, keys.PurposeTLSKey, key)
	if err != nil {
		return err
	}
	if err := sysfile.WriteFile(sealed, b, 0o600); err != nil {
		return err
	}
	if err := rekeyPoint("tls key sealed"); err != nil {
		return err
	}
	if plain == "" {
		return nil
	}
	if err := os.Remove(plain); err != nil {
		return err
	}
	return syncDir(filepath.Dir(plain))
}

// KeyUsage is what each master key of an encrypted store still seals.
type KeyUsage struct {
	// Packs counts the pack files on disk by the master key that sealed
	// them; key 0 counts packs in clear.
	Packs map[keys.KeyID]int
	// Index is the master key the index is encrypted under (0: in clear).
	Index keys.KeyID
	// Sealed maps the store's sealed files to their key; a file that is
	// kept sealed but found in clear (tls/key.pem) maps to 0.
	Sealed map[string]keys.KeyID
	// OldIndexes are copies of an index an interrupted rekey left.
	OldIndexes []string
	// Segments counts a shared store's index segments by key (0: in
	// clear), and Condemned the packs of Packs a gc has condemned (they
	// are deleted by a gc after their grace), by key.
	Segments, Condemned map[keys.KeyID]int
	// Unknown are packs whose key could not be read (damaged).
	Unknown []string
}

// Uses lists, one phrase each, what still uses master key id (0: what is
// in clear). Copies of an old index and packs whose key cannot be read
// count for every key.
func (u *KeyUsage) Uses(id keys.KeyID) []string {
	var out []string
	if n, c := u.Packs[id], u.Condemned[id]; n > 0 && c > 0 {
		out = append(out, fmt.Sprintf("%d pack(s), %d of them condemned (a gc after the grace deletes them)", n, c))
	} else if n > 0 {
		out = append(out, fmt.Sprintf("%d pack(s)", n))
	}
	if n := u.Segments[id]; n > 0 {
		out = append(out, fmt.Sprintf("%d index segment(s)", n))
	}
	if u.Index == id {
		out = append(out, "the index")
	}
	for _, f := range slices.Sorted(maps.Keys(u.Sealed)) {
		if u.Sealed[f] == id {
			out = append(out, f)
		}
	}
	for _, d := range u.OldIndexes {
		out = append(out, "an old index copy "+d)
	}
	if len(u.Unknown) > 0 {
		out = append(out, fmt.Sprintf("%d pack(s) whose key cannot be read (%s)", len(u.Unknown), strings.Join(u.Unknown, ", ")))
	}
	return out
}

// KeyUsage reads what each master key still seals: every pack file's
// header and trailer key, the index's key, the sealed files'. It only
// reads.
func (r *Repo) KeyUsage() (*KeyUsage, error) {
	u := &KeyUsage{Packs: map[keys.KeyID]int{}, Index: r.ixKey, Sealed: map[string]keys.KeyID{},
		Segments: map[keys.KeyID]int{}, Condemned: map[keys.KeyID]int{}}
	err := r.packs.Walk(func(id cas.ID, _ int64) error {
		sealed, kid, err := r.packs.KeyOf(id)
		switch {
		case errors.Is(err, cas.ErrNotFound):
		case err != nil:
			u.Unknown = append(u.Unknown, id.Short())
		case !sealed:
			u.Packs[0]++
		default:
			u.Packs[kid]++
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	plain, sealed := r.tlsFiles()
	if _, err := os.Stat(plain); err == nil {
		u.Sealed["tls/key.pem"] = 0
	}
	if b, err := os.ReadFile(sealed); err == nil {
		kid, err := keys.SealedKeyID(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", sealed, err)
		}
		u.Sealed["tls/key.sealed"] = kid
	}
	if r.shared {
		if err := r.sharedKeyUsage(context.Background(), u); err != nil {
			return nil, err
		}
	} else if err := r.accessKeyUsage(u); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(r.Dir, rekeyDir)); err == nil {
		u.OldIndexes = append(u.OldIndexes, rekeyDir)
	}
	return u, nil
}

// accessKeyUsage adds the access file to u: access.sealed by the key in
// its header, an access.json in clear (a converted store's) as key 0.
func (r *Repo) accessKeyUsage(u *KeyUsage) error {
	if _, err := os.Lstat(filepath.Join(r.Dir, "access.json")); err == nil {
		u.Sealed["access.json"] = 0
	}
	p := filepath.Join(r.Dir, "access.sealed")
	f, err := os.OpenFile(p, os.O_RDONLY|noFollow, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	hdr := make([]byte, keys.SealedOverhead)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return fmt.Errorf("%s: %w", p, keys.ErrSealed)
	}
	kid, err := keys.SealedHeaderKeyID(hdr)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	u.Sealed["access.sealed"] = kid
	return nil
}
