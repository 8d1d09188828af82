package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"

	"smp/remote/client"
)

// group is several SMPs named together (--store URL,URL,...) that act as
// one store, as SCCM clients fall back between state migration points. A
// computer's captures may land on any of them (a fallback for capacity, a
// restore-only SMP), so what reads records asks them all. The semantics
// are in docs/PROTOCOL.md, "Groups of SMPs".
type group struct {
	location string
	members  []*Remote
	opts     Options
}

var _ Store = (*group)(nil)

func newGroup(location string, members []*Remote, opts Options) *group {
	return &group{location: location, members: members, opts: opts}
}

func (g *group) Location() string { return g.location }

func (g *group) Close() error {
	for _, m := range g.members {
		m.Close()
	}
	return nil
}

// member is the SMP of the group that holds rec.
func (g *group) member(rec Record) (*Remote, error) {
	for _, m := range g.members {
		if m.url == rec.SMP {
			return m, nil
		}
	}
	return nil, fmt.Errorf("record %s: its SMP %q is not in --store %s", rec.ID.Short(), rec.SMP, g.location)
}

// each runs f on every SMP at once.
func (g *group) each(f func(i int, m *Remote)) {
	var wg sync.WaitGroup
	for i, m := range g.members {
		wg.Go(func() { f(i, m) })
	}
	wg.Wait()
}

// Records merges the records of every SMP that answers, each saying which
// SMP holds it; an SMP that does not answer is named on the log, and only
// when none answers is it an error.
func (g *group) Records(ctx context.Context) ([]Record, error) {
	lists := make([][]Record, len(g.members))
	errs := make([]error, len(g.members))
	g.each(func(i int, m *Remote) { lists[i], errs[i] = m.Records(ctx) })
	var out []Record
	var down []string
	for i, m := range g.members {
		if errs[i] != nil {
			down = append(down, fmt.Sprintf("SMP %s did not answer (%s)", m.url, oneLine(errs[i])))
			continue
		}
		out = append(out, lists[i]...)
	}
	if len(down) == len(g.members) {
		return nil, fmt.Errorf("no SMP of the group answered: %s", strings.Join(down, "; "))
	}
	for _, d := range down {
		g.opts.logf("%s: its records are not listed", d)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return bytes.Compare(out[i].ID[:], out[j].ID[:]) < 0
	})
	return out, nil
}

// groupAnswer is what one SMP of the group said about a record.
type groupAnswer struct {
	url string
	rec Record
	err error
}

// recordQuery is a choice of record across the group.
type recordQuery struct {
	ref, computer string // as --record / --computer
	// allowUnreachable chooses among the SMPs that answered when some did
	// not, saying which were skipped.
	allowUnreachable bool
}

// FindRecord asks every SMP and picks the answer (pickRecord): a computer's
// newest record may be on any of them, and an SMP that does not answer
// might hold a newer one still.
func (g *group) FindRecord(ctx context.Context, ref, computer string) (Record, error) {
	answers := make([]groupAnswer, len(g.members))
	g.each(func(i int, m *Remote) {
		answers[i].url = m.url
		answers[i].rec, answers[i].err = m.FindRecord(ctx, ref, computer)
	})
	best, skipped, err := pickRecord(answers, recordQuery{ref: ref, computer: computer, allowUnreachable: g.opts.AllowUnreachable})
	if err != nil {
		return Record{}, err
	}
	for _, a := range skipped {
		g.opts.logf("skipped SMP %s, which did not answer (%s): a newer record there was not considered (--allow-unreachable)", a.url, oneLine(a.err))
	}
	return answers[best].rec, nil
}

// answerKind sorts an SMP's answer for the group decision.
type answerKind int

const (
	answerFound      answerKind = iota
	answerAbsent                // it answered: no such record there for this token
	answerBadRequest            // it refused the question itself (short or ambiguous prefix)
	answerNone                  // it could not be asked: unreachable, token refused, server error
)

func classify(err error) answerKind {
	var ce *client.Error
	switch {
	case err == nil:
		return answerFound
	case !errors.As(err, &ce):
		return answerNone
	case ce.Status == http.StatusNotFound || ce.Status == http.StatusForbidden:
		return answerAbsent
	case ce.Status == http.StatusBadRequest:
		return answerBadRequest
	}
	return answerNone
}

// pickRecord chooses among the answers of a group: the record with the
// latest capture time (the first in --store order on a tie), or the one
// record a prefix names. Unless q.allowUnreachable, an SMP that could not
// be asked makes the choice impossible; otherwise it is returned in
// skipped. With one SMP its error is returned as it is.
func pickRecord(answers []groupAnswer, q recordQuery) (best int, skipped []groupAnswer, err error) {
	if len(answers) == 1 {
		return 0, nil, answers[0].err
	}
	var found []int
	var absent error
	for i, a := range answers {
		switch classify(a.err) {
		case answerFound:
			found = append(found, i)
		case answerAbsent:
			if absent == nil {
				absent = a.err
			}
		case answerBadRequest:
			return -1, nil, fmt.Errorf("SMP %s: %s", a.url, oneLine(a.err))
		case answerNone:
			skipped = append(skipped, a)
		}
	}
	if len(skipped) > 0 && (!q.allowUnreachable || len(skipped) == len(answers)) {
		var parts []string
		for _, a := range skipped {
			parts = append(parts, fmt.Sprintf("SMP %s did not answer (%s)", a.url, oneLine(a.err)))
		}
		if len(skipped) == len(answers) {
			return -1, nil, fmt.Errorf("no SMP of the group answered: %s", strings.Join(parts, "; "))
		}
		return -1, nil, fmt.Errorf("%s: it may hold a newer record; retry when it answers, or pass --allow-unreachable to restore the newest of the others", strings.Join(parts, "; "))
	}
	if len(found) == 0 {
		return -1, nil, fmt.Errorf("no SMP of the group has it: %w", absent)
	}
	if q.ref != "" {
		for _, i := range found {
			if answers[i].rec.ID != answers[found[0]].rec.ID {
				var names []string
				for _, j := range found {
					names = append(names, answers[j].rec.ID.Short()+" on "+answers[j].url)
				}
				return -1, nil, fmt.Errorf("record prefix %q matches records on several SMPs (%s): give more digits", q.ref, strings.Join(names, ", "))
			}
		}
	}
	best = found[0]
	for _, i := range found[1:] {
		if answers[i].rec.Created.After(answers[best].rec.Created) {
			best = i
		}
	}
	return best, skipped, nil
}

func (g *group) Reader(ctx context.Context, rec Record) (Reader, error) {
	m, err := g.member(rec)
	if err != nil {
		return nil, err
	}
	return m.Reader(ctx, rec)
}

func (g *group) Release(ctx context.Context, rec Record) error {
	m, err := g.member(rec)
	if err != nil {
		return err
	}
	return m.Release(ctx, rec)
}

func (g *group) Remove(ctx context.Context, rec Record) error {
	m, err := g.member(rec)
	if err != nil {
		return err
	}
	return m.Remove(ctx, rec)
}

// fallback reports whether an SMP's refusal lets the next SMP of the group
// be tried: it could not be reached, refused for capacity (restore-only,
// full, over quota), or lacks what was asked for. Any other refusal (a bad
// token, a bad request) would be the same on the next one.
func fallback(err error) bool {
	var ce *client.Error
	return !errors.As(err, &ce) || ce.Capacity || ce.Status == http.StatusNotFound
}

// Capture goes to the first SMP, in --store order, that accepts it.
func (g *group) Capture(ctx context.Context, co CaptureOptions) (*CaptureResult, error) {
	if err := checkRemoteCapture(co); err != nil {
		return nil, err
	}
	var errs []string
	for _, m := range g.members {
		rc, err := m.startCapture(ctx, co)
		if err == nil {
			return rc.run(ctx)
		}
		if !fallback(err) || ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", m.url, err))
		g.opts.logf("%s: %v; trying the next SMP", m.url, err)
	}
	return nil, fmt.Errorf("no SMP could be used: %s", strings.Join(errs, "; "))
}

// first returns the first SMP, in --store order, that answers: the one
// Stats and GC act on.
func (g *group) first(ctx context.Context) (*Remote, error) {
	var errs []string
	for _, m := range g.members {
		_, err := m.client(ctx)
		if err == nil {
			return m, nil
		}
		if !fallback(err) || ctx.Err() != nil {
			return nil, err
		}
		errs = append(errs, fmt.Sprintf("%s: %v", m.url, err))
		g.opts.logf("%s: %v; trying the next SMP", m.url, err)
	}
	return nil, fmt.Errorf("no SMP could be used: %s", strings.Join(errs, "; "))
}

// Stats are the figures of the first SMP that answers.
func (g *group) Stats(ctx context.Context, opts StatsOptions) (*StatsReport, error) {
	m, err := g.first(ctx)
	if err != nil {
		return nil, err
	}
	return m.Stats(ctx, opts)
}

// GC runs on the first SMP that answers.
func (g *group) GC(ctx context.Context, opts GCOptions) (*GCResult, error) {
	m, err := g.first(ctx)
	if err != nil {
		return nil, err
	}
	return m.GC(ctx, opts)
}

// Estimate estimates against the first SMP that opens an estimate
// session, in --store order, as a capture goes to the first that takes it.
func (g *group) Estimate(ctx context.Context, co CaptureOptions) (*CaptureResult, error) {
	var errs []error
	for _, m := range g.members {
		res, err := m.Estimate(ctx, co)
		if err == nil {
			return res, nil
		}
		if ctx.Err() != nil {
			return nil, err
		}
		g.opts.logf("estimate on %s failed (%s), trying the next SMP", m.url, oneLine(err))
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}
