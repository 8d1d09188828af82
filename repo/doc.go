// Package repo owns an open store directory: its config, its process lock,
// its pack directory and its index, and the rules that tie them together
// (a pack is committed to disk before it is indexed; a record is indexed only
// after every blob it references is). Capture and restore work through a
// *Repo; nothing above this package touches packs or Badger directly.
//
// Store layout (config.json and packs are objects of a storage.Storage,
// see storage.go; the rest are local files):
//
//	config.json   format version, chunker parameters, hash key (0600)
//	lock          flock(2) held by the one process using the store
//	packs/        pack files (see cas.PackDir)
//	index/        Badger index (see package index)
//	links/        hard-link sets of hard-link records (local by nature)
package repo
