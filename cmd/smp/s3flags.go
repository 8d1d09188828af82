package main

import (
	"os"

	"github.com/spf13/pflag"

	"smp/store"
)

// s3Flags are the flags of a store on S3 (--store s3://ENDPOINT/BUCKET/PREFIX).
type s3Flags struct {
	Cache    string
	Insecure bool
}

// AddFlags registers --cache and --s3-insecure on fs.
func (f *s3Flags) AddFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.Cache, "cache", os.Getenv("SMP_CACHE"), "with --store s3://...: this machine's cache directory of the store (its index), rebuilt from the bucket when missing (default: the user's cache directory, smp/stores/STORE-ID; or $SMP_CACHE)")
	fs.BoolVar(&f.Insecure, "s3-insecure", false, "with --store s3://...: plain http to the endpoint, allowed only to a loopback address")
}

func (f *s3Flags) opts() store.S3Options {
	return store.S3Options{Cache: f.Cache, Insecure: f.Insecure}
}
