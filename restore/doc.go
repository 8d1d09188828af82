// Package restore owns rebuilding a state record's files under a target
// directory: byte for byte, with modes, times, ownership (as root), xattrs,
// symlinks and hard links, optionally remapping paths and restoring part.
//
// Safety: every operation goes through an os.Root opened on the target, so
// nothing is written outside it even if the target is modified while the
// restore runs; names from the record are validated again; an existing
// symlink is never followed (it is treated as a conflicting entry). Files
// are written to a temporary name and renamed into place, so a reader never
// sees a half-restored file under its real name.
//
// A record is untrusted input: unless Options.AllowSystem, only the
// target's profile paths are written and privileges are dropped inside
// them (policy.go); owner names resolve in the target's own accounts
// (accounts.go).
//
// Every chunk is verified against its ID. A file with a missing or corrupt
// chunk is reported by name and left out; the rest of the record restores.
package restore
