package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"smp/remote/client"
	"smp/repo"
)

// recordQuery is a restore's choice of record across a group of SMPs.
type recordQuery struct {
	ref, computer string // as smp restore --record / --computer
	// allowUnreachable restores from the SMPs that answered when some did
	// not, saying which were skipped.
	allowUnreachable bool
}

// groupAnswer is what one SMP of a --store list said about the record.
type groupAnswer struct {
	url string
	cl  *client.Client // set when rec was found
	rec repo.RecordInfo
	err error
}

// findRecord resolves q on every SMP of store and returns the client of the
// one holding the chosen record (the caller closes it). A computer's
// captures may land on any SMP of a group (fallback for capacity, a
// restore-only SMP), so the first SMP holding a record of it may hold an
// old one: only asking them all and comparing capture times finds the
// newest, and an SMP that does not answer might hold a newer one still.
func (rf *remoteFlags) findRecord(ctx context.Context, store string, q recordQuery) (*client.Client, repo.RecordInfo, error) {
	targets, err := rf.targets(store)
	if err != nil {
		return nil, repo.RecordInfo{}, err
	}
	answers := make([]groupAnswer, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() {
			a := &answers[i]
			a.url = t.url
			cl, err := rf.dial(ctx, t)
			if err != nil {
				a.err = err
				return
			}
			id, e, err := cl.FindRecord(ctx, q.ref, q.computer)
			if err != nil {
				cl.Close()
				a.err = err
				return
			}
			a.cl, a.rec = cl, repo.RecordInfo{ID: id, Record: e.Record}
		})
	}
	wg.Wait()
	best, skipped, err := pickRecord(answers, q)
	for i := range answers {
		if i != best && answers[i].cl != nil {
			answers[i].cl.Close()
		}
	}
	if err != nil {
		return nil, repo.RecordInfo{}, err
	}
	for _, a := range skipped {
		fmt.Fprintf(os.Stderr, "smp: skipped SMP %s, which did not answer (%s): a newer record there was not considered (--allow-unreachable)\n", a.url, oneLine(a.err))
	}
	return answers[best].cl, answers[best].rec, nil
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
		var names []string
		for _, i := range found {
			if answers[i].rec.ID != answers[found[0]].rec.ID {
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

// oneLine keeps an error message on one line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " ") }
