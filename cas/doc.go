// Package cas owns smp's content-addressed storage primitives: chunk IDs
// (keyed BLAKE3-256), the content-defined chunker, per-blob zstd framing and
// the self-describing pack file format. It imports nothing else of smp's.
//
// Packs are the truth: every blob (file chunk, tree, record, tombstone) lives
// in a pack whose trailer describes it, so any index over packs can be
// rebuilt from the pack files alone. The on-disk format is specified in
// docs/FORMAT.md.
package cas
