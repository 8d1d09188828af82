package bench

import (
	"fmt"
	"path/filepath"
)

// CorpusOptions describe a generated organisation.
type CorpusOptions struct {
	Out   string // DIR: profiles go to DIR/home/userNN
	Users int
	Size  int64 // total bytes of file data across all users (approximate)
	Seed  uint64
}

// CorpusInfo summarises a generated or mutated corpus.
type CorpusInfo struct {
	Root      string   `json:"root"`  // DIR (capture with --root DIR)
	Users     []string `json:"users"` // user01, user02, ...
	Files     int      `json:"files"`
	Bytes     int64    `json:"bytes"`
	ZstdRatio float64  `json:"zstd_ratio"` // 0 when not measured
}

// GenerateCorpus writes a deterministic organisation corpus.
//
// PLACEHOLDER implementation (one independent tree per user); being
// replaced by the full organisation model (shared, department, unique and
// edited files). The signature is stable.
func GenerateCorpus(o CorpusOptions) (*CorpusInfo, error) {
	if o.Users < 1 {
		return nil, fmt.Errorf("corpus needs at least one user")
	}
	info := &CorpusInfo{Root: o.Out}
	per := o.Size / int64(o.Users)
	for i := 1; i <= o.Users; i++ {
		name := fmt.Sprintf("user%02d", i)
		st, err := Generate(filepath.Join(o.Out, "home", name), per, o.Seed+uint64(i))
		if err != nil {
			return nil, err
		}
		info.Users = append(info.Users, name)
		info.Files += st.Files
		info.Bytes += st.Total
	}
	return info, nil
}

// MutateCorpus applies a deterministic "one week later" change (edits,
// additions, deletions) to a corpus made by GenerateCorpus.
//
// PLACEHOLDER: being implemented.
func MutateCorpus(dir string, seed uint64) (*CorpusInfo, error) {
	return nil, fmt.Errorf("corpus mutation is not implemented yet")
}
