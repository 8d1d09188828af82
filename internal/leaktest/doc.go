// Package leaktest checks that an encrypted store holds no plaintext of
// what was captured into it (issue 16's sentinel test): it writes a user
// profile holding unique sentinels and random blocks, and fails a test if
// any file under a store holds a sentinel or any 64-byte window of a
// random block. It is used by tests only.
package leaktest
