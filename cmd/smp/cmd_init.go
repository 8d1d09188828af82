package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"smp/cas"
	"smp/store"
)

// initOptions are the flags of smp init.
type initOptions struct {
	Store, ChunkAvg string
	// NoEncrypt makes a store in clear (format version 1). Without it the
	// store is encrypted (keys in keys.json, see package keys): a key file
	// slot, whose key goes to KeyFile or the user's config directory, a
	// recovery key printed once, and a passphrase slot with
	// PassphraseFile.
	NoEncrypt bool
	// Encrypt is the opt-in of the smp that made clear stores by default,
	// still accepted so that scripts keep working: it changes nothing,
	// and contradicts NoEncrypt.
	Encrypt                 bool
	KeyFile, PassphraseFile string
	// ConfigDir is where the key file goes without KeyFile; "" is
	// keys.DefaultConfigDir() (tests set it).
	ConfigDir string
	S3        s3Flags
}

func (o *initOptions) AddFlags(fs *pflag.FlagSet) {
	storeLocVar(fs, &o.Store, &o.S3)
	fs.StringVar(&o.ChunkAvg, "chunk-avg", "512KiB", "average chunk size, a power of two from 64KiB to 64MiB")
	fs.BoolVar(&o.NoEncrypt, "no-encrypt", false, "make a store in clear: anyone who can read its directory reads every stored file (stores are encrypted by default)")
	fs.BoolVar(&o.Encrypt, "encrypt", false, "encrypt the store: the default, so this changes nothing (kept for scripts written when stores were in clear by default)")
	fs.StringVar(&o.KeyFile, "key-file", "", "write the store's key file here (a new file, outside the store) instead of the user's config directory ($XDG_CONFIG_HOME/smp/keys/STORE-ID.key)")
	fs.StringVar(&o.PassphraseFile, "passphrase-file", "", "also add a passphrase slot, the first line of FILE (mode 0600, or a pipe such as /dev/stdin)")
}

func cmdInit(ctx context.Context, args []string) error {
	var o initOptions
	fs := newFlags("init", "--store DIR [--chunk-avg SIZE] [--key-file FILE] [--passphrase-file FILE] [--no-encrypt]")
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := needStore(o.Store); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return runInit(ctx, &o, os.Stdout)
}

func runInit(_ context.Context, o *initOptions, stdout io.Writer) error {
	if err := needStore(o.Store); err != nil {
		return err
	}
	if o.NoEncrypt && (o.Encrypt || o.KeyFile != "" || o.PassphraseFile != "") {
		return usagef("--no-encrypt makes a store without keys: drop --encrypt, --key-file and --passphrase-file, or --no-encrypt")
	}
	n, err := humanize.ParseBytes(o.ChunkAvg)
	if err != nil {
		return usagef("--chunk-avg %q: %v (e.g. 1MiB)", o.ChunkAvg, err)
	}
	params, err := cas.ChunkerParamsForAvg(int(n))
	if err != nil {
		return usagef("--chunk-avg %q: %v", o.ChunkAvg, err)
	}
	dir := o.Store
	if !store.IsS3(dir) {
		if dir, err = filepath.Abs(o.Store); err != nil {
			return err
		}
	}
	if o.NoEncrypt {
		cfg, err := o.init(dir, store.InitOptions{Params: params}, stdout)
		if err != nil {
			return err
		}
		printInit(stdout, dir, cfg, params)
		fmt.Fprintln(stdout, "not encrypted (--no-encrypt): anyone who can read the store's directory reads every stored file")
		return nil
	}
	return initEncrypted(o, dir, params, stdout)
}

// init creates the store at dir (a directory or s3://...), saying where
// the cache directory of a store on S3 is.
func (o *initOptions) init(dir string, initOpts store.InitOptions, stdout io.Writer) (*store.Config, error) {
	if !store.IsS3(dir) {
		return store.InitWith(dir, initOpts)
	}
	cfg, cache, err := store.InitS3(dir, o.S3.opts(), initOpts)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(stdout, "cache directory %s (rebuilt from the bucket when missing)\n", cache)
	return cfg, nil
}

func printInit(stdout io.Writer, dir string, cfg *store.Config, params cas.ChunkerParams) {
	fmt.Fprintf(stdout, "initialised store %s (id %s, chunks %s average, %s-%s)\n", dir, cfg.StoreID,
		humanize.IBytes(uint64(params.Avg)), humanize.IBytes(uint64(params.Min)), humanize.IBytes(uint64(params.Max)))
}

// initEncrypted makes the keys of a new encrypted store, writes its key
// file outside the store, then the store; a failure of the store removes
// the key file again.
func initEncrypted(o *initOptions, dir string, params cas.ChunkerParams, stdout io.Writer) error {
	var sid [16]byte
	if _, err := rand.Read(sid[:]); err != nil {
		return err
	}
	nk, err := newStoreKeys(newKeysOptions{KeyFile: o.KeyFile, PassphraseFile: o.PassphraseFile, ConfigDir: o.ConfigDir}, dir, hex.EncodeToString(sid[:]), nil)
	if err != nil {
		return err
	}
	cfg, err := o.init(dir, store.InitOptions{Params: params, Keys: nk.u}, stdout)
	if err != nil {
		nk.undo()
		return err
	}
	printInit(stdout, dir, cfg, params)
	nk.print(stdout, o.KeyFile)
	return nil
}

func keyFileHint(given string) string {
	if given != "" {
		return "(give it to later commands with --key-file or $SMP_KEY_FILE)"
	}
	return "(later commands find it there by store ID)"
}
