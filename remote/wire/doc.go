// Package wire owns the bytes smp clients and the smp server exchange:
// protocol version, JSON messages, the binary have/fetch/blob batch codecs
// and the proof of possession a client sends with every have-query.
// docs/PROTOCOL.md is the specification; this package is its one
// implementation, shared by remote/server and remote/client, and every
// decoder here checks every count, length and type before trusting it.
package wire
