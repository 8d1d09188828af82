// Package index owns the Badger index of a store: where every blob lives,
// which packs exist and which records are live. It is a cache over the pack
// files (cas), never the only copy of anything, and can be rebuilt from them.
//
// Key layout (schema version 2):
//
//	"v"                     -> schema version, decimal ASCII
//	"t" + type u8 + blob ID -> location: type u8 (the key's), compression u8,
//	                           offset u64le, stored length u32le, raw length
//	                           u32le, pack ID [32]
//	"p" + pack ID           -> pack size u64le, blob count u32le
//	"r" + rec ID            -> the record blob (JSON), for listing without pack reads
//	"g" + pack ID           -> retired pack (see RetirePack)
//	"s" + rec ID            -> release time (see SetReleased)
//
// A blob is named by its type and ID together: a data chunk's ID is the
// keyed hash of its bytes alone, so a file can have a tree's ID, and the two
// are distinct entries. Schema 1 keyed blobs by "b" + ID; a writable open
// migrates it in place (migrate.go).
//
// Only a committed pack's blobs are added, in one batch with the pack key, so
// the index never points into a pack that is not durably on disk.
package index
