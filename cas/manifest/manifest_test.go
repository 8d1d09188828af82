package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"smp/cas"
)

func idOf(b byte) cas.ID {
	var id cas.ID
	for i := range id {
		id[i] = b
	}
	return id
}

func fileEntry(name string, sizes ...uint32) Entry {
	e := Entry{Name: name, Type: TypeFile, Mode: 0o644, UID: 1000, GID: 1000, MTimeNs: 1700000000123456789}
	for i, s := range sizes {
		e.Chunks = append(e.Chunks, Chunk{ID: idOf(byte(i + 1)), Size: s})
		e.Size += uint64(s)
	}
	return e
}

func dirEntry(name string, sub cas.ID) Entry {
	return Entry{Name: name, Type: TypeDir, Mode: 0o755, Subtree: sub}
}

func linkEntry(name, target string) Entry {
	return Entry{Name: name, Type: TypeSymlink, Mode: 0o777, Target: target}
}

// validTree is a sorted, valid tree exercising every entry type and the
// optional fields.
func validTree() *Tree {
	a := fileEntry("a.txt", 3, 2)
	a.User, a.Group = "alice", "staff"
	a.CTimeNs, a.Inode = 1700000000123456789, 1234
	a.Xattrs = map[string][]byte{"user.z": []byte("last"), "user.a": []byte("first"), "security.x": {0, 1, 2}}
	a.HardLink = "2049:1234"
	empty := fileEntry("empty")
	partial := fileEntry("growing", 10)
	partial.Size = 20
	partial.Incomplete = true
	setuid := fileEntry("suid", 1)
	setuid.Mode = 0o4755
	return &Tree{Version: TreeVersion, Entries: []Entry{
		a,
		dirEntry("docs", idOf(0xd0)),
		empty,
		partial,
		linkEntry("l", "a.txt"),
		linkEntry("link2", "../../etc/passwd"),
		setuid,
		fileEntry("z", cas.MaxBlobSize),
		fileEntry("é", 1),
	}}
}

func TestValidTreeChecks(t *testing.T) {
	tr := validTree()
	if err := tr.Check(); err != nil {
		t.Fatalf("validTree().Check() = %v", err)
	}
	b, err := tr.Encode()
	if err != nil {
		t.Fatalf("Encode: %v", err)
	}
	got, err := DecodeTree(b)
	if err != nil {
		t.Fatalf("DecodeTree(Encode()) = %v", err)
	}
	if !reflect.DeepEqual(got, validTree()) {
		t.Errorf("round trip changed the tree:\n got %+v\nwant %+v", got, validTree())
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"...", true},
		{".hidden", true},
		{"a b", true},
		{"名前", true},
		{"back\\slash", true},
		{"new\nline", true},
		{strings.Repeat("x", MaxName), true},
		{"", false},
		{".", false},
		{"..", false},
		{"a/b", false},
		{"/", false},
		{"a/", false},
		{"a\x00b", false},
		{"\x00", false},
		{strings.Repeat("x", MaxName+1), false},
		{strings.Repeat("é", 128), false}, // 256 bytes
	}
	for _, tt := range tests {
		err := ValidName(tt.name)
		if tt.ok && err != nil {
			t.Errorf("ValidName(%q) = %v, want nil", tt.name, err)
		}
		if !tt.ok && !errors.Is(err, cas.ErrCorrupt) {
			t.Errorf("ValidName(%q) = %v, want ErrCorrupt", tt.name, err)
		}
	}
}

func TestTreeCheckRejects(t *testing.T) {
	with := func(fn func(tr *Tree)) *Tree {
		tr := validTree()
		fn(tr)
		return tr
	}
	withEntry := func(es ...Entry) *Tree { return &Tree{Version: TreeVersion, Entries: es} }
	tests := []struct {
		name string
		tree *Tree
	}{
		{"version 0", with(func(tr *Tree) { tr.Version = 0 })},
		{"version 2", with(func(tr *Tree) { tr.Version = 2 })},
		{"empty name", withEntry(fileEntry(""))},
		{"dot", withEntry(fileEntry("."))},
		{"dotdot", withEntry(dirEntry("..", idOf(1)))},
		{"slash", withEntry(fileEntry("a/b"))},
		{"leading slash", withEntry(fileEntry("/etc"))},
		{"NUL", withEntry(fileEntry("a\x00b"))},
		{"256 byte name", withEntry(fileEntry(strings.Repeat("n", 256)))},
		{"unsorted", withEntry(fileEntry("b"), fileEntry("a"))},
		{"unsorted later", with(func(tr *Tree) { tr.Entries[3], tr.Entries[4] = tr.Entries[4], tr.Entries[3] })},
		{"byte order not case order", withEntry(fileEntry("a"), fileEntry("B"))},
		{"duplicate", withEntry(fileEntry("a"), fileEntry("a"))},
		{"duplicate of another type", withEntry(fileEntry("a"), dirEntry("a", idOf(1)))},
		{"unknown type", withEntry(Entry{Name: "a", Type: "fifo"})},
		{"empty type", withEntry(Entry{Name: "a"})},
		{"type case", withEntry(Entry{Name: "a", Type: "File"})},
		{"chunks short of size", with(func(tr *Tree) { tr.Entries[0].Size++ })},
		{"chunks over size", with(func(tr *Tree) { tr.Entries[0].Size-- })},
		{"size without chunks", withEntry(func() Entry { e := fileEntry("a"); e.Size = 1; return e }())},
		{"zero-size chunk", withEntry(func() Entry { e := fileEntry("a", 0); return e }())},
		{"chunk over MaxBlobSize", withEntry(fileEntry("a", cas.MaxBlobSize+1))},
		{"file with subtree", withEntry(func() Entry { e := fileEntry("a", 1); e.Subtree = idOf(1); return e }())},
		{"file with target", withEntry(func() Entry { e := fileEntry("a", 1); e.Target = "x"; return e }())},
		{"dir without subtree", withEntry(dirEntry("d", cas.ID{}))},
		{"dir with chunks", withEntry(func() Entry { e := dirEntry("d", idOf(1)); e.Chunks = []Chunk{{ID: idOf(2), Size: 1}}; return e }())},
		{"symlink without target", withEntry(linkEntry("l", ""))},
		{"symlink target with NUL", withEntry(linkEntry("l", "a\x00b"))},
		{"symlink with chunks", withEntry(func() Entry { e := linkEntry("l", "x"); e.Chunks = []Chunk{{ID: idOf(2), Size: 1}}; return e }())},
		{"mode with type bits (dir)", withEntry(func() Entry { e := fileEntry("a"); e.Mode = 0o40755; return e }())},
		{"mode 0o10000", withEntry(func() Entry { e := fileEntry("a"); e.Mode = 0o10000; return e }())},
		{"mode high bit", withEntry(func() Entry { e := fileEntry("a"); e.Mode = 1 << 31; return e }())},
		{"empty xattr name", with(func(tr *Tree) { tr.Entries[0].Xattrs[""] = []byte("v") })},
		{"xattr name with NUL", with(func(tr *Tree) { tr.Entries[0].Xattrs["user.\x00"] = nil })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.tree.Check(); !errors.Is(err, cas.ErrCorrupt) {
				t.Errorf("Check = %v, want ErrCorrupt", err)
			}
			// The same tree on disk (encoded without Encode's checks and
			// sorting) must not decode either.
			raw, err := json.Marshal(tt.tree)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := DecodeTree(raw); !errors.Is(err, cas.ErrCorrupt) || got != nil {
				t.Errorf("DecodeTree(%s) = %v, %v; want ErrCorrupt", raw, got, err)
			}
		})
	}
}

func TestDecodeTreeRejectsJSON(t *testing.T) {
	valid, err := validTree().Encode()
	if err != nil {
		t.Fatal(err)
	}
	sub := func(old, new string) []byte {
		if !bytes.Contains(valid, []byte(old)) {
			t.Fatalf("%q not in encoded tree", old)
		}
		return bytes.Replace(valid, []byte(old), []byte(new), 1)
	}
	tests := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"not JSON", []byte("hello")},
		{"null", []byte("null")},
		{"array", []byte("[]")},
		{"missing version", []byte(`{"entries":[]}`)},
		{"version as string", []byte(`{"v":"1","entries":[]}`)},
		{"unknown top-level field", sub(`{"v":1,`, `{"v":1,"extra":true,`)},
		{"unknown entry field", sub(`"name":"a.txt",`, `"name":"a.txt","owner":"bob",`)},
		{"trailing object", append(slices.Clone(valid), []byte(`{"v":1}`)...)},
		{"trailing garbage", append(slices.Clone(valid), 'x')},
		{"truncated", valid[:len(valid)-1]},
		{"bad chunk id", sub(`"id":"01`, `"id":"zz`)},
		{"short chunk id", sub(`"id":"0101`, `"id":"01`)},
		{"negative mode", sub(`"mode":420`, `"mode":-1`)},
		{"mode overflow", sub(`"mode":420`, `"mode":4294967296`)},
		{"chunk size overflow", sub(`"size":3}`, `"size":4294967299}`)},
		{"xattr not base64", sub(`"user.a":"`, `"user.a":"!!`)},
		{"NUL via escape", sub(`"name":"a.txt"`, `"name":"a\u0000.txt"`)},
		{"slash via escape", sub(`"name":"a.txt"`, `"name":"a\/b"`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := DecodeTree(tt.in); !errors.Is(err, cas.ErrCorrupt) || got != nil {
				t.Errorf("DecodeTree(%s) = %+v, %v; want ErrCorrupt", tt.in, got, err)
			}
		})
	}
}

func TestDecodeTreeAcceptsTrailingWhitespace(t *testing.T) {
	b, err := validTree().Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeTree(append(b, " \n\t"...)); err != nil {
		t.Errorf("DecodeTree with trailing whitespace = %v", err)
	}
}

func TestTreeEncodeSortsAndIsDeterministic(t *testing.T) {
	want, err := validTree().Encode()
	if err != nil {
		t.Fatal(err)
	}
	orders := map[string]func([]Entry){
		"reversed": slices.Reverse[[]Entry],
		"rotated":  func(es []Entry) { r := slices.Concat(es[3:], es[:3]); copy(es, r) },
		"swapped":  func(es []Entry) { es[0], es[len(es)-1] = es[len(es)-1], es[0] },
	}
	for name, shuffle := range orders {
		tr := validTree()
		shuffle(tr.Entries)
		tr.Version = 0 // Encode sets the version
		got, err := tr.Encode()
		if err != nil {
			t.Fatalf("%s: Encode = %v", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: Encode differs from the sorted tree's:\n got %s\nwant %s", name, got, want)
		}
		if !slices.IsSortedFunc(tr.Entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) }) {
			t.Errorf("%s: Encode did not sort the entries in place", name)
		}
		if tr.Version != TreeVersion {
			t.Errorf("%s: Encode left version %d", name, tr.Version)
		}
	}
	// Encoding the same tree repeatedly (map iteration order varies) gives
	// the same bytes.
	for i := range 20 {
		if got, _ := validTree().Encode(); !bytes.Equal(got, want) {
			t.Fatalf("encoding %d differs", i)
		}
	}
	// Xattr keys are written sorted.
	if i, j, k := bytes.Index(want, []byte("security.x")), bytes.Index(want, []byte("user.a")), bytes.Index(want, []byte("user.z")); !(i < j && j < k) {
		t.Errorf("xattr keys not sorted in %s", want)
	}
}

func TestTreeEncodeGolden(t *testing.T) {
	f := fileEntry("a.txt", 5)
	f.User, f.Group, f.CTimeNs, f.Inode = "alice", "alice", 1700000000123456789, 1234
	f.Xattrs = map[string][]byte{"user.tag": []byte("tag")}
	f.HardLink = "2049:1234"
	tr := &Tree{Entries: []Entry{linkEntry("l", "a.txt"), dirEntry("docs", idOf(0xab)), f}}
	got, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"v":1,"entries":[` +
		`{"name":"a.txt","type":"file","mode":420,"uid":1000,"gid":1000,"user":"alice","group":"alice","mtime_ns":1700000000123456789,"ctime_ns":1700000000123456789,"inode":1234,"size":5,"xattrs":{"user.tag":"dGFn"},"chunks":[{"id":"` + strings.Repeat("01", 32) + `","size":5}],"hardlink":"2049:1234"},` +
		`{"name":"docs","type":"dir","mode":493,"uid":0,"gid":0,"mtime_ns":0,"subtree":"` + strings.Repeat("ab", 32) + `"},` +
		`{"name":"l","type":"symlink","mode":511,"uid":0,"gid":0,"mtime_ns":0,"target":"a.txt"}]}`
	if string(got) != want {
		t.Errorf("Encode\n got %s\nwant %s", got, want)
	}
}

func TestTreeEncodeRejectsInvalid(t *testing.T) {
	tests := []struct {
		name string
		tree *Tree
	}{
		{"duplicate names", &Tree{Entries: []Entry{fileEntry("a"), fileEntry("a")}}},
		{"bad name", &Tree{Entries: []Entry{fileEntry("a/b")}}},
		{"dir without subtree", &Tree{Entries: []Entry{dirEntry("d", cas.ID{})}}},
	}
	for _, tt := range tests {
		if b, err := tt.tree.Encode(); !errors.Is(err, cas.ErrCorrupt) || b != nil {
			t.Errorf("%s: Encode = %s, %v; want ErrCorrupt", tt.name, b, err)
		}
	}
}

func TestEmptyTree(t *testing.T) {
	for _, tr := range []*Tree{{}, {Entries: []Entry{}}} {
		b, err := tr.Encode()
		if err != nil {
			t.Fatalf("Encode(empty) = %v", err)
		}
		got, err := DecodeTree(b)
		if err != nil || len(got.Entries) != 0 {
			t.Errorf("DecodeTree(%s) = %+v, %v", b, got, err)
		}
	}
}

// TestTreeNonUTF8Names: Linux file names and symlink targets are arbitrary
// bytes, which a JSON string cannot hold (encoding/json would turn them into
// U+FFFD, renaming "caf\xe9" and merging names that differ only in invalid
// bytes). Encode carries them in name_raw/target_raw, and they round-trip
// exactly.
func TestTreeNonUTF8Names(t *testing.T) {
	tests := []struct {
		name string
		tree *Tree
	}{
		{"latin-1 name", &Tree{Entries: []Entry{fileEntry("caf\xe9", 1)}}},
		{"names differing in invalid bytes", &Tree{Entries: []Entry{fileEntry("a\xe8", 1), fileEntry("a\xe9", 1)}}},
		{"symlink target", &Tree{Entries: []Entry{linkEntry("l", "caf\xe9")}}},
		{"xattr name", &Tree{Entries: []Entry{func() Entry {
			e := fileEntry("x", 1)
			e.Xattrs = map[string][]byte{"user.\xff": nil}
			return e
		}()}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := slices.Clone(tt.tree.Entries)
			b, err := tt.tree.Encode()
			if err != nil {
				return // rejecting such names up front is a fix too
			}
			got, err := DecodeTree(b)
			if err != nil {
				t.Fatalf("Encode accepted the tree but DecodeTree rejects its blob: %v", err)
			}
			if !reflect.DeepEqual(got.Entries, want) {
				for i := range min(len(got.Entries), len(want)) {
					g, w := got.Entries[i], want[i]
					t.Errorf("entry %d after round trip: name %q target %q xattrs %q; want %q %q %q",
						i, g.Name, g.Target, slices.Collect(maps.Keys(g.Xattrs)), w.Name, w.Target, slices.Collect(maps.Keys(w.Xattrs)))
				}
			}
		})
	}
}

func validRecord() *Record {
	return &Record{
		Version:     RecordVersion,
		Computer:    "PC01",
		Users:       []string{"alice", "bob"},
		Created:     time.Date(2026, 11, 3, 14, 5, 6, 123456789, time.UTC),
		ToolVersion: "0.1.0",
		SourceRoot:  "/",
		Paths:       []string{"home/alice", "home/bob"},
		Rules:       []string{"- *.tmp"},
		Parent:      idOf(0x11),
		Tree:        idOf(0x22),
		Files:       10, Dirs: 3, Symlinks: 1, Bytes: 12345, NewBytes: 100, StoredBytes: 60, Errors: 2,
	}
}

func TestRecordRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		rec  *Record
	}{
		{"full", validRecord()},
		{"minimal", &Record{Computer: "x", Tree: idOf(1)}},
		{"no parent", func() *Record { r := validRecord(); r.Parent = cas.ID{}; return r }()},
		{"other zone", func() *Record {
			r := validRecord()
			r.Created = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -7*3600))
			return r
		}()},
		{"unicode computer", func() *Record { r := validRecord(); r.Computer = "Büro-PC 2"; return r }()},
		{"255 byte computer", func() *Record { r := validRecord(); r.Computer = strings.Repeat("c", 255); return r }()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.rec.Version = 0 // Encode sets it
			b, err := tt.rec.Encode()
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if tt.rec.Version != RecordVersion {
				t.Errorf("Encode left version %d", tt.rec.Version)
			}
			got, err := DecodeRecord(b)
			if err != nil {
				t.Fatalf("DecodeRecord(%s): %v", b, err)
			}
			if !got.Created.Equal(tt.rec.Created) {
				t.Errorf("Created = %v, want %v", got.Created, tt.rec.Created)
			}
			gotC, wantC := *got, *tt.rec
			gotC.Created, wantC.Created = time.Time{}, time.Time{}
			if !reflect.DeepEqual(gotC, wantC) {
				t.Errorf("round trip:\n got %+v\nwant %+v", gotC, wantC)
			}
			again, err := got.Encode()
			if err != nil || !bytes.Equal(again, b) {
				t.Errorf("re-encode = %s, %v; want %s", again, err, b)
			}
			if tt.name == "no parent" && bytes.Contains(b, []byte(`"parent"`)) {
				t.Errorf("zero parent encoded: %s", b)
			}
		})
	}
}

func TestRecordRejects(t *testing.T) {
	with := func(fn func(r *Record)) *Record { r := validRecord(); fn(r); return r }
	tests := []struct {
		name string
		rec  *Record
	}{
		{"empty computer", with(func(r *Record) { r.Computer = "" })},
		{"computer with slash", with(func(r *Record) { r.Computer = "a/b" })},
		{"computer with NUL", with(func(r *Record) { r.Computer = "a\x00" })},
		{"computer with newline", with(func(r *Record) { r.Computer = "a\nb" })},
		{"computer with CR", with(func(r *Record) { r.Computer = "a\rb" })},
		{"computer not UTF-8", with(func(r *Record) { r.Computer = "caf\xe9" })},
		{"computer 256 bytes", with(func(r *Record) { r.Computer = strings.Repeat("c", 256) })},
		{"empty user", with(func(r *Record) { r.Users = []string{"alice", ""} })},
		{"user with slash", with(func(r *Record) { r.Users = []string{"../x"} })},
		{"zero tree", with(func(r *Record) { r.Tree = cas.ID{} })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.rec.Check(); !errors.Is(err, cas.ErrCorrupt) {
				t.Errorf("Check = %v, want ErrCorrupt", err)
			}
			if b, err := tt.rec.Encode(); err == nil {
				t.Errorf("Encode = %s, want an error", b)
			}
			if !utf8.ValidString(tt.rec.Computer) {
				return // encoding/json cannot carry it: it writes U+FFFD
			}
			raw, err := json.Marshal(tt.rec)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := DecodeRecord(raw); !errors.Is(err, cas.ErrCorrupt) || got != nil {
				t.Errorf("DecodeRecord(%s) = %v, %v; want ErrCorrupt", raw, got, err)
			}
		})
	}
	for _, v := range []int{0, 2, -1} {
		r := validRecord()
		r.Version = v
		if err := r.Check(); !errors.Is(err, cas.ErrCorrupt) {
			t.Errorf("version %d: Check = %v, want ErrCorrupt", v, err)
		}
		raw, _ := json.Marshal(r)
		if _, err := DecodeRecord(raw); !errors.Is(err, cas.ErrCorrupt) {
			t.Errorf("version %d: DecodeRecord = %v, want ErrCorrupt", v, err)
		}
	}
	valid, _ := validRecord().Encode()
	for name, in := range map[string][]byte{
		"empty":       nil,
		"not JSON":    []byte("record"),
		"null":        []byte("null"),
		"truncated":   valid[:len(valid)-1],
		"trailing":    append(slices.Clone(valid), []byte("{}")...),
		"bad tree id": bytes.Replace(valid, []byte(`"tree":"22`), []byte(`"tree":"zz`), 1),
		"bad created": bytes.Replace(valid, []byte(`"created":"2026`), []byte(`"created":"yesterday`), 1),
	} {
		if got, err := DecodeRecord(in); !errors.Is(err, cas.ErrCorrupt) || got != nil {
			t.Errorf("%s: DecodeRecord = %v, %v; want ErrCorrupt", name, got, err)
		}
	}
}

func TestCheckName(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
	}{
		{"PC01", true},
		{"with space", true},
		{"ünïcode", true},
		{strings.Repeat("x", MaxComputerName), true},
		{"", false},
		{strings.Repeat("x", MaxComputerName+1), false},
		{"a/b", false},
		{"a\x00", false},
		{"a\n", false},
		{"\r", false},
		{"\xff", false},
	}
	for _, tt := range tests {
		err := CheckName("computer", tt.name)
		if (err == nil) != tt.ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

// BenchmarkDecodeTree: a directory of 8 hard-linked files encoded (and
// json.Marshal for comparison), and decoded in the form Encode writes
// (without reflection) and re-spaced (which takes encoding/json).
func BenchmarkDecodeTree(b *testing.B) {
	var t Tree
	for i := range 8 {
		t.Entries = append(t.Entries, Entry{Name: fmt.Sprintf("file-%d.docx", i), Type: TypeFile, Mode: 0o644, UID: 1000, GID: 1000,
			User: "user01", Group: "user01", MTimeNs: 1.7e18 + int64(i)*7919, CTimeNs: 1.7e18 + int64(i)*104729, Inode: uint64(1000 + i),
			Size: uint64(4096*i + 17), Link: &Link{Method: LinkHard, Object: fmt.Sprintf("20261126T045158Z-ef9187086e6dbad8/0/%d", i), CTimeNs: 1.7e18, Nlink: 2}})
	}
	canonical, err := t.Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("encode", func(b *testing.B) {
		for b.Loop() {
			if _, err := t.Encode(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode-json-marshal", func(b *testing.B) {
		wire, _ := t.wire()
		for b.Loop() {
			json.Marshal(&wire)
		}
	})
	spaced := bytes.ReplaceAll(canonical, []byte(`,"`), []byte(`, "`))
	for _, c := range []struct {
		name string
		blob []byte
	}{{"canonical", canonical}, {"encoding-json", spaced}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.blob)))
			for b.Loop() {
				if _, err := DecodeTree(c.blob); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestCanonicalTreeFastPath: ordinary trees are encoded without
// reflection, to json.Marshal's bytes (FuzzEncodeTreeMatchesStd), and what
// Encode writes is decoded without reflection too (and as encoding/json
// does: FuzzDecodeTreeMatchesStd); other spellings of the same JSON are not.
func TestCanonicalTreeFastPath(t *testing.T) {
	withLink := Tree{Entries: []Entry{fileEntry("a", 1, 2, 3)}}
	withLink.Entries[0].Chunks = nil
	withLink.Entries[0].Link = &Link{Method: LinkHard, Object: "s/0/1", CTimeNs: -7, Nlink: 2, Hash: idOf(3)}
	withLink.Entries[0].HardLink = "2049:77"
	withLink.Entries[0].Incomplete = true
	noXattrs := validTree() // xattrs are rare: they take encoding/json
	for i := range noXattrs.Entries {
		noXattrs.Entries[i].Xattrs = nil
	}
	for i, tr := range []*Tree{noXattrs, {}, &withLink,
		{Entries: []Entry{dirEntry("d", idOf(7)), linkEntry("s", "/abs/target")}}} {
		b, err := tr.Encode()
		if err != nil {
			t.Fatal(err)
		}
		wire, _ := tr.wire()
		if _, ok := appendCanonicalTree(nil, &wire); !ok {
			t.Fatalf("tree %d: Encode did not take the fast path", i)
		}
		if std, _ := json.Marshal(&wire); !bytes.Equal(b, std) {
			t.Fatalf("tree %d: Encode wrote\n%s\njson.Marshal writes\n%s", i, b, std)
		}
		got, ok := decodeCanonicalTree(b)
		if !ok {
			t.Fatalf("tree %d: Encode's output %s does not take the fast path", i, b)
		}
		want, err := decodeTreeStd(b)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(&got, want) {
			t.Fatalf("tree %d: fast path %+v, encoding/json %+v", i, got, *want)
		}
	}
	for _, b := range []string{
		`{"v":1, "entries":null}`,
		`{"V":1,"entries":null}`,
		`{"v":1,"entries":[{"name":"a\u00e9","type":"file"}]}`,
		`{"v":1,"entries":[{"name":"a","type":"file","xattrs":{"user.a":"AA=="}}]}`,
		`{"v":1,"entries":[{"name":"a","type":"file","size":1.0}]}`,
		`{"v":1,"entries":[{"name":"a","type":"file","uid":4294967296}]}`,
		`{"v":1,"entries":[{"name":"a","name":"b","type":"file"}]}`,
		`{"v":1,"entries":null} `,
	} {
		if _, ok := decodeCanonicalTree([]byte(b)); ok {
			t.Errorf("%s took the fast path", b)
		}
	}
}

// TestAppendEncode checks AppendEncode leaves what dst holds and appends
// exactly Encode's bytes, on the reflection-free path and on the
// encoding/json one (xattrs).
func TestAppendEncode(t *testing.T) {
	noXattrs := validTree()
	for i := range noXattrs.Entries {
		noXattrs.Entries[i].Xattrs = nil
	}
	for name, tr := range map[string]*Tree{"canonical": noXattrs, "json": validTree(), "empty": {}} {
		want, err := tr.Encode()
		if err != nil {
			t.Fatal(err)
		}
		prefix := []byte("prefix-")
		dst := append(make([]byte, 0, 3), prefix...)
		got, err := tr.AppendEncode(dst)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
			t.Errorf("%s: AppendEncode gave %q, want %q + %q", name, got, prefix, want)
		}
	}
}
