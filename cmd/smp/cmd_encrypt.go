package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/pflag"

	"smp/keys"
	"smp/store"
)

const encryptArgs = "--store DIR [--key-file FILE] [--passphrase-file FILE]"

// encryptOptions are the flags of smp encrypt.
type encryptOptions struct {
	Store                   string
	KeyFile, PassphraseFile string
}

func (o *encryptOptions) AddFlags(fs *pflag.FlagSet) {
	storeDirVar(fs, &o.Store)
	fs.StringVar(&o.KeyFile, "key-file", os.Getenv("SMP_KEY_FILE"), "the store's key file: written here (outside the store; a key file already there is used as is) instead of the user's config directory; when finishing an interrupted run, the key file it wrote (or $SMP_KEY_FILE)")
	fs.StringVar(&o.PassphraseFile, "passphrase-file", os.Getenv("SMP_PASSPHRASE_FILE"), "also add a passphrase slot, the first line of FILE (mode 0600, or a pipe); when finishing an interrupted run, a passphrase or recovery key that opens it (or $SMP_PASSPHRASE_FILE)")
}

func cmdEncrypt(ctx context.Context, args []string) error {
	var o encryptOptions
	fs := newFlags("encrypt", encryptArgs)
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
		return err
	}
	return runEncrypt(ctx, &o, os.Stdout)
}

// runEncrypt converts an unencrypted store in place (store.Encrypt): the
// keys are made as smp init --encrypt makes them, around the store's own
// hash key; a re-run after a crash unlocks the keys the first run wrote
// and finishes.
func runEncrypt(ctx context.Context, o *encryptOptions, stdout io.Writer) error {
	if err := needStore(o.Store); err != nil {
		return err
	}
	dir, err := filepath.Abs(o.Store)
	if err != nil {
		return err
	}
	kf := keyFlags{KeyFile: o.KeyFile, PassphraseFile: o.PassphraseFile}
	rep, err := store.Encrypt(ctx, dir, store.EncryptOptions{
		NewKeys: func(storeID string, hashKey [32]byte) (*keys.Unlocked, error) {
			nk, err := newStoreKeys(newKeysOptions{KeyFile: o.KeyFile, PassphraseFile: o.PassphraseFile, ReuseKeyFile: true}, dir, storeID, &hashKey)
			if err != nil {
				return nil, err
			}
			// Printed before the keys are saved: a crash right after
			// saving them must not lose the recovery key. A run that
			// fails before saving them makes new ones when run again.
			fmt.Fprintf(stdout, "store %s: keys made; key file %s %s\n", dir, nk.keyFile, keyFileHint(o.KeyFile))
			fmt.Fprintf(stdout, "recovery key: %s\n", nk.recovery)
			fmt.Fprintln(stdout, "the recovery key is shown only now: keep it apart from the store (it opens the store alone; give it through --passphrase-file or at the prompt)")
			return nk.u, nil
		},
		Unlock: kf.unlock(),
	})
	if err != nil {
		return err
	}
	if rep.Already {
		fmt.Fprintf(stdout, "store %s is already encrypted: nothing to do\n", dir)
	} else {
		g := rep.GC
		fmt.Fprintf(stdout, "store %s is encrypted: %d packs in clear rewritten sealed into %d (%d blobs), %d deleted; index rebuilt encrypted\n",
			dir, g.PacksRekeyed, g.PacksWritten, g.BlobsCopied, g.PacksDeleted)
		if rep.Resumed {
			fmt.Fprintln(stdout, "(finished the conversion an earlier run began, with the keys it made)")
		}
		fmt.Fprintln(stdout, "the files in clear (packs, the old index, config.json with the hash key, tls/key.pem) were deleted or replaced (unlinked), not scrubbed: their disk blocks may hold the plaintext until overwritten (docs/SECURITY.md)")
	}
	if !rep.KeyedGear {
		fmt.Fprintln(stdout, "chunk boundaries: the gear table stays unkeyed, as the existing chunks were cut with it, so new captures still deduplicate against them (docs/SECURITY.md)")
	}
	if rep.LinkedFiles {
		fmt.Fprintln(stdout, "links/: the hard-link area holds users' files as they are and cannot be encrypted (smp ingest turns a hard-link record into an encrypted one)")
	}
	return nil
}
