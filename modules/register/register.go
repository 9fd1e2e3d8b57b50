// Package register implements In-Band Registration (XEP-0077): creating an
// account from the client before logging in (only when the admin opened
// registration, and limited per source address), changing one's password
// and cancelling one's account once logged in.
package register

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"parley/internal/admin"
	"parley/internal/invites"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/throttle"
	"parley/internal/xmlstream"
)

const (
	NS        = "jabber:iq:register"
	NSFeature = "http://jabber.org/features/iq-register"
)

type Module struct {
	policy func() Policy // read per request: a reload may change it
	now    func() time.Time
	host   module.Host

	mu      sync.Mutex
	perHour int // what perAddr was made for
	perAddr *throttle.Limiter
}

// Policy is who may register in band, and what follows a registration.
type Policy struct {
	Open              bool     // with Open false only invited streams register
	PerAddressPerHour int      // registrations from one address (0: no limit)
	MaxAccounts       int      // no registration once the server holds this many; 0 = no cap
	NotifyAdmins      []string // told of each account registered in band
	// Invites let a stream that showed a valid token (XEP-0379) register
	// while registration is closed (XEP-0401); nil = no invites.
	Invites *invites.Store
	// UserInvites offers users an ad-hoc command to invite others.
	UserInvites bool
}

// New returns the module; policy is asked at each registration.
func New(policy func() Policy) *Module {
	return &Module{policy: policy, now: time.Now}
}

// limiter is the per-address limiter for perHour, made anew when the
// policy's number changed (the counts start over then).
func (m *Module) limiter(perHour int) *throttle.Limiter {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.perAddr == nil || m.perHour != perHour {
		m.perAddr, m.perHour = throttle.New(perHour, time.Hour), perHour
	}
	return m.perAddr
}

func (*Module) Name() string { return "register" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	name := xmlstream.Name{Space: NS, Local: "query"}
	// Both are registered whatever the policy says now: a reload may
	// open registration or start taking invites.
	h.HandlePreAuthIQ(name, m.preAuth)
	h.HandlePreAuthIQ(xmlstream.Name{Space: NSPars, Local: "preauth"}, m.preauthToken)
	h.AddStreamFeature(func(fc module.FeatureContext) *xmlstream.Element {
		if fc.Authenticated || !fc.Secure {
			return nil
		}
		switch p := m.policy(); {
		case p.Open:
			return xmlstream.New(NSFeature, "register")
		case p.Invites != nil:
			return xmlstream.New(NSInvite, "register")
		}
		return nil
	})
	h.HandleIQ(module.Account, "get", name, m.getAuthenticated)
	h.HandleIQ(module.Account, "set", name, m.setAuthenticated)
	h.AddFeature(module.Server, NS)
	return nil
}

func form(instructions string, username string) *xmlstream.Element {
	q := xmlstream.New(NS, "query")
	q.AddChild(xmlstream.New(NS, "instructions").AddText(instructions))
	if username != "" {
		q.AddChild(xmlstream.New(NS, "registered"))
		q.AddChild(xmlstream.New(NS, "username").AddText(username))
	} else {
		q.AddChild(xmlstream.New(NS, "username"))
	}
	q.AddChild(xmlstream.New(NS, "password"))
	return q
}

func field(q *xmlstream.Element, name string) (string, bool) {
	el := q.Child(NS, name)
	if el == nil {
		return "", false
	}
	return el.Text(), true
}

func (m *Module) preAuth(ctx context.Context, iq module.PreAuthIQ) (*xmlstream.Element, error) {
	policy := m.policy()
	open := policy.Open
	token, invited := iq.Stream[tokenKey{}].(string)
	if !open && !invited {
		if policy.Invites == nil {
			// XEP-0077 §3.1: a server without in-band registration.
			se := stanza.ServiceUnavailable()
			se.Text = "in-band registration is closed on this server"
			return nil, se
		}
		return nil, stanza.NotAllowed("registration on this server is by invitation only")
	}
	if iq.Type == "get" {
		return form("Choose a username and password to register with this server.", ""), nil
	}
	if iq.Payload.Child(NS, "remove") != nil {
		return nil, stanza.NotAuthorized("log in to cancel an account")
	}
	user, ok1 := field(iq.Payload, "username")
	pass, ok2 := field(iq.Payload, "password")
	if !ok1 || !ok2 || user == "" || pass == "" {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "a username and a password are required"}
	}
	bare, err := jid.New(user, iq.Domain, "")
	if err != nil {
		return nil, stanza.JIDMalformed("that username is not allowed")
	}
	// The address is charged before the account exists, so failed
	// attempts count too: probing for names costs the same as creating.
	if !m.limiter(policy.PerAddressPerHour).Spend(iq.Addr) {
		return nil, &stanza.Error{Type: stanza.Wait, Condition: "resource-constraint",
			Text: "too many registrations from your address; try again later"}
	}
	if max := policy.MaxAccounts; max > 0 {
		n, err := m.host.Store().Users().Count(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("register: counting accounts: %w", err)
		}
		if n >= max {
			return nil, &stanza.Error{Type: stanza.Cancel, Condition: "resource-constraint",
				Text: "this server has all the accounts it takes; ask its admin"}
		}
	}
	var inv invites.Invite
	// An invite shown is used also while registration is open: it may
	// make the account an admin or give it a contact.
	if invited {
		// The use is taken before the account exists, so that two
		// streams cannot both spend the last one.
		if inv, err = policy.Invites.Use(token, iq.Domain, m.now()); err != nil {
			delete(iq.Stream, tokenKey{})
			return nil, invalidInvite(err)
		}
	}
	err = m.host.Accounts().Create(ctx, bare, pass)
	if err != nil && invited {
		if rerr := policy.Invites.Release(inv.ID); rerr != nil {
			m.host.Logger().Error("register: giving back an invite's use failed", "err", rerr)
		}
	}
	switch {
	case errors.Is(err, storage.ErrExists):
		return nil, stanza.Conflict("that username is taken")
	case err != nil:
		return nil, fmt.Errorf("register: creating an account: %w", err)
	}
	m.host.Logger().Info("register: account created in band", "jid", bare.String(), "invite", inv.ID)
	if invited {
		delete(iq.Stream, tokenKey{}) // one account per stream and token
		m.befriend(ctx, bare, inv.Contact)
		if inv.Admin {
			if err := policy.Invites.AddAdmin(bare.String(), inv.ID, m.now()); err != nil {
				m.host.Logger().Error("register: recording an admin invite's account as admin failed", "jid", bare.String(), "err", err)
			} else {
				m.host.Logger().Info("register: account made admin by its invite", "jid", bare.String(), "invite", inv.ID)
			}
		}
	}
	for _, a := range policy.NotifyAdmins {
		m.host.Route(ctx, admin.Notice(iq.Domain, a, "chat", "New account registered: "+bare.String(), ""))
	}
	return nil, nil
}

func (m *Module) getAuthenticated(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if !iq.From.Bare().Equal(iq.To) {
		return nil, stanza.Forbidden("")
	}
	return form("You are registered. Send a new password to change it.", iq.To.Local()), nil
}

func (m *Module) setAuthenticated(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if !iq.From.Bare().Equal(iq.To) {
		return nil, stanza.Forbidden("")
	}
	if iq.Payload.Child(NS, "remove") != nil {
		// XEP-0077 §3.2: the account goes with all its data.
		if err := m.host.Accounts().Delete(ctx, iq.To); err != nil {
			return nil, fmt.Errorf("register: cancelling: %w", err)
		}
		m.host.Logger().Info("register: account cancelled in band", "jid", iq.To.String())
		return nil, nil
	}
	user, _ := field(iq.Payload, "username")
	pass, ok := field(iq.Payload, "password")
	if !ok || pass == "" {
		return nil, stanza.BadRequest("a new password is required")
	}
	if user != "" {
		if u, err := jid.New(user, iq.To.Domain(), ""); err != nil || !u.Equal(iq.To) {
			return nil, stanza.NotAuthorized("you can only change your own password")
		}
	}
	if err := m.host.Accounts().SetPassword(ctx, iq.To, pass); err != nil {
		return nil, &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: "that password is not allowed"}
	}
	return nil, nil
}
