package muc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
)

// Roles (XEP-0045 §5.1).
const (
	roleModerator   = "moderator"
	roleParticipant = "participant"
	roleVisitor     = "visitor"
	roleNone        = "none"
)

// config is a room's configuration, stored as JSON. The occupant-id
// secret and the subject live here too, so a persistent room keeps them.
type config struct {
	Name        string `json:"name,omitempty"`
	Desc        string `json:"desc,omitempty"`
	Persistent  bool   `json:"persistent,omitempty"`
	Public      bool   `json:"public,omitempty"`
	MembersOnly bool   `json:"membersonly,omitempty"`
	Moderated   bool   `json:"moderated,omitempty"`
	// Password is the clear password earlier versions stored; upgrade
	// turns it into PasswordHash when the configuration is read.
	Password      string `json:"password,omitempty"`
	PasswordHash  string `json:"passwordhash,omitempty"`
	NonAnonymous  bool   `json:"nonanonymous,omitempty"` // whois = anyone
	MaxUsers      int    `json:"maxusers,omitempty"`     // 0: no limit
	ChangeSubject bool   `json:"changesubject,omitempty"`
	AllowInvites  bool   `json:"allowinvites,omitempty"`
	Subject       string `json:"subject,omitempty"`
	SubjectBy     string `json:"subjectby,omitempty"` // nick
	// SubjectAt is when the subject was set, told to joiners in a
	// <delay/> so they can show how old it is.
	SubjectAt time.Time `json:"subjectat,omitzero"`
	// NoArchive turns the archive of a persistent room off; archiving is
	// the default, so configurations stored before it existed archive.
	NoArchive bool   `json:"noarchive,omitempty"`
	VCard     string `json:"vcard,omitempty"` // the owners' vCard (XEP-0486), serialised
	Secret    []byte `json:"secret"`
}

// defaultConfig is what a new room starts with: public, open, temporary,
// semi-anonymous (XEP-0045's usual defaults).
func defaultConfig() config {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return config{Public: true, Secret: secret}
}

type occupant struct {
	nick     string
	bare     jid.JID
	sessions []jid.JID // full JIDs joined under this nick, oldest first
	role     string
	presence *xmlstream.Element // the last available presence, as sent
}

type historyEntry struct {
	stamp time.Time
	msg   *xmlstream.Element // as broadcast, with from = room/nick
	id    string             // the room's stanza-id, "" when not archived
}

// room is a live room. Its fields are guarded by mu; gone is set when the
// room was destroyed or emptied, so a handler that looked it up just
// before can start again.
type room struct {
	m         *Module
	jid       jid.JID
	mu        sync.Mutex
	gone      bool
	cfg       config
	locked    bool // created, waiting for its owner's configuration
	stored    bool // the room row exists in storage
	affs      map[string]storage.MUCAffiliation
	occupants map[string]*occupant // by nick
	history   []historyEntry
	// avatarHashes are the SHA-1 hashes of the vCard's photos, kept
	// with the vCard for disco#info and presence.
	avatarHashes []string
}

func newRoom(m *Module, rj jid.JID, cfg config) *room {
	return &room{m: m, jid: rj, cfg: cfg, affs: map[string]storage.MUCAffiliation{}, occupants: map[string]*occupant{}}
}

func (m *Module) loadRoom(ctx context.Context, rj jid.JID, stored storage.MUCRoom) (*room, error) {
	var cfg config
	if err := json.Unmarshal(stored.Config, &cfg); err != nil {
		return nil, fmt.Errorf("muc: room %s has a broken configuration: %w", rj, err)
	}
	cfg.upgrade()
	r := newRoom(m, rj, cfg)
	r.stored = true
	r.loadAvatar()
	affs, err := m.store.Affiliations(ctx, rj.String())
	if err != nil {
		return nil, fmt.Errorf("muc: load affiliations of %s: %w", rj, err)
	}
	for _, a := range affs {
		r.affs[a.JID] = a
	}
	page, err := m.store.Messages(ctx, rj.String(), storage.MUCQuery{Max: historySize, Last: true})
	if err != nil {
		return nil, fmt.Errorf("muc: load history of %s: %w", rj, err)
	}
	for _, msg := range page.Messages {
		el, err := xmlstream.ParseElement(msg.Data, stanza.NSClient)
		if err != nil || el.Name.Local != "message" || isTombstone(el) {
			continue // damage or a moderation tombstone: not history
		}
		// The archived real JID is for the archive's readers only.
		r.history = append(r.history, historyEntry{stamp: msg.Stamp, msg: withoutChildren(el, isUserX), id: msg.ID})
	}
	return r, nil
}

// save writes the configuration of a persistent room, with all its
// affiliations the first time.
func (r *room) save(ctx context.Context) error {
	if !r.cfg.Persistent {
		return nil
	}
	b, err := json.Marshal(r.cfg)
	if err != nil {
		return fmt.Errorf("muc: encode the configuration of %s: %w", r.jid, err)
	}
	if err := r.m.store.PutRoom(ctx, storage.MUCRoom{JID: r.jid.String(), Config: b}); err != nil {
		return err
	}
	if !r.stored {
		r.stored = true
		for _, a := range r.affs {
			if err := r.m.store.SetAffiliation(ctx, r.jid.String(), a); err != nil {
				return err
			}
		}
	}
	return nil
}

// unstore removes a room that stopped being persistent or was destroyed.
func (r *room) unstore(ctx context.Context) error {
	if !r.stored {
		return nil
	}
	r.stored = false
	if err := r.m.store.DeleteRoom(ctx, r.jid.String()); err != nil && !isNotFound(err) {
		return err
	}
	return nil
}

// setAffiliation changes one affiliation in memory and, for a stored
// room, in storage.
func (r *room) setAffiliation(ctx context.Context, a storage.MUCAffiliation) error {
	if r.stored {
		if err := r.m.store.SetAffiliation(ctx, r.jid.String(), a); err != nil {
			return err
		}
	}
	if a.Affiliation == storage.AffNone {
		delete(r.affs, a.JID)
	} else {
		r.affs[a.JID] = a
	}
	return nil
}

// affiliation of a real JID: its bare JID's, else its domain's.
func (r *room) affiliation(j jid.JID) string {
	if a, ok := r.affs[j.Bare().String()]; ok {
		return a.Affiliation
	}
	if a, ok := r.affs[j.Domain()]; ok {
		return a.Affiliation
	}
	return storage.AffNone
}

// defaultRole is the role an occupant gets on entering (XEP-0045 §5.1.2).
func (r *room) defaultRole(aff string) string {
	switch aff {
	case storage.AffOwner, storage.AffAdmin:
		return roleModerator
	case storage.AffMember:
		return roleParticipant
	}
	if r.cfg.Moderated {
		return roleVisitor
	}
	return roleParticipant
}

// occupantBySession finds the occupant a full JID joined as.
func (r *room) occupantBySession(full jid.JID) *occupant {
	for _, o := range r.occupants {
		for _, s := range o.sessions {
			if s.Equal(full) {
				return o
			}
		}
	}
	return nil
}

func (r *room) occupantsOf(bare jid.JID) []*occupant {
	var out []*occupant
	for _, o := range r.occupants {
		if o.bare.Equal(bare) {
			out = append(out, o)
		}
	}
	return out
}

func (r *room) nickJID(nick string) jid.JID {
	j, _ := r.jid.WithResource(nick)
	return j
}

// occupantID is XEP-0421's id: stable for one real bare JID in one room,
// and unlinkable across rooms because of the room's secret.
func (r *room) occupantID(bare jid.JID) string {
	mac := hmac.New(sha256.New, r.cfg.Secret)
	mac.Write([]byte(bare.String()))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil)[:18])
}

// canSeeJIDs says whether recipient may learn occupants' real JIDs.
func (r *room) canSeeJIDs(recipient *occupant) bool {
	return r.cfg.NonAnonymous || (recipient != nil && recipient.role == roleModerator)
}

func (r *room) isModerator(o *occupant) bool { return o != nil && o.role == roleModerator }

// item builds the muc#user <item/> describing o to someone who may or may
// not see real JIDs.
func (r *room) item(o *occupant, role string, full jid.JID, withJID bool) *xmlstream.Element {
	it := xmlstream.New(NSUser, "item", "affiliation", r.affiliation(o.bare), "role", role)
	if withJID {
		it.SetAttr("jid", full.String())
	}
	return it
}

// presenceOf builds the presence of occupant o as sent to recipient's
// session to; codes are muc#user status codes.
func (r *room) presenceOf(o *occupant, to jid.JID, recipient *occupant, typ string, codes []string, extra ...*xmlstream.Element) *xmlstream.Element {
	var p *xmlstream.Element
	if o.presence != nil {
		p = o.presence.Copy()
	} else {
		p = xmlstream.New(stanza.NSClient, "presence")
	}
	p.RemoveAttr("type")
	if typ != "" {
		p.SetAttr("type", typ)
	}
	p.SetAttr("from", r.nickJID(o.nick).String())
	p.SetAttr("to", to.String())
	role := o.role
	if typ == "unavailable" {
		role = roleNone
	}
	x := xmlstream.New(NSUser, "x")
	it := r.item(o, role, o.sessions[0], r.canSeeJIDs(recipient) || recipient == o)
	sub(x, it)
	for _, e := range extra {
		if e.Name.Local == "item-nick" {
			it.SetAttr("nick", e.Attr("nick"))
			continue
		}
		if e.Name.Local == "reason" || e.Name.Local == "actor" {
			sub(it, e.Copy())
			continue
		}
		sub(x, e.Copy())
	}
	for _, c := range codes {
		sub(x, xmlstream.New(NSUser, "status", "code", c))
	}
	sub(p, x)
	sub(p, xmlstream.New(NSOccupantID, "occupant-id", "id", r.occupantID(o.bare)))
	return p
}

// broadcastPresence sends o's presence to every occupant; self gets the
// codes of selfCodes in addition to codes.
func (r *room) broadcastPresence(o *occupant, typ string, codes, selfCodes []string, out *outbox, extra ...*xmlstream.Element) {
	for _, rec := range r.occupants {
		c := codes
		if rec == o {
			c = append(append([]string{}, codes...), selfCodes...)
		}
		for _, s := range rec.sessions {
			out.add(r.presenceOf(o, s, rec, typ, c, extra...))
		}
	}
	if _, in := r.occupants[o.nick]; !in {
		// o has just left the room: its own sessions still hear it.
		c := append(append([]string{}, codes...), selfCodes...)
		for _, s := range o.sessions {
			out.add(r.presenceOf(o, s, o, typ, c, extra...))
		}
	}
}

// statusCodes of a room that every self-presence repeats.
func (r *room) roomCodes() []string {
	var c []string
	if r.cfg.NonAnonymous {
		c = append(c, "100")
	}
	if r.archiving() {
		c = append(c, "170") // the room keeps an archive
	}
	return c
}

func isNotFound(err error) bool { return errors.Is(err, storage.ErrNotFound) }

func isInvalid(err error) bool { return errors.Is(err, storage.ErrInvalid) }
