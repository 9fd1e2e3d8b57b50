package durable

import (
	"context"
	"testing"
)

func TestGroup(t *testing.T) {
	done := 0
	g := NewGroup(func() { done++ })
	ctx := With(context.Background(), g)
	a, b := Hold(ctx), Hold(ctx)
	g.Release()
	a()
	a() // a second release of the same hold counts once
	if done != 0 {
		t.Fatal("done before every hold was released")
	}
	b()
	if done != 1 {
		t.Fatalf("done ran %d times, want 1", done)
	}
	// Without a group nobody waits: Hold is a no-op.
	Hold(context.Background())()
	if Pending(context.Background()) || !Pending(ctx) {
		t.Error("Pending is wrong")
	}
}
