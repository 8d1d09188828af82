package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"smp/store"
)

// storeFlags are --store and the flags that reach an SMP server, for the
// commands that work on any store (store.Open).
type storeFlags struct {
	Location                          string
	Token, TokenFile, Fingerprint, CA string
	keyFlags
	S3 s3Flags

	fs     *pflag.FlagSet // to tell a --token given on the command line
	warned bool
}

// AddFlags registers --store and the SMP flags on fs.
func (sf *storeFlags) AddFlags(fs *pflag.FlagSet) {
	sf.fs = fs
	fs.StringVar(&sf.Location, "store", os.Getenv("SMP_STORE"), "store directory, s3://ENDPOINT/BUCKET/PREFIX, https://SMP, or several SMPs separated by commas (or $SMP_STORE)")
	// No default from $SMP_TOKEN: a flag's default is printed by --help,
	// and a secret must never be; secret() reads the variable itself.
	fs.StringVar(&sf.Token, "token", "", "with --store https://...: access token (default $SMP_TOKEN); with several SMPs, one per SMP separated by commas. Every local user can read a command line (ps): prefer --token-file or $SMP_TOKEN")
	fs.StringVar(&sf.TokenFile, "token-file", "", "with --store https://...: read the token(s) of --token from FILE (mode 0600, or a pipe such as /dev/stdin)")
	fs.StringVar(&sf.Fingerprint, "tls-fingerprint", os.Getenv("SMP_TLS_FINGERPRINT"), "with --store https://...: trust the server certificate with this SHA-256 (as smp serve printed it); with several SMPs, one for all or one per SMP separated by commas, in --store order")
	fs.StringVar(&sf.CA, "ca", os.Getenv("SMP_CA"), "with --store https://...: PEM file of the CA that signed the server certificate")
	sf.keyFlags.AddFlags(fs)
	sf.S3.AddFlags(fs)
}

// open opens the store; o carries what the command decides (read-only,
// --allow-unreachable), the flags fill in the rest.
func (sf *storeFlags) open(ctx context.Context, o store.Options) (store.Store, error) {
	if err := needStore(sf.Location); err != nil {
		return nil, err
	}
	secret, err := sf.secret()
	if err != nil {
		return nil, err
	}
	o.Token, o.Fingerprint, o.CAFile, o.Log = secret, sf.Fingerprint, sf.CA, os.Stderr
	o.Unlock = sf.unlock()
	o.S3 = sf.S3.opts()
	return store.Open(ctx, sf.Location, o)
}

// maxTokenFile bounds what --token-file reads: a few tokens, never a
// file named by mistake.
const maxTokenFile = 64 << 10

// secret returns the token list from --token-file, --token or $SMP_TOKEN
// (the default of --token). A token given on the command line is visible
// to every local user through ps and /proc, so using it draws a warning.
func (sf *storeFlags) secret() (string, error) {
	onCmdline := sf.fs != nil && sf.fs.Changed("token")
	if sf.TokenFile != "" {
		if onCmdline {
			return "", usagef("give --token or --token-file, not both")
		}
		return readTokenFile(sf.TokenFile)
	}
	if sf.Token == "" {
		return os.Getenv("SMP_TOKEN"), nil
	}
	if onCmdline && !sf.warned {
		sf.warned = true
		fmt.Fprintln(os.Stderr, "smp: warning: --token on the command line can be read by every local user (ps): use --token-file FILE or $SMP_TOKEN")
	}
	return sf.Token, nil
}

// readTokenFile reads a token (list) from path, without one trailing
// newline. Like ssh with private keys, it refuses a regular file that
// other users may read or write: its secret would not be one. A pipe or
// terminal (/dev/stdin, <(cmd)) has no such permissions to check.
func readTokenFile(path string) (string, error) {
	f, err := os.Open(path) // symlinks followed: /dev/stdin is one; the checks are on what was opened
	if err != nil {
		return "", usagef("--token-file: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", usagef("--token-file: %v", err)
	}
	switch {
	case st.IsDir():
		return "", usagef("--token-file %s is a directory: give the file holding the token", path)
	case st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0:
		return "", usagef("--token-file %s has mode %04o: other users may read it; run chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", usagef("--token-file %s: %v", path, err)
	}
	if len(b) > maxTokenFile {
		return "", usagef("--token-file %s is larger than %d bytes: give the file holding the token", path, maxTokenFile)
	}
	tok := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	switch {
	case strings.TrimSpace(tok) == "":
		return "", usagef("--token-file %s is empty", path)
	case strings.ContainsAny(tok, "\r\n"):
		return "", usagef("--token-file %s holds more than one line: give one token, or one per SMP separated by commas", path)
	}
	return tok, nil
}
