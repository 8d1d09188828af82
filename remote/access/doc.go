// Package access owns the access file of a store directory, DIR/access.json:
// the bearer tokens a remote smp server accepts, the associations that let
// one computer restore another's records, the restore-only switch and the
// store's shared capacity limits (limits.go).
//
// A store on S3 keeps the same file as an object of its bucket
// (OpenShared, shared.go), so that every smp serve sharing the bucket
// accepts the same tokens: writers replace it by compare-and-swap, and
// readers poll it, never answering from a copy older than RefreshBound,
// and read it at once on an unknown token (Recheck). What follows about
// files, flock and stat is the store directory's.
//
// An encrypted store keeps it sealed instead, as DIR/access.sealed, since
// it names every client's computer: OpenWith takes a Codec from whoever
// unlocked the store's keys (package repo seals with a subkey of the
// master key, see keys.Sealer), so this package never sees a key and
// imports no store package. Without a codec a sealed file is refused
// (ErrSealedNoKey), never read as an empty access list.
//
// The file lives beside the store, not in its Badger index, because the
// store is flock-ed by the one process that has it open (a server keeps it
// open for days) while administrators must still manage access. So this
// package never opens the store: it only checks that DIR/config.json exists.
//
// Secrets are "smp_" followed by the unpadded base64url encoding of 32
// random bytes. Only their SHA-256 is stored; a token's ID is the first 12
// hex digits of that hash, safe to show and to pass to revoke.
//
// Concurrency: writers take an exclusive flock(2) on DIR/access.lock, read
// the current file, change it and replace it atomically (temporary file,
// fsync, rename, directory fsync) with mode 0600. Readers take no lock: a
// rename makes them see either the old file or the new one. Store.Snapshot
// re-reads the file only when its identity (device, inode, size, mtime,
// ctime) changed, and stats it at most once per 200 ms, so a server may call
// it on every request. A Snapshot is immutable.
//
// A missing file is an empty access list. The format is versioned (see
// docs/FORMAT.md, "Access file (access.json)" and "Sealed secrets"); an
// unknown version, unknown
// fields or invalid content are refused with an error naming the file, and a
// server fails closed on them.
package access
