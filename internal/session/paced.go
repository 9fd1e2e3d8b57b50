package session

import (
	"context"
	"errors"
	"time"

	"parley/internal/xmlstream"
)

// Paced is a Session whose output the server can pace by what the client
// reads, instead of queueing a burst and cutting a client that cannot
// take it all at once.
type Paced interface {
	// DeliverPaced waits until the session's output has room, then
	// delivers el as output the server chose to send (never cut for
	// size). done, when not nil, is called once, without blocking: true
	// when el was delivered (acknowledged by the client under stream
	// management, else written to its socket), false when that can no
	// longer happen. An error means el was not queued; the session is
	// gone or ctx ended.
	DeliverPaced(ctx context.Context, el *xmlstream.Element, done func(delivered bool)) error
	// WaitRoom waits until the session's output has room for a stanza
	// from someone else, at most until deadline (ErrNoRoom after it).
	WaitRoom(ctx context.Context, deadline time.Time) error
}

// ErrNoRoom says that a recipient did not read its output in time.
var ErrNoRoom = errors.New("session: the recipient is not reading its data")

// DeliverPaced delivers el through s's pacing when s has it, else at once.
func DeliverPaced(ctx context.Context, s Session, el *xmlstream.Element, done func(delivered bool)) error {
	if p, ok := s.(Paced); ok {
		return p.DeliverPaced(ctx, el, done)
	}
	s.Deliver(el)
	if done != nil {
		done(true)
	}
	return nil
}

type senderKey struct{}

// SenderMayWait marks ctx as the context of a session's own goroutine
// handling what its client sent: delivering that to a recipient whose
// output is full may wait up to d for the recipient to read, which slows
// down only the sender (back-pressure).
func SenderMayWait(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, senderKey{}, d)
}

// SenderWaits reports whether ctx was marked by SenderMayWait: the
// goroutine is the sending session's own, which may be paced.
func SenderWaits(ctx context.Context) bool {
	_, ok := ctx.Value(senderKey{}).(time.Duration)
	return ok
}

// WaitRoom applies back-pressure before a stanza from a sender marked by
// SenderMayWait goes to s: it returns ErrNoRoom when s did not make room
// in time, nil at once in every other case.
func WaitRoom(ctx context.Context, s Session) error {
	d, ok := ctx.Value(senderKey{}).(time.Duration)
	if !ok {
		return nil
	}
	p, ok := s.(Paced)
	if !ok {
		return nil
	}
	return p.WaitRoom(ctx, time.Now().Add(d))
}
