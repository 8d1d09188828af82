//go:build linux

package leaktest

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Secrets is what must never appear in an encrypted store's files.
type Secrets struct {
	Strings []string // sentinels
	Blocks  [][]byte // random blocks: no 64-byte window of them may appear

	idx *blockIndex // of Blocks, built by Scan
}

// Sentinel returns a new unique sentinel naming kind and records it.
func (s *Secrets) Sentinel(kind string) string {
	b := make([]byte, 10)
	rand.Read(b)
	v := "sntl" + kind + hex.EncodeToString(b)
	s.Strings = append(s.Strings, v)
	return v
}

// Tree writes under root a user profile (home/alice) holding sentinels in
// file contents, file and directory names, a symlink target and an xattr
// (name and value), and random blocks in file contents; it returns the
// computer name to capture it as (a sentinel too).
func Tree(t testing.TB, root string, sec *Secrets) (computer string) {
	t.Helper()
	dir := filepath.Join(root, "home", "alice", "dir-"+sec.Sentinel("dirname"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("a line of a letter: "+sec.Sentinel("content")+"\n", 2000)
	if err := os.WriteFile(filepath.Join(dir, "file-"+sec.Sentinel("filename")+".txt"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		blk := make([]byte, 300<<10)
		rand.Read(blk)
		sec.Blocks = append(sec.Blocks, blk)
		// Random data between compressible text: compression alone hides
		// neither.
		content := append([]byte(strings.Repeat("padding ", 5000)), blk...)
		if err := os.WriteFile(filepath.Join(dir, "blob"+string(rune('0'+i))+".bin"), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../target-"+sec.Sentinel("symlink"), filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	xf := filepath.Join(dir, "with-xattr")
	if err := os.WriteFile(xf, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	var probe Secrets
	xname, xval := "user."+probe.Sentinel("xattrname"), probe.Sentinel("xattrvalue")
	if err := unix.Setxattr(xf, xname, []byte(xval), 0); err == nil {
		sec.Strings = append(sec.Strings, probe.Strings...)
	} else {
		t.Logf("no user xattrs on this filesystem (%v): the xattr sentinels are left out", err)
	}
	return sec.Sentinel("computer")
}

// Leak is plaintext found in a file: a sentinel, or (Sentinel "") 64
// bytes of a random block at Offset.
type Leak struct {
	File     string // relative to the scanned directory
	Sentinel string
	Offset   int
}

func (l Leak) String() string {
	if l.Sentinel != "" {
		return l.File + " holds sentinel " + l.Sentinel
	}
	return fmt.Sprintf("%s holds 64 bytes of a random block at %d", l.File, l.Offset)
}

// CheckNoPlaintext fails t if any file under dir holds a sentinel or any
// 64-byte window of a random block of sec.
func CheckNoPlaintext(t testing.TB, when, dir string, sec *Secrets) {
	t.Helper()
	leaks, files, err := Scan(dir, sec)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leaks {
		t.Errorf("%s: %s", when, l)
	}
	if files < 5 {
		t.Fatalf("%s: only %d files under the store", when, files)
	}
}

// Scan returns every sentinel of sec that a file under dir holds, and the
// first 64-byte window of a random block of sec in each file, with the
// number of files it read.
func Scan(dir string, sec *Secrets) (leaks []Leak, files int, err error) {
	if sec.idx == nil || sec.idx.n != len(sec.Blocks) {
		sec.idx = newBlockIndex(sec.Blocks)
	}
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		rel, _ := filepath.Rel(dir, path)
		for _, s := range sec.Strings {
			if bytes.Contains(b, []byte(s)) {
				leaks = append(leaks, Leak{File: rel, Sentinel: s})
			}
		}
		if off, ok := sec.idx.find(b); ok {
			leaks = append(leaks, Leak{File: rel, Offset: off})
		}
		return nil
	})
	return leaks, files, err
}

// window is the length of a random block's run that counts as a leak.
const window = 64

// stride is the spacing of the block offsets a blockIndex keeps: every
// window-long run of a block holds one such offset with at least
// window-stride bytes of the run after it.
const stride = 32

// blockIndex finds window-long runs of random blocks in a file in one
// pass: it maps the 8-byte word at every stride-th offset of the blocks
// to where it is, behind a bitset of the words' hashes that rejects
// almost every file position without a map lookup (a Badger memtable
// file is tens of MiB, mostly zeros).
type blockIndex struct {
	n       int // blocks indexed
	blocks  [][]byte
	words   map[uint64][]int // word -> block<<24 | offset
	bits    []uint64
	hasZero bool // a zero word is indexed: zero pages must be read too
}

// zeroPage is compared with a file's pages to skip those of zeros (in
// assembly, so also fast under the race detector).
var zeroPage = make([]byte, 4096)

const indexBits = 24

func wordHash(w uint64) uint64 { return (w * 0x9e3779b97f4a7c15) >> (64 - indexBits) }

func newBlockIndex(blocks [][]byte) *blockIndex {
	x := &blockIndex{n: len(blocks), blocks: blocks, words: map[uint64][]int{}, bits: make([]uint64, 1<<indexBits/64)}
	for bi, blk := range blocks {
		for off := 0; off+8 <= len(blk); off += stride {
			w := binary.LittleEndian.Uint64(blk[off:])
			x.words[w] = append(x.words[w], bi<<24|off)
			h := wordHash(w)
			x.bits[h/64] |= 1 << (h % 64)
			x.hasZero = x.hasZero || w == 0
		}
	}
	return x
}

// find returns the offset in b of a window-long run of a block, if any.
func (x *blockIndex) find(b []byte) (int, bool) {
	for i := 0; i+8 <= len(b); i++ {
		if p := len(zeroPage); !x.hasZero && i%p == 0 && i+p <= len(b) && bytes.Equal(b[i:i+p], zeroPage) {
			// Every word starting in this page, but for its last 7
			// bytes, is zero: none of them is indexed.
			i += p - 8
			continue
		}
		w := binary.LittleEndian.Uint64(b[i:])
		if h := wordHash(w); x.bits[h/64]&(1<<(h%64)) == 0 {
			continue
		}
		for _, c := range x.words[w] {
			blk, m := x.blocks[c>>24], c&(1<<24-1)
			// The longest common run through b[i] and blk[m].
			left := 0
			for left < window && left < i && left < m && b[i-left-1] == blk[m-left-1] {
				left++
			}
			right := 0
			for left+right < window && i+right < len(b) && m+right < len(blk) && b[i+right] == blk[m+right] {
				right++
			}
			if left+right >= window {
				return i - left, true
			}
		}
	}
	return 0, false
}
