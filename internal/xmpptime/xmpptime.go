// Package xmpptime writes and reads the XEP-0082 DateTime profile, the
// one form of date and time every XMPP extension uses (delay, archive
// stamps, entity time, pubsub, history 'since').
package xmpptime

import (
	"fmt"
	"time"
)

// Layout is what parley writes: always UTC, always microseconds. One
// layout everywhere means stamps of the same instant compare equal as
// strings, and microseconds are what the stores keep.
const Layout = "2006-01-02T15:04:05.000000Z"

// Format writes t in Layout.
func Format(t time.Time) string { return t.UTC().Format(Layout) }

// Parse reads an XEP-0082 DateTime (CCYY-MM-DDThh:mm:ss[.sss]TZD, TZD
// being Z or ±hh:mm) and returns it in UTC. A date alone or a time
// without a zone is refused: XEP-0082 leaves neither to guessing.
func Parse(s string) (time.Time, error) {
	// RFC 3339 is the same profile; Go's parser also takes the optional
	// fraction of a second.
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not an XEP-0082 date and time", s)
	}
	return t.UTC(), nil
}
