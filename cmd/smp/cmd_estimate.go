package main

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"smp/capture"
	"smp/store"
)

// runEstimate runs smp capture --estimate: the capture's walk, selection,
// chunking and compression against the store, which stays untouched.
func runEstimate(ctx context.Context, o *captureOptions, opts capture.Options, stdout io.Writer) error {
	if opts.Hardlink != capture.HardlinkNever {
		return usagef("--estimate measures a chunked capture: drop --hardlink %s", opts.Hardlink)
	}
	st, err := o.open(ctx, store.Options{ReadOnly: true})
	if err != nil {
		return err
	}
	defer st.Close()
	probs := newProblems(o.JSON)
	opts.Report = func(p capture.Problem) {
		kind := "error"
		if p.Warning {
			kind = "warning"
		}
		probs.add(kind, p.Path, p.Err, "would be skipped", p.Warning)
	}
	start := time.Now()
	res, err := st.Estimate(ctx, store.CaptureOptions{Options: opts, Full: o.Full})
	if err != nil {
		return err
	}
	rec := res.Record
	if o.EstimateFile != "" {
		if err := writeEstimateFile(o.EstimateFile, rec.Files, rec.Bytes, rec.NewBytes, rec.StoredBytes); err != nil {
			return err
		}
	}
	if o.JSON {
		return printJSON(stdout, map[string]any{
			"estimate": true, "computer": rec.Computer, "users": rec.Users,
			"files": rec.Files, "dirs": rec.Dirs, "symlinks": rec.Symlinks,
			"bytes": rec.Bytes, "new_bytes": rec.NewBytes, "stored_bytes": rec.StoredBytes,
			"unchanged_files": opts.Progress.Unchanged.Load(),
			"errors":          rec.Errors, "problems": probs.list(), "seconds": time.Since(start).Seconds(),
			"profiles": o.profiles,
		})
	}
	printProfiles(stdout, o.profiles)
	fmt.Fprintf(stdout, "estimate for %s (users %s), nothing stored:\n", rec.Computer, strings.Join(rec.Users, ","))
	fmt.Fprintf(stdout, "%d files, %d dirs, %d symlinks, %s (%d unchanged since the last record)\n", rec.Files, rec.Dirs, rec.Symlinks, bytesStr(rec.Bytes), opts.Progress.Unchanged.Load())
	fmt.Fprintf(stdout, "new to the store %s; expected stored after compression %s\n", bytesStr(rec.NewBytes), bytesStr(rec.StoredBytes))
	if rec.Errors > 0 {
		return partialError{fmt.Sprintf("%d path(s) could not be read and would not be captured (listed above)", rec.Errors)}
	}
	return nil
}

// estimateXML is the size file of --estimate-file, shaped as the one
// USMT's scanstate /p writes: storeSize gives the space the store would
// grow by, rounded up to each common cluster size; smp adds its own
// figures.
type estimateXML struct {
	XMLName   xml.Name      `xml:"PreMigration"`
	StoreSize []clusterSize `xml:"storeSize>size"`
	SMP       struct {
		Files       uint64 `xml:"files"`
		Bytes       uint64 `xml:"bytes"`
		NewBytes    uint64 `xml:"newBytes"`
		StoredBytes uint64 `xml:"storedBytes"`
	} `xml:"smp"`
}

type clusterSize struct {
	Cluster uint64 `xml:"clusterSize,attr"`
	Size    uint64 `xml:",chardata"`
}

func writeEstimateFile(path string, files, bytes, newBytes, stored uint64) error {
	var x estimateXML
	for _, c := range []uint64{4096, 8192, 16384, 32768, 65536} {
		x.StoreSize = append(x.StoreSize, clusterSize{Cluster: c, Size: (stored + c - 1) / c * c})
	}
	x.SMP.Files, x.SMP.Bytes, x.SMP.NewBytes, x.SMP.StoredBytes = files, bytes, newBytes, stored
	b, err := xml.MarshalIndent(x, "", "  ")
	if err != nil {
		return err
	}
	b = append([]byte(xml.Header), append(b, '\n')...)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return fmt.Errorf("--estimate-file: %w", err)
	}
	return nil
}
