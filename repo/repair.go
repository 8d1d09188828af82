package repo

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"smp/cas"
)

// Repair writes fresh copies of damaged or missing data chunks from
// plaintext found outside the store: the original files, or the same files
// on another machine. A chunk's ID is the keyed hash of its plaintext, so a
// piece of data whose hash equals a damaged chunk's ID is that chunk, byte
// for byte, wherever it was found.
//
// Repair hashes every plaintext offer yields (data chunks cut with the
// store's chunker, see ChunkerParams) and writes each one whose ID is in
// damaged to new packs, the normal way (temporary file, fsync, rename,
// directory fsync), then indexes those packs. Indexing moves the chunk's
// index entry to the new copy; the index entry is what every reader (verify,
// restore, gc, a server) follows, so from then on the damaged copy is
// garbage: it stays in its old pack until gc deletes or rewrites that pack
// (gc counts a blob only for the pack its index entry names and copies only
// that copy). Each written chunk is read back through the index and
// re-hashed before it counts as repaired.
//
// yield returns ErrRepairDone once every damaged chunk has been found: offer
// should then stop and may return that error. Any other error offer returns
// stops the repair; the chunks found until then are still written, and the
// report comes back with the error. Only data chunks can be repaired this
// way; trees and records are not file contents and stay in Missing.
//
// No other goroutine may write through r while Repair runs (smp verify
// --repair holds the store lock in a process of its own).
func (r *Repo) Repair(damaged map[cas.ID]bool, offer func(yield func(plain []byte) error) error) (*RepairReport, error) {
	rep := &RepairReport{Repaired: []string{}, Missing: []string{}, Packs: []string{}, Problems: []string{}}
	wanted := map[cas.ID]bool{}
	for id, ok := range damaged {
		if ok {
			wanted[id] = true
		}
	}
	rep.Wanted = len(wanted)
	written := map[cas.ID]bool{}
	w := &repairWriter{r: r, rep: rep}
	defer w.abort()
	var offerErr, writeErr error
	if len(wanted) > 0 {
		var buf []byte
		offerErr = offer(func(plain []byte) error {
			rep.ChunksOffered++
			rep.BytesOffered += uint64(len(plain))
			if len(plain) == 0 || len(plain) > cas.MaxBlobSize {
				return nil
			}
			id := r.Hasher.Sum(plain)
			if !wanted[id] || written[id] {
				return nil
			}
			stored, c := cas.Compress(buf, plain)
			if c == cas.CompressionZstd {
				buf = stored[:0]
			}
			if err := w.add(id, c, stored, len(plain)); err != nil {
				writeErr = err
				return err
			}
			written[id] = true
			if len(written) == len(wanted) {
				return ErrRepairDone
			}
			return nil
		})
		if errors.Is(offerErr, ErrRepairDone) {
			offerErr = nil
		}
	}
	if writeErr != nil {
		return nil, writeErr // the open pack is aborted; committed ones are sound
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	// Read every new copy back through the index: the store now serves it.
	var buf []byte
	for id := range wanted {
		if !written[id] {
			rep.Missing = append(rep.Missing, id.String())
			continue
		}
		data, err := r.ReadChunk(id, buf)
		if err != nil {
			rep.Missing = append(rep.Missing, id.String())
			rep.Problems = append(rep.Problems, fmt.Sprintf("chunk %s written but not readable: %v", id.Short(), err))
			continue
		}
		buf = data[:0]
		rep.Repaired = append(rep.Repaired, id.String())
	}
	slices.Sort(rep.Repaired)
	slices.Sort(rep.Missing)
	return rep, offerErr
}

// ErrRepairDone is returned by Repair's yield when every damaged chunk has
// been found and offering more is pointless.
var ErrRepairDone = errors.New("every damaged chunk was found")

// RepairReport is what Repair did.
type RepairReport struct {
	Wanted        int      `json:"wanted"`         // damaged chunk IDs asked for
	Repaired      []string `json:"repaired"`       // written anew and read back sound, sorted
	Missing       []string `json:"missing"`        // no offered plaintext matched (or the new copy failed), sorted
	ChunksOffered uint64   `json:"chunks_offered"` // plaintexts hashed
	BytesOffered  uint64   `json:"bytes_offered"`
	BytesWritten  int64    `json:"bytes_written"` // new pack files
	Packs         []string `json:"packs"`         // new packs holding the copies
	Problems      []string `json:"problems"`
}

// DamagedData returns the IDs of the damaged data chunks in a verify
// report: the ones Repair can take from files.
func (v *VerifyReport) DamagedData() map[cas.ID]bool {
	out := map[cas.ID]bool{}
	for _, d := range v.Damaged {
		if d.Type != cas.BlobData.String() {
			continue
		}
		if id, err := cas.ParseID(d.Blob); err == nil {
			out[id] = true
		}
	}
	return out
}

// repairWriter writes repaired chunks to new data packs, committing and
// indexing each as it fills, like the normal write path.
type repairWriter struct {
	r    *Repo
	rep  *RepairReport
	pack *cas.PendingPack
}

func (w *repairWriter) add(id cas.ID, c cas.Compression, stored []byte, rawLen int) error {
	if w.pack == nil {
		p, err := w.r.packs.Create()
		if err != nil {
			return fmt.Errorf("repair: %w", err)
		}
		w.pack = p
	}
	if err := w.pack.Add(cas.BlobData, id, c, stored, rawLen); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	if int64(w.pack.Size()) >= w.r.Config.PackSize {
		return w.commit()
	}
	return nil
}

// commit makes the open pack durable, then points the index at its copies.
func (w *repairWriter) commit() error {
	p := w.pack
	w.pack = nil
	id, entries, size, err := w.r.storePack(p)
	if err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	// A repair pack holding exactly the blobs of a damaged pack, in the
	// same order, has the same trailer and so the same name (compression
	// is deterministic): the rename above replaced the damaged file with
	// the sound one. Descriptors cached before then still read the old
	// file; drop them.
	w.r.packs.Close()
	if err := w.r.ix.AddPack(id, size, entries); err != nil {
		return fmt.Errorf("repair: %w", err)
	}
	w.rep.Packs = append(w.rep.Packs, id.String())
	w.rep.BytesWritten += size
	return nil
}

func (w *repairWriter) finish() error {
	if w.pack != nil && w.pack.Count() > 0 {
		if err := w.commit(); err != nil {
			return err
		}
	}
	w.abort()
	slices.Sort(w.rep.Packs)
	return nil
}

func (w *repairWriter) abort() {
	if w.pack != nil {
		w.pack.Abort()
		w.pack = nil
	}
}

// OfferFiles returns an offer function for Repair that walks each root and
// cuts every regular file below it into chunks with chunker parameters p
// (the store's: ChunkerParams), yielding each. Relative roots are taken
// from the working directory. Symlinks below a root are not followed,
// directories in skip (absolute paths: the store itself) are not entered,
// and empty files are skipped. A file or directory that cannot be read is passed to warn
// and skipped. A root that cannot be read is an error.
func OfferFiles(roots []string, p cas.ChunkerParams, skip []string, warn func(path string, err error)) func(yield func(plain []byte) error) error {
	return func(yield func(plain []byte) error) error {
		chunker := cas.NewChunker(nil, p)
		for _, root := range roots {
			root, err := filepath.Abs(root)
			if err != nil {
				return fmt.Errorf("repair source: %w", err)
			}
			if real, err := filepath.EvalSymlinks(root); err == nil {
				root = real // a root given as a symlink is walked, below it none is followed
			}
			if _, err := os.Stat(root); err != nil {
				return fmt.Errorf("repair source: %w", err)
			}
			err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
				if err != nil {
					if path == root {
						return fmt.Errorf("repair source: %w", err)
					}
					warn(path, err)
					return nil
				}
				if d.IsDir() {
					if slices.Contains(skip, path) {
						return filepath.SkipDir
					}
					return nil
				}
				if !d.Type().IsRegular() {
					return nil
				}
				return offerFile(path, chunker, yield, warn)
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
}

func offerFile(path string, chunker *cas.Chunker, yield func([]byte) error, warn func(string, error)) error {
	f, err := os.OpenFile(path, os.O_RDONLY|oNoAtime|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrPermission) {
		f, err = os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0) // O_NOATIME needs ownership
	}
	if err != nil {
		warn(path, err)
		return nil
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() || st.Size() == 0 {
		return nil // replaced since the walk saw it, or nothing to offer (also /proc files)
	}
	chunker.Reset(f)
	for {
		chunk, err := chunker.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			warn(path, err)
			return nil
		}
		if err := yield(chunk); err != nil {
			return err
		}
	}
}
