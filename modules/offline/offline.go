// Package offline keeps messages for users who are offline (XEP-0160) and
// hands them over at their next available presence, oldest first. Every
// stored message is sealed with AES-256-GCM under a key derived from the
// server's secret, which lives outside the database: whoever copies or
// edits the database can neither read the messages nor alter one
// unnoticed (the owner's JID is authenticated too, so a message cannot be
// moved to another user). A message that fails to open is reported in the
// log and never delivered as genuine.
package offline

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/internal/retention"
)

const (
	NSDelay = "urn:xmpp:delay"
	// NSOffline is advertised per XEP-0160's use of "msgoffline".
	FeatureOffline = "msgoffline"
	nsChatStates   = "http://jabber.org/protocol/chatstates"
	nsHints        = "urn:xmpp:hints"
)

// sealVersion prefixes every sealed record, so the format can change.
const sealVersion = 1

type Module struct {
	maxPerUser int
	retention  time.Duration
	keepFor    func() time.Duration // see WithRetention
	now        func() time.Time

	host  module.Host
	store storage.Offline
	aead  cipher.AEAD

	stop chan struct{}
	wg   sync.WaitGroup
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

func (*Module) Name() string { return "offline" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	m.store = h.Store().Offline()
	block, err := aes.NewCipher(h.Key("offline messages"))
	if err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	if m.aead, err = cipher.NewGCM(block); err != nil {
		return fmt.Errorf("offline: %w", err)
	}
	h.OnEvent(module.EventAvailable, m.flush) // delivers what is left even when turned off
	if m.maxPerUser > 0 {
		h.SetOfflineHandler(m.keep)
		h.AddFeature(module.Server, FeatureOffline)
	}
	if m.retention > 0 || m.keepFor != nil {
		m.stop = make(chan struct{})
		m.wg.Add(1)
		go m.expireLoop()
	}
	return nil
}

// Stop ends the retention job.
func (m *Module) Stop(ctx context.Context) error {
	if m.stop == nil {
		return nil
	}
	close(m.stop)
	done := make(chan struct{})
	go func() { m.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// expireLoop enforces retention by itself, so no cron job is needed.
func (m *Module) expireLoop() {
	defer m.wg.Done()
	retention.Every(m.stop, m.retentionNow, m.expire)
}

func (m *Module) expire() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := m.store.DeleteBefore(ctx, m.now().Add(-m.retentionNow()))
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
		case c.Name.Space == nsHints && (c.Name.Local == "no-store" || c.Name.Local == "no-permanent-store"):
			return false
		case c.Name.Space == nsChatStates, c.Name.Space == el.Name.Space && c.Name.Local == "thread":
		default:
			content = true
		}
	}
	return content
}

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
	c := el.Copy()
	if c.Child(NSDelay, "delay") == nil {
		c.AddChild(xmlstream.New(NSDelay, "delay", "from", to.Domain(), "stamp", m.now().UTC().Format("2006-01-02T15:04:05.000Z")))
	}
	sealed, err := m.seal(to, c.Append(nil, stanza.NSClient))
	if err != nil {
		return false, err
	}
	_, err = m.store.Push(ctx, to.String(), sealed, m.maxPerUser)
	if errors.Is(err, storage.ErrLimit) {
		return false, &stanza.Error{Type: stanza.Wait, Condition: "resource-constraint",
			Text: fmt.Sprintf("%s has %d messages waiting already; try again later", to, m.maxPerUser)}
	}
	if err != nil {
		return false, fmt.Errorf("offline: storing a message: %w", err)
	}
	return true, nil
}

func (m *Module) seal(owner jid.JID, plain []byte) ([]byte, error) {
	out := make([]byte, 1, 1+m.aead.NonceSize()+len(plain)+m.aead.Overhead())
	out[0] = sealVersion
	nonce := make([]byte, m.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return m.aead.Seal(out, nonce, plain, []byte(owner.String())), nil
}

var errTampered = errors.New("offline: a stored message failed its integrity check")

func (m *Module) open(owner jid.JID, sealed []byte) ([]byte, error) {
	ns := m.aead.NonceSize()
	if len(sealed) < 1+ns+m.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errTampered
	}
	plain, err := m.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(owner.String()))
	if err != nil {
		return nil, errTampered
	}
	return plain, nil
}

// flush hands a user's waiting messages to the session that just became
// available, oldest first, then deletes them.
func (m *Module) flush(ctx context.Context, s session.Session) {
	owner := s.JID().Bare()
	msgs, err := m.store.List(ctx, owner.String())
	if err != nil {
		m.host.Logger().Error("offline: reading messages failed", "err", err)
		return
	}
	if len(msgs) == 0 {
		return
	}
	ids := make([]int64, 0, len(msgs))
	tampered := 0
	for _, msg := range msgs {
		plain, err := m.open(owner, msg.Data)
		if err != nil {
			tampered++
			continue
		}
		el, err := xmlstream.ParseElement(plain, stanza.NSClient)
		if err != nil {
			tampered++
			continue
		}
		el.SetAttr("to", s.JID().String())
		s.Deliver(el)
		ids = append(ids, msg.ID)
	}
	if tampered > 0 {
		// The owner is named so the admin can tell them; content never.
		// The rows stay for inspection until retention removes them.
		m.host.Logger().Error("offline: stored messages were altered or damaged and were not delivered",
			"jid", owner.String(), "count", tampered)
	}
	if err := m.store.Delete(ctx, owner.String(), ids); err != nil {
		m.host.Logger().Error("offline: deleting delivered messages failed", "err", err)
	}
}
