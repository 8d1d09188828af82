package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"smp/cas"
)

func FuzzDecodeTree(f *testing.F) {
	valid, err := validTree().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, tr := range []*Tree{
		{},
		{Entries: []Entry{fileEntry("a", 1, 2, 3)}},
		{Entries: []Entry{dirEntry("d", idOf(7)), linkEntry("s", "/abs/target")}},
	} {
		b, err := tr.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"entries":[{"name":"a","type":"file","mode":420,"uid":0,"gid":0,"mtime_ns":0,"size":1,"chunks":[{"id":"` +
		"0101010101010101010101010101010101010101010101010101010101010101" + `","size":1}]}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"b","type":"file"},{"name":"a","type":"file"}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"a\u0000","type":"file"}]}`))
	f.Add([]byte(`{"V":1,"Entries":[{"NAME":"x","TYPE":"symlink","target":"y"}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"x","type":"file","xattrs":{"":"AA=="}}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"\ud800","type":"symlink","target":"\udfff"}]}`))
	f.Add([]byte(`{"v":1,"entries":null} {}`))

	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTree(b)
		if err != nil {
			if !errors.Is(err, cas.ErrCorrupt) {
				t.Fatalf("DecodeTree error %v does not wrap ErrCorrupt", err)
			}
			if tr != nil {
				t.Fatalf("DecodeTree returned a tree with an error")
			}
			return
		}
		if tr.Version != TreeVersion {
			t.Fatalf("accepted version %d", tr.Version)
		}
		for i, e := range tr.Entries {
			if err := ValidName(e.Name); err != nil {
				t.Fatalf("accepted entry %d with invalid name: %v", i, err)
			}
			if i > 0 && tr.Entries[i-1].Name >= e.Name {
				t.Fatalf("accepted unsorted or duplicate names %q, %q", tr.Entries[i-1].Name, e.Name)
			}
		}
		// Re-encoding is canonical and stable: encode → decode → encode
		// gives the same bytes, and the decoded tree checks.
		enc1, err := tr.Encode()
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		tr2, err := DecodeTree(enc1)
		if err != nil {
			t.Fatalf("re-encoded tree does not decode: %v\n%s", err, enc1)
		}
		enc2, err := tr2.Encode()
		if err != nil {
			t.Fatalf("second encode: %v", err)
		}
		if !bytes.Equal(enc1, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc1, enc2)
		}
		if len(tr2.Entries) != len(tr.Entries) {
			t.Fatalf("round trip changed entry count %d -> %d", len(tr.Entries), len(tr2.Entries))
		}
		for i := range tr.Entries {
			a, b := tr.Entries[i], tr2.Entries[i]
			if a.Name != b.Name || a.Type != b.Type || a.Size != b.Size || a.Target != b.Target || a.Subtree != b.Subtree || len(a.Chunks) != len(b.Chunks) {
				t.Fatalf("round trip changed entry %d: %+v -> %+v", i, a, b)
			}
		}
	})
}

func FuzzDecodeRecord(f *testing.F) {
	valid, err := validRecord().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	minimal, err := (&Record{Computer: "x", Tree: idOf(1)}).Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(minimal)
	f.Add([]byte(`{"v":1,"computer":"PC","created":"2026-01-02T03:04:05+01:00","tree":"` + idOf(3).String() + `"}`))
	f.Add([]byte(`{"v":1,"computer":"","tree":"` + idOf(3).String() + `"}`))
	f.Add([]byte(`{"v":2,"computer":"a","tree":"` + idOf(3).String() + `"}`))
	f.Add([]byte(`{"v":1,"computer":"a","users":["b/c"],"tree":"` + idOf(3).String() + `"}`))
	f.Add([]byte(`{"v":1,"computer":"\ud800","tree":"` + idOf(3).String() + `"}`))
	f.Add([]byte(`{"V":1,"COMPUTER":"a","Tree":"` + idOf(3).String() + `","unknown":1}`))

	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRecord(b)
		if err != nil {
			if !errors.Is(err, cas.ErrCorrupt) {
				t.Fatalf("DecodeRecord error %v does not wrap ErrCorrupt", err)
			}
			if r != nil {
				t.Fatalf("DecodeRecord returned a record with an error")
			}
			return
		}
		if r.Version != RecordVersion || r.Tree.IsZero() {
			t.Fatalf("accepted version %d tree %v", r.Version, r.Tree)
		}
		if err := CheckName("computer", r.Computer); err != nil {
			t.Fatalf("accepted invalid computer: %v", err)
		}
		for _, u := range r.Users {
			if err := CheckName("user", u); err != nil {
				t.Fatalf("accepted invalid user: %v", err)
			}
		}
		enc1, err := r.Encode()
		if err != nil {
			t.Fatalf("decoded record does not encode: %v", err)
		}
		r2, err := DecodeRecord(enc1)
		if err != nil {
			t.Fatalf("re-encoded record does not decode: %v\n%s", err, enc1)
		}
		enc2, err := r2.Encode()
		if err != nil {
			t.Fatalf("second encode: %v", err)
		}
		if !bytes.Equal(enc1, enc2) {
			t.Fatalf("encoding not stable:\n%s\n%s", enc1, enc2)
		}
		if !r2.Created.Equal(r.Created) || r2.Computer != r.Computer || r2.Tree != r.Tree || r2.Parent != r.Parent {
			t.Fatalf("round trip changed the record: %+v -> %+v", r, r2)
		}
	})
}

// decodeTreeStd is DecodeTree on encoding/json, the reference the faster
// decoder must match.
func decodeTreeStd(b []byte) (*Tree, error) {
	var t Tree
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return nil, err
	}
	if len(bytes.TrimLeft(b[dec.InputOffset():], " \t\r\n")) > 0 {
		return nil, errors.New("trailing data")
	}
	for i := range t.Entries {
		if err := t.Entries[i].unwire(); err != nil {
			return nil, err
		}
	}
	if err := t.Check(); err != nil {
		return nil, err
	}
	return &t, nil
}

// FuzzDecodeTreeMatchesStd: DecodeTree accepts exactly what encoding/json
// accepts, and decodes it to the same tree.
func FuzzDecodeTreeMatchesStd(f *testing.F) {
	valid, err := validTree().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{"v":1,"entries":[{"name":"b","type":"file"},{"name":"a","type":"file"}]}`))
	f.Add([]byte(`{"V":1,"Entries":[{"NAME":"x","TYPE":"symlink","target":"y"}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"x","type":"file","xattrs":{"":"AA=="}}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"\ud800","type":"symlink","target":"\udfff"}]}`))
	f.Add([]byte("{\"v\":1,\"entries\":[{\"name\":\"a\xff\",\"type\":\"file\"}]}"))
	f.Add([]byte(`{"v":1,"v":1,"entries":[{"name":"x","type":"dir","subtree":"0101010101010101010101010101010101010101010101010101010101010101"}]} `))
	f.Add([]byte(`{"v":1,"entries":[{"name":"x","type":"file","mode":1e3,"size":-1}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"x","type":"file","link":{"method":"hardlink","object":"s/0/1","ctime_ns":5,"nlink":2}}]}]`))
	id := "0101010101010101010101010101010101010101010101010101010101010101"
	f.Add([]byte(`{"v":1,"entries":[{"name":"a","type":"file","mode":420,"uid":4294967295,"gid":0,"mtime_ns":-5,"size":18446744073709551615,"chunks":[{"id":"` + id + `","size":1},{"id":"` + id + `","size":4294967295}],"incomplete":true}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"a","type":"file","uid":4294967296,"link":{"method":"hardlink","object":"s/0/1","ctime_ns":-1,"nlink":0,"hash":"` + id + `"},"hardlink":"1:2"}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"d","type":"dir","subtree":"` + id + `","incomplete":false,"chunks":[]}],"v":1}`))
	f.Add([]byte(`{"v":01,"entries":[]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, gotErr := DecodeTree(b)
		want, wantErr := decodeTreeStd(b)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("DecodeTree error %v, encoding/json error %v, on %q", gotErr, wantErr, b)
		}
		if gotErr == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("DecodeTree and encoding/json decode %q differently:\n%+v\n%+v", b, got, want)
		}
	})
}

// FuzzEncodeTreeMatchesStd: Encode writes exactly json.Marshal's bytes for
// every tree that decodes (tree IDs are hashes of these bytes).
func FuzzEncodeTreeMatchesStd(f *testing.F) {
	valid, err := validTree().Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	id := "0101010101010101010101010101010101010101010101010101010101010101"
	f.Add([]byte(`{"v":1,"entries":[{"name":"Café & <b>","type":"file","mode":420,"uid":4294967295,"gid":0,"user":"jürgen","group":"a\u2028b","mtime_ns":-5,"ctime_ns":7,"inode":9,"size":18446744073709551615,"chunks":[{"id":"` + id + `","size":1}],"incomplete":true}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"a","type":"file","mode":0,"uid":0,"gid":0,"mtime_ns":0,"link":{"method":"hardlink","object":"s/0/1","ctime_ns":-1,"nlink":0,"hash":"` + id + `"},"hardlink":"1:2"},{"name":"b\"q","type":"symlink","mode":0,"uid":0,"gid":0,"mtime_ns":0,"target":"x\\y"}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name":"d","type":"dir","mode":493,"uid":0,"gid":0,"mtime_ns":0,"subtree":"` + id + `"}]}`))
	f.Add([]byte(`{"v":1,"entries":[{"name_raw":"/w==","type":"symlink","target_raw":"gA==","mode":0,"uid":0,"gid":0,"mtime_ns":0}]}`))
	f.Add([]byte(`{"v":1,"entries":[]}`))
	f.Add([]byte(`{"v":1,"entries":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTree(b)
		if err != nil {
			return
		}
		got, err := tr.Encode()
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		wire, err := tr.wire()
		if err != nil {
			t.Fatal(err)
		}
		want, err := json.Marshal(&wire)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("Encode and json.Marshal differ:\n%s\n%s", got, want)
		}
	})
}
