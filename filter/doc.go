// Package filter owns smp's path selection rules: the rsync-style filter
// lines of capture's --rules FILE, the globs of capture's --exclude and of
// restore's --include/--exclude, and the decision of whether a path is
// captured or restored. It imports nothing else of smp's and does no I/O
// beyond reading a rules file from an io.Reader.
//
// # Paths
//
// Paths handed to a Set are slash-separated and relative to a root, with no
// leading slash: "home/alice/Documents/a.txt". Callers on Windows convert with
// filepath.ToSlash first. Leading and trailing slashes on a path are ignored.
// The root itself is "" and is never matched, excluded or deselected.
// Matching is byte-exact and case-sensitive.
//
// The root is the capture's or restore's --root, "/" by default, not a
// profile directory: a user's cache is "home/alice/.cache", so the rule
// that drops every user's cache is "- /home/*/.cache/"; "- /*/.cache/"
// matches only one level below the root ("root/.cache"). The sample files
// under testdata are written this way, and cmd/smp's
// TestE2ERulesShippedSamples checks each of their patterns in a real
// capture from the root, as it does for the built-in sets (builtin/,
// --rules builtin:NAME) and the example of docs/RULES.md. A capture
// applies the rules to every path below the root, the profiles it takes
// by default (home/alice, root) and its PATH arguments included, so
// "- *" after a file's includes drops every profile they do not name.
//
// # Rules
//
// A rules file holds one rule per line:
//
//	# comment (also ';'); blank lines are ignored
//	+ PATTERN          include (long form: "include PATTERN")
//	- PATTERN          exclude (long form: "exclude PATTERN")
//
// Exactly one space separates the sign from the pattern; everything after it,
// including further leading or trailing spaces, is the pattern. A trailing
// "\r" (CRLF files) and a leading UTF-8 byte order mark are dropped.
//
// A Set is an ordered list of rules and the first rule that matches a path
// decides it. As in rsync, a directory that is excluded takes everything
// beneath it along, so this rules file
//
//	# .doc files only?
//	+ *.doc
//	- *
//
// keeps only the .doc files at the top of the root: "home" is excluded by
// "- *" before "home/a.doc" is looked at. Add "+ */" first to descend into
// every directory.
//
// # Patterns
//
//   - '*' matches any run of characters other than '/'; '?' matches one
//     character other than '/'; "[...]" is a character class with the syntax
//     of path.Match ("[a-z]", negated "[^0-9]", '\' escapes inside) and never
//     matches '/'; '\' outside a class makes the next character literal.
//   - "**" matches anything, '/' included. A "**" that is a whole path
//     component followed by '/' also matches no directory at all, so
//     "home/**/Cache" matches "home/Cache" as well as "home/a/b/Cache".
//   - A pattern that ends in "/***" matches the directory before it and
//     everything beneath it: "home/alice/***" matches "home/alice" and
//     "home/alice/x/y".
//   - A leading '/' anchors the pattern at the root: "/tmp" matches "tmp"
//     but not "home/tmp".
//   - A pattern with a '/' anywhere else (a trailing '/' does not count) is
//     matched against the whole relative path, as if it began with '/':
//     "home/*/Cache" matches "home/alice/Cache" but not "x/home/alice/Cache".
//   - A pattern with no '/' is matched against the last path component at
//     any depth: "*.tmp" matches "a.tmp" and "home/alice/a.tmp". If it holds
//     a "**" it is matched against every tail of the path that starts at a
//     component boundary, so "Cache**" matches "home/Cache/x".
//   - A trailing '/' makes the rule match directories only: "Cache/".
//
// Patterns that are empty, name only the root ("/"), have an empty path
// component ("a//b"), a malformed class, a trailing '\' or a NUL byte are
// rejected. So is a backwards class range such as "[z-a]", which path.Match
// would accept and never match.
//
// # Decisions
//
// Set.Match decides one path by its first matching rule. Set.Excluded is the
// capture (and restore --exclude) decision: a path is excluded when it, or
// any directory above it, is first matched by an exclude rule; a directory
// that is first matched by an include rule does not shield what is below it
// from later checks. Set.Selected is restore's decision when --include is
// given: a file is selected when the deepest of it and its ancestor
// directories that any rule matches is matched by an include rule, and every
// directory is selected, since restore creates directories only as the files
// in them need them.
//
// Rules are compiled once, by ParseRule, Include, Exclude or (for a Rule
// built by hand) Set.Append. Matching runs in time proportional to the path
// length times the pattern length, and allocates nothing for patterns of
// ordinary length (fewer than 64 characters between their literal ends). A Set may be
// read by many goroutines at once as long as none of them calls Append.
package filter
