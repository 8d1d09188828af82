// Package manifest owns the state record and tree types that capture writes
// and restore reads, and their versioned JSON encodings. Capture and restore
// both import it so they never import each other.
//
// A tree is one directory: its entries sorted by name, each with full
// metadata and, for files, the list of chunk IDs. Subdirectories refer to
// their own tree by ID, so identical directories are stored once. Decoding
// checks every name (no '/', no NUL, not "." or "..", unique), type, length
// and ID, because trees come from disk or the network.
package manifest
