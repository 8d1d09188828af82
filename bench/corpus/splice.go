package corpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"time"
)

func logUniform(r *rand.Rand, lo, hi int64) int64 {
	return int64(math.Exp(math.Log(float64(lo)) + r.Float64()*(math.Log(float64(hi))-math.Log(float64(lo)))))
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// writer generates file contents; one per goroutine.
type writer struct {
	c       *material
	buf     *bufio.Writer
	scratch []byte
	text    []byte // gzip input
	gz      *gzip.Writer
	gzOut   bytes.Buffer
}

func newWriter(c *material) *writer {
	gz, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed)
	return &writer{c: c, buf: bufio.NewWriterSize(nil, 1<<20), gz: gz}
}

// genEpoch is the fixed mtime base of generated files.
var genEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// appendText appends at least n bytes of text: runs of lines spliced from
// random real files, with seeded variations (renamed identifiers, edited
// numbers, inserted log and config lines).
func (w *writer) appendText(r *rand.Rand, dst []byte, n int) []byte {
	target := len(dst) + n
	c := w.c
	for len(dst) < target {
		switch k := r.IntN(100); {
		case k < 8: // a burst of log lines
			for range 1 + r.IntN(40) {
				dst = w.appendLogLine(r, dst)
			}
			continue
		case k < 12: // config lines
			for range 1 + r.IntN(20) {
				dst = fmt.Appendf(dst, "%s.%s = %d\n", pick(r, c.words), pick(r, c.words), r.IntN(100000))
			}
			continue
		}
		f := pick(r, c.textFiles)
		file := c.text[f.start:f.end]
		// Start at a random line; take 8-160 lines.
		off := r.IntN(len(file))
		if i := bytes.LastIndexByte(file[:off], '\n'); i >= 0 {
			off = i + 1
		} else {
			off = 0
		}
		end := off
		for lines := 8 + r.IntN(152); lines > 0 && end < len(file); lines-- {
			i := bytes.IndexByte(file[end:], '\n')
			if i < 0 {
				end = len(file)
				break
			}
			end += i + 1
		}
		block := file[off:end]
		if r.IntN(3) == 0 { // rename an identifier throughout the block
			if ids := identifiers(block[:min(len(block), 512)]); len(ids) > 0 {
				id := pick(r, ids)
				block = bytes.ReplaceAll(block, []byte(id), fmt.Appendf(nil, "%s%s%d", id, pick(r, c.words), r.IntN(1000)))
			}
		}
		start := len(dst)
		dst = append(dst, block...)
		// Edit a few digits so numbers differ between copies of a block.
		for range r.IntN(4) {
			i := start + r.IntN(len(dst)-start+1)
			if i < len(dst) && dst[i] >= '0' && dst[i] <= '9' {
				dst[i] = byte('0' + r.IntN(10))
			}
		}
	}
	return dst
}

var logLevels = []string{"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"}

func (w *writer) appendLogLine(r *rand.Rand, dst []byte) []byte {
	t := genEpoch.Add(time.Duration(r.Int64N(int64(365 * 24 * time.Hour))))
	return fmt.Appendf(dst, "%s %s %s: %s %s id=%08x latency=%dms status=%d\n",
		t.Format(time.RFC3339Nano), pick(r, logLevels), pick(r, w.c.words), pick(r, w.c.words), pick(r, w.c.words),
		r.Uint32(), r.IntN(2000), pick(r, []int{200, 200, 200, 204, 301, 404, 500}))
}

// appendBinary appends one piece (4-128 KiB) of a random executable at a
// random 16-byte-aligned offset, with a few 8-byte words replaced by
// pointer-like values, the way relocated or rebuilt binaries differ.
func (w *writer) appendBinary(r *rand.Rand, dst []byte) []byte {
	b := pick(r, w.c.bins)
	n := int(logUniform(r, 4<<10, 128<<10))
	n = min(n, len(b))
	off := r.IntN(len(b)-n+1) &^ 15
	start := len(dst)
	dst = append(dst, b[off:off+n]...)
	for i := start + r.IntN(2048); i+8 <= len(dst); i += 512 + r.IntN(3584) {
		binary.LittleEndian.PutUint64(dst[i:], 0x4000_0000+r.Uint64N(1<<24)&^7)
	}
	return dst
}
