// Package muc is a multi-user chat service (XEP-0045) on its own domain:
// rooms with affiliations and roles, configuration through data forms,
// history, private messages, mediated invitations, voice requests,
// occupant ids (XEP-0421) and self-ping (XEP-0410). Persistent rooms
// keep an archive that occupants query with MAM (XEP-0313, with XEP-0359
// stanza ids on what they archive), moderators retract messages from it
// (XEP-0425), and owners give rooms an avatar through vcard-temp
// (XEP-0486). Persistent rooms, their affiliations and their messages
// are kept in storage.MUC.
package muc

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/throttle"
	"parley/internal/xmlstream"
	"parley/modules/internal/retention"
)

// Namespaces.
const (
	NS           = "http://jabber.org/protocol/muc"
	NSUser       = NS + "#user"
	NSAdmin      = NS + "#admin"
	NSOwner      = NS + "#owner"
	NSRequest    = NS + "#request"
	NSRoomConfig = NS + "#roomconfig"
	NSRoomInfo   = NS + "#roominfo"
	NSOccupantID = "urn:xmpp:occupant-id:0"
	NSPing       = "urn:xmpp:ping"
	NSDiscoInfo  = stanza.NSDiscoInf
	NSDiscoItems = stanza.NSDiscoIt
	NSSID        = stanza.NSSID
	NSVCard      = "vcard-temp"
)

// historySize is how many messages a room keeps in memory for new
// occupants (XEP-0045 §7.2.15); clients wanting more use the archive.
const historySize = 50

// Limits bound what users can make a service hold: one user once
// created 12,000 persistent rooms in 9 seconds.
type Limits struct {
	// MaxRooms is the most rooms one service domain holds, temporary
	// and persistent; 0 is no limit.
	MaxRooms int
	// CreationsPerHour is how many rooms one user may create per hour
	// (a burst of that many, regained evenly); 0 is no limit.
	CreationsPerHour int
}

// Module is the multi-user chat service for one or more service domains.
type Module struct {
	services  []string
	retention time.Duration
	keepFor   func() time.Duration // see WithRetention
	limits    Limits
	limitsFor func() Limits // see WithLiveLimits
	now       func() time.Time

	host      module.Host
	store     storage.MUC
	creations *throttle.Limiter // room creations by bare JID

	mu    sync.Mutex
	rooms map[jid.JID]*room
	// count is, per service domain, how many rooms exist: those in
	// memory that are not stored, and those stored.
	count map[string]int
}

// New returns the service for the given domains (e.g.
// "conference.example.org"). Archived room messages older than retention
// are deleted; 0 keeps them.
func New(services []string, retention time.Duration) *Module {
	return &Module{services: services, retention: retention, now: time.Now, rooms: map[jid.JID]*room{}, count: map[string]int{}}
}

// WithRetention reads the retention period from keep at each clean-up
// (a reload may change it); call it before Start.
func (m *Module) WithRetention(keep func() time.Duration) *Module { m.keepFor = keep; return m }

func (m *Module) retentionNow() time.Duration { return retention.Now(m.retention, m.keepFor) }

// WithLimits sets the limits on room creation; call it before Start.
func (m *Module) WithLimits(l Limits) *Module {
	m.limits = l
	return m
}

// WithLiveLimits reads the limits from l when a room is created (a
// reload may change them); call it before Start.
func (m *Module) WithLiveLimits(l func() Limits) *Module {
	m.limits, m.limitsFor = l(), l
	return m
}

// limitsNow returns the limits in force, keeping the creation throttle
// in step; m.mu is held.
func (m *Module) limitsNow() Limits {
	if m.limitsFor == nil {
		return m.limits
	}
	l := m.limitsFor()
	if l.CreationsPerHour != m.limits.CreationsPerHour {
		m.creations.SetBurst(l.CreationsPerHour)
	}
	m.limits = l
	return l
}

func (*Module) Name() string { return "muc" }

func (m *Module) Start(h module.Host) error {
	if m.retentionNow() < 0 {
		return fmt.Errorf("muc: negative retention %v", m.retentionNow())
	}
	m.host = h
	st, err := newSealedStore(h.Store().MUC(), h.Key("muc"), h.Logger())
	if err != nil {
		return err
	}
	m.store = st
	for _, s := range m.services {
		d, err := jid.Parse(s)
		if err != nil || !d.IsDomain() {
			return fmt.Errorf("muc: service %q is not a domain", s)
		}
		if h.IsLocal(s) {
			return fmt.Errorf("muc: service %q is also a served host", s)
		}
		if err := m.sealClear(st, d.Domain()); err != nil {
			return err
		}
		if err := m.countStored(st.raw, d.Domain()); err != nil {
			return err
		}
		h.AddComponent(module.Component{Domain: d.Domain(), Name: "Chatrooms"}, m.handle)
	}
	m.creations = throttle.New(m.limits.CreationsPerHour, time.Hour)
	if m.retention > 0 || m.keepFor != nil {
		// Retention is enforced by the server itself: no cron job. The
		// period in force is read at every round, so a reload applies.
		h.Every(module.RetentionInterval(cmp.Or(m.retentionNow(), time.Hour)), m.expire)
	}
	return nil
}

// sealClear seals what earlier versions stored in clear, before the
// service takes stanzas.
func (m *Module) sealClear(st sealedStore, service string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	rooms, msgs, err := st.sealClear(ctx, service)
	if rooms+msgs > 0 {
		m.host.Logger().Info("muc: sealed room data stored in clear by an earlier version", "service", service, "rooms", rooms, "messages", msgs)
	}
	if err != nil {
		return fmt.Errorf("muc: sealing the clear room data of %s: %w", service, err)
	}
	return nil
}

// Store is the room storage as the module reads and writes it (sealed),
// for `parley export` and `parley import` of rooms.
func (m *Module) Store() storage.MUC { return m.store }

func (m *Module) expire(ctx context.Context) {
	keep := m.retentionNow()
	if keep <= 0 {
		return // keep everything (changed by a reload)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	n, err := m.store.DeleteMessagesBefore(ctx, m.now().Add(-keep))
	if err != nil {
		m.host.Logger().Error("muc: retention clean-up failed", "err", err)
	} else if n > 0 {
		m.host.Logger().Info("muc: expired room messages deleted", "count", n)
	}
}

// newID returns an unguessable stanza id.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// handle is the component handler: every stanza for the service domain
// or a JID at it.
func (m *Module) handle(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	var out outbox
	switch el.Name.Local {
	case "presence":
		m.presence(ctx, from, to, el, &out)
	case "message":
		m.message(ctx, from, to, el, &out)
	case "iq":
		m.iq(ctx, from, to, el, &out)
	}
	out.flush(ctx, m.host)
}

// outbox collects what a room decided to send while it was locked; it is
// sent after the lock is released so that no delivery runs under it.
type outbox []*xmlstream.Element

func (o *outbox) add(el *xmlstream.Element) { *o = append(*o, el) }

// errorReply queues the error answer to el.
func (o *outbox) errorReply(el *xmlstream.Element, se *stanza.Error) {
	if r := stanza.ErrorReply(el, se); r != nil {
		o.add(r)
	}
}

func (o outbox) flush(ctx context.Context, h module.Host) {
	for _, el := range o {
		h.Deliver(ctx, el)
	}
}

// room returns the live room for a bare room JID, loading a persistent
// one from storage; nil when there is none.
func (m *Module) room(ctx context.Context, rj jid.JID) (*room, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.rooms[rj]; r != nil {
		return r, nil
	}
	stored, err := m.store.Room(ctx, rj.String())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("muc: load room %s: %w", rj, err)
	}
	r, err := m.loadRoom(ctx, rj, stored)
	if err != nil {
		return nil, err
	}
	m.rooms[rj] = r
	return r, nil
}

// countStored starts the count of a service's rooms with those in
// storage, when there is a limit to count for, or a reload may set one.
func (m *Module) countStored(raw storage.MUC, service string) error {
	if m.limits.MaxRooms <= 0 && m.limitsFor == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Counting needs nothing sealed: a room sealed under a lost key
	// still counts, and does not stop the start.
	stored, err := raw.Rooms(ctx, service)
	if err != nil {
		return fmt.Errorf("muc: counting the rooms of %s: %w", service, err)
	}
	m.count[service] = len(stored)
	return nil
}

// create makes a new room owned by creator unless one appeared meanwhile,
// which it returns instead (created false). The service's room limit and
// the creator's creation rate (XEP-0045 §10.1.1 lets local policy refuse
// a creation) are checked here, under the lock that makes the count.
func (m *Module) create(rj, creator jid.JID, locked bool) (r *room, created bool, se *stanza.Error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.rooms[rj]; r != nil {
		return r, false, nil
	}
	service := rj.Domain()
	lim := m.limitsNow()
	if n := lim.MaxRooms; n > 0 && m.count[service] >= n {
		return nil, false, stanza.ResourceConstraint(fmt.Sprintf("this service holds its maximum of %d rooms; join an existing room or try again later", n))
	}
	if !m.creations.Spend(creator.Bare().String()) {
		return nil, false, &stanza.Error{Type: stanza.Wait, Condition: "policy-violation",
			Text: fmt.Sprintf("you may create at most %d rooms per hour; join an existing room or try again later", lim.CreationsPerHour)}
	}
	r = newRoom(m, rj, defaultConfig())
	r.locked = locked
	r.affs[creator.Bare().String()] = storage.MUCAffiliation{JID: creator.Bare().String(), Affiliation: storage.AffOwner}
	m.rooms[rj] = r
	m.count[service]++
	return r, true, nil
}

// drop forgets a room that was destroyed or emptied; one that is not
// stored stops existing. The caller holds r.mu.
func (m *Module) drop(r *room) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rooms[r.jid] == r {
		delete(m.rooms, r.jid)
		if !r.stored {
			m.count[r.jid.Domain()]--
		}
	}
}

// storageError logs a storage failure and turns it into the stanza error
// a client sees.
func (m *Module) storageError(err error, what string) *stanza.Error {
	m.host.Logger().Error("muc: "+what+" failed", "err", err)
	return stanza.InternalServerError()
}

// sub appends child to parent and returns the child, for building trees.
func sub(parent, child *xmlstream.Element) *xmlstream.Element {
	parent.AddChild(child)
	return child
}
