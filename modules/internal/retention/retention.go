// Package retention runs the clean-up job of a module that keeps data
// only for a while (offline messages, archives).
package retention

import "time"

// Every calls clean at once and then every tenth of the retention period,
// an hour at most: data stays at most 10% past its time, and a long period
// leaves no backlog for one big delete. keep is read before each round,
// so a reload that changes the period applies from the next round on;
// while it is 0 (keep everything) clean is not called and keep is read
// again an hour later. Every returns when stop is closed.
func Every(stop <-chan struct{}, keep func() time.Duration, clean func()) {
	for {
		wait := time.Hour
		if k := keep(); k > 0 {
			clean()
			wait = min(k/10, time.Hour)
		}
		t := time.NewTimer(wait)
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Now is the period in force for a module made with fixed and given keep
// by WithRetention (nil when it was not).
func Now(fixed time.Duration, keep func() time.Duration) time.Duration {
	if keep != nil {
		return keep()
	}
	return fixed
}
