package keys

import (
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"strings"
)

// A recovery key is 32 random bytes and a 3-byte checksum, written in
// Crockford's base32 (no I, L, O, U: nothing to misread) as seven groups
// of eight characters. ParseRecovery takes it back in any case, with or
// without the dashes, reading O as 0 and I or L as 1, and the checksum
// catches a mistyped character before any slot is tried.
var crockford = base32.NewEncoding("0123456789ABCDEFGHJKMNPQRSTVWXYZ").WithPadding(base32.NoPadding)

const recoveryPrefix = "SMPR"

func recoverySum(secret []byte) []byte {
	s := sha256.Sum256(append([]byte("smp recovery key v1\x00"), secret...))
	return s[:3]
}

// FormatRecovery writes a recovery key.
func FormatRecovery(secret [32]byte) string {
	enc := crockford.EncodeToString(append(secret[:], recoverySum(secret[:])...)) // 56 characters
	var b strings.Builder
	b.WriteString(recoveryPrefix)
	for i := 0; i < len(enc); i += 8 {
		b.WriteByte('-')
		b.WriteString(enc[i:min(i+8, len(enc))])
	}
	return b.String()
}

// ErrNotRecovery is returned for text that is not a recovery key.
var ErrNotRecovery = errors.New("not a recovery key")

// ErrRecoveryChecksum is returned for a recovery key with a typing error.
var ErrRecoveryChecksum = errors.New("the recovery key has a typing error (its checksum does not match)")

// ParseRecovery reads a recovery key written by FormatRecovery.
func ParseRecovery(s string) ([32]byte, error) {
	var out [32]byte
	s = strings.ToUpper(strings.TrimSpace(s))
	if !strings.HasPrefix(s, recoveryPrefix) || len(s) > 128 {
		return out, ErrNotRecovery
	}
	s = strings.NewReplacer("-", "", " ", "", "O", "0", "I", "1", "L", "1").Replace(strings.TrimPrefix(s, recoveryPrefix))
	b, err := crockford.DecodeString(s)
	if err != nil || len(b) != 35 {
		return out, ErrNotRecovery
	}
	if string(recoverySum(b[:32])) != string(b[32:]) {
		return out, ErrRecoveryChecksum
	}
	copy(out[:], b)
	return out, nil
}
