package repo

import (
	"smp/storage"
	"smp/storage/local"
)

// The store's objects live in a storage.Storage (see package storage):
//
//	config.json                    mutable (written at init)
//	packs/<xx>/<pack id>.pack      immutable, named by content
//
// The local directory keeps its temporary files in packs/tmp, so its
// on-disk layout is that of every earlier version. A cache directory
// (location.go) names an S3 bucket prefix that holds the same objects.
// The index (Badger, index/), the process lock (lock) and the hard-link
// sets of hard-link records (links/) are local to the machine by nature
// and stay files beside the objects, outside the interface.

// packPrefix is where packs are named in the storage.
const packPrefix = "packs/"

// openStorage opens the objects of the store in dir; a test replaces it
// to run a store over another storage (see export_test.go).
var openStorage = func(dir string) (storage.Storage, error) {
	l, err := ReadLocation(dir)
	if err != nil {
		return nil, err
	}
	if l != nil {
		return openRemote(l, false)
	}
	return local.Open(dir, local.Options{TempDir: packPrefix + "tmp"})
}
