package repo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"sync"

	"smp/cas"
	"smp/cas/manifest"
	"smp/index"
	"smp/repo/report"
)

// RecordUsage is what one record costs the store; ComputerUsage groups a
// computer's records (defined in package report, GET /v1/stats?usage=1).
type (
	RecordUsage   = report.RecordUsage
	ComputerUsage = report.ComputerUsage
)

// PackBytes is the size of every pack the index holds: the store's stored
// bytes as far as this machine knows (a store on S3: as of its last
// refresh), without listing the storage as Stats does.
func (r *Repo) PackBytes() (uint64, error) {
	var n uint64
	err := r.ix.Packs(func(p index.PackInfo) error {
		n += uint64(p.Size)
		return nil
	})
	return n, err
}

// Usage computes per-record and per-computer exclusive bytes. It walks
// every live record's trees twice and keeps one small counter per distinct
// chunk: memory grows with the number of chunks the records use.
//
// The answer is kept and given again while the live records are the same
// and no blob location was removed: records and their trees never change,
// and a chunk's stored size changes only when gc moves it (a second copy of
// a chunk indexed later has the same stored bytes: same plaintext, same
// codec). So the console, which
// asks on every page load, costs a capture in progress nothing here until
// its record is committed.
func (r *Repo) Usage() ([]RecordUsage, []ComputerUsage, error) {
	records, err := r.Records()
	if err != nil {
		return nil, nil, err
	}
	key := usageKey(records, r.ix.RetiredGeneration())
	if per, comps, ok := r.usage.get(key); ok {
		return per, comps, nil
	}
	per, comps, err := r.usageOf(records)
	if err != nil {
		return nil, nil, err
	}
	r.usage.put(key, per, comps)
	return slices.Clone(per), slices.Clone(comps), nil
}

// usageMemo is the last answer of Usage and what it was computed for.
type usageMemo struct {
	mu    sync.Mutex
	key   [sha256.Size]byte
	valid bool
	per   []RecordUsage
	comps []ComputerUsage
}

func (m *usageMemo) get(key [sha256.Size]byte) ([]RecordUsage, []ComputerUsage, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.valid || m.key != key {
		return nil, nil, false
	}
	return slices.Clone(m.per), slices.Clone(m.comps), true
}

func (m *usageMemo) put(key [sha256.Size]byte, per []RecordUsage, comps []ComputerUsage) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.key, m.valid, m.per, m.comps = key, true, per, comps
}

// usageKey names a set of live records (in the order Records gives them)
// and a generation of retired packs.
func usageKey(records []RecordInfo, retired uint64) [sha256.Size]byte {
	h := sha256.New()
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], retired)
	h.Write(b[:])
	for _, rec := range records {
		h.Write(rec.ID[:])
	}
	return [sha256.Size]byte(h.Sum(nil))
}

func (r *Repo) usageOf(records []RecordInfo) ([]RecordUsage, []ComputerUsage, error) {
	type owner struct {
		records  uint32
		computer int32 // index into computers, -1 when shared by several
	}
	owners := map[cas.ID]*owner{}
	var computers []string
	compIdx := map[string]int32{}
	for _, rec := range records {
		ci, ok := compIdx[rec.Computer]
		if !ok {
			ci = int32(len(computers))
			compIdx[rec.Computer] = ci
			computers = append(computers, rec.Computer)
		}
		err := r.recordChunks(rec.Tree, func(id cas.ID) {
			o := owners[id]
			if o == nil {
				owners[id] = &owner{records: 1, computer: ci}
				return
			}
			o.records++
			if o.computer != ci {
				o.computer = -1
			}
		})
		if err != nil {
			return nil, nil, err
		}
	}
	size := func(id cas.ID) uint64 {
		loc, err := r.ix.Get(cas.BlobData, id)
		if err != nil {
			return 0
		}
		return uint64(loc.StoredLen)
	}
	perRecord := make([]RecordUsage, 0, len(records))
	perComputer := make([]ComputerUsage, len(computers))
	for i, c := range computers {
		perComputer[i].Computer = c
	}
	for _, rec := range records {
		u := RecordUsage{ID: rec.ID.String(), Computer: rec.Computer, Files: rec.Files, Bytes: rec.Bytes}
		err := r.recordChunks(rec.Tree, func(id cas.ID) {
			if owners[id].records == 1 {
				u.OnlyBytes += size(id)
			}
		})
		if err != nil {
			return nil, nil, err
		}
		perRecord = append(perRecord, u)
		pc := &perComputer[compIdx[rec.Computer]]
		pc.Records++
		pc.Bytes += rec.Bytes
	}
	for id, o := range owners {
		if o.computer >= 0 {
			perComputer[o.computer].OnlyBytes += size(id)
		}
	}
	return perRecord, perComputer, nil
}

// recordChunks calls fn once for each distinct chunk a record's tree uses.
func (r *Repo) recordChunks(tree cas.ID, fn func(cas.ID)) error {
	w := manifest.Walker{Load: r, Seen: map[cas.BlobKey]struct{}{}, Chunk: func(id cas.ID, _ *manifest.Entry) error {
		fn(id)
		return nil
	}}
	return w.Walk(context.Background(), tree)
}
