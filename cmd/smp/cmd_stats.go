package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"smp/cas"
	"smp/remote/client"
	"smp/remote/wire"
	"smp/repo"
)

func runStats(ctx context.Context, args []string) error {
	fs := newFlags("stats", "--store DIR [--computer] [--json]")
	store := storeFlag(fs)
	rf := addRemoteFlags(fs)
	retentionFlag := fs.String("retention", "", "also count released records whose retention (e.g. 7d) has run out: what smp gc --retention would remove")
	byComputer := fs.Bool("computer", false, "also show each computer's and each record's cost: bytes only it references (what removing it and a gc would free)")
	asJSON := fs.Bool("json", false, "print as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	var retention time.Duration
	if *retentionFlag != "" {
		var err error
		if retention, err = parseDays(*retentionFlag); err != nil {
			return usagef("--retention: %v", err)
		}
	}
	var rep *wire.StatsReply
	if isRemoteStore(*store) {
		cl, err := rf.dialEach(ctx, *store, func(*client.Client) error { return nil })
		if err != nil {
			return err
		}
		defer cl.Close()
		if rep, err = cl.Stats(ctx, *byComputer, retention); err != nil {
			return err
		}
	} else {
		r, err := openStoreReadOnly(*store)
		if err != nil {
			return err
		}
		defer r.Close()
		rep = &wire.StatsReply{}
		if rep.Stats, err = r.Stats(); err != nil {
			return err
		}
		if *retentionFlag != "" {
			expired, err := r.Expired(retention, time.Now())
			if err != nil {
				return err
			}
			rep.Expired = new(len(expired))
		}
		if *byComputer {
			if rep.PerRecord, rep.Computers, err = r.Usage(); err != nil {
				return err
			}
		}
	}
	s, perRecord, perComputer := rep.Stats, rep.PerRecord, rep.Computers
	if *asJSON {
		// GET /v1/stats answers the same JSON.
		return printJSON(wire.StatsReply{Stats: s, Expired: rep.Expired, Computers: perComputer, PerRecord: perRecord})
	}
	defer func() {
		if !*byComputer {
			return
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "\nCOMPUTER\tRECORDS\tLOGICAL\tONLY IT REFERENCES")
		for _, c := range perComputer {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", c.Computer, c.Records, bytesStr(c.Bytes), bytesStr(c.OnlyBytes))
		}
		fmt.Fprintln(tw, "\nRECORD\tCOMPUTER\tLOGICAL\tFREED BY RM + GC")
		for _, rec := range perRecord {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rec.ID[:12], rec.Computer, bytesStr(rec.Bytes), bytesStr(rec.OnlyBytes))
		}
		tw.Flush()
	}()
	fmt.Printf("records        %d (%d captured, %d released)\n", s.Records, s.Captured, s.Released)
	if rep.Expired != nil {
		fmt.Printf("expired        %d released records older than %s (smp gc --retention %s removes them)\n", *rep.Expired, *retentionFlag, *retentionFlag)
	}
	fmt.Printf("logical bytes  %s (sum of every record's files)\n", bytesStr(s.LogicalBytes))
	fmt.Printf("unique bytes   %s in %d chunks\n", bytesStr(s.UniqueBytes), s.Chunks)
	fmt.Printf("stored bytes   %s in %d packs\n", bytesStr(s.StoredBytes), s.Packs)
	if s.LinkRecords > 0 {
		fmt.Printf("hard-link      %d record(s) of %s hold %d files by link or clone, not in packs\n", s.LinkRecords, bytesStr(s.LinkRecordBytes), s.LinkedFiles)
	}
	if s.LinkRecords > 0 && s.LinkRecords == s.Records {
		fmt.Printf("dedupe ratio   - (every record is held by links), compression %.2fx\n", s.Compression)
	} else {
		note := "logical / stored"
		if s.LinkRecords > 0 {
			note = "logical bytes of chunked records / stored"
		}
		fmt.Printf("dedupe ratio   %.2fx (%s), compression %.2fx\n", s.DedupeRatio, note, s.Compression)
	}
	fmt.Printf("free space     %s on the store's filesystem\n", bytesStr(s.FreeBytes))
	return nil
}

func runVerify(_ context.Context, args []string) error {
	fs := newFlags("verify", "--store DIR [--record ID | --computer NAME] [--read-data] [--repair --from DIR...] [--json]")
	store := storeFlag(fs)
	recordRef := fs.String("record", "", "verify only this record")
	computer := fs.String("computer", "", "verify only this computer's records")
	readData := fs.Bool("read-data", false, "read and re-hash every chunk (slow: reads the whole store)")
	repair := fs.Bool("repair", false, "rewrite damaged or missing data chunks from the files under --from (implies --read-data)")
	from := fs.StringArray("from", nil, "with --repair: a directory holding the original files (the captured root, or the same files elsewhere); repeatable")
	asJSON := fs.Bool("json", false, "print as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *repair && len(*from) == 0 {
		return usagef("--repair needs --from DIR: where to read the original files from")
	}
	if !*repair && len(*from) > 0 {
		return usagef("--from is only used with --repair")
	}
	if *recordRef != "" && *computer != "" {
		return usagef("give --record or --computer, not both")
	}
	for _, d := range *from {
		if st, err := os.Stat(d); err != nil || !st.IsDir() {
			return usagef("--from %s: not a directory", d)
		}
	}
	*readData = *readData || *repair
	// Only a repair writes: a plain verify opens the store read-only, so it
	// works (and never makes Badger write) on a full filesystem.
	open := openStoreReadOnly
	if *repair {
		open = openStore
	}
	r, err := open(*store)
	if err != nil {
		return err
	}
	defer r.Close()
	var records []repo.RecordInfo
	switch {
	case *recordRef != "":
		rec, err := r.FindRecord(*recordRef, "")
		if err != nil {
			return err
		}
		records = []repo.RecordInfo{rec}
	default:
		all, err := r.Records()
		if err != nil {
			return err
		}
		for _, rec := range all {
			if *computer == "" || rec.Computer == *computer {
				records = append(records, rec)
			}
		}
		if *computer != "" && len(records) == 0 {
			return fmt.Errorf("computer %q has no record: %w (list them with smp records)", *computer, repo.ErrNoRecord)
		}
	}
	rep, err := r.Verify(records, *readData, nil)
	if err != nil {
		return err
	}
	printDamage := func(d *repo.Damage, what string) {
		pack := ""
		if d.Pack != "" {
			id, _ := cas.ParseID(d.Pack)
			pack = " in pack " + id.Short()
		}
		fmt.Fprintf(os.Stdout, "%s %s %s%s: %s\n  affects: %s\n", what, d.Type, d.Blob[:12], pack, d.Reason, strings.Join(d.Users, ", "))
	}
	if !*repair {
		if *asJSON {
			if err := printJSON(map[string]any{"ok": len(rep.Damaged) == 0, "read_data": *readData, "report": rep}); err != nil {
				return err
			}
		} else {
			for _, d := range rep.Damaged {
				printDamage(d, "DAMAGED")
			}
			mode := "index and pack presence"
			if *readData {
				mode = "every chunk read and re-hashed"
			}
			fmt.Printf("verified %d records, %d trees, %d chunks (%s): ", rep.Records, rep.Trees, rep.Chunks, mode)
			if len(rep.Damaged) == 0 {
				fmt.Println("all sound")
			} else {
				fmt.Printf("%d damaged blobs affecting %d files\n", len(rep.Damaged), rep.DamagedFiles)
			}
			if n := len(rep.UnindexedPacks); n > 0 {
				// Not damage by itself (a crash between writing a pack and
				// indexing it leaves one; gc tidies it), but the only trace
				// of an index that lost tables along with their records.
				fmt.Printf("note: %d pack files are not in the index (left by an interrupted capture, or lost from a damaged index that may have lost records too: if a record is missing, run smp index rebuild --store DIR)\n", n)
			}
		}
		if len(rep.Damaged) > 0 {
			return partialError{fmt.Sprintf("store is damaged: %d blobs unreadable, %d files affected; re-capture the affected computers, or repair from the original files with smp verify --repair --from DIR", len(rep.Damaged), rep.DamagedFiles)}
		}
		return nil
	}

	// Repair: look for the damaged data chunks in the files under --from.
	unreadable := 0
	warn := func(path string, err error) {
		unreadable++
		if !*asJSON {
			fmt.Fprintf(os.Stderr, "smp verify: skipped %s: %v\n", path, err)
		}
	}
	fixed, err := r.Repair(rep.DamagedData(), repo.OfferFiles(*from, r.ChunkerParams(), []string{r.Dir}, warn))
	if err != nil {
		return err
	}
	repaired := map[string]bool{}
	for _, id := range fixed.Repaired {
		repaired[id] = true
	}
	remaining := []*repo.Damage{}
	for _, d := range rep.Damaged {
		if !repaired[d.Blob] {
			remaining = append(remaining, d)
		}
	}
	if *asJSON {
		if err := printJSON(map[string]any{"ok": len(remaining) == 0, "read_data": true, "report": rep,
			"repair": fixed, "unreadable_files": unreadable, "remaining": remaining}); err != nil {
			return err
		}
	} else {
		for _, d := range rep.Damaged {
			if repaired[d.Blob] {
				fmt.Printf("REPAIRED %s %s: found under --from, written to a new pack\n", d.Type, d.Blob[:12])
			}
		}
		for _, d := range remaining {
			why := "not found under --from"
			if d.Type != cas.BlobData.String() {
				why = "a " + d.Type + " is not file data: files cannot repair it"
			}
			printDamage(d, "STILL DAMAGED ("+why+")")
		}
		fmt.Printf("verified %d records, %d trees, %d chunks (every chunk read and re-hashed): %d damaged blobs; repaired %d of %d damaged data chunks from %s (%d chunks, %s read)\n",
			rep.Records, rep.Trees, rep.Chunks, len(rep.Damaged), len(fixed.Repaired), fixed.Wanted,
			strings.Join(*from, ", "), fixed.ChunksOffered, bytesStr(fixed.BytesOffered))
		for _, p := range fixed.Problems {
			fmt.Println("problem:", p)
		}
	}
	if len(remaining) > 0 {
		return partialError{fmt.Sprintf("%d damaged blobs could not be repaired (listed above), %d repaired", len(remaining), len(fixed.Repaired))}
	}
	return nil
}
