package stanza

import (
	"time"

	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
)

// Delay is an XEP-0203 <delay/> stamped at t; from (who delayed the
// stanza) is left out when empty.
func Delay(from string, t time.Time) *xmlstream.Element {
	d := xmlstream.New(NSDelay, "delay")
	if from != "" {
		d.SetAttr("from", from)
	}
	d.SetAttr("stamp", xmpptime.Format(t))
	return d
}

// AddDelay adds a <delay/> to el unless it carries one already: the
// first entity that delayed a stanza is the one XEP-0203 §3 asks for.
func AddDelay(el *xmlstream.Element, from string, t time.Time) {
	if el.Child(NSDelay, "delay") == nil {
		el.AddChild(Delay(from, t))
	}
}

// Forwarded wraps msg in an XEP-0297 <forwarded/>, with a <delay/> when
// stamp is not zero (archives say when; carbons do not).
func Forwarded(msg *xmlstream.Element, stamp time.Time) *xmlstream.Element {
	fwd := xmlstream.New(NSForward, "forwarded")
	if !stamp.IsZero() {
		fwd.AddChild(Delay("", stamp))
	}
	return fwd.AddChild(msg)
}

// XEP-0334 processing hints.
const (
	HintNoPermanentStore = "no-permanent-store"
	HintNoStore          = "no-store"
	HintNoCopy           = "no-copy"
	HintStore            = "store"
)

// HasHint reports whether el carries the processing hint name.
func HasHint(el *xmlstream.Element, name string) bool {
	return el.Child(NSHints, name) != nil
}

// NoStore reports whether el asks not to be stored: no-store, or
// no-permanent-store, which a server keeping messages on disk must treat
// the same way (XEP-0334 §4).
func NoStore(el *xmlstream.Element) bool {
	return HasHint(el, HintNoStore) || HasHint(el, HintNoPermanentStore)
}
