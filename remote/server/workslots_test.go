package server

import (
	"context"
	"testing"
)

// A freed slot goes to the waiter with the lowest ticket, whatever the
// order they asked in: an upload that arrived first and had to wait for
// its next frame is served before requests that came after it.
func TestWorkSlotsOldestFirst(t *testing.T) {
	ws := newWorkSlots(1)
	if w := ws.enqueue(1); w != nil {
		t.Fatal("the free slot was not taken at once")
	}
	w5, w3, w9 := ws.enqueue(5), ws.enqueue(3), ws.enqueue(9)
	if w5 == nil || w3 == nil || w9 == nil {
		t.Fatal("a waiter got a slot that was not free")
	}
	for _, want := range []*waiter{w3, w5, w9} {
		for _, w := range []*waiter{w3, w5, w9} {
			if isReady(w) {
				t.Fatalf("ticket %d holds a slot before ticket %d was handed one", w.ticket, want.ticket)
			}
		}
		ws.release()
		if !isReady(want) {
			t.Fatalf("release did not hand the slot to ticket %d", want.ticket)
		}
		want.ready = nil // handed; not looked at again
	}
	ws.release()
	if ws.free != 1 || len(ws.waiting) != 0 {
		t.Fatalf("after every release: %d free, %d waiting, want 1 and 0", ws.free, len(ws.waiting))
	}
}

func isReady(w *waiter) bool {
	if w.ready == nil {
		return false
	}
	select {
	case <-w.ready:
		return true
	default:
		return false
	}
}

// A request that gives up waiting leaves the queue, and a slot handed to
// it as it gave up is passed on, so no slot is lost either way.
func TestWorkSlotsCancel(t *testing.T) {
	ws := newWorkSlots(1)
	release, err := ws.acquire(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Gave up while queued.
	if _, err := ws.wait(ctx, ws.enqueue(2)); err == nil {
		t.Fatal("wait with a cancelled context returned a slot while none was free")
	}
	if len(ws.waiting) != 0 {
		t.Fatalf("%d waiting after the only waiter gave up", len(ws.waiting))
	}
	// Handed a slot as it gave up: wait may return either, and the slot
	// must come back.
	w := ws.enqueue(3)
	release()
	if got, err := ws.wait(ctx, w); err == nil {
		got()
	}
	if ws.free != 1 || len(ws.waiting) != 0 {
		t.Fatalf("%d free, %d waiting, want 1 and 0", ws.free, len(ws.waiting))
	}
	// And the slot is there to take.
	again, err := ws.acquire(context.Background(), 4)
	if err != nil {
		t.Fatal(err)
	}
	again()
}
