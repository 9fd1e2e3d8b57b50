// Package avatarconv keeps an account's two avatars in step (XEP-0398):
// the User Avatar published through PEP (XEP-0084) and the PHOTO of its
// vcard-temp (XEP-0153, which is what group chats and older clients
// read), and stamps the avatar's hash into the account's presence.
//
// It works on the pep and vcard modules through their small exported
// APIs: it is handed the module list at construction and takes the two
// it needs from it. Conversions write through calls that run no hooks,
// so a conversion never triggers the conversion back.
package avatarconv

import (
	"context"
	"errors"
	"fmt"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/pep"
	"parley/modules/vcard"
)

// Feature is advertised on accounts (XEP-0398 §2).
const Feature = "urn:xmpp:pep-vcard-conversion:0"

// Module is the conversion.
type Module struct {
	host   module.Host
	pep    *pep.Module
	vcard  *vcard.Module
	hashes hashes
}

// New returns the conversion working on the pep and vcard modules found
// in mods; Start fails when either is missing.
func New(mods []module.Module) *Module {
	m := &Module{hashes: hashes{m: map[jid.JID]string{}}}
	for _, mod := range mods {
		switch mod := mod.(type) {
		case *pep.Module:
			m.pep = mod
		case *vcard.Module:
			m.vcard = mod
		}
	}
	return m
}

func (*Module) Name() string { return "avatarconv" }

func (m *Module) Start(h module.Host) error {
	if m.pep == nil || m.vcard == nil {
		return errors.New("avatarconv: needs the pep and vcard modules")
	}
	m.host = h
	m.vcard.OnSet(vcard.SetHook{Check: check, Stored: m.vcardStored})
	m.pep.OnChange(nsMetadata, m.metadataChanged)
	h.OnOutboundPresence(m.decorate)
	h.OnSessionEnded(m.sessionEnded)
	h.AddFeature(module.Account, Feature)
	return nil
}

// check refuses a vCard whose photo cannot be decoded: it could be
// neither converted nor shown.
func check(vc *xmlstream.Element) error {
	_, _, err := photoOf(vc)
	return err
}

// vcardStored converts a client's new vCard photo to a PEP avatar
// (XEP-0398 §3.2): data first, then metadata, whose notification tells
// the contacts.
func (m *Module) vcardStored(ctx context.Context, owner jid.JID, vc *xmlstream.Element) {
	p, ok, err := photoOf(vc)
	if err != nil || !ok {
		// No photo (or the vCard was cleared): nothing to publish. The
		// PEP avatar stays; it is the source modern clients use.
		m.hashes.set(owner, "")
		return
	}
	id := p.id()
	m.hashes.set(owner, id)
	if cur, err := m.currentID(ctx, owner); err != nil {
		m.host.Logger().Warn("avatarconv: reading the avatar metadata failed", "user", owner.String(), "err", err)
		return
	} else if cur == id {
		return // the same image again (a client that saves its whole vCard)
	}
	if err := m.pep.PublishItem(ctx, owner, nsData, id, dataPayload(p)); err != nil {
		m.host.Logger().Warn("avatarconv: publishing the avatar data failed", "user", owner.String(), "err", err)
		return
	}
	if err := m.pep.PublishItem(ctx, owner, nsMetadata, id, metadataPayload(p)); err != nil {
		m.host.Logger().Warn("avatarconv: publishing the avatar metadata failed", "user", owner.String(), "err", err)
	}
}

// currentID is the id of the avatar the metadata node announces, "" when
// there is none.
func (m *Module) currentID(ctx context.Context, owner jid.JID) (string, error) {
	items, _, err := m.pep.ItemsOf(ctx, owner, nsMetadata)
	if err != nil || len(items) == 0 {
		return "", err
	}
	if info := inlineInfo(items[len(items)-1].Payload); info != nil {
		return info.Attr("id"), nil
	}
	return "", nil
}

// metadataChanged converts a client's PEP avatar to the vCard photo
// (XEP-0398 §3.1). Whatever the change (publish, retraction, deletion),
// the vCard follows the metadata node's newest item; empty metadata, or
// none, removes the photo.
func (m *Module) metadataChanged(ctx context.Context, c pep.Change) {
	p, err := m.pepAvatar(ctx, c.Owner)
	if err != nil {
		// The photo is removed rather than left stale: contacts reading
		// the vCard must not keep seeing the previous avatar.
		m.host.Logger().Warn("avatarconv: the PEP avatar cannot be converted", "user", c.Owner.String(), "err", err)
		p = nil
	}
	if err := m.setPhoto(ctx, c.Owner, p); err != nil {
		m.host.Logger().Warn("avatarconv: updating the vCard photo failed", "user", c.Owner.String(), "err", err)
	}
}

// pepAvatar returns the image the metadata node announces, nil for none.
func (m *Module) pepAvatar(ctx context.Context, owner jid.JID) (*photo, error) {
	items, _, err := m.pep.ItemsOf(ctx, owner, nsMetadata)
	if err != nil || len(items) == 0 {
		return nil, err
	}
	info := inlineInfo(items[len(items)-1].Payload)
	if info == nil {
		return nil, nil
	}
	id := info.Attr("id")
	data, _, err := m.pep.ItemsOf(ctx, owner, nsData, id)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("no data item %q", id)
	}
	d := data[0].Payload
	if d.Name.Space != nsData || d.Name.Local != "data" {
		return nil, fmt.Errorf("data item %q is not avatar data", id)
	}
	b, err := decodeBase64(d.Text())
	if err != nil {
		return nil, fmt.Errorf("data item %q is not base64: %w", id, err)
	}
	p := &photo{typ: info.Attr("type"), data: b}
	if p.id() != id {
		// XEP-0398 §3.1: the service SHOULD check the hash.
		return nil, fmt.Errorf("data item %q has SHA-1 %s", id, p.id())
	}
	if p.typ == "" {
		p.typ = "image/png" // XEP-0084 requires the type; PNG is its must-support format
	}
	return p, nil
}

// setPhoto stores p as the vCard's PHOTO (nil removes it), unless the
// vCard already says so. A photo too large for a vCard is left out.
func (m *Module) setPhoto(ctx context.Context, owner jid.JID, p *photo) error {
	vc, found, err := m.vcard.Load(ctx, owner)
	if err != nil {
		return err
	}
	cur, has, _ := photoOf(vc)
	switch {
	case p == nil && !has:
		m.hashes.set(owner, "")
		return nil
	case p != nil && has && cur.id() == p.id() && cur.typ == p.typ:
		m.hashes.set(owner, p.id())
		return nil
	}
	next := withPhoto(vc, p)
	if next.FirstElement() == nil {
		// Nothing but the photo was there: no vCard at all, as when a
		// client clears it.
		if !found {
			m.hashes.set(owner, "")
			return nil
		}
		next = nil
	}
	err = m.vcard.Store(ctx, owner, next)
	var se *stanza.Error
	if errors.As(err, &se) && p != nil {
		m.host.Logger().Info("avatarconv: the avatar is too large for the vCard; the vCard keeps no photo", "user", owner.String(), "bytes", len(p.data))
		return m.setPhoto(ctx, owner, nil)
	}
	if err != nil {
		return err
	}
	hash := ""
	if p != nil {
		hash = p.id()
	}
	m.hashes.set(owner, hash)
	return nil
}
