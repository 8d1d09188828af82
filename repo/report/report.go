// Package report owns the shapes of a store's figures and maintenance
// reports: repo fills them, remote/wire sends them as the replies of
// GET /v1/stats and POST /v1/gc, and the CLI prints them (smp stats --json,
// smp gc --json). Their JSON field names are an interface: add fields, never
// rename or remove one. The package imports nothing of smp's, so every
// layer may use it.
package report

// Stats are a store's size figures: GET /v1/stats and smp stats --json.
type Stats struct {
	Records      int     `json:"records"`
	Captured     int     `json:"captured"`      // records not yet restored (released)
	Released     int     `json:"released"`      // records restored, retention clock running
	FreeBytes    uint64  `json:"free_bytes"`    // free space on the store's filesystem for an unprivileged writer
	LogicalBytes uint64  `json:"logical_bytes"` // sum of every record's file bytes
	UniqueBytes  uint64  `json:"unique_bytes"`  // plaintext of distinct data chunks
	StoredBytes  uint64  `json:"stored_bytes"`  // pack files on disk
	Chunks       uint64  `json:"chunks"`
	Trees        uint64  `json:"trees"`
	Packs        uint64  `json:"packs"`
	DedupeRatio  float64 `json:"dedupe_ratio"`      // logical bytes of chunked records / stored
	Compression  float64 `json:"compression_ratio"` // unique / stored data
	// Hard-link records hold their files by links (or clones) in links/,
	// not in packs: their bytes are part of LogicalBytes but left out of
	// DedupeRatio, which would otherwise credit packs with them.
	LinkRecords     int    `json:"link_records"`
	LinkedFiles     uint64 `json:"linked_files"`      // files held by link or clone
	LinkRecordBytes uint64 `json:"link_record_bytes"` // logical bytes of the hard-link records
}

// StatsReply is GET /v1/stats: the figures, the released records past the
// retention asked for (?retention=), and with ?usage=1 what each computer
// and record costs the store.
type StatsReply struct {
	*Stats
	Expired *int `json:"expired,omitempty"` // released records past ?retention
	// Capacity is what an SMP server's captures in progress hold against
	// its limits; absent for a store directory, which has no server.
	Capacity  *Capacity       `json:"capacity,omitempty"`
	Computers []ComputerUsage `json:"computers,omitempty"`
	PerRecord []RecordUsage   `json:"per_record,omitempty"`
}

// Capacity is what the captures in progress on an SMP server hold against
// its disk and limits, beside Stats.FreeBytes (GET /v1/stats, the web
// console's overview and smp stats --json give the same figures).
type Capacity struct {
	Captures int `json:"captures"` // capture sessions open (estimates not counted)
	// ReservedBytes are set aside for blobs open captures were told the
	// store lacks and have not uploaded yet (plaintext, an upper bound:
	// compression only shrinks them); admission keeps free space at least
	// MinFreeBytes plus these.
	ReservedBytes uint64 `json:"reserved_bytes"`
	// QuotaCommittedBytes are what open captures count against their
	// computers' quotas: bytes they stored so far plus their reservations.
	QuotaCommittedBytes uint64 `json:"quota_committed_bytes"`
	MinFreeBytes        uint64 `json:"min_free_bytes"` // the free-space floor (smp serve --min-free); 0: none
	QuotaBytes          uint64 `json:"quota_bytes"`    // per-computer quota (smp serve --quota); 0: none
	// MaxStoreBytes is the store-size limit in force: the stricter of smp
	// serve --max-store-bytes and the store's shared limit (smp admin
	// limits); 0: none. A store on S3 has no disk to fill, so this is its
	// capacity where a directory's is its filesystem's free space.
	MaxStoreBytes uint64 `json:"max_store_bytes,omitempty"`
}

// RecordUsage is what one record costs the store.
type RecordUsage struct {
	ID       string `json:"id"`
	Computer string `json:"computer"`
	Files    uint64 `json:"files"`
	Bytes    uint64 `json:"logical_bytes"`
	// OnlyBytes are the stored bytes of chunks no other live record
	// references: what removing this record (and a gc) would free.
	OnlyBytes uint64 `json:"only_bytes"`
}

// ComputerUsage groups a computer's records.
type ComputerUsage struct {
	Computer  string `json:"computer"`
	Records   int    `json:"records"`
	Bytes     uint64 `json:"logical_bytes"`
	OnlyBytes uint64 `json:"only_bytes"` // chunks no other computer references
}

// GCReport is what a gc did (or, with DryRun, would do): the gc part of
// POST /v1/gc's reply and of smp gc --json.
type GCReport struct {
	DryRun            bool    `json:"dry_run"`
	RepackBelow       float64 `json:"repack_below"`
	Records           int     `json:"records"`            // live records
	LiveBlobs         int     `json:"live_blobs"`         // blobs kept (records, trees, chunks, tombstones)
	PacksScanned      int     `json:"packs_scanned"`      // indexed packs examined
	PacksDeleted      int     `json:"packs_deleted"`      // deleted: no live blob (or left over by an interrupted gc)
	PacksRewritten    int     `json:"packs_rewritten"`    // live blobs copied out, then deleted
	PacksWritten      int     `json:"packs_written"`      // new packs holding the copies
	BlobsRemoved      int     `json:"blobs_removed"`      // dead blobs dropped from the index
	BlobsCopied       int     `json:"blobs_copied"`       // live blobs moved to new packs
	BytesDeleted      int64   `json:"bytes_deleted"`      // pack files deleted
	BytesWritten      int64   `json:"bytes_written"`      // new pack files
	BytesFreed        int64   `json:"bytes_freed"`        // bytes_deleted - bytes_written
	TombstonesWritten int     `json:"tombstones_written"` // for record blobs that were never live
	UnindexedPacks    int     `json:"unindexed_packs"`    // pack files kept that the index does not list
	// PacksRekeyed is how many of the rewritten packs were rewritten
	// because they were not sealed under the current master key (gc
	// --rekey; smp encrypt), and IndexRekeyed whether the index was then
	// copied under the current key.
	PacksRekeyed int  `json:"packs_rekeyed,omitempty"`
	IndexRekeyed bool `json:"index_rekeyed,omitempty"`
	// PacksCondemnedOldKey are the packs under an older master key that
	// wait, condemned, for the gc that deletes them a grace after their
	// mark (a store on S3): until then the older key cannot be retired.
	PacksCondemnedOldKey int `json:"packs_condemned_old_key,omitempty"`
	// On a store several smp share (S3), gc deletes in two phases:
	// PacksMarked are the packs this run condemned in a new marks
	// object (deleted by a run at least a grace later), PacksWaiting
	// those condemned earlier whose grace has not run out, and
	// UploadsAborted the multipart uploads older than the grace it
	// aborted.
	PacksMarked    int      `json:"packs_marked,omitempty"`
	PacksWaiting   int      `json:"packs_waiting,omitempty"`
	UploadsAborted int      `json:"uploads_aborted,omitempty"`
	Problems       []string `json:"problems"`      // packs left alone, with the reason
	GraceSeconds   float64  `json:"grace_seconds"` // packs younger than this were kept whole
	Seconds        float64  `json:"seconds"`
}

// GCReply is POST /v1/gc: the store's maintenance run (repo.Maintain).
type GCReply struct {
	Expired        []string `json:"expired"`          // records removed because their retention ran out
	OrphanLinkSets []string `json:"orphan_link_sets"` // link sets no record names, removed
	*GCReport
}
