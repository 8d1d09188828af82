// Package server owns `smp serve`: the HTTP handlers that expose one
// embedded store (a repo.Repo) to many clients at once under protocol v1
// (docs/PROTOCOL.md). It authenticates every request against the store's
// access file (remote/access), keeps capture sessions with their proof
// nonces, verifies every uploaded blob against its ID before storing it,
// refuses a commit whose record references anything the store lacks, and
// serves a restoring client only blobs reachable from records it may
// restore. TLS, listening and signals are the command's job.
package server
