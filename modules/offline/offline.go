// Package offline keeps messages for users who are offline (XEP-0160) and
// hands them over at their next available presence, oldest first. Every
// stored message is sealed with AES-256-GCM under a key derived from the
// server's secret, which lives outside the database: whoever copies or
// edits the database can neither read the messages nor alter one
// unnoticed. The owner and the row's stored time are authenticated too,
// so a message cannot be moved to another user nor copied over another
// row (delivered twice). A message that fails to open is never delivered
// as genuine; the owner is told once how many were withheld.
//
// A database that fails for a while (PostgreSQL restarting, a full disk)
// does not turn messages away: they wait in a bounded queue in memory
// and are stored when the database is back. The sender's stream
// management acknowledgement waits for that (package durable); only when
// the queue is full is the sender told to wait.
package offline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"parley/internal/durable"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/seal"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/retention"
	"parley/modules/internal/unverified"
)

const (
	// NSOffline is advertised per XEP-0160's use of "msgoffline".
	FeatureOffline = "msgoffline"
	nsChatStates   = "http://jabber.org/protocol/chatstates"
)

type Module struct {
	maxPerUser int
	maxFor     func() int // see WithLimit
	retention  time.Duration
	keepFor    func() time.Duration // see WithRetention
	now        func() time.Time

	host   module.Host
	store  storage.Offline
	sealer *seal.Sealer
	report *unverified.Reporter
	fails  *storage.FailureLog
	held   *holdQueue

	del deleter
}

// New returns the module: at most maxPerUser messages wait per user (0
// turns offline storage off), and none longer than retention (0 keeps them
// until delivered).
func New(maxPerUser int, retention time.Duration) *Module {
	return &Module{maxPerUser: maxPerUser, retention: retention, now: time.Now}
}

// WithRetention reads the retention period from keep at each clean-up
// (a reload may change it); call it before Start.
func (m *Module) WithRetention(keep func() time.Duration) *Module { m.keepFor = keep; return m }

func (m *Module) retentionNow() time.Duration { return retention.Now(m.retention, m.keepFor) }

// WithLimit reads the per-user limit from max at each message (a reload
// may change it); call it before Start. Offline storage turned off at
// start (a limit of 0) stays off until a restart; a reload to 0 stops
// storing new messages.
func (m *Module) WithLimit(max func() int) *Module { m.maxFor = max; return m }

func (m *Module) maxNow() int {
	if m.maxFor != nil {
		return m.maxFor()
	}
	return m.maxPerUser
}

func (*Module) Name() string { return "offline" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	m.store = h.Store().Offline()
	var err error
	if m.sealer, err = seal.New(h.Key("offline messages")); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	m.startDeleter()
	m.report = unverified.New("offline messages", h.Logger())
	m.fails = storage.NewFailureLog(h.Logger())
	h.OnEvent(module.EventAvailable, m.flush) // delivers what is left even when turned off
	if m.maxPerUser > 0 {
		m.held = newHoldQueue(m)
		h.SetOfflineHandler(m.keep)
		h.AddFeature(module.Server, FeatureOffline)
	}
	if m.retention > 0 || m.keepFor != nil {
		// Retention is enforced by the server itself: no cron job. The
		// period in force is read at every round, so a reload applies.
		h.Every(module.RetentionInterval(cmp.Or(m.retentionNow(), time.Hour)), m.expire)
	}
	return nil
}

// Stop stores what is held in memory, deletes what was delivered
// meanwhile and ends the deleter.
func (m *Module) Stop(ctx context.Context) error {
	defer m.stopDeleter()
	if m.held != nil {
		if err := m.held.close(ctx); err != nil {
			return fmt.Errorf("offline: storing held messages: %w", err)
		}
	}
	return nil
}

func (m *Module) expire(ctx context.Context) {
	keep := m.retentionNow()
	if keep <= 0 {
		return // keep everything (changed by a reload)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	n, err := m.store.DeleteBefore(ctx, m.now().Add(-keep))
	if err != nil {
		m.host.Logger().Error("offline: retention clean-up failed", "err", err)
	} else if n > 0 {
		m.host.Logger().Info("offline: expired messages deleted", "count", n)
	}
}

// worthKeeping says whether a message is meant to reach the user later:
// chat states and messages hinted no-store are of the moment only
// (XEP-0085 §5.5, XEP-0334).
func worthKeeping(el *xmlstream.Element) bool {
	content := false
	for c := range el.Elements() {
		switch {
		case c.Name.Space == stanza.NSHints && (c.Name.Local == stanza.HintNoStore || c.Name.Local == stanza.HintNoPermanentStore):
			return false
		case c.Name.Space == nsChatStates, c.Name.Space == el.Name.Space && c.Name.Local == "thread":
		default:
			content = true
		}
	}
	return content
}

// pushTimeout bounds a write of a message for an offline user; a
// database that hangs longer is treated as failing, and the message is
// held in memory.
const pushTimeout = 10 * time.Second

// keep is the router's offline handler.
func (m *Module) keep(ctx context.Context, to jid.JID, el *xmlstream.Element) (bool, error) {
	switch el.Attr("type") {
	case "", "normal", "chat":
	default:
		return false, nil
	}
	if !worthKeeping(el) {
		return true, nil // dropped on purpose: nothing to say to the sender
	}
	limit := m.maxNow()
	if limit <= 0 {
		return false, nil // turned off by a reload
	}
	stored := storage.CreatedTime(m.now())
	c := el.Copy()
	stanza.AddDelay(c, to.Domain(), stored)
	p := pendingPush{owner: to, stored: stored, sealed: m.seal(to, stored, c.Append(nil, stanza.NSClient)), orig: el}
	// Behind messages already waiting for the database, a new one waits
	// too, so one user's messages are stored in order.
	if m.held.busy() {
		return m.hold(ctx, p)
	}
	// A sender who disconnects meanwhile must not cost the message: the
	// write does not end with the sender's context.
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), pushTimeout)
	_, err := m.store.PushAt(pctx, to.String(), stored, p.sealed, limit)
	cancel()
	switch {
	case err == nil:
		m.catchUp(ctx, to)
		return true, nil
	case errors.Is(err, storage.ErrLimit):
		return false, limitError(to, limit)
	case storage.IsTemporary(err):
		m.fails.Report("storing an offline message; holding it until the database is back", err)
		return m.hold(ctx, p)
	}
	return false, fmt.Errorf("offline: storing a message: %w", err)
}

// hold queues a message the database could not take now; the sender's
// acknowledgement waits until it is stored.
func (m *Module) hold(ctx context.Context, p pendingPush) (bool, error) {
	p.release = durable.Hold(ctx)
	if !m.held.add(p) {
		p.release()
		return false, &stanza.Error{Type: stanza.Wait, Condition: "resource-constraint",
			Text: "the server cannot store messages for offline users right now; try again later"}
	}
	return true, nil
}

func limitError(to jid.JID, max int) error {
	return &stanza.Error{Type: stanza.Wait, Condition: "resource-constraint",
		Text: fmt.Sprintf("%s has %d messages waiting already; try again later", to, max)}
}

// additionalData binds a sealed message to its owner and to the stored
// time of its row, so it opens nowhere else.
func additionalData(owner jid.JID, stored time.Time) []byte {
	return seal.AD("offline", owner.String(), strconv.FormatInt(stored.UnixMicro(), 10))
}

func (m *Module) seal(owner jid.JID, stored time.Time, plain []byte) []byte {
	return m.sealer.Seal(plain, additionalData(owner, stored))
}

// open returns a stored message's plain stanza, seal.ErrWrongKey when it
// was sealed under another key, seal.ErrTampered when it fails its check.
func (m *Module) open(owner jid.JID, msg storage.OfflineMessage) ([]byte, error) {
	if seal.Format(msg.Data) == seal.V1 {
		// The first format bound only the owner.
		return m.sealer.OpenV1(msg.Data, []byte(owner.String()))
	}
	return m.sealer.Open(msg.Data, additionalData(owner, msg.Stored))
}

// verified opens a stored message and parses it.
func (m *Module) verified(owner jid.JID, msg storage.OfflineMessage) (*xmlstream.Element, error) {
	plain, err := m.open(owner, msg)
	if err != nil {
		return nil, err
	}
	el, err := xmlstream.ParseElement(plain, stanza.NSClient)
	if err != nil {
		return nil, seal.ErrTampered
	}
	return el, nil
}

// catchUp hands over what was just stored when the owner became available
// while it was being stored: the router found no available resource, but
// the session's flush may have read the store before the write committed,
// and the message would wait for the next login. flush hands out each
// stored message once, so a flush that did see it sends nothing twice.
func (m *Module) catchUp(ctx context.Context, to jid.JID) {
	for _, s := range m.host.Sessions(to.Bare()) {
		if avail, prio := s.State().Available(); avail && prio >= 0 {
			m.flush(ctx, s)
			return
		}
	}
}
