package muc

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"parley/internal/seal"
	"parley/internal/storage"
)

// sealedStore keeps what rooms say sealed under the server key
// (storage.key_file): the configuration (name, description, subject,
// password hash, occupant-id secret, vCard), the archived messages with
// the nicknames in them, and affiliation reasons. Each record is bound to
// its place (the room, the message id, the affiliated JID), so a record
// copied elsewhere does not open. Room JIDs, affiliated JIDs and
// affiliations, message ids and stamps stay in clear: rooms are found by
// JID, the archive is paged by id and time, and retention deletes by
// stamp.
//
// Records stored in clear by earlier versions are read as they are, and
// sealed by sealClear at start.
type sealedStore struct {
	raw storage.MUC
	s   *seal.Sealer
	log *slog.Logger
}

var _ storage.MUC = sealedStore{}

// reasonPrefix marks a sealed affiliation reason (the column is text).
// A clear reason that happens to start with it fails to open and is
// shown as it is.
const reasonPrefix = "sealed:"

// maxReasonBytes keeps a sealed, base64-encoded reason within the
// column's limit.
const maxReasonBytes = (storage.MaxRosterTextBytes-len(reasonPrefix))/4*3 - 40

func newSealedStore(raw storage.MUC, key []byte, log *slog.Logger) (sealedStore, error) {
	s, err := seal.New(key)
	if err != nil {
		return sealedStore{}, err
	}
	return sealedStore{raw: raw, s: s, log: log}, nil
}

func configAD(room string) []byte      { return seal.AD("muc room config", room) }
func messageAD(room, id string) []byte { return seal.AD("muc message", room, id) }
func reasonAD(room, affiliate string) []byte {
	return seal.AD("muc affiliation reason", room, affiliate)
}

// opened returns the plain form of a sealed record, or the record itself
// when an earlier version stored it in clear (JSON or XML, whose first
// byte no sealed blob has).
func (st sealedStore) opened(what string, data, ad []byte) ([]byte, error) {
	if len(data) == 0 || data[0] == '{' || data[0] == '<' {
		return data, nil
	}
	plain, err := st.s.Open(data, ad)
	if errors.Is(err, seal.ErrWrongKey) {
		return nil, fmt.Errorf("muc: %s was sealed under another server key (storage.key_file lost or replaced)", what)
	}
	if err != nil {
		return nil, fmt.Errorf("muc: %s is damaged or was altered: %w", what, err)
	}
	return plain, nil
}

func (st sealedStore) openRoom(r storage.MUCRoom) (storage.MUCRoom, error) {
	var err error
	r.Config, err = st.opened("the configuration of "+r.JID, r.Config, configAD(r.JID))
	return r, err
}

func (st sealedStore) sealReason(room string, a storage.MUCAffiliation) storage.MUCAffiliation {
	if a.Reason == "" {
		return a
	}
	reason := a.Reason
	if len(reason) > maxReasonBytes {
		reason = reason[:maxReasonBytes]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	a.Reason = reasonPrefix + base64.RawStdEncoding.EncodeToString(st.s.Seal([]byte(reason), reasonAD(room, a.JID)))
	return a
}

func (st sealedStore) openReason(room string, a storage.MUCAffiliation) storage.MUCAffiliation {
	enc, ok := strings.CutPrefix(a.Reason, reasonPrefix)
	if !ok {
		return a
	}
	blob, err := base64.RawStdEncoding.DecodeString(enc)
	if err != nil {
		return a
	}
	if plain, err := st.s.Open(blob, reasonAD(room, a.JID)); err == nil {
		a.Reason = string(plain)
	} else {
		// A reason is a courtesy: one that does not open is not worth
		// failing the room over, and is not shown sealed either.
		a.Reason = ""
	}
	return a
}

func (st sealedStore) PutRoom(ctx context.Context, r storage.MUCRoom) error {
	r.Config = st.s.Seal(r.Config, configAD(r.JID))
	return st.raw.PutRoom(ctx, r)
}

func (st sealedStore) Room(ctx context.Context, room string) (storage.MUCRoom, error) {
	r, err := st.raw.Room(ctx, room)
	if err != nil {
		return r, err
	}
	return st.openRoom(r)
}

func (st sealedStore) Rooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	rs, err := st.raw.Rooms(ctx, service)
	if err != nil {
		return nil, err
	}
	for i := range rs {
		if rs[i], err = st.openRoom(rs[i]); err != nil {
			return nil, err
		}
	}
	return rs, nil
}

func (st sealedStore) DeleteRoom(ctx context.Context, room string) error {
	return st.raw.DeleteRoom(ctx, room)
}

func (st sealedStore) SetAffiliation(ctx context.Context, room string, a storage.MUCAffiliation) error {
	return st.raw.SetAffiliation(ctx, room, st.sealReason(room, a))
}

func (st sealedStore) Affiliations(ctx context.Context, room string) ([]storage.MUCAffiliation, error) {
	as, err := st.raw.Affiliations(ctx, room)
	for i := range as {
		as[i] = st.openReason(room, as[i])
	}
	return as, err
}

func (st sealedStore) AppendMessage(ctx context.Context, room string, m storage.MUCMessage) (storage.MUCMessage, error) {
	plain := m.Data
	m.Data = st.s.Seal(plain, messageAD(room, m.ID))
	got, err := st.raw.AppendMessage(ctx, room, m)
	got.Data = plain
	return got, err
}

func (st sealedStore) Messages(ctx context.Context, room string, q storage.MUCQuery) (storage.MUCPage, error) {
	page, err := st.raw.Messages(ctx, room, q)
	if err != nil {
		return page, err
	}
	// A message that does not open (altered, or sealed under a lost
	// key) is left out, so one bad row does not take the room's history
	// and archive with it; the count still includes it.
	kept := page.Messages[:0]
	for _, m := range page.Messages {
		data, err := st.opened(fmt.Sprintf("message %s of %s", m.ID, room), m.Data, messageAD(room, m.ID))
		if err != nil {
			st.log.Error("muc: archived message withheld", "err", err)
			continue
		}
		m.Data = data
		kept = append(kept, m)
	}
	page.Messages = kept
	return page, nil
}

func (st sealedStore) ReplaceMessage(ctx context.Context, room, id string, data []byte) error {
	return st.raw.ReplaceMessage(ctx, room, id, st.s.Seal(data, messageAD(room, id)))
}

func (st sealedStore) DeleteMessagesBefore(ctx context.Context, t time.Time) (int, error) {
	return st.raw.DeleteMessagesBefore(ctx, t)
}

// sealClear seals what earlier versions stored in clear in the rooms of
// service. It runs once at start, before the service takes stanzas, so
// nothing changes a room under it; its work is bounded by the rooms and
// the archive retention keeps.
func (st sealedStore) sealClear(ctx context.Context, service string) (rooms, messages int, err error) {
	rs, err := st.raw.Rooms(ctx, service)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range rs {
		if len(r.Config) > 0 && r.Config[0] == '{' {
			if r.Config, err = UpgradeConfig(r.Config); err != nil {
				return rooms, messages, fmt.Errorf("room %s: %w", r.JID, err)
			}
			if err := st.PutRoom(ctx, r); err != nil {
				return rooms, messages, err
			}
			rooms++
		}
		affs, err := st.raw.Affiliations(ctx, r.JID)
		if err != nil {
			return rooms, messages, err
		}
		for _, a := range affs {
			if a.Reason != "" && !strings.HasPrefix(a.Reason, reasonPrefix) {
				if err := st.SetAffiliation(ctx, r.JID, a); err != nil {
					return rooms, messages, err
				}
			}
		}
		q := storage.MUCQuery{Max: storage.MaxArchivePage}
		for {
			page, err := st.raw.Messages(ctx, r.JID, q)
			if err != nil {
				return rooms, messages, err
			}
			for _, m := range page.Messages {
				if len(m.Data) > 0 && m.Data[0] == '<' {
					if err := st.ReplaceMessage(ctx, r.JID, m.ID, m.Data); err != nil {
						return rooms, messages, err
					}
					messages++
				}
			}
			if page.Complete || len(page.Messages) == 0 {
				break
			}
			q.After = page.Messages[len(page.Messages)-1].ID
		}
	}
	return rooms, messages, nil
}
