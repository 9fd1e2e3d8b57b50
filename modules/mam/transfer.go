package mam

import (
	"context"
	"errors"
	"fmt"
	"time"

	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/vault"
	"parley/internal/xmlstream"
)

// Archived is one archived message as `parley export` and `parley import`
// move it: the archive id, when it was archived, and the message without
// the owner's stanza-id (the id says it).
type Archived struct {
	ID      string
	Stamp   time.Time
	Message *xmlstream.Element
}

// ArchiveOf returns owner's whole archive, opened, oldest first. A
// message that fails to open is an error: an export must not lose data
// silently. Messages sealed for the owner open only while their key is
// held (never in `parley export`, which runs apart from the server): they
// are left out, with a warning that counts them.
func (m *Module) ArchiveOf(ctx context.Context, owner jid.JID) ([]Archived, error) {
	o := owner.Bare()
	m.writer.sync(ctx)
	var (
		out    []Archived
		locked int
	)
	defer func() {
		if locked > 0 {
			// Only the user's password opens them; the export
			// goes on with the rest.
			m.host.Logger().Warn("mam: sealed messages left out: they open only while the user is logged in", "account", o.String(), "count", locked)
		}
	}()
	q := storage.ArchiveQuery{Max: storage.MaxArchivePage}
	for {
		page, err := m.archive.Query(ctx, o.String(), q)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("mam: reading the archive of %s: %w", o, err)
		}
		for _, am := range page.Messages {
			_, plain, err := m.openEntry(ctx, o, am)
			if errors.Is(err, vault.ErrLocked) {
				locked++
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("mam: message %s of %s: %w", am.ID, o, err)
			}
			el, err := xmlstream.ParseElement(plain, stanza.NSClient)
			if err != nil {
				return nil, fmt.Errorf("mam: message %s of %s is damaged: %w", am.ID, o, err)
			}
			stripStanzaIDs(el, o)
			out = append(out, Archived{ID: am.ID, Stamp: am.Stamp, Message: el})
		}
		if page.Complete || len(page.Messages) == 0 {
			return out, nil
		}
		q.After = page.Messages[len(page.Messages)-1].ID
	}
}

// Restore archives a for owner as the archive keeps a message it saw
// (sealed, with the owner's stanza-id), for `parley import`. Whether it
// was sent or received follows from its from and to. It reports false
// when the archive has a message with that id already, so importing
// twice changes nothing.
func (m *Module) Restore(ctx context.Context, owner jid.JID, a Archived) (bool, error) {
	o := owner.Bare()
	msg, err := CheckRestore(o, a)
	if err != nil {
		return false, err
	}
	from, _ := jid.Parse(msg.Attr("from"))
	to, _ := jid.Parse(msg.Attr("to"))
	am := storage.ArchiveMessage{ID: a.ID, Stamp: storage.CreatedTime(a.Stamp)}
	with := from.String()
	if from.Bare().Equal(o) {
		am.Outgoing, with = true, to.String()
	}
	msg.AddChild(xmlstream.New(NSSID, "stanza-id", "by", o.String(), "id", a.ID))
	am = m.sealEntry(ctx, o, am, with, msg.Append(nil, stanza.NSClient))
	if _, err := m.archive.Append(ctx, o.String(), am); errors.Is(err, storage.ErrExists) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("mam: archiving %s for %s: %w", a.ID, o, err)
	}
	return true, nil
}

// CheckRestore says whether Restore can archive a for owner, without
// writing anything, and returns the message as it would be kept.
func CheckRestore(owner jid.JID, a Archived) (*xmlstream.Element, error) {
	from, errFrom := jid.Parse(a.Message.Attr("from"))
	to, errTo := jid.Parse(a.Message.Attr("to"))
	if errFrom != nil || errTo != nil {
		return nil, fmt.Errorf("mam: archived message %s needs a valid from and to", a.ID)
	}
	if !from.Bare().Equal(owner) && !to.Bare().Equal(owner) {
		return nil, fmt.Errorf("mam: archived message %s is neither from nor to %s", a.ID, owner)
	}
	msg := a.Message.Copy()
	stripStanzaIDs(msg, owner)
	with := from
	if from.Bare().Equal(owner) {
		with = to
	}
	if err := storage.ValidateArchiveMessage(storage.ArchiveMessage{ID: a.ID, With: with.String(), Data: msg.Append(nil, stanza.NSClient)}); err != nil {
		return nil, fmt.Errorf("mam: archived message %s: %w", a.ID, err)
	}
	return msg, nil
}
