package retention

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestEveryFollowsThePeriodInForce(t *testing.T) {
	var keep atomic.Int64
	keep.Store(int64(100 * time.Millisecond)) // a round every 10 ms
	cleaned := make(chan struct{}, 100)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(stop, func() time.Duration { return time.Duration(keep.Load()) }, func() { cleaned <- struct{}{} })
	}()
	for range 3 {
		select {
		case <-cleaned:
		case <-time.After(10 * time.Second):
			t.Fatal("no clean-up within 10 s at a 100 ms period")
		}
	}
	keep.Store(0) // keep everything: no more clean-ups after the round under way
	time.Sleep(50 * time.Millisecond)
	for len(cleaned) > 0 {
		<-cleaned
	}
	time.Sleep(100 * time.Millisecond)
	if n := len(cleaned); n != 0 {
		t.Errorf("%d clean-ups with retention 0", n)
	}
	close(stop)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after stop")
	}
}
