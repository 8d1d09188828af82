package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"smp/internal/sysfile"
	"smp/repo/report"
)

// HistoryFile is the file, in the store directory, holding the samples of
// the overview's chart.
const HistoryFile = "console-history.json"

// maxHistory bounds the samples kept: one a sampling interval, a year of
// hourly points; older ones are dropped.
const maxHistory = 24 * 366

// sample is one point of the overview chart.
type sample struct {
	At      int64  `json:"t"` // Unix seconds
	Stored  uint64 `json:"stored_bytes"`
	Logical uint64 `json:"logical_bytes"`
	Records int    `json:"records"`
}

type historyFile struct {
	Version int      `json:"v"`
	Samples []sample `json:"samples"`
}

// history keeps the samples in memory and in HistoryFile.
type history struct {
	path  string
	every time.Duration
	limit int // samples kept: maxHistory (a test lowers it)
	mu    sync.Mutex
	file  *historyFile
}

func newHistory(dir string, every time.Duration) *history {
	return &history{path: filepath.Join(dir, HistoryFile), every: every, limit: maxHistory}
}

func (h *history) load() (*historyFile, error) {
	if h.file != nil {
		return h.file, nil
	}
	hf := &historyFile{Version: 1}
	f, err := os.OpenFile(h.path, os.O_RDONLY|syscallNoFollow, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("console history: %w", err)
	default:
		defer f.Close()
		dec := json.NewDecoder(&limitReader{f: f, n: maxSessionsFileSize})
		if err := dec.Decode(hf); err != nil || hf.Version != 1 || len(hf.Samples) > maxHistory {
			// The chart is a convenience: a damaged file starts a new history
			// rather than stopping the console.
			hf = &historyFile{Version: 1}
		}
	}
	h.file = hf
	return hf, nil
}

// maybeSample appends a sample of st when the newest is older than the
// interval, and writes the file.
func (h *history) maybeSample(now time.Time, stats func() (*report.Stats, error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	hf, err := h.load()
	if err != nil {
		return err
	}
	if n := len(hf.Samples); n > 0 && now.Unix()-hf.Samples[n-1].At < int64(h.every/time.Second) {
		return nil
	}
	st, err := stats()
	if err != nil {
		return err
	}
	hf.Samples = append(hf.Samples, sample{At: now.Unix(), Stored: st.StoredBytes, Logical: st.LogicalBytes, Records: st.Records})
	if len(hf.Samples) > h.limit {
		hf.Samples = hf.Samples[len(hf.Samples)-h.limit:]
	}
	b, err := json.Marshal(hf)
	if err != nil {
		return err
	}
	return sysfile.WriteFile(h.path, b, 0o600)
}

func (h *history) samples() []sample {
	h.mu.Lock()
	defer h.mu.Unlock()
	hf, err := h.load()
	if err != nil {
		return nil
	}
	return append([]sample(nil), hf.Samples...)
}
