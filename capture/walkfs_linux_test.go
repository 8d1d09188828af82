package capture

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"smp/cas/manifest"
)

func dirent(ino uint64, typ uint8, name string, pad int) []byte {
	reclen := 19 + len(name) + 1 + pad
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b[0:], ino)
	binary.NativeEndian.PutUint16(b[16:], uint16(reclen))
	b[18] = typ
	copy(b[19:], name)
	return b
}

func TestParseDirents(t *testing.T) {
	join := func(recs ...[]byte) []byte { return slices.Concat(recs...) }
	tests := []struct {
		name    string
		buf     []byte
		want    []dirEntry
		wantErr bool
	}{
		{"empty", nil, nil, false},
		{"dots and deleted skipped", join(dirent(1, unix.DT_DIR, ".", 4), dirent(2, unix.DT_DIR, "..", 3),
			dirent(0, unix.DT_REG, "gone", 0), dirent(7, unix.DT_REG, "a.txt", 2)), []dirEntry{{"a.txt", unix.DT_REG}}, false},
		{"types kept", join(dirent(3, unix.DT_LNK, "l", 0), dirent(4, unix.DT_UNKNOWN, "u", 5)),
			[]dirEntry{{"l", unix.DT_LNK}, {"u", unix.DT_UNKNOWN}}, false},
		{"name without NUL fills the record", func() []byte {
			b := dirent(5, unix.DT_REG, "abc", 0)
			b = b[:len(b)-1]
			binary.NativeEndian.PutUint16(b[16:], uint16(len(b)))
			return b
		}(), []dirEntry{{"abc", unix.DT_REG}}, false},
		{"short header", make([]byte, 10), nil, true},
		{"record longer than buffer", func() []byte {
			b := dirent(5, unix.DT_REG, "abc", 0)
			binary.NativeEndian.PutUint16(b[16:], 200)
			return b
		}(), nil, true},
		{"record shorter than header", func() []byte {
			b := dirent(5, unix.DT_REG, "abc", 0)
			binary.NativeEndian.PutUint16(b[16:], 3)
			return b
		}(), nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDirents(tt.buf, nil)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && !slices.Equal(got, tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func FuzzParseDirents(f *testing.F) {
	f.Add(slices.Concat(dirent(1, unix.DT_DIR, ".", 4), dirent(7, unix.DT_REG, "a.txt", 2)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := parseDirents(b, nil)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.name == "" || e.name == "." || e.name == ".." || strings.IndexByte(e.name, 0) >= 0 {
				t.Fatalf("bad name %q", e.name)
			}
		}
	})
}

// TestReadDirMatchesOS: the getdents listing is the os package's, sorted,
// with the types lstat gives.
func TestReadDirMatchesOS(t *testing.T) {
	dir := t.TempDir()
	var want []string
	for i := range 700 { // several getdents calls' worth of long names
		name := fmt.Sprintf("%s-%04d", strings.Repeat("n", 60), 699-i)
		if err := os.WriteFile(filepath.Join(dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
		want = append(want, name)
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o700)
	os.Symlink("sub", filepath.Join(dir, "ln"))
	want = append(want, "sub", "ln")
	slices.Sort(want)
	fd, err := openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	got, _, err := readDir(fd, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range got {
		names = append(names, e.name)
		st, err := os.Lstat(filepath.Join(dir, e.name))
		if err != nil {
			t.Fatal(err)
		}
		wantType := map[bool]uint8{true: unix.DT_DIR}[st.IsDir()]
		switch {
		case st.Mode().IsRegular():
			wantType = unix.DT_REG
		case st.Mode()&os.ModeSymlink != 0:
			wantType = unix.DT_LNK
		}
		if e.typ != wantType && e.typ != unix.DT_UNKNOWN {
			t.Errorf("%s: type %d, want %d", e.name, e.typ, wantType)
		}
	}
	if !slices.Equal(names, want) {
		t.Fatalf("readDir listed %d names, want %d (sorted, same set)", len(names), len(want))
	}
}

// TestLinkUnstatted covers what can happen to a listed file before a
// worker links it: changed, gone, replaced by a directory or a symlink.
func TestLinkUnstatted(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	os.MkdirAll(src, 0o755)
	l, err := newLinker(filepath.Join(dir, "links"), "set", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	var problems []Problem
	c := &capturer{linker: l, progress: &Progress{}, opts: Options{Hardlink: HardlinkAuto, Report: func(p Problem) { problems = append(problems, p) }},
		names: nameCache{users: map[uint32]string{}, groups: map[uint32]string{}}}

	srcFD, err := openDir(src)
	if err != nil {
		t.Fatal(err)
	}
	parent := newDirHandle(srcFD)
	defer parent.release()
	file := filepath.Join(src, "f")
	os.WriteFile(file, []byte("hello"), 0o640)
	os.Mkdir(filepath.Join(src, "d"), 0o755)
	os.Symlink("f", filepath.Join(src, "s"))

	tests := []struct {
		name        string
		wantLinked  bool
		wantFailed  bool
		wantProblem string
	}{
		{"f", true, false, ""},
		{"gone", false, true, ""}, // vanished since the listing: silently left out
		{"d", false, false, ""},   // cannot be linked: left to openFile (TestOpenFileRefusesReplaced)
		{"s", false, true, "no longer a regular file"},
	}
	for _, tt := range tests {
		problems = nil
		job := &fileJob{abs: filepath.Join(src, tt.name), name: tt.name, parent: parent, entry: &manifest.Entry{Name: tt.name, Type: manifest.TypeFile}, unstatted: true}
		linked, err := c.linkUnstatted(job)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if linked != tt.wantLinked || job.failed != tt.wantFailed {
			t.Errorf("%s: linked %v failed %v, want %v %v", tt.name, linked, job.failed, tt.wantLinked, tt.wantFailed)
		}
		switch {
		case tt.wantProblem == "" && len(problems) > 0:
			t.Errorf("%s: unexpected problem %v", tt.name, problems[0].Err)
		case tt.wantProblem != "" && (len(problems) != 1 || !strings.Contains(problems[0].Err.Error(), tt.wantProblem)):
			t.Errorf("%s: problems %v, want one saying %q", tt.name, problems, tt.wantProblem)
		}
	}

	// The linked entry carries the file's own metadata and the link.
	job := &fileJob{abs: file, name: "f", parent: parent, entry: &manifest.Entry{Name: "f", Type: manifest.TypeFile}, unstatted: true}
	if _, err := c.linkUnstatted(job); err != nil {
		t.Fatal(err)
	}
	e := job.entry
	var st syscall.Stat_t
	if err := syscall.Stat(file, &st); err != nil {
		t.Fatal(err)
	}
	if e.Size != 5 || e.Mode != 0o640 || e.Inode != st.Ino || e.MTimeNs != st.Mtim.Nano() || e.Link == nil || e.Link.Method != manifest.LinkHard {
		t.Fatalf("entry %+v does not describe the linked file (ino %d)", e, st.Ino)
	}
	// The file now has three names (the user's and two store links): it is
	// marked as possibly linked to another name, which restore tolerates.
	if e.HardLink == "" {
		t.Errorf("a file with other names outside the tree is not marked HardLink")
	}
	obj := filepath.Join(dir, "links", e.Link.Object)
	if os.SameFile(mustStat(t, obj), mustStat(t, file)) == false {
		t.Fatalf("store object %s is not the user's file", obj)
	}
	// No store object was left for the directory or the symlink.
	n := 0
	filepath.WalkDir(filepath.Join(dir, "links"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
			if d.Type()&os.ModeSymlink != 0 {
				t.Errorf("symlink left in the store: %s", p)
			}
		}
		return nil
	})
	if n != 2 {
		t.Errorf("%d store objects, want 2 (the file linked twice)", n)
	}
}

func mustStat(t *testing.T, p string) os.FileInfo {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestBucketOf: consecutive objects go to different buckets, and no bucket
// gets more than 1000.
func TestBucketOf(t *testing.T) {
	count := map[uint64]int{}
	for n := uint64(1); n <= 100_000; n++ {
		b := bucketOf(n)
		count[b]++
		if n > 1 && b == bucketOf(n-1) {
			t.Fatalf("objects %d and %d share bucket %d", n-1, n, b)
		}
	}
	for b, c := range count {
		if c > 1000 {
			t.Fatalf("bucket %d holds %d objects", b, c)
		}
	}
	if len(count) > 100_000/1000+2*linkLanes {
		t.Fatalf("%d buckets for 100,000 objects", len(count))
	}
}

// TestListXattrsFallsBack: xattrs are listed through listxattrat, and
// through llistxattr when the kernel lacks it or a seccomp filter refuses
// it (EPERM); none is lost either way.
func TestListXattrsFallsBack(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(file, "user.smp", []byte("v"), 0); err != nil {
		t.Skipf("no user xattrs here: %v", err)
	}
	fd, err := openDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	real := listxattrat
	defer func() { listxattrat = real; noListxattrat.Store(false) }()
	for _, refuse := range []unix.Errno{0, unix.ENOSYS, unix.EPERM} {
		noListxattrat.Store(false)
		if refuse != 0 {
			listxattrat = func(int, *byte, []byte) (uintptr, unix.Errno) { return 0, refuse }
		}
		names, err := listXattrs(fd, "f", file)
		if err != nil || !slices.Contains(names, "user.smp") {
			t.Errorf("listxattrat refused with %v: names %q, error %v", refuse, names, err)
		}
		if refuse != 0 && !noListxattrat.Load() {
			t.Errorf("listxattrat refused with %v is still used", refuse)
		}
	}
}
