// Package unverified tells a user, once, about stored messages the
// server withheld because they failed their integrity check (altered or
// damaged in the database) or were sealed under another key (the
// server's secret was lost or replaced, or an admin reset the user's
// password while their key was not held), and tells the admin once per
// process about a server key that no longer matches.
package unverified

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"parley/internal/jid"
	"parley/internal/seal"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/vault"
	"parley/internal/xmlstream"
)

// maxRemembered bounds the records remembered as reported; past it the
// memory starts over and a user may be told again, which is harmless.
const maxRemembered = 100000

// Reporter remembers which withheld records were reported already.
type Reporter struct {
	what string // "offline messages", "archived messages"
	log  *slog.Logger

	mu       sync.Mutex
	reported map[string]bool // owner + "\x00" + record id
	keyNoted bool
}

// New returns a reporter for one kind of record.
func New(what string, log *slog.Logger) *Reporter {
	return &Reporter{what: what, log: log, reported: make(map[string]bool)}
}

// Tally collects what one read withheld.
type Tally struct {
	Tampered []string // ids of records that failed their integrity check
	WrongKey []string // ids of records sealed under another server key
	// UserKey are ids of records sealed under a key the user had before
	// an admin reset their password (vault blobs under another key):
	// the user's loss, told to them, not a fault of the server's config.
	UserKey []string
}

// Withhold counts record id, whose blob failed to open with err (not
// vault.ErrLocked, which withholds nothing), in its list.
func (t *Tally) Withhold(id string, blob []byte, err error) {
	switch {
	case errors.Is(err, seal.ErrWrongKey) && vault.IsVault(blob):
		t.UserKey = append(t.UserKey, id)
	case errors.Is(err, seal.ErrWrongKey):
		t.WrongKey = append(t.WrongKey, id)
	default:
		t.Tampered = append(t.Tampered, id)
	}
}

// Withheld is how many records the tally withheld.
func (t *Tally) Withheld() int { return len(t.Tampered) + len(t.WrongKey) + len(t.UserKey) }

// Report logs the tally and tells the user of s, once per record, with a
// message from their domain. s may be nil (nobody to tell now).
func (r *Reporter) Report(owner jid.JID, s session.Session, t Tally) {
	if t.Withheld() == 0 {
		return
	}
	r.mu.Lock()
	if len(r.reported) > maxRemembered {
		clear(r.reported)
	}
	newTampered := r.fresh(owner, t.Tampered)
	newWrongKey := r.fresh(owner, t.WrongKey)
	newUserKey := r.fresh(owner, t.UserKey)
	noteKey := len(t.WrongKey) > 0 && !r.keyNoted
	if noteKey {
		r.keyNoted = true
	}
	r.mu.Unlock()
	if noteKey {
		// One clear line for the admin: this is not an attack on every
		// message, it is a configuration problem.
		r.log.Error("stored "+r.what+" were sealed under another key: the server key (storage.key_file, by default server.secret in the data directory) was lost or replaced; they cannot be read until the old secret is restored",
			"example_jid", owner.String())
	}
	if newTampered > 0 {
		// The owner is named so the admin can tell them; content never.
		r.log.Error(r.what+" were altered or damaged in the database and were withheld",
			"jid", owner.String(), "count", newTampered)
	}
	if newUserKey > 0 {
		r.log.Info(r.what+" sealed under the key the account had before an admin reset its password were withheld",
			"jid", owner.String(), "count", newUserKey)
	}
	if s == nil || newTampered+newWrongKey+newUserKey == 0 {
		return
	}
	var texts []string
	switch {
	case newTampered > 0 && newWrongKey > 0:
		texts = append(texts, fmt.Sprintf("%d of your stored %s could not be verified (altered or damaged) and %d could not be read (the server's key changed); they were withheld.", newTampered, r.what, newWrongKey))
	case newTampered > 0:
		texts = append(texts, fmt.Sprintf("%d of your stored %s could not be verified: they were altered or damaged, so they were withheld.", newTampered, r.what))
	case newWrongKey > 0:
		texts = append(texts, fmt.Sprintf("%d of your stored %s could not be read because the server's key changed; they were withheld.", newWrongKey, r.what))
	}
	if newUserKey > 0 {
		texts = append(texts, fmt.Sprintf("%d of your stored %s were sealed under your key from before an admin reset your password: they can no longer be read and were withheld.", newUserKey, r.what))
	}
	text := strings.Join(texts, " ")
	msg := xmlstream.New(stanza.NSClient, "message", "from", owner.Domain(), "to", s.JID().String(), "type", "normal")
	msg.AddChild(xmlstream.New(stanza.NSClient, "body").AddText(text))
	s.Deliver(msg)
}

// fresh marks ids as reported and returns how many were not before.
func (r *Reporter) fresh(owner jid.JID, ids []string) int {
	n := 0
	for _, id := range ids {
		k := owner.String() + "\x00" + id
		if !r.reported[k] {
			r.reported[k] = true
			n++
		}
	}
	return n
}
