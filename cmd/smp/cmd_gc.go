package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"smp/store"
)

const gcArgs = "--store DIR [--retention DURATION] [--grace DURATION] [--dry-run] [--repack-below F] [--rekey] [--json]"

// gcOptions are the flags of smp gc.
type gcOptions struct {
	storeFlags
	DryRun           bool
	Rekey            bool
	RepackBelow      float64
	JSON             bool
	Retention, Grace string
}

func (o *gcOptions) AddFlags(fs *pflag.FlagSet) {
	o.storeFlags.AddFlags(fs)
	fs.BoolVar(&o.DryRun, "dry-run", false, "compute and print what gc would free; change nothing")
	fs.Float64Var(&o.RepackBelow, "repack-below", 0.5, "rewrite packs whose live share is below this fraction (0 to 1; 0 only deletes packs with no live data)")
	fs.BoolVar(&o.Rekey, "rekey", false, "encrypted store: also rewrite every pack not sealed under the current master key (see smp key rotate), copy the index under it and reseal the TLS key and access file, so older master keys can be retired (smp key retire); on s3:// the old packs are condemned and deleted by a gc after --grace (running smp serve take the rotated key up at their refresh)")
	fs.BoolVar(&o.JSON, "json", false, "print as JSON")
	fs.StringVar(&o.Retention, "retention", "", "first remove released records whose retention ran out, e.g. 7d or 36h (records never released are kept)")
	fs.StringVar(&o.Grace, "grace", "1h", "keep whole every pack written less than this ago: the uploads of a capture not committed yet, reused when it is run again (0 keeps none); on a store on S3 also how long packs stay condemned before a later gc deletes them (at least 1h)")
}

func cmdGC(ctx context.Context, args []string) error {
	var o gcOptions
	fs := newFlags("gc", gcArgs)
	o.AddFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see smp gc --help)", fs.Arg(0))
	}
	return runGC(ctx, &o, os.Stdout)
}

// options checks the flags and turns them into the gc run.
func (o *gcOptions) options() (store.GCOptions, error) {
	if math.IsNaN(o.RepackBelow) || o.RepackBelow < 0 || o.RepackBelow > 1 {
		return store.GCOptions{}, usagef("--repack-below %v: give a fraction from 0 to 1", o.RepackBelow)
	}
	gco := store.GCOptions{DryRun: o.DryRun, RepackBelow: o.RepackBelow, Rekey: o.Rekey}
	if o.Retention != "" {
		retention, err := parseDays(o.Retention)
		if err != nil {
			return gco, usagef("--retention: %v", err)
		}
		gco.Retention = &retention
	}
	grace, err := parseDays(o.Grace)
	if err != nil {
		return gco, usagef("--grace: %v", err)
	}
	gco.Grace = grace
	// Tests only: a store on S3 refuses a grace shorter than a capture
	// session can last (repo.SharedMinGrace); the race tests run gc
	// rounds seconds apart.
	gco.ShortGraceOK = os.Getenv("SMP_TEST_SHORT_GC_GRACE") == "1"
	return gco, nil
}

func runGC(ctx context.Context, o *gcOptions, stdout io.Writer) error {
	gco, err := o.options()
	if err != nil {
		return err
	}
	st, err := o.open(ctx, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := st.GC(ctx, gco)
	if err != nil {
		return err
	}
	if o.JSON {
		if err := printJSON(stdout, res); err != nil {
			return err
		}
	} else {
		if len(res.Expired) > 0 {
			verb := "removed"
			if o.DryRun {
				verb = "would remove"
			}
			fmt.Fprintf(stdout, "retention %s: %s %d released records\n", o.Retention, verb, len(res.Expired))
		}
		for _, set := range res.Orphans {
			fmt.Fprintf(stdout, "link set %s belongs to no record (a capture killed before it committed): removed\n", set)
		}
		printGC(stdout, res.GCReport)
	}
	if len(res.Problems) > 0 {
		for _, p := range res.Problems {
			fmt.Fprintf(os.Stderr, "smp gc: %s\n", p)
		}
		return partialError{fmt.Sprintf("%d problems left data in place (damaged live data, or still under an old key); run smp verify --read-data", len(res.Problems))}
	}
	return nil
}

func printGC(w io.Writer, rep *store.GCReport) {
	verb, freed := "", "freed"
	if rep.DryRun {
		verb, freed = "would be ", "would free"
		fmt.Fprintln(w, "dry run: nothing was changed")
	}
	fmt.Fprintf(w, "scanned %d packs: %d live blobs of %d records\n", rep.PacksScanned, rep.LiveBlobs, rep.Records)
	fmt.Fprintf(w, "%d packs %sdeleted, %d %srewritten into %d new (%d blobs copied)\n",
		rep.PacksDeleted, verb, rep.PacksRewritten, verb, rep.PacksWritten, rep.BlobsCopied)
	fmt.Fprintf(w, "%d unused blobs %sremoved; %s %s (%s deleted, %s written) in %.1fs\n",
		rep.BlobsRemoved, verb, freed, signedBytes(rep.BytesFreed), bytesStr(uint64(rep.BytesDeleted)), bytesStr(uint64(rep.BytesWritten)), rep.Seconds)
	if rep.TombstonesWritten > 0 {
		fmt.Fprintf(w, "%d tombstones %swritten for record blobs that were never committed\n", rep.TombstonesWritten, verb)
	}
	if rep.PacksRekeyed > 0 || rep.IndexRekeyed {
		fmt.Fprintf(w, "rekey: %d packs %srewritten under the current master key; index copied under it: %v\n", rep.PacksRekeyed, verb, rep.IndexRekeyed)
	}
	if rep.PacksCondemnedOldKey > 0 {
		fmt.Fprintf(w, "rekey: %d packs under an older master key are condemned: a gc at least %s after this one deletes them, then smp key retire can retire the key\n",
			rep.PacksCondemnedOldKey, time.Duration(rep.GraceSeconds*float64(time.Second)))
	}
	if rep.UnindexedPacks > 0 {
		fmt.Fprintf(w, "%d pack files missing from the index hold data found nowhere else and were kept\n", rep.UnindexedPacks)
	}
}

func signedBytes(n int64) string {
	if n < 0 {
		return "-" + bytesStr(uint64(-n))
	}
	return bytesStr(uint64(n))
}

// parseDays parses a Go duration, also accepting whole days ("7d").
func parseDays(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%q: want a duration like 7d or 36h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q: want a duration like 7d or 36h", s)
	}
	return v, nil
}
