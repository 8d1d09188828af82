package logins

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"
)

func TestReadWtmp(t *testing.T) {
	t1 := time.Date(2025, 3, 4, 5, 6, 7, 8000, time.UTC)
	t2 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var f bytes.Buffer
	f.Write(EncodeWtmp(Login{User: "alice", Line: "pts/0", Time: t1}))
	logout := make([]byte, RecordSize) // DEAD_PROCESS: not a login
	binary.LittleEndian.PutUint16(logout, 8)
	f.Write(logout)
	bad := EncodeWtmp(Login{User: "mallory", Line: "tty1", Time: t2})
	binary.LittleEndian.PutUint16(bad, 0x7fff) // no such type
	f.Write(bad)
	ctl := EncodeWtmp(Login{User: "ev\x1bil", Line: "tty1", Time: t2}) // escape in the name
	f.Write(ctl)
	old := EncodeWtmp(Login{User: "bob", Line: "tty1", Time: time.Unix(5, 0)}) // before wtmp existed
	f.Write(old)
	f.Write(EncodeWtmp(Login{User: "a-very-long-user-name-beyond-32-bytes", Line: "tty2", Time: t2}))
	f.Write(EncodeWtmp(Login{User: "bob", Line: "tty1", Time: t2})[:100]) // cut short
	var got []Login
	st, err := ReadWtmp(&f, func(l Login) error { got = append(got, l); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != 6 || st.Logins != 2 || st.Bad != 3 || !st.Truncated {
		t.Fatalf("stats %+v", st)
	}
	if got[0].User != "alice" || got[0].Line != "pts/0" || !got[0].Time.Equal(t1) {
		t.Errorf("first login %+v", got[0])
	}
	// A name filling its 32 bytes has no NUL: cut at the field's width.
	if got[1].User != "a-very-long-user-name-beyond-32-" || !got[1].Time.Equal(t2) {
		t.Errorf("second login %+v", got[1])
	}
}

func TestLastlog(t *testing.T) {
	when := time.Date(2024, 6, 1, 12, 0, 0, 0, time.UTC)
	f := make([]byte, 1001*LastlogSize)
	copy(f[1000*LastlogSize:], EncodeLastlog(when, "pts/3"))
	r := bytes.NewReader(f)
	if got, ok, err := Lastlog(r, int64(len(f)), 1000); err != nil || !ok || !got.Equal(when) {
		t.Errorf("uid 1000: %v %v %v", got, ok, err)
	}
	if _, ok, err := Lastlog(r, int64(len(f)), 999); ok || err != nil {
		t.Errorf("uid 999 (a hole): %v %v", ok, err)
	}
	if _, ok, err := Lastlog(r, int64(len(f)), 4000000000); ok || err != nil {
		t.Errorf("uid beyond the file: %v %v", ok, err)
	}
	copy(f[5*LastlogSize:], EncodeLastlog(time.Unix(12, 0), "x"))
	if _, _, err := Lastlog(r, int64(len(f)), 5); err == nil {
		t.Error("a 1970 login was believed")
	}
}
