package muc

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// NSVCardUpdate is XEP-0153's presence payload, which XEP-0486 §6.2
// documents for announcing a room's avatar.
const NSVCardUpdate = "vcard-temp:x:update"

// maxVCardBytes bounds a room's vCard, which lives in its stored
// configuration: room avatars are small icons.
const maxVCardBytes = 256 << 10

// getVCard answers a vCard request on the room (XEP-0486 §3.3): anyone
// may read it; a room without one has an empty vCard.
func (r *room) getVCard() (*xmlstream.Element, *stanza.Error) {
	if r.cfg.VCard == "" {
		return xmlstream.New(NSVCard, "vCard"), nil
	}
	v, err := xmlstream.ParseElement([]byte(r.cfg.VCard), stanza.NSClient)
	if err != nil {
		r.m.host.Logger().Error("muc: a room's stored vCard is damaged", "room", r.jid.String(), "err", err)
		return nil, stanza.InternalServerError()
	}
	return v, nil
}

// setVCard stores the owner's vCard (XEP-0486 §3.2); an empty one
// removes the avatar. Occupants hear of the change through status code
// 104 and the room's vcard-temp:x:update presence.
func (r *room) setVCard(ctx context.Context, from jid.JID, v *xmlstream.Element, out *outbox) *stanza.Error {
	if r.affiliation(from) != storage.AffOwner {
		return stanza.Forbidden("only owners may set the room's vCard")
	}
	hashes, se := photoHashes(v)
	if se != nil {
		return se
	}
	text := ""
	if v.FirstElement() != nil {
		text = v.String()
	}
	if len(text) > maxVCardBytes {
		return stanza.PolicyViolation("the vCard is too large for a room")
	}
	old, oldHashes := r.cfg.VCard, r.avatarHashes
	r.cfg.VCard, r.avatarHashes = text, hashes
	if err := r.save(ctx); err != nil {
		r.cfg.VCard, r.avatarHashes = old, oldHashes
		return r.m.storageError(err, "saving a room's vCard")
	}
	r.notifyConfigChange([]string{"104"}, out)
	for _, o := range r.occupants {
		for _, s := range o.sessions {
			out.add(r.avatarPresence(s))
		}
	}
	return nil
}

// photoHashes are the XEP-0153 hashes (SHA-1 of the decoded image) of
// every PHOTO of a vCard; a PHOTO that is not valid base64 is refused.
func photoHashes(v *xmlstream.Element) ([]string, *stanza.Error) {
	var hashes []string
	for p := range v.Elements() {
		if p.Name.Space != NSVCard || p.Name.Local != "PHOTO" {
			continue
		}
		bin := p.Child(NSVCard, "BINVAL")
		if bin == nil {
			continue // an EXTVAL photo: nothing the room can hash
		}
		data, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(bin.Text()), ""))
		if err != nil || len(data) == 0 {
			return nil, stanza.BadRequest("the PHOTO's BINVAL is not base64 image data")
		}
		sum := sha1.Sum(data)
		hashes = append(hashes, hex.EncodeToString(sum[:]))
	}
	return hashes, nil
}

// avatarPresence is the room's presence from its bare JID announcing the
// avatar hash (XEP-0486 §6.2); an empty <photo/> says there is none.
func (r *room) avatarPresence(to jid.JID) *xmlstream.Element {
	p := xmlstream.New(stanza.NSClient, "presence", "from", r.jid.String(), "to", to.String())
	x := sub(p, xmlstream.New(NSVCardUpdate, "x"))
	photo := sub(x, xmlstream.New(NSVCardUpdate, "photo"))
	if len(r.avatarHashes) > 0 {
		photo.AddText(r.avatarHashes[0])
	}
	return p
}

// loadAvatar computes the hashes of a stored vCard.
func (r *room) loadAvatar() {
	if r.cfg.VCard == "" {
		return
	}
	v, err := xmlstream.ParseElement([]byte(r.cfg.VCard), stanza.NSClient)
	if err != nil {
		r.m.host.Logger().Error("muc: a room's stored vCard is damaged", "room", r.jid.String(), "err", err)
		return
	}
	r.avatarHashes, _ = photoHashes(v)
}
