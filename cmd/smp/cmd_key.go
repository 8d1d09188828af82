package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"smp/keys"
	"smp/store"
)

const keyArgs = "list|add|remove|rotate|add-recovery|retire --store DIR [flags]"

// keyOptions are the flags of smp key.
type keyOptions struct {
	Store string
	keyFlags
	// add: the new slot's secret.
	NewKeyFile, NewPassphraseFile string
	// remove: the slot.
	Slot string
	JSON bool
	// rotate: also replace the wrapping key, keeping only the slot whose
	// secret was given.
	Revoke bool
	// retire: the master key.
	Retire keys.KeyID
	S3     s3Flags
}

func (o *keyOptions) AddFlags(fs *pflag.FlagSet) {
	storeDirVar(fs, &o.Store)
	o.keyFlags.AddFlags(fs)
	o.S3.AddKeyFlags(fs)
	switch fs.Name() {
	case "key add":
		fs.StringVar(&o.NewKeyFile, "new-key-file", "", "add a key file slot: write a new random key to FILE (mode 0600; it must not exist, and must not be inside the store)")
		fs.StringVar(&o.NewPassphraseFile, "new-passphrase-file", "", "add a passphrase slot: the passphrase is the first line of FILE (mode 0600, or a pipe such as /dev/stdin)")
	case "key remove":
		fs.StringVar(&o.Slot, "slot", "", "ID of the key slot to remove (see smp key list)")
	case "key rotate":
		fs.BoolVar(&o.Revoke, "revoke-other-slots", false, "also replace the store's wrapping key and remove every key slot but the one whose secret is given: a removed or leaked secret then opens no new data, even with an old copy of keys.json")
	case "key list":
		fs.BoolVar(&o.JSON, "json", false, "print as JSON")
	}
}

func cmdKey(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("want: smp key %s", keyArgs)
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintf(os.Stderr, "Usage: smp key %s\n\nRun smp key COMMAND --help for a command's flags.\n", keyArgs)
		return pflag.ErrHelp
	}
	run := map[string]func(context.Context, *keyOptions, io.Writer) error{
		"list": runKeyList, "add": runKeyAdd, "remove": runKeyRemove,
		"rotate": runKeyRotate, "add-recovery": runKeyAddRecovery, "retire": runKeyRetire,
	}[args[0]]
	if run == nil {
		return usagef("unknown key command %q: want %s", args[0], keyArgs)
	}
	var o keyOptions
	usageArgs := "--store DIR [flags]"
	if args[0] == "retire" {
		usageArgs = "ID --store DIR [flags]"
	}
	fs := newFlags("key "+args[0], usageArgs)
	o.AddFlags(fs)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if args[0] == "retire" {
		id, err := strconv.ParseUint(fs.Arg(0), 10, 32)
		if fs.NArg() != 1 || err != nil || id == 0 {
			return usagef("want: smp key retire ID --store DIR, ID a master key number (see smp key list)")
		}
		o.Retire = keys.KeyID(id)
	} else if err := noArgs(fs); err != nil {
		return err
	}
	if err := needStore(o.Store); err != nil {
		return err
	}
	return run(ctx, &o, os.Stdout)
}

func runKeyList(_ context.Context, o *keyOptions, stdout io.Writer) error {
	_, f, err := store.ReadKeys(o.Store, o.S3.opts())
	if err != nil {
		return err
	}
	if o.JSON {
		type slot struct {
			ID      string `json:"id"`
			Kind    string `json:"kind"`
			Created string `json:"created"`
		}
		type master struct {
			ID      keys.KeyID `json:"id"`
			Created string     `json:"created"`
			Current bool       `json:"current"`
		}
		out := struct {
			Slots   []slot   `json:"slots"`
			Masters []master `json:"masters"`
		}{}
		for _, s := range f.Slots {
			out.Slots = append(out.Slots, slot{s.ID, s.Kind, s.Created.Format("2006-01-02T15:04:05Z")})
		}
		for _, m := range f.Masters {
			out.Masters = append(out.Masters, master{m.ID, m.Created.Format("2006-01-02T15:04:05Z"), m.ID == f.Current})
		}
		return printJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "store %s: %d key slots\n", f.StoreID, len(f.Slots))
	for _, s := range f.Slots {
		fmt.Fprintf(stdout, "  slot %s  %-10s  added %s\n", s.ID, s.Kind, s.Created.Format("2006-01-02 15:04"))
	}
	for _, m := range f.Masters {
		cur := ""
		if m.ID == f.Current {
			cur = "  (seals new data)"
		}
		fmt.Fprintf(stdout, "  master key %d  made %s%s\n", m.ID, m.Created.Format("2006-01-02 15:04"), cur)
	}
	return nil
}

func runKeyAdd(_ context.Context, o *keyOptions, stdout io.Writer) error {
	if (o.NewKeyFile == "") == (o.NewPassphraseFile == "") {
		return usagef("give one of --new-key-file FILE or --new-passphrase-file FILE")
	}
	var pass []byte
	if o.NewPassphraseFile != "" {
		var err error
		if pass, err = readPassphrase("--new-passphrase-file", o.NewPassphraseFile); err != nil {
			return err
		}
	}
	var id string
	var written string
	err := store.EditKeys(o.Store, o.S3.opts(), o.unlock(), func(u *keys.Unlocked) error {
		var err error
		if pass != nil {
			id, err = u.AddPassphrase(pass)
			return err
		}
		var k []byte
		if k, id, err = u.AddKeyFile(); err != nil {
			return err
		}
		// Written before the slot is saved: a slot whose key was lost
		// would be a way in nobody has.
		written, err = writeNewKeyFile(o.NewKeyFile, o.Store, k)
		return err
	})
	if err != nil {
		if written != "" {
			os.Remove(written)
		}
		return err
	}
	if written != "" {
		fmt.Fprintf(stdout, "added key slot %s: key file %s\n", id, written)
	} else {
		fmt.Fprintf(stdout, "added key slot %s: passphrase\n", id)
	}
	return nil
}

func runKeyRemove(_ context.Context, o *keyOptions, stdout io.Writer) error {
	if o.Slot == "" {
		return usagef("--slot ID is required (see smp key list)")
	}
	if err := store.EditKeys(o.Store, o.S3.opts(), o.unlock(), func(u *keys.Unlocked) error { return u.RemoveSlot(o.Slot) }); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed key slot %s\n", o.Slot)
	return nil
}

func runKeyRotate(_ context.Context, o *keyOptions, stdout io.Writer) error {
	var id keys.KeyID
	var removed []string
	err := store.EditKeys(o.Store, o.S3.opts(), o.unlock(), func(u *keys.Unlocked) error {
		var err error
		if o.Revoke {
			id, removed, err = u.RotateRevoking()
		} else {
			id, err = u.Rotate()
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, s := range removed {
		fmt.Fprintf(stdout, "removed key slot %s\n", s)
	}
	fmt.Fprintf(stdout, "master key %d now seals new data (a running smp serve: on s3:// from its next refresh, on a store directory after its restart); older master keys stay until the data they sealed is re-encrypted\n", id)
	return nil
}

func runKeyAddRecovery(_ context.Context, o *keyOptions, stdout io.Writer) error {
	var rk, id string
	err := store.EditKeys(o.Store, o.S3.opts(), o.unlock(), func(u *keys.Unlocked) error {
		var err error
		rk, id, err = u.AddRecovery()
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added recovery key slot %s\nrecovery key: %s\n", id, rk)
	fmt.Fprintln(stdout, "it is shown only now: keep it apart from the store (it opens the store alone; give it through --passphrase-file or at the prompt)")
	return nil
}

// runKeyRetire removes an old master key, refused while anything in the
// store still uses it.
func runKeyRetire(_ context.Context, o *keyOptions, stdout io.Writer) error {
	if err := store.RetireKey(o.Store, o.S3.opts(), o.unlock(), o.Retire); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "retired master key %d: nothing in the store used it, and keys.json no longer holds it\n", o.Retire)
	return nil
}

// readPassphrase reads a passphrase file's first line.
func readPassphrase(flag, path string) ([]byte, error) {
	b, err := keys.ReadSecretFile(path)
	if err != nil {
		return nil, usagef("%s: %v", flag, err)
	}
	p, err := keys.PassphraseLine(b)
	if err != nil {
		return nil, usagef("%s %s: %v: want the passphrase on one line", flag, path, err)
	}
	return p, nil
}

// writeNewKeyFile writes key k to path, which must not exist and must not
// be inside the store directory (a key kept beside the data it opens
// protects nothing). It returns the path written.
func writeNewKeyFile(path, storeDir string, k []byte) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	sd, err := filepath.Abs(storeDir)
	if err != nil {
		return "", err
	}
	if rel, err := filepath.Rel(sd, abs); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return "", usagef("key file %s is inside the store %s: keep it elsewhere", abs, sd)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return "", err
	}
	// Written whole to a temporary file, then linked to its name (which
	// fails if the name exists): a kill never leaves a partial key file
	// under the name, which a re-run (smp encrypt) would take as the key.
	f, err := os.CreateTemp(filepath.Dir(abs), ".smp-key-*")
	if err != nil {
		return "", err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(keys.EncodeKeyFile(k))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", err
	}
	if err := os.Link(tmp, abs); err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", usagef("key file %s already exists: give a new path", abs)
		}
		return "", err
	}
	if d, err := os.Open(filepath.Dir(abs)); err == nil {
		d.Sync()
		d.Close()
	}
	return abs, nil
}
