package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/dustin/go-humanize"

	"smp/remote/access"
)

// limitFlag parses one flag of smp admin limits into *dst: "" leaves it,
// "none" (or 0) removes the limit, otherwise a count or a size.
func limitFlag[T int | uint64](name, val string, size bool, dst *T) error {
	switch val {
	case "":
		return nil
	case "none", "0":
		*dst = 0
		return nil
	}
	if size {
		n, err := humanize.ParseBytes(val)
		if err != nil || n == 0 {
			return usagef("%s %q: want a size like 2TiB, or none", name, val)
		}
		*dst = T(n)
		return nil
	}
	n, err := strconv.Atoi(val)
	if err != nil || n < 0 {
		return usagef("%s %q: want a number of records, or none", name, val)
	}
	*dst = T(n)
	return nil
}

// runAdminLimits shows the store's shared capacity limits, changing those
// o names first. A running smp serve applies each beside its own flag of
// the same name, the stricter counting.
func runAdminLimits(_ context.Context, o *adminOptions, stdout io.Writer) error {
	// The flags are checked before anything is written.
	edit := func(l *access.Limits) error {
		if err := limitFlag("--max-records", o.MaxRecords, false, &l.MaxRecords); err != nil {
			return err
		}
		if err := limitFlag("--max-store-bytes", o.MaxStoreBytes, true, &l.MaxStoreBytes); err != nil {
			return err
		}
		return limitFlag("--quota", o.Quota, true, &l.Quota)
	}
	if err := edit(&access.Limits{}); err != nil {
		return err
	}
	a, err := openAccess(o.Store, &o.S3, &o.keyFlags)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.EditLimits(edit); err != nil {
		return err
	}
	sn, err := a.Snapshot()
	if err != nil {
		return err
	}
	l := sn.Limits()
	if o.JSON {
		return printJSON(stdout, l)
	}
	show := func(name string, set bool, v string) {
		if !set {
			v = "none"
		}
		fmt.Fprintf(stdout, "%-16s %s\n", name, v)
	}
	show("max-records", l.MaxRecords > 0, strconv.Itoa(l.MaxRecords))
	show("max-store-bytes", l.MaxStoreBytes > 0, humanize.IBytes(l.MaxStoreBytes))
	show("quota", l.Quota > 0, humanize.IBytes(l.Quota))
	return nil
}
