// Package client owns the client side of protocol v1 (docs/PROTOCOL.md):
// it dials an SMP over HTTPS with a pinned fingerprint or a CA, and offers
// the server's store to capture (Capture implements capture.Store) and
// restore (Reader implements restore.Store). Capture batches have-queries
// with a proof of possession and uploads only what the SMP lacks, in
// bounded batches; Reader batches chunk fetches over parallel streams and
// verifies every blob it receives against its ID.
package client
