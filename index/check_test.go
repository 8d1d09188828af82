package index_test

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"

	"smp/index"
)

// damagedIndexFixture builds an index of a few thousand blobs (several
// tables' worth of blocks), closes it, and returns its directory and its
// largest table file. With key, the index is encrypted (as an encrypted
// store's is).
func damagedIndexFixture(t *testing.T, key ...[]byte) (dir, sst string) {
	t.Helper()
	dir = t.TempDir()
	var o index.Options
	if len(key) > 0 {
		o.EncryptionKey = key[0]
	}
	ix, err := index.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	for p := range 3 {
		if err := ix.AddPack(idN(1<<40+uint64(p)), 1<<20, packEntries(uint64(p*3000), 3000)); err != nil {
			t.Fatal(err)
		}
	}
	if err := ix.PutRecord(idN(7), []byte(`{"v":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	var size int64
	for _, s := range ssts {
		if st, err := os.Stat(s); err == nil && st.Size() > size {
			sst, size = s, st.Size()
		}
	}
	if sst == "" {
		t.Fatalf("no table written in %s", dir)
	}
	return dir, sst
}

// copyIndexDir copies the flat index directory src to a new directory.
func copyIndexDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// tableFooter returns where a Badger v4 table's index starts and its length
// (the table ends with index, index length u32, checksum, checksum length
// u32, big endian).
func tableFooter(t *testing.T, b []byte) (start, n int) {
	t.Helper()
	chkLen := int(binary.BigEndian.Uint32(b[len(b)-4:]))
	n = int(binary.BigEndian.Uint32(b[len(b)-8-chkLen:]))
	start = len(b) - 8 - chkLen - n
	if start < 0 {
		t.Fatalf("fixture table has an unexpected footer")
	}
	return start, n
}

const (
	childDirEnv = "SMP_INDEX_OPEN_CHILD_DIR"
	childKeyEnv = "SMP_INDEX_OPEN_CHILD_KEY" // hex; unset for an index in clear
)

// testIndexKey is the key of the encrypted fixtures.
var testIndexKey = []byte("0123456789abcdef0123456789abcdef")

// TestOpenChild is the child process of TestOpenDamagedTable: it opens the
// index in $SMP_INDEX_OPEN_CHILD_DIR and prints the outcome. Badger opens
// tables in goroutines of its own, where a panic kills the process: only a
// child can show it.
func TestOpenChild(t *testing.T) {
	dir := os.Getenv(childDirEnv)
	if dir == "" {
		t.Skip("child process of TestOpenDamagedTable")
	}
	var o index.Options
	if k := os.Getenv(childKeyEnv); k != "" {
		var err error
		if o.EncryptionKey, err = hex.DecodeString(k); err != nil {
			t.Fatal(err)
		}
	}
	ix, err := index.Open(dir, o)
	if err != nil {
		fmt.Printf("RESULT damaged=%v err=%s\n", errors.Is(err, index.ErrDamaged), strconv.Quote(err.Error()))
		return
	}
	_, rerr := ix.Record(idN(7))
	ix.Close()
	fmt.Printf("RESULT opened record=%v\n", rerr)
}

// TestOpenDamagedTable: whatever is done to a table the MANIFEST lists (or
// to the MANIFEST), opening the index fails with ErrDamaged on one line:
// no panic inside Badger, and no table silently left out. It runs on an
// index in clear and on an encrypted one (each table checked with its
// data key from KEYREGISTRY, whose damage is reported the same way).
func TestOpenDamagedTable(t *testing.T) {
	t.Run("clear", func(t *testing.T) { testOpenDamagedTable(t, nil) })
	t.Run("encrypted", func(t *testing.T) { testOpenDamagedTable(t, testIndexKey) })
}

func testOpenDamagedTable(t *testing.T, key []byte) {
	var pristine, sst string
	if key != nil {
		pristine, sst = damagedIndexFixture(t, key)
	} else {
		pristine, sst = damagedIndexFixture(t)
	}
	name := filepath.Base(sst)
	rng := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		name   string
		file   string // in the index directory
		damage func(b []byte) []byte
	}{
		{"truncated to half", name, func(b []byte) []byte { return b[:len(b)/2] }},
		{"last byte cut", name, func(b []byte) []byte { return b[:len(b)-1] }},
		{"only the first 100 bytes", name, func(b []byte) []byte { return b[:100] }},
		{"3 bytes left", name, func(b []byte) []byte { return b[:3] }},
		{"empty", name, func(b []byte) []byte { return nil }},
		{"checksum length huge", name, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[len(b)-4:], 0xfffffff0)
			return b
		}},
		{"checksum length past the start", name, func(b []byte) []byte {
			binary.BigEndian.PutUint32(b[len(b)-4:], uint32(len(b)))
			return b
		}},
		{"index length huge", name, func(b []byte) []byte {
			chkLen := int(binary.BigEndian.Uint32(b[len(b)-4:]))
			binary.BigEndian.PutUint32(b[len(b)-8-chkLen:], 0x7ffffff0)
			return b
		}},
		{"index length one too small", name, func(b []byte) []byte {
			chkLen := int(binary.BigEndian.Uint32(b[len(b)-4:]))
			n := binary.BigEndian.Uint32(b[len(b)-8-chkLen:])
			binary.BigEndian.PutUint32(b[len(b)-8-chkLen:], n-1)
			return b
		}},
		{"one byte of the table index flipped", name, func(b []byte) []byte {
			start, n := tableFooter(t, b)
			b[start+n/2] ^= 0x40
			return b
		}},
		{"checksum flipped", name, func(b []byte) []byte {
			b[len(b)-6] ^= 0x01
			return b
		}},
		{"tail zeroed", name, func(b []byte) []byte {
			clear(b[len(b)-4096:])
			return b
		}},
		{"overwritten with random bytes", name, func(b []byte) []byte {
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			return b
		}},
		{"MANIFEST truncated inside its header", badger.ManifestFilename, func(b []byte) []byte { return b[:5] }},
		{"MANIFEST flipped", badger.ManifestFilename, func(b []byte) []byte {
			b[len(b)-3] ^= 0x20
			return b
		}},
	}
	if key != nil {
		tests = append(tests, []struct {
			name   string
			file   string
			damage func(b []byte) []byte
		}{
			{"KEYREGISTRY truncated", badger.KeyRegistryFileName, func(b []byte) []byte { return b[:len(b)-3] }},
			// Cut inside the first data key's length, its protobuf, its
			// middle: Badger's reader panicked on some of these.
			{"KEYREGISTRY cut to 30 bytes", badger.KeyRegistryFileName, func(b []byte) []byte { return b[:30] }},
			{"KEYREGISTRY cut to 40 bytes", badger.KeyRegistryFileName, func(b []byte) []byte { return b[:40] }},
			{"KEYREGISTRY cut in half", badger.KeyRegistryFileName, func(b []byte) []byte { return b[:len(b)/2] }},
			{"KEYREGISTRY data key flipped", badger.KeyRegistryFileName, func(b []byte) []byte {
				b[len(b)-5] ^= 0x08
				return b
			}},
		}...)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := copyIndexDir(t, pristine)
			path := filepath.Join(dir, tt.file)
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tt.damage(b), 0o644); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(exe, "-test.run=^TestOpenChild$", "-test.count=1")
			cmd.Env = append(os.Environ(), childDirEnv+"="+dir, childKeyEnv+"="+hex.EncodeToString(key))
			out, err := cmd.CombinedOutput()
			text := string(out)
			if i := strings.Index(text, "panic:"); i >= 0 {
				line, _, _ := strings.Cut(text[i:], "\n")
				t.Fatalf("opening the index panicked (exit %v): %s", err, line)
			}
			i := strings.Index(text, "RESULT ")
			if err != nil || i < 0 {
				t.Fatalf("child: %v\n%s", err, text)
			}
			result, _, _ := strings.Cut(text[i+len("RESULT "):], "\n")
			if !strings.HasPrefix(result, "damaged=true err=") {
				t.Fatalf("Open: %s; want an ErrDamaged error", result)
			}
			msg, err := strconv.Unquote(strings.TrimPrefix(result, "damaged=true err="))
			if err != nil || strings.Contains(msg, "\n") || !strings.Contains(msg, tt.file) {
				t.Errorf("error %q: want one line naming %s", msg, tt.file)
			}
		})
	}
}

// TestOpenSoundAfterCheck: the check lets a sound index through, reopened
// many times, with every entry intact.
func TestOpenSoundAfterCheck(t *testing.T) {
	dir, _ := damagedIndexFixture(t)
	for range 3 {
		ix := openIndex(t, dir)
		n := 0
		if err := ix.Blobs(func(index.Location) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if n != 9000 {
			t.Fatalf("%d blobs after reopening, want 9000", n)
		}
		if _, err := ix.Record(idN(7)); err != nil {
			t.Fatal(err)
		}
		if err := ix.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestOpenExisting: an index that does not exist yet is refused with
// ErrNoIndex and nothing is created or written; an index Open created is
// opened.
func TestOpenExisting(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  error
	}{
		{"missing directory", func(t *testing.T, dir string) {}, index.ErrNoIndex},
		{"empty directory", func(t *testing.T, dir string) {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
		}, index.ErrNoIndex},
		{"MANIFEST deleted", func(t *testing.T, dir string) {
			ix := openIndex(t, dir)
			if err := ix.AddPack(idN(1), 100, packEntries(0, 10)); err != nil {
				t.Fatal(err)
			}
			ix.Close()
			if err := os.Remove(filepath.Join(dir, badger.ManifestFilename)); err != nil {
				t.Fatal(err)
			}
		}, index.ErrNoIndex},
		{"Badger database without a schema key", func(t *testing.T, dir string) {
			writeRaw(t, dir, map[string][]byte{"x": []byte("1")})
		}, index.ErrNoIndex},
		{"index created by Open", func(t *testing.T, dir string) {
			openIndex(t, dir).Close()
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "index")
			tt.setup(t, dir)
			for range 2 { // refusing writes nothing: the second answer is the same
				ix, err := index.OpenExisting(dir)
				if !errors.Is(err, tt.want) {
					t.Fatalf("OpenExisting = %v, want %v", err, tt.want)
				}
				if err == nil {
					ix.Close()
				}
			}
			if tt.name == "missing directory" {
				if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("OpenExisting created %s (%v)", dir, err)
				}
			}
		})
	}
}

// BenchmarkOpen measures opening an index of SMP_BENCH_INDEX_CHUNKS blobs
// (default 200,000), and the table check alone:
//
//	SMP_BENCH_INDEX_CHUNKS=2000000 go test ./index -run XXX -bench 'Open$' -benchtime 20x
func BenchmarkOpen(b *testing.B) {
	total, batch := 200_000, 10_000
	if s := os.Getenv("SMP_BENCH_INDEX_CHUNKS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < batch {
			b.Fatalf("SMP_BENCH_INDEX_CHUNKS=%q: want a number >= %d", s, batch)
		}
		total = n / batch * batch
	}
	dir := b.TempDir()
	ix := openIndex(b, dir)
	for p := 0; p < total/batch; p++ {
		if err := ix.AddPack(idN(1<<40+uint64(p)), 32<<20, packEntries(uint64(p*batch), batch)); err != nil {
			b.Fatal(err)
		}
	}
	if err := ix.Close(); err != nil {
		b.Fatal(err)
	}
	ssts, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	b.Logf("%d blobs, %d tables", total, len(ssts))
	b.Run("open-close", func(b *testing.B) {
		for b.Loop() {
			ix := openIndex(b, dir)
			if err := ix.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("check-tables", func(b *testing.B) {
		for b.Loop() {
			if err := index.CheckTables(dir); err != nil {
				b.Fatal(err)
			}
		}
	})
}
