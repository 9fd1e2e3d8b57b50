// Package last implements Last Activity (XEP-0012): the server's uptime,
// and for an account the time since its last session ended, shown only to
// the owner and to contacts allowed to see the owner's presence.
//
// Only the logout time is stored, truncated to the minute, and no status
// text: the module contract gives no access to the text of a user's last
// unavailable presence, and a coarse timestamp is all the feature needs.
package last

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

const NS = "jabber:iq:last"

// Where the logout time of an account is kept in the KV store.
const (
	kvNS  = "urn:xmpp:last"
	kvKey = "last"
)

type Module struct {
	host    module.Host
	kv      storage.KV
	now     func() time.Time
	started time.Time
}

func New() *Module { return &Module{now: time.Now} }

func (*Module) Name() string { return "last" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	m.kv = h.Store().KV()
	// Modules start just before the listeners open, which is as close
	// to "the server came up" as a module can see.
	m.started = m.now()
	name := xmlstream.Name{Space: NS, Local: "query"}
	h.HandleIQ(module.Server, "get", name, m.uptime)
	h.HandleIQ(module.Account, "get", name, m.account)
	h.OnSessionEnded(m.ended)
	h.AddFeature(module.Server, NS)
	h.AddFeature(module.Account, NS)
	return nil
}

func query(seconds int64) *xmlstream.Element {
	return xmlstream.New(NS, "query", "seconds", strconv.FormatInt(max(seconds, 0), 10))
}

func (m *Module) uptime(context.Context, module.IQ) (*xmlstream.Element, error) {
	return query(int64(m.now().Sub(m.started) / time.Second)), nil
}

func (m *Module) account(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	owner := iq.To
	if err := m.authorize(ctx, iq); err != nil {
		return nil, err
	}
	// XEP-0012 §3: with an available resource the answer is 0 seconds.
	for _, s := range m.host.Sessions(owner) {
		if avail, _ := s.State().Available(); avail {
			return query(0), nil
		}
	}
	data, err := m.kv.Get(ctx, owner.String(), kvNS, kvKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, stanza.ItemNotFound("no logout has been recorded for this account")
	}
	if err != nil {
		return nil, fmt.Errorf("last: reading the last logout of %s: %w", owner, err)
	}
	unix, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return nil, fmt.Errorf("last: the last logout of %s is damaged: %w", owner, err)
	}
	return query(int64(m.now().Sub(time.Unix(unix, 0)) / time.Second)), nil
}

// authorize lets the owner and the contacts with a presence subscription
// to the owner ask (XEP-0012 §3 and §8: whoever may not see the user's
// presence must get forbidden).
func (m *Module) authorize(ctx context.Context, iq module.IQ) error {
	requester := iq.From.Bare()
	if requester.Equal(iq.To) {
		return nil
	}
	c, ok, err := m.host.Roster().Contact(ctx, iq.To, requester)
	if err != nil {
		return fmt.Errorf("last: %w", err)
	}
	if !ok || !c.ReceivesPresence {
		return stanza.Forbidden("only contacts subscribed to the user's presence may ask")
	}
	return nil
}

// ended records the logout time when the last session of an account
// ends; while another session remains the user has not logged out.
func (m *Module) ended(ctx context.Context, s session.Session) {
	bare := s.JID().Bare()
	if len(m.host.Sessions(bare)) > 0 {
		return
	}
	t := m.now().Truncate(time.Minute).Unix()
	err := m.kv.Put(ctx, bare.String(), kvNS, kvKey, []byte(strconv.FormatInt(t, 10)))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// The account went with its session (anonymous accounts):
		// nothing to remember it by.
	case err != nil:
		m.host.Logger().Error("last: recording a logout failed", "jid", bare.String(), "err", err)
	}
}
