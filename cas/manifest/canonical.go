package manifest

import (
	"bytes"
	"encoding/hex"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"smp/cas"
)

// decodeCanonicalTree decodes the JSON that Tree.Encode writes (the form
// nearly every stored tree has) without reflection; ok is false for
// anything else, and the caller then decodes with encoding/json. Decoding
// trees with encoding/json was half of a hard-link restore's CPU (about
// 45 us a tree of 8 files); this takes a tenth of that.
//
// It accepts a strict subset of what encoding/json accepts and must decode
// it to the same value (FuzzDecodeTreeMatchesStd): keys spelt exactly as
// written and each at most once, no whitespace, strings without escapes or
// control characters and valid UTF-8, integers without fraction or
// exponent and in range. The rare fields (xattrs, raw names) and any null
// but "entries":null take the slow path.
func decodeCanonicalTree(b []byte) (t Tree, ok bool) {
	p := canonParser{b: b}
	if !p.lit("{") {
		return Tree{}, false
	}
	var seen uint8
	for first := true; ; first = false {
		if p.lit("}") {
			break
		}
		key, ok := p.key(first)
		if !ok {
			return Tree{}, false
		}
		switch string(key) {
		case "v":
			if seen&1 != 0 {
				return Tree{}, false
			}
			seen |= 1
			v, ok := p.int64()
			if !ok {
				return Tree{}, false
			}
			t.Version = int(v)
		case "entries":
			if seen&2 != 0 {
				return Tree{}, false
			}
			seen |= 2
			if p.lit("null") {
				continue
			}
			if !p.lit("[") {
				return Tree{}, false
			}
			// Every entry Encode writes starts so: size the slice once.
			t.Entries = make([]Entry, 0, bytes.Count(b[p.i:], []byte(`{"name":`)))
			for i := 0; !p.lit("]"); i++ {
				if i > 0 && !p.lit(",") {
					return Tree{}, false
				}
				var e Entry
				if !p.entry(&e) {
					return Tree{}, false
				}
				t.Entries = append(t.Entries, e)
			}
		default:
			return Tree{}, false
		}
	}
	return t, p.i == len(p.b)
}

type canonParser struct {
	b []byte
	i int
	// The owner names repeat in every entry of a directory: keep one copy.
	user, group string
}

func (p *canonParser) lit(s string) bool {
	if len(p.b)-p.i >= len(s) && string(p.b[p.i:p.i+len(s)]) == s {
		p.i += len(s)
		return true
	}
	return false
}

// raw reads a string with no escapes, no control characters and valid
// UTF-8 (encoding/json would replace invalid bytes; let it) and returns
// its bytes in place.
func (p *canonParser) raw() ([]byte, bool) {
	if !p.lit(`"`) {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		}
		p.i++
	}
	return nil, false
}

func (p *canonParser) str() (string, bool) {
	b, ok := p.raw()
	return string(b), ok
}

// shared reads a string, reusing *last when it is the same.
func (p *canonParser) shared(last *string) (string, bool) {
	b, ok := p.raw()
	if ok && string(b) != *last {
		*last = string(b)
	}
	return *last, ok
}

// key reads `"name":` and returns the name in place.
func (p *canonParser) key(first bool) ([]byte, bool) {
	if !first && !p.lit(",") {
		return nil, false
	}
	k, ok := p.raw()
	return k, ok && p.lit(":")
}

// number reads an integer as encoding/json writes one, -?(0|[1-9][0-9]*),
// failing on anything over 2^64-1.
func (p *canonParser) number() (neg bool, v uint64, ok bool) {
	if p.lit("-") {
		neg = true
	}
	start := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		d := uint64(p.b[p.i] - '0')
		if v > (math.MaxUint64-d)/10 {
			return false, 0, false
		}
		v = v*10 + d
		p.i++
	}
	n := p.i - start
	if n == 0 || (n > 1 && p.b[start] == '0') {
		return false, 0, false
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return false, 0, false
	}
	return neg, v, true
}

func (p *canonParser) int64() (int64, bool) {
	neg, v, ok := p.number()
	switch {
	case !ok:
		return 0, false
	case neg && v <= 1<<63:
		return int64(-v), true // -(1<<63) wraps to itself: MinInt64
	case !neg && v <= math.MaxInt64:
		return int64(v), true
	}
	return 0, false
}

func (p *canonParser) uint(hi uint64) (uint64, bool) {
	neg, v, ok := p.number()
	if !ok || neg || v > hi {
		return 0, false
	}
	return v, true
}

func (p *canonParser) uint32() (uint32, bool) {
	v, ok := p.uint(math.MaxUint32)
	return uint32(v), ok
}

func (p *canonParser) id() (cas.ID, bool) {
	b, ok := p.raw()
	if !ok {
		return cas.ID{}, false
	}
	id, err := cas.ParseID(string(b))
	return id, err == nil
}

// object reads {"key":value,...}: field reads the value of each key and
// returns the key's bit; a key it does not know (bit 0), or one seen twice,
// fails the object (encoding/json would merge or overwrite: let it).
func (p *canonParser) object(field func(key []byte) (bit uint32, ok bool)) bool {
	if !p.lit("{") {
		return false
	}
	var seen uint32
	for first := true; !p.lit("}"); first = false {
		k, ok := p.key(first)
		if !ok {
			return false
		}
		bit, ok := field(k)
		if !ok || bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
	}
	return true
}

func (p *canonParser) entry(e *Entry) bool {
	return p.object(func(k []byte) (bit uint32, ok bool) {
		switch string(k) {
		case "name":
			bit = 1 << 0
			e.Name, ok = p.str()
		case "type":
			bit = 1 << 1
			var s []byte
			s, ok = p.raw()
			switch Type(s) {
			case TypeFile:
				e.Type = TypeFile
			case TypeDir:
				e.Type = TypeDir
			case TypeSymlink:
				e.Type = TypeSymlink
			default:
				e.Type = Type(s)
			}
		case "mode":
			bit = 1 << 2
			e.Mode, ok = p.uint32()
		case "uid":
			bit = 1 << 3
			e.UID, ok = p.uint32()
		case "gid":
			bit = 1 << 4
			e.GID, ok = p.uint32()
		case "user":
			bit = 1 << 5
			e.User, ok = p.shared(&p.user)
		case "group":
			bit = 1 << 6
			e.Group, ok = p.shared(&p.group)
		case "mtime_ns":
			bit = 1 << 7
			e.MTimeNs, ok = p.int64()
		case "ctime_ns":
			bit = 1 << 8
			e.CTimeNs, ok = p.int64()
		case "inode":
			bit = 1 << 9
			e.Inode, ok = p.uint(math.MaxUint64)
		case "size":
			bit = 1 << 10
			e.Size, ok = p.uint(math.MaxUint64)
		case "target":
			bit = 1 << 11
			e.Target, ok = p.str()
		case "chunks":
			bit = 1 << 12
			ok = p.chunks(e)
		case "subtree":
			bit = 1 << 13
			e.Subtree, ok = p.id()
		case "hardlink":
			bit = 1 << 14
			e.HardLink, ok = p.str()
		case "link":
			bit = 1 << 15
			e.Link = new(Link)
			ok = p.link(e.Link)
		case "incomplete":
			bit = 1 << 16
			switch {
			case p.lit("true"):
				e.Incomplete, ok = true, true
			case p.lit("false"):
				ok = true
			}
		}
		return bit, ok
	})
}

func (p *canonParser) link(l *Link) bool {
	return p.object(func(k []byte) (bit uint32, ok bool) {
		switch string(k) {
		case "method":
			bit = 1 << 0
			l.Method, ok = p.str()
		case "object":
			bit = 1 << 1
			l.Object, ok = p.str()
		case "ctime_ns":
			bit = 1 << 2
			l.CTimeNs, ok = p.int64()
		case "nlink":
			bit = 1 << 3
			l.Nlink, ok = p.uint(math.MaxUint64)
		case "hash":
			bit = 1 << 4
			l.Hash, ok = p.id()
		}
		return bit, ok
	})
}

// chunks reads a non-empty chunk list ([] decodes to an empty, not nil,
// slice in encoding/json; Encode never writes it).
func (p *canonParser) chunks(e *Entry) bool {
	if !p.lit("[") || p.lit("]") {
		return false
	}
	for first := true; !p.lit("]"); first = false {
		if !first && !p.lit(",") {
			return false
		}
		var c Chunk
		ok := p.object(func(k []byte) (bit uint32, ok bool) {
			switch string(k) {
			case "id":
				bit = 1 << 0
				c.ID, ok = p.id()
			case "size":
				bit = 1 << 1
				c.Size, ok = p.uint32()
			}
			return bit, ok
		})
		if !ok {
			return false
		}
		e.Chunks = append(e.Chunks, c)
	}
	return true
}

// appendCanonicalTree appends t as json.Marshal encodes it, without
// reflection; ok is false when t holds something it leaves to json.Marshal
// (xattrs, raw names, strings encoding/json escapes). Encoding trees was
// the largest part of a hard-link capture's work after the links
// themselves. FuzzEncodeTreeMatchesStd and TestTreeEncodeGolden hold it
// to json.Marshal's bytes, which tree IDs depend on.
func appendCanonicalTree(b []byte, t *Tree) ([]byte, bool) {
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(t.Version), 10)
	if t.Entries == nil {
		return append(b, `,"entries":null}`...), true
	}
	b = append(b, `,"entries":[`...)
	for i := range t.Entries {
		if i > 0 {
			b = append(b, ',')
		}
		var ok bool
		if b, ok = appendCanonicalEntry(b, &t.Entries[i]); !ok {
			return b, false
		}
	}
	return append(b, "]}"...), true
}

func appendCanonicalEntry(b []byte, e *Entry) ([]byte, bool) {
	if len(e.Xattrs) > 0 || len(e.NameRaw) > 0 || len(e.TargetRaw) > 0 {
		return b, false
	}
	ok := true
	str := func(key, s string) {
		b = append(b, key...)
		b, ok = appendPlainString(b, s, ok)
	}
	num := func(key string, v uint64) {
		b = append(b, key...)
		b = strconv.AppendUint(b, v, 10)
	}
	str(`{"name":`, e.Name)
	str(`,"type":`, string(e.Type))
	num(`,"mode":`, uint64(e.Mode))
	num(`,"uid":`, uint64(e.UID))
	num(`,"gid":`, uint64(e.GID))
	if e.User != "" {
		str(`,"user":`, e.User)
	}
	if e.Group != "" {
		str(`,"group":`, e.Group)
	}
	b = append(b, `,"mtime_ns":`...)
	b = strconv.AppendInt(b, e.MTimeNs, 10)
	if e.CTimeNs != 0 {
		b = append(b, `,"ctime_ns":`...)
		b = strconv.AppendInt(b, e.CTimeNs, 10)
	}
	if e.Inode != 0 {
		num(`,"inode":`, e.Inode)
	}
	if e.Size != 0 {
		num(`,"size":`, e.Size)
	}
	if e.Target != "" {
		str(`,"target":`, e.Target)
	}
	if len(e.Chunks) > 0 {
		b = append(b, `,"chunks":[`...)
		for i, c := range e.Chunks {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendID(append(b, `{"id":`...), c.ID)
			num(`,"size":`, uint64(c.Size))
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if !e.Subtree.IsZero() {
		b = appendID(append(b, `,"subtree":`...), e.Subtree)
	}
	if e.HardLink != "" {
		str(`,"hardlink":`, e.HardLink)
	}
	if l := e.Link; l != nil {
		str(`,"link":{"method":`, l.Method)
		str(`,"object":`, l.Object)
		b = append(b, `,"ctime_ns":`...)
		b = strconv.AppendInt(b, l.CTimeNs, 10)
		if l.Nlink != 0 {
			num(`,"nlink":`, l.Nlink)
		}
		if !l.Hash.IsZero() {
			b = appendID(append(b, `,"hash":`...), l.Hash)
		}
		b = append(b, '}')
	}
	if e.Incomplete {
		b = append(b, `,"incomplete":true`...)
	}
	return append(b, '}'), ok
}

func appendID(b []byte, id cas.ID) []byte {
	b = append(b, '"')
	b = hex.AppendEncode(b, id[:])
	return append(b, '"')
}

// appendPlainString appends s quoted when encoding/json writes it as it
// is: valid UTF-8 with nothing it escapes (control characters, quote,
// backslash, the HTML characters < > &, U+2028 and U+2029).
func appendPlainString(b []byte, s string, ok bool) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return b, false
		}
		if c >= utf8.RuneSelf {
			if !utf8.ValidString(s) || strings.Contains(s, "\u2028") || strings.Contains(s, "\u2029") {
				return b, false
			}
			break
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"'), ok
}
