package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/zeebo/blake3"

	"smp/cas"
	"smp/cas/manifest"
)

// Version is the protocol version, the first element of every path (/v1/...).
const Version = 1

// Prefix is the path prefix of protocol version 1.
const Prefix = "/v1"

// Limits on one request. A server refuses larger requests with 413 or 400;
// a client splits its batches to stay under them.
const (
	MaxHaveEntries  = 4096     // entries in one have-query
	MaxFetchEntries = 4096     // entries in one fetch request
	MaxBatchBlobs   = 4096     // blobs in one upload body
	MaxBatchBytes   = 64 << 20 // bytes of one upload body
	MaxJSONBytes    = 1 << 20  // any JSON request body but a record
	MaxRecordBytes  = 16 << 20 // a commit (encoded record)
)

// ErrMalformed marks bytes that do not follow the protocol.
var ErrMalformed = errors.New("malformed request")

// Info is GET /v1/info: what a client needs to cut and name chunks the way
// the store does.
type Info struct {
	Protocol    int               `json:"protocol"`
	StoreID     string            `json:"store_id"`
	Chunker     cas.ChunkerParams `json:"chunker"`
	HashKey     []byte            `json:"hash_key"`
	RestoreOnly bool              `json:"restore_only"`
	Computer    string            `json:"computer,omitempty"` // the token's computer
	Role        string            `json:"role"`
	// Features are the optional parts of v1 this server accepts, added
	// later in v1 (docs/PROTOCOL.md, "Changes"): a client uses one only
	// when the server lists it, so it works with servers that predate it.
	Features []string `json:"features,omitempty"`
}

// FeatureCaptureTotals: POST /v1/captures accepts StartCapture.Expected.
const FeatureCaptureTotals = "capture-totals"

// FeatureTotalsLater: POST /v1/captures/{sid}/expected takes the walk
// totals (a CaptureTotals body) during the session, so a client counts
// alongside its capture instead of before it.
const FeatureTotalsLater = "capture-totals-later"

// HasFeature reports whether the server lists feature f.
func (i Info) HasFeature(f string) bool { return slices.Contains(i.Features, f) }

// Error is the body of every 4xx/5xx answer: one line a CLI can print.
type Error struct {
	Error string `json:"error"`
	// Capacity marks a refusal that another SMP might not give (restore-only,
	// full, over quota): a client with a fallback list tries the next one.
	Capacity bool `json:"capacity,omitempty"`
}

// StartCapture is POST /v1/captures.
type StartCapture struct {
	Computer string `json:"computer"`
	// Estimate asks for an estimate session (smp capture --estimate): its
	// have-queries are answered, but reserve, pin and record nothing, and
	// it may neither upload nor commit.
	Estimate bool `json:"estimate,omitempty"`
	// Expected, optional, is what the client's walk will read: the server
	// shows the session's progress and ETA against it (the web console)
	// and uses it for nothing else. A server that predates it refuses the
	// field, so a client sends it only to a server whose Info lists
	// FeatureCaptureTotals.
	Expected *CaptureTotals `json:"expected,omitempty"`
}

// CaptureTotals are what a capture will read, from the client's counting
// walk before the session (capture.Count): the files new or changed since
// the computer's parent record and their bytes (plaintext). They are the
// client's claim, shown and never trusted: a server bounds them (Check)
// and sizes nothing by them.
type CaptureTotals struct {
	Files uint64 `json:"files"`
	Bytes uint64 `json:"bytes"`
}

// Bounds of CaptureTotals: far above any real capture, so a claim past
// them is malformed rather than large.
const (
	MaxExpectedFiles = 1 << 32
	MaxExpectedBytes = 1 << 56
)

// Check refuses totals past MaxExpectedFiles or MaxExpectedBytes.
func (t CaptureTotals) Check() error {
	if t.Files > MaxExpectedFiles || t.Bytes > MaxExpectedBytes {
		return fmt.Errorf("expected totals of %d files, %d bytes: over %d files or %d bytes: %w", t.Files, t.Bytes, uint64(MaxExpectedFiles), uint64(MaxExpectedBytes), ErrMalformed)
	}
	return nil
}

// Session is the answer to StartCapture.
type Session struct {
	ID    string `json:"session"`
	Nonce []byte `json:"nonce"` // 32 bytes: the key of every proof in this session
	// Estimate echoes an estimate session's request: a client asking for
	// one refuses a session without it.
	Estimate bool `json:"estimate,omitempty"`
}

// Committed is the answer to a commit.
type Committed struct {
	ID string `json:"id"`
}

// UploadResult is the answer to a blob upload.
type UploadResult struct {
	Stored    int   `json:"stored"`    // blobs that were new to the store
	Duplicate int   `json:"duplicate"` // blobs the store already held
	Bytes     int64 `json:"bytes"`     // stored (compressed) bytes received
}

// ProofLen is the length of a proof of possession.
const ProofLen = 32

// proofWhole is the plaintext size up to which the proof covers every byte;
// above it, proofSamples windows of proofWindow bytes chosen by the nonce.
const (
	proofWhole   = 4096
	proofSamples = 16
	proofWindow  = 64
)

// Proof returns the proof that the caller holds blob id's plaintext, keyed
// by the session nonce: without the bytes, knowing a chunk ID (a hash of
// someone else's file) is not enough to be told the store has it. It reads
// at most 1 KiB of plain, so a client proves possession at almost no cost.
// A session's many proofs are cheaper through one Prover.
func Proof(nonce []byte, t cas.BlobType, id cas.ID, plain []byte) [ProofLen]byte {
	return NewProver(nonce).Proof(t, id, plain)
}

// Prover computes the Proofs of one session. It reuses keyed BLAKE3
// states: a fresh one is an 11 KB allocation that costs more than the
// proof's own hashing, and a capture of many small files makes one proof
// per file. A Prover is safe for concurrent use.
type Prover struct {
	key    [32]byte
	states sync.Pool
}

// NewProver returns a Prover for the session nonce.
func NewProver(nonce []byte) *Prover {
	p := &Prover{}
	copy(p.key[:], nonce)
	return p
}

func (p *Prover) state() *blake3.Hasher {
	if h, ok := p.states.Get().(*blake3.Hasher); ok {
		h.Reset()
		return h
	}
	h, err := blake3.NewKeyed(p.key[:])
	if err != nil {
		panic(err) // fixed 32-byte key
	}
	return h
}

// Proof is the package-level Proof with the Prover's nonce.
func (p *Prover) Proof(t cas.BlobType, id cas.ID, plain []byte) [ProofLen]byte {
	h := p.state()
	defer p.states.Put(h)
	var hdr [1 + 32 + 8]byte
	hdr[0] = byte(t)
	copy(hdr[1:], id[:])
	binary.LittleEndian.PutUint64(hdr[33:], uint64(len(plain)))
	_, _ = h.Write([]byte("smp proof v1"))
	_, _ = h.Write(hdr[:])
	if len(plain) <= proofWhole {
		_, _ = h.Write(plain)
	} else {
		// Window offsets come from the nonce and the ID, so they differ per
		// session and cannot be precomputed from a partial copy.
		pos := p.state()
		_, _ = pos.Write(id[:])
		var seeds [proofSamples * 8]byte
		_, _ = pos.Digest().Read(seeds[:])
		p.states.Put(pos)
		span := uint64(len(plain) - proofWindow + 1)
		for i := range proofSamples {
			off := binary.LittleEndian.Uint64(seeds[i*8:]) % span
			_, _ = h.Write(plain[off : off+proofWindow])
		}
	}
	var out [ProofLen]byte
	h.Sum(out[:0])
	return out
}

// HaveEntry is one blob a client is about to upload; the server answers
// whether it already holds it, and only if Proof shows the client holds
// the plaintext.
type HaveEntry struct {
	Type  cas.BlobType
	ID    cas.ID
	Len   uint32 // plaintext length
	Proof [ProofLen]byte
}

const haveEntryLen = 1 + 32 + 4 + ProofLen

// EncodeHave encodes a have-query: u32 count, then count entries.
func EncodeHave(entries []HaveEntry) []byte {
	b := make([]byte, 4, 4+len(entries)*haveEntryLen)
	binary.LittleEndian.PutUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, byte(e.Type))
		b = append(b, e.ID[:]...)
		b = binary.LittleEndian.AppendUint32(b, e.Len)
		b = append(b, e.Proof[:]...)
	}
	return b
}

// DecodeHave decodes a have-query, checking its count and every type and
// length.
func DecodeHave(b []byte) ([]HaveEntry, error) {
	n, rest, err := count(b, MaxHaveEntries)
	if err != nil {
		return nil, err
	}
	if len(rest) != n*haveEntryLen {
		return nil, fmt.Errorf("have-query of %d entries is %d bytes, want %d: %w", n, len(rest), n*haveEntryLen, ErrMalformed)
	}
	out := make([]HaveEntry, n)
	for i := range out {
		e := rest[i*haveEntryLen:]
		out[i].Type = cas.BlobType(e[0])
		if err := checkType(out[i].Type); err != nil {
			return nil, err
		}
		copy(out[i].ID[:], e[1:33])
		out[i].Len = binary.LittleEndian.Uint32(e[33:37])
		if out[i].Len > cas.MaxBlobSize {
			return nil, fmt.Errorf("blob length %d over %d: %w", out[i].Len, cas.MaxBlobSize, ErrMalformed)
		}
		copy(out[i].Proof[:], e[37:37+ProofLen])
	}
	return out, nil
}

// HaveBitmap is the answer to a have-query: bit i (LSB first) set means
// the store holds entry i and the client must not upload it.
type HaveBitmap []byte

// NewHaveBitmap returns an all-clear bitmap for n entries.
func NewHaveBitmap(n int) HaveBitmap { return make(HaveBitmap, (n+7)/8) }

// Set marks entry i as held.
func (b HaveBitmap) Set(i int) { b[i/8] |= 1 << (i % 8) }

// Has reports whether entry i is held.
func (b HaveBitmap) Has(i int) bool { return i/8 < len(b) && b[i/8]&(1<<(i%8)) != 0 }

// FetchEntry names a blob a restoring client wants.
type FetchEntry struct {
	Type cas.BlobType
	ID   cas.ID
}

const fetchEntryLen = 1 + 32

// EncodeFetch encodes a fetch request: u32 count, then count entries.
func EncodeFetch(entries []FetchEntry) []byte {
	b := make([]byte, 4, 4+len(entries)*fetchEntryLen)
	binary.LittleEndian.PutUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, byte(e.Type))
		b = append(b, e.ID[:]...)
	}
	return b
}

// DecodeFetch decodes a fetch request.
func DecodeFetch(b []byte) ([]FetchEntry, error) {
	n, rest, err := count(b, MaxFetchEntries)
	if err != nil {
		return nil, err
	}
	if len(rest) != n*fetchEntryLen {
		return nil, fmt.Errorf("fetch request of %d entries is %d bytes, want %d: %w", n, len(rest), n*fetchEntryLen, ErrMalformed)
	}
	out := make([]FetchEntry, n)
	for i := range out {
		e := rest[i*fetchEntryLen:]
		out[i].Type = cas.BlobType(e[0])
		if err := checkType(out[i].Type); err != nil {
			return nil, err
		}
		copy(out[i].ID[:], e[1:33])
	}
	return out, nil
}

func count(b []byte, max int) (int, []byte, error) {
	if len(b) < 4 {
		return 0, nil, fmt.Errorf("body of %d bytes has no count: %w", len(b), ErrMalformed)
	}
	n := binary.LittleEndian.Uint32(b)
	if n == 0 || n > uint32(max) {
		return 0, nil, fmt.Errorf("count %d outside 1..%d: %w", n, max, ErrMalformed)
	}
	return int(n), b[4:], nil
}

func checkType(t cas.BlobType) error {
	if t != cas.BlobData && t != cas.BlobTree {
		return fmt.Errorf("blob type %d: want data (1) or tree (2): %w", t, ErrMalformed)
	}
	return nil
}

// Blob is one frame of an upload body or a fetch answer: a blob as the
// store keeps it (compressed or raw), so neither side recompresses.
type Blob struct {
	Type        cas.BlobType
	Compression cas.Compression
	ID          cas.ID
	RawLen      int
	Stored      []byte
}

// BlobHeaderLen is the size of a frame header: type, compression, ID,
// u32 raw length, u32 stored length.
const BlobHeaderLen = 1 + 1 + 32 + 4 + 4

// AppendBlob appends b's frame to dst.
func AppendBlob(dst []byte, b Blob) []byte {
	dst = append(dst, byte(b.Type), byte(b.Compression))
	dst = append(dst, b.ID[:]...)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(b.RawLen))
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b.Stored)))
	return append(dst, b.Stored...)
}

// WriteBlob writes b's frame to w without copying b.Stored.
func WriteBlob(w io.Writer, b Blob) error {
	var hdr [BlobHeaderLen]byte
	h := AppendBlob(hdr[:0], Blob{Type: b.Type, Compression: b.Compression, ID: b.ID, RawLen: b.RawLen})
	binary.LittleEndian.PutUint32(h[38:], uint32(len(b.Stored)))
	if _, err := w.Write(h); err != nil {
		return err
	}
	_, err := w.Write(b.Stored)
	return err
}

// BlobReader reads frames from a body, enforcing the count and byte limits.
// The Stored slice of a returned Blob is valid until the next call.
type BlobReader struct {
	r        *bufio.Reader
	maxCount int
	maxBytes int64
	count    int
	bytes    int64
	buf      []byte
}

// NewBlobReader reads at most maxCount frames and maxBytes bytes from r.
func NewBlobReader(r io.Reader, maxCount int, maxBytes int64) *BlobReader {
	return &BlobReader{r: bufio.NewReaderSize(r, 64<<10), maxCount: maxCount, maxBytes: maxBytes}
}

// Buffer returns the reader's frame buffer, and UseBuffer hands it one:
// a server reuses them across requests instead of growing a new one each.
func (br *BlobReader) Buffer() []byte { return br.buf }

// UseBuffer makes the reader read frames into b (grown when short).
func (br *BlobReader) UseBuffer(b []byte) { br.buf = b }

// Ready reports whether the whole next frame has arrived, so that Next
// returns it without waiting for the network.
func (br *BlobReader) Ready() bool {
	n := br.r.Buffered()
	if n < BlobHeaderLen {
		return false
	}
	hdr, _ := br.r.Peek(BlobHeaderLen)
	return uint64(n) >= BlobHeaderLen+uint64(binary.LittleEndian.Uint32(hdr[38:42]))
}

// Next returns the next frame, io.EOF after the last whole one, or an error
// wrapping ErrMalformed (or the reader's error) for anything else.
func (br *BlobReader) Next() (Blob, error) {
	var hdr [BlobHeaderLen]byte
	n, err := io.ReadFull(br.r, hdr[:])
	if err == io.EOF {
		return Blob{}, io.EOF
	}
	if err == io.ErrUnexpectedEOF {
		return Blob{}, fmt.Errorf("truncated blob header (%d of %d bytes): %w", n, BlobHeaderLen, ErrMalformed)
	}
	if err != nil {
		return Blob{}, err
	}
	b := Blob{Type: cas.BlobType(hdr[0]), Compression: cas.Compression(hdr[1])}
	copy(b.ID[:], hdr[2:34])
	raw := binary.LittleEndian.Uint32(hdr[34:38])
	stored := binary.LittleEndian.Uint32(hdr[38:42])
	br.count++
	switch {
	case br.count > br.maxCount:
		return Blob{}, fmt.Errorf("more than %d blobs in one batch: %w", br.maxCount, ErrMalformed)
	case checkType(b.Type) != nil:
		return Blob{}, checkType(b.Type)
	case b.Compression != cas.CompressionNone && b.Compression != cas.CompressionZstd:
		return Blob{}, fmt.Errorf("compression %d: %w", b.Compression, ErrMalformed)
	case raw > cas.MaxBlobSize || stored > cas.MaxBlobSize:
		return Blob{}, fmt.Errorf("blob %s: length over %d: %w", b.ID.Short(), cas.MaxBlobSize, ErrMalformed)
	case b.Compression == cas.CompressionNone && raw != stored:
		return Blob{}, fmt.Errorf("blob %s: raw blob with stored length %d != raw %d: %w", b.ID.Short(), stored, raw, ErrMalformed)
	}
	br.bytes += BlobHeaderLen + int64(stored)
	if br.bytes > br.maxBytes {
		return Blob{}, fmt.Errorf("batch over %d bytes: %w", br.maxBytes, ErrMalformed)
	}
	if err := br.readStored(int(stored)); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return Blob{}, fmt.Errorf("blob %s truncated: %w", b.ID.Short(), ErrMalformed)
		}
		return Blob{}, err
	}
	b.Stored = br.buf
	b.RawLen = int(raw)
	return b, nil
}

// readStored reads n bytes into br.buf. The buffer grows with the bytes
// that arrive, at most doubling, rather than to the length the header
// claims: a header announcing 64 MiB followed by a trickle (or nothing)
// costs the reader what was really sent.
func (br *BlobReader) readStored(n int) error {
	buf := br.buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, min(n-len(buf), max(64<<10, len(buf))))
		}
		m, err := io.ReadFull(br.r, buf[len(buf):min(n, cap(buf))])
		buf = buf[:len(buf)+m]
		if err != nil {
			br.buf = buf[:0]
			return err
		}
	}
	br.buf = buf
	return nil
}

// RecordEntry is one record in GET /v1/records and GET /v1/record.
type RecordEntry struct {
	ID       string           `json:"id"`
	Record   *manifest.Record `json:"record"`
	Released *time.Time       `json:"released,omitempty"`
}

// GCRequest is POST /v1/gc (admin): what `smp gc` does locally.
type GCRequest struct {
	DryRun           bool    `json:"dry_run"`
	RepackBelow      float64 `json:"repack_below"`
	GraceSeconds     float64 `json:"grace_seconds"`     // 0: the server's default, unless NoGrace
	NoGrace          bool    `json:"no_grace"`          // keep no young pack
	RetentionSeconds float64 `json:"retention_seconds"` // 0: remove no released record
}
