package bench

// GC at scale: issue 6 asks that gc cost grow with live data, not with
// history, and that its time and memory for a million chunks be reported.
// BuildGCStore makes such a store directly through the repo package (a
// million chunks through `smp capture` would need 64 GB of files at the
// smallest chunk size); the gc itself is timed as a child process of the
// real binary, like every other bench figure.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"smp/cas"
	"smp/cas/manifest"
	"smp/keys"
	"smp/repo"
)

// GCScaleReport is what `smp bench gc` measured.
type GCScaleReport struct {
	Chunks       int     `json:"chunks"`        // data chunks in the store before gc
	Records      int     `json:"records"`       // records written
	Removed      int     `json:"removed"`       // records removed before gc
	BuildSeconds float64 `json:"build_seconds"` // making the synthetic store
	GCSeconds    float64 `json:"gc_seconds"`    // wall time of `smp gc`
	GCCPUSeconds float64 `json:"gc_cpu_seconds"`
	GCPeakRSSMiB float64 `json:"gc_peak_rss_mib"`
	BlobsRemoved int     `json:"blobs_removed"`
	LiveBlobs    int     `json:"live_blobs"`
	PacksScanned int     `json:"packs_scanned"`
	BytesFreed   int64   `json:"bytes_freed"`
	// A second gc with nothing to collect: its cost is the floor set by
	// the live data alone.
	IdleGCSeconds float64 `json:"idle_gc_seconds"`
	IdleGCRSSMiB  float64 `json:"idle_gc_peak_rss_mib"`
	// KeyFile opens the store, which is encrypted as smp init makes
	// stores by default: BuildGCStore writes it beside the store.
	KeyFile string `json:"-"`
}

// gcChunkSize is the plaintext size of each synthetic chunk: small, so a
// million fit in 64 MiB, and distinct (a counter and the seed lead it).
const gcChunkSize = 64

// BuildGCStore creates a store in dir holding chunks distinct data chunks
// spread over records of perRecord chunks each (files of 16 chunks, trees
// of 256 files), then removes every other record, so about half the
// chunks become garbage scattered through the packs. The store is
// encrypted, as smp init makes stores by default; its key file is
// dir+".key" (rep.KeyFile).
func BuildGCStore(dir string, chunks, perRecord int, log io.Writer) (GCScaleReport, error) {
	start := time.Now()
	rep := GCScaleReport{Chunks: chunks, KeyFile: dir + ".key"}
	kr, err := initEncryptedStore(dir, rep.KeyFile)
	if err != nil {
		return rep, err
	}
	r, err := repo.OpenWith(dir, repo.OpenOptions{Keyring: kr})
	if err != nil {
		return rep, err
	}
	defer r.Close()
	buf := make([]byte, gcChunkSize)
	var ids []cas.ID
	n := 0
	for n < chunks {
		count := min(perRecord, chunks-n)
		tree := &manifest.Tree{}
		var file *manifest.Entry
		for i := range count {
			binary.LittleEndian.PutUint64(buf, uint64(n+i))
			copy(buf[8:], bytes.Repeat([]byte{byte(n + i)}, gcChunkSize-8))
			id, _, err := r.PutBlob(cas.BlobData, buf)
			if err != nil {
				return rep, err
			}
			if file == nil || len(file.Chunks) == 16 {
				tree.Entries = append(tree.Entries, manifest.Entry{Name: fmt.Sprintf("f%06d", len(tree.Entries)), Type: manifest.TypeFile, Mode: 0o644, MTimeNs: 1})
				file = &tree.Entries[len(tree.Entries)-1]
			}
			file.Chunks = append(file.Chunks, manifest.Chunk{ID: id, Size: gcChunkSize})
			file.Size += gcChunkSize
		}
		root, err := putFanout(r, tree)
		if err != nil {
			return rep, err
		}
		id, err := r.CommitRecord(&manifest.Record{Computer: fmt.Sprintf("pc%05d", rep.Records), Created: time.Unix(0, 0).UTC(), Tree: root, Files: uint64(len(tree.Entries)), Bytes: uint64(count * gcChunkSize)})
		if err != nil {
			return rep, err
		}
		ids = append(ids, id)
		rep.Records++
		n += count
		if log != nil && rep.Records%20 == 0 {
			fmt.Fprintf(log, "  %d of %d chunks written\n", n, chunks)
		}
	}
	for i, id := range ids {
		if i%2 == 1 {
			continue
		}
		if err := r.RemoveRecord(id); err != nil {
			return rep, err
		}
		rep.Removed++
	}
	rep.BuildSeconds = time.Since(start).Seconds()
	return rep, nil
}

// initEncryptedStore creates an encrypted store in dir, as smp init does
// by default, with one key file slot whose key it writes to keyFile, and
// returns its keyring.
func initEncryptedStore(dir, keyFile string) (*keys.Keyring, error) {
	var sid [16]byte
	if _, err := rand.Read(sid[:]); err != nil {
		return nil, err
	}
	u, err := keys.Create(hex.EncodeToString(sid[:]))
	if err != nil {
		return nil, err
	}
	k, _, err := u.AddKeyFile()
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(keyFile, keys.EncodeKeyFile(k), 0o600); err != nil {
		return nil, err
	}
	if _, err := repo.InitWith(dir, repo.InitOptions{Params: cas.DefaultChunkerParams(), Keys: u}); err != nil {
		return nil, err
	}
	return u.Keyring(), nil
}

// putFanout stores a flat list of file entries as a root of directories
// of at most 256 files, as real profiles are shaped.
func putFanout(r *repo.Repo, flat *manifest.Tree) (cas.ID, error) {
	root := &manifest.Tree{}
	for i := 0; i < len(flat.Entries); i += 256 {
		sub := &manifest.Tree{Entries: flat.Entries[i:min(i+256, len(flat.Entries))]}
		id, err := r.PutTree(sub)
		if err != nil {
			return cas.ID{}, err
		}
		root.Entries = append(root.Entries, manifest.Entry{Name: fmt.Sprintf("d%05d", i/256), Type: manifest.TypeDir, Mode: 0o755, MTimeNs: 1, Subtree: id})
	}
	return r.PutTree(root)
}

// RunGCScale builds the store under work and times `bin gc` on it twice.
func RunGCScale(ctx context.Context, bin, work string, chunks int, log io.Writer) (GCScaleReport, error) {
	dir := filepath.Join(work, "gc-scale-store")
	rep, err := BuildGCStore(dir, chunks, 10000, log)
	if err != nil {
		return rep, fmt.Errorf("build store: %w", err)
	}
	gc := func() (map[string]any, time.Duration, time.Duration, int64, error) {
		cmd := exec.CommandContext(ctx, bin, "gc", "--store", dir, "--key-file", rep.KeyFile, "--grace", "0", "--json")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, 0, 0, 0, fmt.Errorf("smp gc: %v: %s", err, errb.String())
		}
		wall := time.Since(start)
		ps := cmd.ProcessState
		rss := maxRSSKiB(ps)
		var m map[string]any
		if err := json.Unmarshal(out.Bytes(), &m); err != nil {
			return nil, 0, 0, 0, fmt.Errorf("smp gc output: %w", err)
		}
		return m, wall, ps.UserTime() + ps.SystemTime(), rss, nil
	}
	m, wall, cpu, rss, err := gc()
	if err != nil {
		return rep, err
	}
	num := func(k string) float64 { v, _ := m[k].(float64); return v }
	rep.GCSeconds, rep.GCCPUSeconds, rep.GCPeakRSSMiB = wall.Seconds(), cpu.Seconds(), float64(rss)/1024
	rep.BlobsRemoved, rep.LiveBlobs, rep.PacksScanned, rep.BytesFreed = int(num("blobs_removed")), int(num("live_blobs")), int(num("packs_scanned")), int64(num("bytes_freed"))
	_, wall, _, rss, err = gc()
	if err != nil {
		return rep, err
	}
	rep.IdleGCSeconds, rep.IdleGCRSSMiB = wall.Seconds(), float64(rss)/1024
	return rep, nil
}
