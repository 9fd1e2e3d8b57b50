// Package retention runs the clean-up job of a module that keeps data
// only for a while (offline messages, archives).
package retention

import "time"

// Now is the period in force for a module made with fixed and given keep
// by WithRetention (nil when it was not).
func Now(fixed time.Duration, keep func() time.Duration) time.Duration {
	if keep != nil {
		return keep()
	}
	return fixed
}
