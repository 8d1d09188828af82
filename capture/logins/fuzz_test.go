package logins

import (
	"bytes"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzReadWtmp: any bytes decode without panic, into logins whose every
// field is within what the format allows, and never more logins than whole
// records.
func FuzzReadWtmp(f *testing.F) {
	f.Add(EncodeWtmp(Login{User: "alice", Line: "pts/0", Time: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}))
	f.Add(bytes.Repeat([]byte{0xff}, RecordSize+7))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		st, err := ReadWtmp(bytes.NewReader(b), func(l Login) error {
			n++
			if l.User == "" || len(l.User) > nameSize || len(l.Line) > nameSize || !utf8.ValidString(l.User) ||
				l.Time.Before(earliest) || l.Time.After(latest.Add(time.Second)) {
				t.Fatalf("login out of range: %+v", l)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Records != len(b)/RecordSize || n != st.Logins || st.Logins+st.Bad > st.Records || st.Truncated != (len(b)%RecordSize != 0) {
			t.Fatalf("stats %+v for %d bytes, %d logins", st, len(b), n)
		}
		if len(b) >= LastlogSize {
			if tm, ok, err := Lastlog(bytes.NewReader(b), int64(len(b)), 0); ok && (err != nil || tm.Before(earliest)) {
				t.Fatalf("lastlog %v %v", tm, err)
			}
		}
	})
}
