package register

import (
	"context"
	"errors"
	"time"

	"parley/internal/dataform"
	"parley/internal/invites"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/adhoc"
)

const (
	// NSPars is XEP-0379's pre-authentication token element.
	NSPars = "urn:xmpp:pars:0"
	// NSInvite is XEP-0401's stream feature: this server takes invites.
	NSInvite = "urn:xmpp:invite"
	// InviteNode is the users' command that makes an invite.
	InviteNode = "urn:xmpp:invite#invite"
	// userInviteTTL is how long an invite a user makes stays valid.
	userInviteTTL = 7 * 24 * time.Hour
)

// tokenKey marks, in a stream's pre-authentication values, the invite
// token the stream showed.
type tokenKey struct{}

func invalidInvite(err error) *stanza.Error {
	if errors.Is(err, invites.ErrInvalid) {
		return stanza.ItemNotFound("this invite is unknown, used up or expired")
	}
	return stanza.AsError(err)
}

// preauthToken takes XEP-0379's <preauth token='…'/> before
// registration: a valid invite lets the stream register once.
func (m *Module) preauthToken(_ context.Context, iq module.PreAuthIQ) (*xmlstream.Element, error) {
	if iq.Type != "set" {
		return nil, stanza.BadRequest("preauth is an IQ set")
	}
	token := iq.Payload.Attr("token")
	if token == "" {
		return nil, stanza.BadRequest("preauth needs a token")
	}
	inv := m.policy().Invites
	if inv == nil {
		return nil, stanza.ServiceUnavailable()
	}
	if _, err := inv.Check(token, iq.Domain, m.now()); err != nil {
		return nil, invalidInvite(err)
	}
	iq.Stream[tokenKey{}] = token
	return nil, nil
}

// befriend makes the invite's inviter and the new account mutual
// contacts (both subscriptions), as the inviter asked.
func (m *Module) befriend(ctx context.Context, account jid.JID, inviter string) {
	if inviter == "" {
		return
	}
	in, err := jid.Parse(inviter)
	if err != nil || !m.host.IsLocal(in.Domain()) {
		return // checked when the invite was made; a remote inviter is left out
	}
	r := m.host.Store().Roster()
	for _, p := range [][2]jid.JID{{account, in}, {in, account}} {
		if _, err := r.Put(ctx, p[0].String(), storage.RosterItem{Contact: p[1].String(), Subscription: "both"}, 0); err != nil {
			m.host.Logger().Error("register: adding the inviter as a contact failed", "err", err)
		}
	}
}

// Commands offers users the invite command when UserInvites is on.
func (m *Module) Commands() []adhoc.Command {
	if p := m.policy(); !p.UserInvites || p.Invites == nil {
		return nil
	}
	return []adhoc.Command{{
		Node: InviteNode, Name: "Invite someone to this server",
		Run: func(_ context.Context, from jid.JID, _ *dataform.Form) (adhoc.Result, error) {
			token, _, err := m.policy().Invites.Create(invites.Spec{
				Host: from.Domain(), Uses: 1, TTL: userInviteTTL, Contact: from.Bare().String()}, m.now())
			if err != nil {
				return adhoc.Result{}, err
			}
			uri := invites.URI(from.Domain(), token)
			return adhoc.Result{Note: "Send this link to the person you invite; it creates one account within 7 days, with you as a contact: " + uri}, nil
		},
	}}
}
