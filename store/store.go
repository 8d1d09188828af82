// Package store gives the commands one view of a store of state records,
// wherever it lives: a store directory on this machine (package repo), one
// SMP server reached over HTTPS (package remote/client), or a group of
// SMPs named together, which act as one store (see docs/PROTOCOL.md,
// "Groups of SMPs").
//
// Open classifies a location once and returns the implementation; the
// commands then work on the Store interface and never ask which kind they
// hold. What only some stores can do is an optional interface found by a
// type assertion (as io/fs does), with the commands falling back when it
// is missing: LinkReader for the hard-link restores of a local store.
// Commands that administer a store directory itself (init, verify, index,
// ingest, serve) open it with OpenDir, which returns the local
// implementation with its extra methods.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"regexp"
	"smp/repo/report"
	"strings"
	"time"

	"smp/capture"
	"smp/cas"
	"smp/cas/manifest"
	"smp/keys"
	"smp/remote/client"
	"smp/repo"
)

// Store is a store of state records: local, one SMP, or a group of SMPs.
type Store interface {
	// Location is the store as it was given to Open.
	Location() string
	// Records lists every record the caller may see, oldest first.
	Records(ctx context.Context) ([]Record, error)
	// FindRecord resolves a record ID or unique prefix (ref), or with ref
	// empty, the newest record of computer.
	FindRecord(ctx context.Context, ref, computer string) (Record, error)
	// Reader opens the contents of a record found by FindRecord or Records.
	Reader(ctx context.Context, rec Record) (Reader, error)
	// Release marks a record restored: its retention clock starts.
	Release(ctx context.Context, rec Record) error
	// Remove drops a record; its unique data is freed by GC.
	Remove(ctx context.Context, rec Record) error
	// Capture runs a capture into the store and commits its record.
	Capture(ctx context.Context, opts CaptureOptions) (*CaptureResult, error)
	// Estimate runs the capture opts describe without storing anything
	// and returns the record it would commit (smp capture --estimate).
	Estimate(ctx context.Context, opts CaptureOptions) (*CaptureResult, error)
	// Stats returns the store's size and dedupe figures.
	Stats(ctx context.Context, opts StatsOptions) (*StatsReport, error)
	// GC applies retention and frees data no live record uses.
	GC(ctx context.Context, opts GCOptions) (*GCResult, error)
	Close() error
}

// Reader reads one record's trees and chunks (a restore.Store).
type Reader interface {
	LoadTree(id cas.ID) (*manifest.Tree, error)
	ReadChunk(id cas.ID, buf []byte) ([]byte, error)
	// Sum is the store's ID of a chunk of plaintext, to check what is read.
	Sum(b []byte) cas.ID
	Close() error
}

// LinkReader is a Reader of a store whose hard-link records can be
// restored by linking files out of LinkDir (a local store).
type LinkReader interface {
	Reader
	LinkDir() string
}

// Record is a live record as a Store lists it.
type Record struct {
	repo.RecordInfo
	// Released is when the record was released; nil while it is captured.
	Released *time.Time
	// SMP is the URL of the SMP that holds the record ("" for a store
	// directory). In a group it routes Reader, Release and Remove.
	SMP string
}

// Types of the local implementation the commands print.
type (
	Stats         = repo.Stats
	ComputerUsage = repo.ComputerUsage
	RecordUsage   = repo.RecordUsage
	GCReport      = repo.GCReport
	Damage        = repo.Damage
	VerifyReport  = repo.VerifyReport
	RepairReport  = repo.RepairReport
	RebuildReport = repo.RebuildReport
	Config        = repo.Config
)

// ErrNoRecord is returned (wrapped) when no record matches.
var ErrNoRecord = repo.ErrNoRecord

// Options configure Open.
type Options struct {
	// ReadOnly opens a store directory read-only: listing and reading work
	// on a full filesystem and never make the index write. Release,
	// Remove, Capture and GC then fail. An SMP ignores it.
	ReadOnly bool
	// Token is the SMP access token; with a group, one for all or one per
	// SMP separated by commas, in the order of the location.
	Token string
	// Fingerprint pins the SMP certificate's SHA-256; with a group, one
	// for all or one per SMP separated by commas, in the order of the
	// location (an empty item pins nothing for that SMP).
	Fingerprint string
	CAFile      string // PEM bundle of the CA that signed the SMP certificate
	// AllowUnreachable lets a group resolve a computer's newest record
	// from the SMPs that answered when some did not.
	AllowUnreachable bool
	// Log receives one-line notes (a fallback to the next SMP, an SMP
	// skipped); nil discards them.
	Log io.Writer
	// Keyring is the unlocked keys of an encrypted store directory, when
	// the caller has them already (repo.OpenOptions); Unlock is used
	// when it is nil. An SMP and an unencrypted directory ignore both.
	Keyring *keys.Keyring
	// Unlock finds the keys of an encrypted store directory (an SMP
	// unlocks its own store: clients never hold its keys). An unencrypted
	// store needs none.
	Unlock keys.UnlockFunc
	// S3 are the options of an s3:// location.
	S3 S3Options
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, "smp: "+format+"\n", args...)
	}
}

// UsageError is a request the store cannot take as given (a bad location,
// an option this kind of store does not have): the command line is wrong.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

func usagef(format string, args ...any) error {
	return &UsageError{Msg: fmt.Sprintf(format, args...)}
}

// schemePrefix matches a location that names a URL scheme.
var schemePrefix = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// parseLocation splits a location into its store directory or its SMP
// URLs. A scheme smp does not speak is refused: without this,
// "s3://host/bucket" would be taken for a relative directory path.
func parseLocation(location string) (dir string, smps []string, err error) {
	location = strings.TrimSpace(location)
	if location == "" {
		return "", nil, usagef("--store DIR is required (or set SMP_STORE)")
	}
	if !schemePrefix.MatchString(location) && !strings.Contains(location, "://") {
		return location, nil, nil // a directory, commas and all
	}
	if IsS3(location) {
		return location, nil, nil // a store directory through its cache (openDir)
	}
	for _, s := range strings.Split(location, ",") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		m := schemePrefix.FindString(s)
		switch {
		case m != "" && !client.IsRemote(s):
			return "", nil, usagef("--store %q: smp does not know the scheme %q: give a store directory, s3://ENDPOINT/BUCKET/PREFIX or https://HOST:PORT", s, strings.TrimSuffix(m, "://"))
		case m == "":
			return "", nil, usagef("--store %q: a list of SMPs must all be https:// URLs", s)
		case strings.HasPrefix(s, "http://") && !loopbackURL(s):
			return "", nil, usagef("--store %q: plain http:// would send the token unencrypted: it is allowed only to a loopback address; use https://", s)
		}
		smps = append(smps, s)
	}
	if len(smps) == 0 {
		return "", nil, usagef("--store DIR is required (or set SMP_STORE)")
	}
	return "", smps, nil
}

// IsDir reports whether location names a store directory of this machine:
// not an SMP, not a bucket.
func IsDir(location string) bool {
	dir, smps, err := parseLocation(location)
	return err == nil && len(smps) == 0 && !IsS3(dir)
}

// loopbackURL reports whether the URL's host is a loopback address, the
// only place a plain-HTTP SMP (smp serve --insecure) may be.
func loopbackURL(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckLocation refuses a location Open could not open: an unknown URL
// scheme, a list mixing directories and SMPs, or nothing.
func CheckLocation(location string) error {
	_, _, err := parseLocation(location)
	return err
}

// CheckDir refuses a location that is not a store directory, for the
// commands that work on one (OpenDir), naming cmd in the message.
func CheckDir(cmd, location string) error {
	_, smps, err := parseLocation(location)
	if err != nil {
		return err
	}
	if len(smps) > 0 {
		return usagef("--store %q names an SMP server, but smp %s works on a store directory: run it where the store is", smps[0], cmd)
	}
	return nil
}

// Open returns the Store at location: a store directory, an https://
// (or loopback http://) SMP, or several SMPs separated by commas (a group).
func Open(ctx context.Context, location string, opts Options) (Store, error) {
	dir, smps, err := parseLocation(location)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		return openDir(dir, opts)
	}
	tokens, err := perSMP(opts.Token, len(smps), "the token list (--token, --token-file or $SMP_TOKEN) has %d tokens for %d SMPs")
	if err != nil {
		return nil, err
	}
	pins, err := perSMP(opts.Fingerprint, len(smps), "the certificate fingerprint list (--tls-fingerprint or $SMP_TLS_FINGERPRINT) has %d fingerprints for %d SMPs")
	if err != nil {
		return nil, err
	}
	members := make([]*Remote, len(smps))
	for i, u := range smps {
		o := opts
		o.Token, o.Fingerprint = tokens[i], pins[i]
		members[i] = newRemote(u, o)
	}
	if len(members) == 1 {
		return members[0], nil
	}
	return newGroup(location, members, opts), nil
}

// perSMP splits a comma-separated list of one value for every SMP, or one
// per SMP in location order, into the value of each of n SMPs. An empty
// item is an empty value (an SMP without a certificate pin, say). what
// words the refusal of a list of another length, with its count and n.
func perSMP(list string, n int, what string) ([]string, error) {
	items := strings.Split(list, ",")
	if len(items) != 1 && len(items) != n {
		return nil, usagef(what+": give one, or one per SMP in --store order", len(items), n)
	}
	out := make([]string, n)
	for i := range out {
		out[i] = strings.TrimSpace(items[min(i, len(items)-1)])
	}
	return out, nil
}

// CaptureOptions are a capture: what to read (capture.Options, whose
// store-specific fields the store fills in) and how to start it.
type CaptureOptions struct {
	capture.Options
	// Full reads every file: no parent record is looked up.
	Full bool
	// ReserveFirst (an SMP only) reads the files once first so the SMP
	// reserves room for all the new data before anything is sent.
	ReserveFirst bool
}

// CaptureResult is a committed capture.
type CaptureResult struct {
	*capture.Result
	SMP      string               // the SMP that took it ("" for a store directory)
	Hardlink capture.HardlinkMode // the hard-link mode the capture ran with
	Sent     int64                // bytes uploaded to the SMP
	Held     int64                // chunks the SMP already held
	Reserved int64                // new bytes reserved by ReserveFirst; -1 without it
	// Encrypted says the store seals what it holds. The files a hard-link
	// capture places in its links/ area are the user's own files in place
	// (or their clones), in clear whatever the store: smp ingest turns
	// such a record into a sealed one.
	Encrypted bool
}

// StatsOptions select the figures of Stats.
type StatsOptions struct {
	Usage bool // per-computer and per-record cost
	// Retention, when set, counts the released records whose retention
	// has run out.
	Retention *time.Duration
}

// StatsReport is what Stats returns, the same JSON as GET /v1/stats.
type StatsReport = report.StatsReply

// Capacity is what an SMP's captures in progress hold against its disk
// and limits (StatsReport.Capacity; nil for a store directory).
type Capacity = report.Capacity

// GCOptions are a gc run.
type GCOptions struct {
	DryRun      bool
	RepackBelow float64
	Grace       time.Duration
	// Retention, when set, first removes released records released longer
	// ago than it (0: every released record).
	Retention *time.Duration
	// Rekey also moves everything under the current master key (smp gc
	// --rekey; a local encrypted store only).
	Rekey bool
	// ShortGraceOK accepts a grace below repo.SharedMinGrace on a store
	// on S3: tests only.
	ShortGraceOK bool
}

// GCResult is what a gc run did.
type GCResult struct {
	*repo.GCReport
	Expired []string `json:"expired_records"`  // removed for their retention
	Orphans []string `json:"orphan_link_sets"` // link sets of no record, removed
}

// oneLine keeps an error message on one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }

// errNoStats reports an SMP answer without figures.
var errNoStats = errors.New("SMP sent no statistics")
