package main

import (
	"fmt"
	"os"

	"github.com/spf13/pflag"
	"golang.org/x/term"

	"smp/keys"
)

// keyFlags are where the key of an encrypted store comes from (see
// keys.Sources for the order they are tried in). An unencrypted store
// ignores them.
type keyFlags struct {
	KeyFile, PassphraseFile string
}

// AddFlags registers --key-file and --passphrase-file on fs.
func (kf *keyFlags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&kf.KeyFile, "key-file", os.Getenv("SMP_KEY_FILE"), "encrypted store: its key file (or $SMP_KEY_FILE; mode 0600)")
	fs.StringVar(&kf.PassphraseFile, "passphrase-file", os.Getenv("SMP_PASSPHRASE_FILE"), "encrypted store: a file holding its passphrase or recovery key on one line (or $SMP_PASSPHRASE_FILE; mode 0600)")
}

// sources are the key sources of these flags and the environment:
// systemd credentials, the key files smp init keeps in the user's config
// directory, and a prompt when stdin is a terminal.
func (kf *keyFlags) sources() *keys.Sources {
	s := &keys.Sources{
		KeyFile:        kf.KeyFile,
		PassphraseFile: kf.PassphraseFile,
		CredentialsDir: os.Getenv("CREDENTIALS_DIRECTORY"),
		ConfigDir:      keys.DefaultConfigDir(),
	}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		s.Prompt = func(prompt string) ([]byte, error) {
			fmt.Fprint(os.Stderr, prompt)
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(os.Stderr)
			return b, err
		}
	}
	return s
}

// unlock is the store open options' Unlock of these flags.
func (kf *keyFlags) unlock() keys.UnlockFunc {
	s := kf.sources()
	return func(desc string, f *keys.File) (*keys.Unlocked, error) { return s.Unlock(desc, f) }
}
