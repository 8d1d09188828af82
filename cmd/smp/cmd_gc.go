package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"smp/remote/client"
	"smp/remote/wire"
	"strconv"
	"strings"
	"time"

	"smp/repo"
)

const gcArgs = "--store DIR [--retention DURATION] [--grace DURATION] [--dry-run] [--repack-below F] [--json]"

func runGC(ctx context.Context, args []string) error {
	fs := newFlags("gc", gcArgs)
	store := storeFlag(fs)
	rf := addRemoteFlags(fs)
	dryRun := fs.Bool("dry-run", false, "compute and print what gc would free; change nothing")
	below := fs.Float64("repack-below", 0.5, "rewrite packs whose live share is below this fraction (0 to 1; 0 only deletes packs with no live data)")
	asJSON := fs.Bool("json", false, "print as JSON")
	retentionFlag := fs.String("retention", "", "first remove released records whose retention ran out, e.g. 7d or 36h (records never released are kept)")
	graceFlag := fs.String("grace", "1h", "keep whole every pack written less than this ago: the uploads of a capture not committed yet, reused when it is run again (0 keeps none)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q (see smp gc --help)", fs.Arg(0))
	}
	if math.IsNaN(*below) || *below < 0 || *below > 1 {
		return usagef("--repack-below %v: give a fraction from 0 to 1", *below)
	}
	var retention time.Duration
	var err error
	if *retentionFlag != "" {
		if retention, err = parseDays(*retentionFlag); err != nil {
			return usagef("--retention: %v", err)
		}
	}
	grace, err := parseDays(*graceFlag)
	if err != nil {
		return usagef("--grace: %v", err)
	}
	var res *wire.GCReply
	if isRemoteStore(*store) {
		// The server runs it beside its captures and restores.
		req := wire.GCRequest{DryRun: *dryRun, RepackBelow: *below, GraceSeconds: grace.Seconds(), NoGrace: grace == 0}
		if *retentionFlag != "" {
			req.RetentionSeconds = retention.Seconds()
			if retention == 0 {
				req.RetentionSeconds = 1e-9 // "0s": every released record
			}
		}
		cl, err := rf.dialEach(ctx, *store, func(*client.Client) error { return nil })
		if err != nil {
			return err
		}
		defer cl.Close()
		if res, err = cl.GC(ctx, req); err != nil {
			return err
		}
	} else {
		r, err := openStore(*store)
		if err != nil {
			return err
		}
		defer r.Close()
		res, err = r.Maintain(ctx, repo.MaintainOptions{GCOptions: repo.GCOptions{DryRun: *dryRun, RepackBelow: *below, Grace: grace},
			Expire: *retentionFlag != "", Retention: retention})
		if err != nil {
			return err
		}
	}
	rep := res.GCReport
	if *asJSON {
		if err := printJSON(struct {
			*wire.GCReport
			Expired []string `json:"expired_records"`
			Orphans []string `json:"orphan_link_sets"`
		}{rep, res.Expired, res.OrphanLinkSets}); err != nil {
			return err
		}
	} else {
		if len(res.Expired) > 0 {
			verb := "removed"
			if *dryRun {
				verb = "would remove"
			}
			fmt.Printf("retention %s: %s %d released records\n", *retentionFlag, verb, len(res.Expired))
		}
		for _, set := range res.OrphanLinkSets {
			fmt.Printf("link set %s belongs to no record (a capture killed before it committed): removed\n", set)
		}
		printGC(rep)
	}
	if len(rep.Problems) > 0 {
		for _, p := range rep.Problems {
			fmt.Fprintf(os.Stderr, "smp gc: %s\n", p)
		}
		return partialError{fmt.Sprintf("%d packs were left in place because they hold damaged live data; run smp verify --read-data", len(rep.Problems))}
	}
	return nil
}

func printGC(rep *wire.GCReport) {
	verb, freed := "", "freed"
	if rep.DryRun {
		verb, freed = "would be ", "would free"
		fmt.Println("dry run: nothing was changed")
	}
	fmt.Printf("scanned %d packs: %d live blobs of %d records\n", rep.PacksScanned, rep.LiveBlobs, rep.Records)
	fmt.Printf("%d packs %sdeleted, %d %srewritten into %d new (%d blobs copied)\n",
		rep.PacksDeleted, verb, rep.PacksRewritten, verb, rep.PacksWritten, rep.BlobsCopied)
	fmt.Printf("%d unused blobs %sremoved; %s %s (%s deleted, %s written) in %.1fs\n",
		rep.BlobsRemoved, verb, freed, signedBytes(rep.BytesFreed), bytesStr(uint64(rep.BytesDeleted)), bytesStr(uint64(rep.BytesWritten)), rep.Seconds)
	if rep.TombstonesWritten > 0 {
		fmt.Printf("%d tombstones %swritten for record blobs that were never committed\n", rep.TombstonesWritten, verb)
	}
	if rep.UnindexedPacks > 0 {
		fmt.Printf("%d pack files missing from the index hold data found nowhere else and were kept\n", rep.UnindexedPacks)
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
