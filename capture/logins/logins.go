// Package logins decodes the Linux login records a capture reads to tell
// how long a profile's owner has been away: wtmp (struct utmp, one record
// per login and logout) and lastlog (struct lastlog, one record per UID).
//
// The files come from the source root, a disk that may have been prepared
// by anyone: every record is decoded from a fixed-size buffer whose size is
// the record size of the format (RecordSize, LastlogSize), never from a
// length the file claims; fields are cut at their NUL or their fixed width;
// a record with a type, name or time out of range is skipped and counted,
// never trusted. Reading is streaming: memory does not grow with the file.
package logins

import (
	"encoding/binary"
	"errors"
	"io"
	"time"
	"unicode/utf8"
)

// Sizes of the glibc records on Linux (x86-64, arm64 and the other 64-bit
// ABIs, whose utmp keeps 32-bit times for compatibility).
const (
	RecordSize  = 384 // struct utmp
	LastlogSize = 292 // struct lastlog
	nameSize    = 32  // ut_user, ut_line
)

// utmp record types (ut_type).
const (
	typeEmpty       = 0
	typeUserProcess = 7 // a login
	typeMax         = 9 // ACCOUNTING, the highest glibc defines
)

// Login is one user login read from wtmp.
type Login struct {
	User string
	Line string // the terminal (ut_line)
	Time time.Time
}

// Stats says what a read found: records decoded, logins among them, and
// records skipped as malformed.
type Stats struct {
	Records, Logins, Bad int
	// Truncated is set when the file ends inside a record.
	Truncated bool
}

// earliest and latest bound the login times believed: before the first
// wtmp existed, or far in the future, a time is a damaged record.
var (
	earliest = time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)
	latest   = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// ReadWtmp reads wtmp records from r, calling fn for each login
// (USER_PROCESS record with a valid user name and time). It stops at the
// end of r, at a read error, or when fn returns an error.
func ReadWtmp(r io.Reader, fn func(Login) error) (Stats, error) {
	var st Stats
	var buf [RecordSize]byte
	for {
		_, err := io.ReadFull(r, buf[:])
		switch {
		case errors.Is(err, io.EOF):
			return st, nil
		case errors.Is(err, io.ErrUnexpectedEOF):
			st.Truncated = true
			return st, nil
		case err != nil:
			return st, err
		}
		st.Records++
		l, ok, bad := decodeWtmp(&buf)
		if bad {
			st.Bad++
		}
		if !ok {
			continue
		}
		st.Logins++
		if err := fn(l); err != nil {
			return st, err
		}
	}
}

// decodeWtmp decodes one record: ok for a login, bad for a record that
// cannot be a real one.
func decodeWtmp(b *[RecordSize]byte) (l Login, ok, bad bool) {
	typ := int16(binary.LittleEndian.Uint16(b[0:2]))
	if typ < typeEmpty || typ > typeMax {
		return l, false, true
	}
	if typ != typeUserProcess {
		return l, false, false
	}
	user, okUser := field(b[44 : 44+nameSize])
	line, okLine := field(b[8 : 8+nameSize])
	sec := int64(int32(binary.LittleEndian.Uint32(b[340:344])))
	usec := int64(int32(binary.LittleEndian.Uint32(b[344:348])))
	t := time.Unix(sec, 0).UTC()
	if !okUser || user == "" || !okLine || usec < 0 || usec >= 1e6 || t.Before(earliest) || t.After(latest) {
		return l, false, true
	}
	return Login{User: user, Line: line, Time: t.Add(time.Duration(usec) * time.Microsecond)}, true, false
}

// field is a fixed-width C string: the bytes before the first NUL, which
// must be valid UTF-8 without control characters.
func field(b []byte) (string, bool) {
	n := 0
	for n < len(b) && b[n] != 0 {
		if b[n] < 0x20 || b[n] == 0x7f {
			return "", false
		}
		n++
	}
	if !utf8.Valid(b[:n]) {
		return "", false
	}
	return string(b[:n]), true
}

// Lastlog reads uid's record of a lastlog file of size bytes: the time of
// the last login, or ok false when the file holds none for it (a sparse
// hole reads as zeros). A record that cannot be real is an error.
func Lastlog(r io.ReaderAt, size int64, uid uint32) (time.Time, bool, error) {
	off := int64(uid) * LastlogSize
	if off+LastlogSize > size {
		return time.Time{}, false, nil
	}
	var buf [LastlogSize]byte
	if _, err := r.ReadAt(buf[:], off); err != nil {
		return time.Time{}, false, err
	}
	return decodeLastlog(&buf)
}

var errBadLastlog = errors.New("lastlog record out of range")

func decodeLastlog(b *[LastlogSize]byte) (time.Time, bool, error) {
	sec := int64(int32(binary.LittleEndian.Uint32(b[0:4])))
	if sec == 0 {
		return time.Time{}, false, nil
	}
	t := time.Unix(sec, 0).UTC()
	if _, ok := field(b[4 : 4+nameSize]); !ok || t.Before(earliest) || t.After(latest) {
		return time.Time{}, false, errBadLastlog
	}
	return t, true, nil
}

// EncodeWtmp returns the wtmp record of a login (for tests and tools that
// write fake records; fields longer than their width are cut).
func EncodeWtmp(l Login) []byte {
	b := make([]byte, RecordSize)
	binary.LittleEndian.PutUint16(b[0:2], typeUserProcess)
	copy(b[8:8+nameSize], l.Line)
	copy(b[44:44+nameSize], l.User)
	binary.LittleEndian.PutUint32(b[340:344], uint32(int32(l.Time.Unix())))
	binary.LittleEndian.PutUint32(b[344:348], uint32(l.Time.Nanosecond()/1000))
	return b
}

// EncodeLastlog returns a lastlog record of a login at t.
func EncodeLastlog(t time.Time, line string) []byte {
	b := make([]byte, LastlogSize)
	binary.LittleEndian.PutUint32(b[0:4], uint32(int32(t.Unix())))
	copy(b[4:4+nameSize], line)
	return b
}
