package main

import (
	"fmt"
	"os"

	"github.com/dustin/go-humanize"
	"github.com/spf13/pflag"

	"smp/store"
)

// s3Flags are the flags of a store on S3 (--store s3://ENDPOINT/BUCKET/PREFIX).
type s3Flags struct {
	Cache     string
	Insecure  bool
	Uploads   int
	ReadAhead byteSize
}

// AddFlags registers --cache, --s3-insecure, --s3-uploads and
// --s3-read-ahead on fs.
func (f *s3Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Cache, "cache", os.Getenv("SMP_CACHE"), "with --store s3://...: this machine's cache directory of the store (its index), rebuilt from the bucket when missing (default: the user's cache directory, smp/stores/STORE-ID; or $SMP_CACHE)")
	fs.BoolVar(&f.Insecure, "s3-insecure", false, "with --store s3://...: plain http to the endpoint, allowed only to a loopback address")
	fs.IntVar(&f.Uploads, "s3-uploads", 3, "with --store s3://...: packs uploaded at once; each is held in memory (the store's pack size, 32 MiB by default) until it is stored")
	f.ReadAhead = 64 << 20
	fs.Var(&f.ReadAhead, "s3-read-ahead", "with --store s3://...: bytes a restore reads ahead of what it writes (neighbouring blobs of a pack in one ranged GET, 8 at a time)")
}

// AddKeyFlags registers --cache and --s3-insecure on fs: what the key
// commands, which transfer no packs, need.
func (f *s3Flags) AddKeyFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Cache, "cache", os.Getenv("SMP_CACHE"), "with --store s3://...: this machine's cache directory of the store (default: the user's cache directory, smp/stores/STORE-ID; or $SMP_CACHE)")
	fs.BoolVar(&f.Insecure, "s3-insecure", false, "with --store s3://...: plain http to the endpoint, allowed only to a loopback address")
}

func (f *s3Flags) opts() store.S3Options {
	return store.S3Options{Cache: f.Cache, Insecure: f.Insecure, Transfers: store.Transfers{Uploads: f.Uploads, ReadAhead: int64(f.ReadAhead)}}
}

// byteSize is a flag of a size in bytes: 64MiB, 1GiB, 1000000.
type byteSize int64

func (b *byteSize) String() string { return humanize.IBytes(uint64(*b)) }
func (b *byteSize) Type() string   { return "size" }

func (b *byteSize) Set(s string) error {
	n, err := humanize.ParseBytes(s)
	if err != nil || n == 0 || n > 1<<40 {
		return fmt.Errorf("want a positive size such as 64MiB")
	}
	*b = byteSize(n)
	return nil
}
