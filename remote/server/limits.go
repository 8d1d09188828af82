package server

import (
	"net/http"
	"sync"
)

// maxPerToken bounds the have and upload requests one token has in
// progress; more wait their turn. A client sends at most --streams (4 by
// default) uploads and a have-query at once, so only a client opening
// many connections waits. Each upload in progress holds the frame it is
// reading, so this bounds what one token's connections can make the
// server hold, and a token's slow or hostile requests delay that token.
const maxPerToken = 8

// tokenLimits counts the limited requests of each token.
type tokenLimits struct {
	mu    sync.Mutex
	slots map[string]*tokenSlots
}

type tokenSlots struct {
	ch    chan struct{}
	users int // requests holding or waiting for a slot; guarded by tokenLimits.mu
}

// perToken wraps h so that one token runs at most maxPerToken such
// requests at once.
func (s *Server) perToken(h handlerFunc) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, c *call) error {
		release, err := s.tokens.acquire(r, c.tok.ID)
		if err != nil {
			return err
		}
		defer release()
		return h(w, r, c)
	}
}

// acquire waits for one of token id's slots; the returned func frees it.
func (l *tokenLimits) acquire(r *http.Request, id string) (func(), error) {
	l.mu.Lock()
	if l.slots == nil {
		l.slots = map[string]*tokenSlots{}
	}
	ts := l.slots[id]
	if ts == nil {
		ts = &tokenSlots{ch: make(chan struct{}, maxPerToken)}
		l.slots[id] = ts
	}
	ts.users++
	l.mu.Unlock()
	done := func() {
		l.mu.Lock()
		if ts.users--; ts.users == 0 {
			delete(l.slots, id)
		}
		l.mu.Unlock()
	}
	select {
	case ts.ch <- struct{}{}:
		return func() { <-ts.ch; done() }, nil
	case <-r.Context().Done():
		done()
		return nil, r.Context().Err()
	}
}
