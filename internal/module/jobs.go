package module

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// jobs are the periodic jobs modules start with Every. The host owns
// their goroutines, so a module needs no stop channel of its own, and
// the server stops them all at once when it stops.
type jobs struct {
	mu      sync.Mutex
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped bool
}

func (j *jobs) init() {
	j.ctx, j.cancel = context.WithCancel(context.Background())
}

// Every runs fn now and then every period until the server stops; fn's
// context is cancelled then, and the server waits for a run in progress
// to return. A job registered after the server stopped never runs.
func (r *Registry) Every(period time.Duration, fn func(ctx context.Context)) {
	if period <= 0 {
		panic(fmt.Sprintf("module: a periodic job needs a positive period, not %v", period))
	}
	j := &r.jobs
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.stopped {
		return
	}
	j.wg.Add(1)
	go func() {
		defer j.wg.Done()
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			fn(j.ctx)
			select {
			case <-j.ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// StopJobs cancels every periodic job and waits for them to return, at
// most until ctx ends. It may be called more than once.
func (r *Registry) StopJobs(ctx context.Context) error {
	j := &r.jobs
	j.mu.Lock()
	j.stopped = true
	j.cancel()
	j.mu.Unlock()
	done := make(chan struct{})
	go func() { j.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("stopping periodic jobs: %w", ctx.Err())
	}
}

// RetentionInterval is how often a retention job runs: a tenth of the
// retention keeps data at most 10% past its time, an hour at most keeps
// a long retention from leaving a backlog for one big delete, and a
// second at least keeps a very short (test) retention from spinning.
func RetentionInterval(retention time.Duration) time.Duration {
	return min(max(retention/10, time.Second), time.Hour)
}
