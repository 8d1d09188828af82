// Package index owns the Badger index of a store: where every blob lives,
// which packs exist and which records are live. It is a cache over the pack
// files (cas), never the only copy of anything, and can be rebuilt from them.
//
// Key layout (schema version 1):
//
//	"v"            -> schema version, decimal ASCII
//	"b" + blob ID  -> location: type u8, compression u8, offset u64le,
//	                  stored length u32le, raw length u32le, pack ID [32]
//	"p" + pack ID  -> pack size u64le, blob count u32le
//	"r" + rec ID   -> the record blob (JSON), for listing without pack reads
//
// Only a committed pack's blobs are added, in one batch with the pack key, so
// the index never points into a pack that is not durably on disk.
package index
