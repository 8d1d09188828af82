package keys

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Sources are the places a command looks for a store's secret, tried in
// this order until one opens a slot:
//
//  1. KeyFile (--key-file FILE or $SMP_KEY_FILE);
//  2. PassphraseFile (--passphrase-file FILE or $SMP_PASSPHRASE_FILE),
//     whose line may also be a recovery key;
//  3. systemd credentials: $CREDENTIALS_DIRECTORY/smp-key (a key file)
//     and $CREDENTIALS_DIRECTORY/smp-passphrase (a passphrase or
//     recovery key), as LoadCredential= or SetCredentialEncrypted= give
//     them to a service;
//  4. the key file smp init keeps for the store in the user's config
//     directory, ConfigDir/<store-id>.key;
//  5. Prompt, when set (a terminal): a passphrase or recovery key.
//
// The prompt comes last, after the stored key file, so the quick start
// (smp init, then every command without a key flag) never asks.
type Sources struct {
	KeyFile, PassphraseFile string
	CredentialsDir          string
	ConfigDir               string // e.g. $XDG_CONFIG_HOME/smp/keys
	// Prompt asks for a passphrase; nil when there is no terminal.
	Prompt func(prompt string) ([]byte, error)
}

// DefaultConfigDir is where smp init keeps stores' key files:
// $XDG_CONFIG_HOME/smp/keys (~/.config/smp/keys).
func DefaultConfigDir() string {
	d, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "smp", "keys")
}

// StoredKeyPath is the key file of store id in configDir.
func StoredKeyPath(configDir, storeID string) string {
	return filepath.Join(configDir, storeID+".key")
}

// maxSecretFile bounds what a key or passphrase file read takes.
const maxSecretFile = 4 << 10

// ReadSecretFile reads a key or passphrase file. Like ssh with private
// keys, it refuses a regular file other users may read: its secret would
// not be one. A pipe (/dev/stdin, <(cmd)) has no permissions to check.
func ReadSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	switch {
	case st.IsDir():
		return nil, fmt.Errorf("%s is a directory", path)
	case st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0:
		return nil, fmt.Errorf("%s has mode %04o: other users may read it; run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSecretFile)
	}
	return b, nil
}

// ParseKeyFile reads a key file's contents: 64 hex digits (as smp writes
// it, with or without a newline) or the 32 bytes themselves.
func ParseKeyFile(b []byte) ([]byte, error) {
	if len(b) == 32 {
		return b, nil
	}
	s := strings.TrimSpace(string(b))
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	return nil, errors.New("not a key file (64 hex digits)")
}

// EncodeKeyFile is a key file's contents as smp writes it.
func EncodeKeyFile(k []byte) []byte { return []byte(hex.EncodeToString(k) + "\n") }

// PassphraseLine is a passphrase file's first line: a trailing newline is
// not part of the passphrase.
func PassphraseLine(b []byte) ([]byte, error) {
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return nil, errors.New("empty")
	}
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("holds more than one line")
	}
	return []byte(s), nil
}

// attempt is one source tried, for the error when none opened the store.
type attempt struct{ name, outcome string }

// Unlock tries the sources in order on f and returns the first that
// opens it. When none does, the error is one line naming the store (desc),
// every source and what happened with it, and what to pass.
func (s *Sources) Unlock(desc string, f *File) (*Unlocked, error) {
	var tried []attempt
	try := func(name string, get func() (Secret, error)) *Unlocked {
		sec, err := get()
		if err != nil {
			tried = append(tried, attempt{name, err.Error()})
			return nil
		}
		u, err := f.Unlock(sec)
		if err != nil {
			outcome := "wrong key"
			if !errors.Is(err, ErrWrongKey) {
				outcome = err.Error()
			}
			tried = append(tried, attempt{name, outcome})
			return nil
		}
		return u
	}
	keyFile := func(path string) func() (Secret, error) {
		return func() (Secret, error) {
			b, err := ReadSecretFile(path)
			if err != nil {
				return Secret{}, trimPathErr(err)
			}
			k, err := ParseKeyFile(b)
			return Secret{KeyFile: k}, err
		}
	}
	passFile := func(path string) func() (Secret, error) {
		return func() (Secret, error) {
			b, err := ReadSecretFile(path)
			if err != nil {
				return Secret{}, trimPathErr(err)
			}
			p, err := PassphraseLine(b)
			return Secret{Passphrase: p}, err
		}
	}
	notSet := func() (Secret, error) { return Secret{}, errors.New("not set") }
	var u *Unlocked
	pick := func(name, path string, get func(string) func() (Secret, error)) {
		if u != nil {
			return
		}
		if path == "" {
			u = try(name, notSet)
			return
		}
		u = try(name+" "+path, get(path))
	}
	pick("--key-file", s.KeyFile, keyFile)
	pick("--passphrase-file", s.PassphraseFile, passFile)
	if s.CredentialsDir == "" {
		pick("$CREDENTIALS_DIRECTORY", "", nil)
	} else {
		for _, c := range []struct {
			name string
			get  func(string) func() (Secret, error)
		}{{"smp-key", keyFile}, {"smp-passphrase", passFile}} {
			p := filepath.Join(s.CredentialsDir, c.name)
			if _, err := os.Stat(p); err == nil {
				pick("credential", p, c.get)
			} else if u == nil {
				tried = append(tried, attempt{"credential " + p, "not found"})
			}
		}
	}
	if s.ConfigDir != "" {
		pick("stored key", StoredKeyPath(s.ConfigDir, f.StoreID), keyFile)
	}
	if u == nil {
		if s.Prompt == nil {
			tried = append(tried, attempt{"prompt", "no terminal"})
		} else {
			u = try("prompt", func() (Secret, error) {
				p, err := s.Prompt(fmt.Sprintf("passphrase or recovery key for store %s: ", desc))
				if err != nil {
					return Secret{}, err
				}
				return Secret{Passphrase: p}, nil
			})
		}
	}
	if u != nil {
		return u, nil
	}
	parts := make([]string, len(tried))
	for i, a := range tried {
		parts[i] = a.name + " (" + a.outcome + ")"
	}
	return nil, unlockError{fmt.Sprintf("store %s is encrypted and no key opened it; tried %s: pass --key-file FILE or --passphrase-file FILE (a passphrase or recovery key), or set SMP_KEY_FILE or SMP_PASSPHRASE_FILE",
		desc, strings.Join(parts, ", "))}
}

// unlockError is Sources.Unlock's error: errors.Is(err, ErrWrongKey).
type unlockError struct{ msg string }

func (e unlockError) Error() string { return e.msg }
func (e unlockError) Unwrap() error { return ErrWrongKey }

// trimPathErr shortens an *fs.PathError to its cause: the source's name
// already carries the path.
func trimPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		if errors.Is(pe.Err, fs.ErrNotExist) {
			return errors.New("not found")
		}
		return pe.Err
	}
	return err
}
