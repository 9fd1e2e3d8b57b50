// Package durable lets the code that handles a stanza tell the stream it
// came from when the writes it started are committed, without blocking
// anyone: a stream that acknowledges stanzas (XEP-0198) opens a Group,
// passes it down in the context, and counts the stanza as handled only
// when every write held on the group is done. Writers that batch (the
// archive) keep batching: they release their holds when the batch
// holding the entry is committed, which is group commit.
package durable

import (
	"context"
	"sync/atomic"
)

// Group counts the writes one stanza is waiting for. done runs once,
// when the last hold is released, on the goroutine that released it.
type Group struct {
	n    atomic.Int64
	done func()
}

// NewGroup returns a group with one hold for its opener, who releases it
// with Release once the stanza has been handed on; done runs when that
// and every other hold are released.
func NewGroup(done func()) *Group {
	g := &Group{done: done}
	g.n.Store(1)
	return g
}

// Hold adds a write to wait for; the returned function releases it and
// must be called exactly once.
func (g *Group) Hold() func() {
	g.n.Add(1)
	var once atomic.Bool
	return func() {
		if once.CompareAndSwap(false, true) {
			g.Release()
		}
	}
}

// Release drops one hold.
func (g *Group) Release() {
	if g.n.Add(-1) == 0 {
		g.done()
	}
}

type key struct{}

// With returns ctx carrying g.
func With(ctx context.Context, g *Group) context.Context {
	return context.WithValue(ctx, key{}, g)
}

func nop() {}

// Hold adds a write to the group in ctx, if there is one; the returned
// function releases it (a no-op without a group) and must be called once
// the write is committed, or once it can never be.
func Hold(ctx context.Context) func() {
	if g, ok := ctx.Value(key{}).(*Group); ok {
		return g.Hold()
	}
	return nop
}

// Pending reports whether ctx carries a group, i.e. whether someone waits
// for the writes a handler starts.
func Pending(ctx context.Context) bool {
	_, ok := ctx.Value(key{}).(*Group)
	return ok
}
