// Package retention tells the period in force of a module that keeps data
// only for a while (offline messages, archives), fixed or reloadable.
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
