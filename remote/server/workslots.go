package server

import (
	"container/heap"
	"context"
	"sync"
)

// workSlots bounds the have-queries and upload frames processed at once,
// and hands a freed slot to the oldest request waiting for one: the
// request with the lowest ticket, taken when it arrived.
//
// An upload takes a slot per run of frames that have arrived and lets it
// go while it waits for the network, so a slow client holds none. Were
// the slots handed out in the order they are asked for, an upload would
// go to the back of the queue each time its next frame had to be waited
// for, so every upload in progress would advance a frame at a time and
// all of them would finish late; a blob becomes visible to other
// sessions' have-queries only when its upload commits, so other clients
// sending the same data would be told the store lacks it and send it
// again. Oldest first, the uploads in progress finish in about the order
// they came, as when each held one slot throughout, while the slot still
// goes to another request whenever an upload waits for its client.
type workSlots struct {
	mu      sync.Mutex
	free    int
	tickets uint64
	waiting waiters
}

func newWorkSlots(n int) *workSlots { return &workSlots{free: n} }

// ticket returns the next arrival number: a request takes one when it
// arrives and keeps it for every slot it asks for.
func (ws *workSlots) ticket() uint64 {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.tickets++
	return ws.tickets
}

// acquire waits for a slot for the request holding ticket; the returned
// func frees it.
func (ws *workSlots) acquire(ctx context.Context, ticket uint64) (func(), error) {
	w := ws.enqueue(ticket)
	if w == nil {
		return ws.release, nil
	}
	return ws.wait(ctx, w)
}

// enqueue takes a free slot (returning nil) or queues a waiter for one.
func (ws *workSlots) enqueue(ticket uint64) *waiter {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.free > 0 {
		ws.free--
		return nil
	}
	w := &waiter{ticket: ticket, ready: make(chan struct{})}
	heap.Push(&ws.waiting, w)
	return w
}

// wait blocks until w is handed a slot or ctx ends. A slot handed over
// as ctx ended is passed on.
func (ws *workSlots) wait(ctx context.Context, w *waiter) (func(), error) {
	select {
	case <-w.ready:
		return ws.release, nil
	case <-ctx.Done():
	}
	ws.mu.Lock()
	queued := w.index >= 0
	if queued {
		heap.Remove(&ws.waiting, w.index)
	}
	ws.mu.Unlock()
	if !queued {
		ws.release()
	}
	return nil, ctx.Err()
}

// release frees a slot: to the oldest waiter, if any.
func (ws *workSlots) release() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if len(ws.waiting) == 0 {
		ws.free++
		return
	}
	w := heap.Pop(&ws.waiting).(*waiter)
	close(w.ready)
}

// waiter is a request waiting for a slot; index is its place in the heap,
// -1 once it left it.
type waiter struct {
	ticket uint64
	ready  chan struct{}
	index  int
}

// waiters is a min-heap of waiters by ticket (container/heap).
type waiters []*waiter

func (h waiters) Len() int           { return len(h) }
func (h waiters) Less(i, j int) bool { return h[i].ticket < h[j].ticket }
func (h waiters) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *waiters) Push(x any) {
	w := x.(*waiter)
	w.index = len(*h)
	*h = append(*h, w)
}

func (h *waiters) Pop() any {
	old := *h
	w := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	w.index = -1
	return w
}
