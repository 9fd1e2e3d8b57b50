package bench

import (
	"context"
	"time"
)

// pacer schedules one sender's messages. Sender k of n sends every n/rate
// seconds starting k/rate after start, so the n senders together send at
// rate, evenly spread, instead of all at once on the same tick. The
// schedule is open-loop: a sender that falls behind sends the missed
// messages at once rather than shifting the rest, so a slow server cannot
// lower the load it is offered.
type pacer struct {
	start    time.Time
	offset   time.Duration
	interval time.Duration
}

func newPacer(start time.Time, totalRate float64, senders, k int) pacer {
	step := time.Duration(float64(time.Second) / totalRate)
	return pacer{start: start, offset: time.Duration(k) * step, interval: time.Duration(senders) * step}
}

// due is when message j (from 0) is to be sent.
func (p pacer) due(j int) time.Time {
	return p.start.Add(p.offset + time.Duration(j)*p.interval)
}

// countBefore is how many messages are due strictly before t.
func (p pacer) countBefore(t time.Time) int {
	d := t.Sub(p.start) - p.offset
	if d <= 0 {
		return 0
	}
	return int((d-1)/p.interval) + 1
}

// wait sleeps until message j is due; false if ctx ended first.
func (p pacer) wait(ctx context.Context, timer *time.Timer, j int) bool {
	d := time.Until(p.due(j))
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		timer.Stop()
		return false
	}
}
