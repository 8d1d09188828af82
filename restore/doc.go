// Package restore owns rebuilding a state record's files under a target
// directory: byte for byte, with modes, times, ownership (as root), xattrs,
// symlinks and hard links, optionally remapping paths and restoring part.
//
// Safety: below the target, every directory is opened one name at a time
// relative to its parent's descriptor with O_NOFOLLOW (openat2 with
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS where it can take several), so no
// symlink is ever followed, on the record's paths or on a --map
// destination, even if the target is modified while the restore runs;
// names from the record are validated again; a symlink in the way is a
// conflict (replaced only under --overwrite always). Existing directories
// keep their own metadata unless --overwrite always. Files are written to a
// temporary name and renamed into place, so a reader never sees a
// half-restored file under its real name; a later restore removes the
// temporary names a killed one left.
//
// A record is untrusted input: unless Options.AllowSystem, only the
// target's profile paths are written and privileges are dropped inside
// them (policy.go); owner names resolve in the target's own accounts
// (accounts.go).
//
// Every chunk is verified against its ID. A file with a missing or corrupt
// chunk is reported by name and left out; the rest of the record restores.
package restore
