// Package corpus generates the deterministic user data smp is measured on,
// and measures how well the store's compression does on it. It owns:
//
//   - the material (material.go): real text, executables and compressed
//     files of this machine, read once per process;
//   - the splicer (splice.go): text, binary and gzip content cut from that
//     material, with seeded variations, never random filler;
//   - two layouts built from them: a tree (tree.go, GenerateTree) and an
//     organisation (org*.go, GenerateOrg; mutate.go, MutateOrg);
//   - one ratio measurer (ratio.go, MeasureRatio).
//
// The same arguments on the same machine give the same names, bytes,
// modes and mtimes: each file's bytes depend only on the seed and the
// file's index, never on scheduling, although files are written in
// parallel. Different machines have different material, so compare
// numbers from one machine only.
//
// # Two layouts, on purpose
//
// The tree and the organisation are different corpora for different
// questions, and share only the material and the splicer:
//
//   - The tree (one profile, a given number of bytes) answers "how fast is
//     the pipeline on new data": it is built so that it does not
//     deduplicate against itself, so a capture into an empty store stores
//     every byte. The in-process Go benchmarks of package bench and
//     cmd/smpgen use it.
//   - The organisation (several profiles, DIR/home/userNN) answers "what
//     does smp do for a real fleet": it is built to share (the same files
//     in every profile, department files, edited copies that only
//     content-defined chunking finds), and MutateOrg gives it a week of
//     changes for the incremental scenario. `smp bench corpus` and
//     `smp bench run` use it.
//
// Making one a special case of the other would change what each measures
// and the bytes of every published run, so they stay two functions.
//
// # The tree
//
// GenerateTree(dir, size, seed) writes exactly size bytes of file data:
//
//   - text (about 40% of the bytes): up to 48 MiB of source code and
//     documentation from $GOROOT/src and /usr/share/doc (files without NUL
//     bytes, thinned evenly across the whole list). A text file is a run of
//     blocks of 8-160 consecutive lines, each from a random line of a random
//     file, one block in three with an identifier renamed throughout and a
//     few digits edited, interleaved with bursts of generated log lines and
//     key = value lines built from the material's identifiers;
//   - binary (about 30%): pieces of 4-128 KiB, at random 16-byte-aligned
//     offsets, of the Go toolchain's executables ($GOROOT/pkg/tool/*/*,
//     $GOROOT/bin/*), with an 8-byte word replaced by a pointer-like value
//     every 0.5-4 KiB, as relocated or rebuilt binaries differ;
//   - compressed (about 30%): most small ones are real .gz and .png files
//     from /usr/share copied whole (each used at most once); the rest are
//     multi-member gzip streams (compress/gzip, BestSpeed) of generated
//     text, the last member cut at the planned size.
//
// Because every text block, binary piece and gzip member starts at a random
// place and is shorter than the store's minimum chunk (256 KiB), the tree
// does not deduplicate against itself (BenchmarkCaptureNew checks that a
// capture stores at least 90% of it).
//
// Sizes: 8% of the bytes are small files of 1-20 KiB (so most files are
// small), up to 30% are large files of 50-300 MiB when the tree is at least
// 256 MiB, and the rest medium files, log-uniform from 20 KiB to 16 MiB (at
// most size/8). Each file's class is chosen greedily to keep the classes'
// byte shares on target. Files go into about one directory per 25 files,
// nested 2-4 deep under names like Documents/reports/2024 or
// .config/build-17/tmp, with extensions that name their class (ClassOf).
// Modification times are fixed (2024-01-01 plus a minute per file).
//
// # The organisation
//
// GenerateOrg writes DIR/home/user01 ... userNN, Linux-like profiles whose
// bytes are org-wide, department, unique, edited-copy and config files (see
// GenerateOrg for the shares); its contents add, to the splicer's, gzip
// members of mixed text and binary (klauspost's gzip, for speed), config
// formats, logs, shell history and key material.
//
// Its Shape (shape.go) spreads those bytes over files. ShapeRealistic, the
// default, draws most sizes from a log-normal body (median 4 KiB, the
// median desktop file of Agrawal et al., FAST 2007; sigma 1.4), keeps the
// large installers, datasets, mailboxes, videos and photos as a long
// tail, puts most files into directories of about a dozen files nested
// several levels deep, and gives every profile thousands of small
// dot-files (caches, browser and editor profiles, packages, git objects):
// about 37,000 files per GiB. ShapeLargeFiles is the earlier layout, a few
// hundred files per profile, most of 64 KiB to a few MiB; it draws the
// same random stream as before, so its corpora are byte for byte those of
// earlier runs.
//
// # Ratio
//
// MeasureRatio compresses files in 1 MiB blocks (about a store's chunk)
// through cas.Compress, the store's own zstd setting (SpeedFastest, stored
// raw when it saves under 3%), optionally sampling every k-th block so a
// large corpus is measured in bounded time.
package corpus
