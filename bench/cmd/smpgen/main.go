// Command smpgen writes a deterministic benchmark tree (see package
// smp/bench/corpus) and prints its mix and zstd ratio:
//
//	go run ./bench/cmd/smpgen -size 2GiB -seed 1 /tmp/tree/home/alice
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/dustin/go-humanize"

	"smp/bench/corpus"
)

func main() {
	size := flag.String("size", "512MiB", "bytes of file data")
	seed := flag.Uint64("seed", 1, "generator seed")
	ratio := flag.Bool("ratio", true, "measure the zstd ratio after generating")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: smpgen [-size N] [-seed S] [-ratio=false] DIR\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	n, err := humanize.ParseBytes(*size)
	if err != nil {
		fmt.Fprintln(os.Stderr, "smpgen: -size:", err)
		os.Exit(2)
	}
	start := time.Now()
	st, err := corpus.GenerateTree(flag.Arg(0), int64(n), *seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "smpgen:", err)
		os.Exit(1)
	}
	fmt.Printf("generated %s in %.1fs\n", st, time.Since(start).Seconds())
	if *ratio {
		start = time.Now()
		r, err := corpus.MeasureRatio(flag.Arg(0), 0)
		if err != nil {
			fmt.Fprintln(os.Stderr, "smpgen:", err)
			os.Exit(1)
		}
		fmt.Printf("%s, measured in %.1fs\n", r, time.Since(start).Seconds())
	}
}
