package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"

	"parley/internal/storage"
)

// muc implements storage.MUC. It holds no state of its own.
type muc struct{ *Store }

var _ storage.MUC = muc{}

var errNoRoom = fmt.Errorf("no such room: %w", storage.ErrNotFound)

var roomArchive = archiveTable{table: "muc_messages", key: "room", parent: "muc_rooms", missing: errNoRoom}

// roomError maps the foreign key violation of a row for a missing room to
// ErrNotFound and a taken stanza id to ErrExists.
func (m muc) roomError(err error) error {
	switch {
	case m.d.IsForeignKey(err):
		return errNoRoom
	case m.d.IsUnique(err):
		return fmt.Errorf("%w: %w", storage.ErrExists, err)
	}
	return err
}

func (m muc) PutRoom(ctx context.Context, r storage.MUCRoom) error {
	if err := storage.ValidateRoomJID(r.JID); err != nil {
		return err
	}
	if err := storage.ValidateBlob("room config", r.Config); err != nil {
		return err
	}
	if _, err := m.w.ExecContext(ctx, `
		INSERT INTO muc_rooms (jid, service, config, created) VALUES ($1, $2, $3, $4)
		ON CONFLICT (jid) DO UPDATE SET config = excluded.config`,
		r.JID, storage.ServiceOf(r.JID), nonNil(r.Config), m.d.Time(storage.StoredTime())); err != nil {
		return m.errorf("put room %s: %w", r.JID, err)
	}
	return nil
}

func (m muc) Room(ctx context.Context, room string) (storage.MUCRoom, error) {
	if err := storage.ValidateRoomJID(room); err != nil {
		return storage.MUCRoom{}, err
	}
	r := storage.MUCRoom{JID: room}
	switch err := m.r.QueryRowContext(ctx, `SELECT config, created FROM muc_rooms WHERE jid = $1`, room).Scan(&r.Config, scanTime{&r.Created}); {
	case err == sql.ErrNoRows:
		return r, m.errorf("room %s: %w", room, storage.ErrNotFound)
	case err != nil:
		return r, m.errorf("room %s: %w", room, err)
	}
	r.Config = nonNil(r.Config)
	return r, nil
}

func (m muc) Rooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	rows, err := m.r.QueryContext(ctx, `SELECT jid, config, created FROM muc_rooms WHERE service = $1 ORDER BY jid`, service)
	if err != nil {
		return nil, m.errorf("rooms of %s: %w", service, err)
	}
	defer rows.Close()
	var out []storage.MUCRoom
	for rows.Next() {
		var r storage.MUCRoom
		if err := rows.Scan(&r.JID, &r.Config, scanTime{&r.Created}); err != nil {
			return nil, m.errorf("rooms of %s: %w", service, err)
		}
		r.Config = nonNil(r.Config)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, m.errorf("rooms of %s: %w", service, err)
	}
	return out, nil
}

func (m muc) DeleteRoom(ctx context.Context, room string) error {
	if err := storage.ValidateRoomJID(room); err != nil {
		return err
	}
	res, err := m.w.ExecContext(ctx, `DELETE FROM muc_rooms WHERE jid = $1`, room)
	if err != nil {
		return m.errorf("delete room %s: %w", room, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return m.errorf("delete room %s: %w", room, err)
	} else if n == 0 {
		return m.errorf("delete room %s: %w", room, storage.ErrNotFound)
	}
	return nil
}

// roomExists is the ErrNotFound check of operations that would otherwise
// succeed silently on a missing room.
func roomExists(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}, room string) error {
	var one int
	switch err := q.QueryRowContext(ctx, `SELECT 1 FROM muc_rooms WHERE jid = $1`, room).Scan(&one); {
	case err == sql.ErrNoRows:
		return errNoRoom
	case err != nil:
		return err
	}
	return nil
}

func (m muc) SetAffiliation(ctx context.Context, room string, a storage.MUCAffiliation) error {
	if err := storage.ValidateRoomJID(room); err != nil {
		return err
	}
	if err := storage.ValidateMUCAffiliation(a); err != nil {
		return err
	}
	if a.Affiliation == storage.AffNone {
		tx, err := m.w.BeginTx(ctx, nil)
		if err != nil {
			return m.errorf("remove affiliation of %s in %s: %w", a.JID, room, err)
		}
		defer func() { _ = tx.Rollback() }()
		if err := roomExists(ctx, tx, room); err != nil {
			return m.errorf("remove affiliation of %s in %s: %w", a.JID, room, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM muc_affiliations WHERE room = $1 AND jid = $2`, room, a.JID); err != nil {
			return m.errorf("remove affiliation of %s in %s: %w", a.JID, room, err)
		}
		if err := tx.Commit(); err != nil {
			return m.errorf("remove affiliation of %s in %s: %w", a.JID, room, err)
		}
		return nil
	}
	if _, err := m.w.ExecContext(ctx, `
		INSERT INTO muc_affiliations (room, jid, affiliation, reason) VALUES ($1, $2, $3, $4)
		ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation, reason = excluded.reason`,
		room, a.JID, a.Affiliation, a.Reason); err != nil {
		return m.errorf("set affiliation of %s in %s: %w", a.JID, room, m.roomError(err))
	}
	return nil
}

func (m muc) Affiliations(ctx context.Context, room string) ([]storage.MUCAffiliation, error) {
	if err := storage.ValidateRoomJID(room); err != nil {
		return nil, err
	}
	tx, err := m.r.BeginTx(ctx, nil)
	if err != nil {
		return nil, m.errorf("affiliations of %s: %w", room, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := roomExists(ctx, tx, room); err != nil {
		return nil, m.errorf("affiliations of %s: %w", room, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT jid, affiliation, reason FROM muc_affiliations WHERE room = $1 ORDER BY jid`, room)
	if err != nil {
		return nil, m.errorf("affiliations of %s: %w", room, err)
	}
	defer rows.Close()
	var out []storage.MUCAffiliation
	for rows.Next() {
		var a storage.MUCAffiliation
		if err := rows.Scan(&a.JID, &a.Affiliation, &a.Reason); err != nil {
			return nil, m.errorf("affiliations of %s: %w", room, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, m.errorf("affiliations of %s: %w", room, err)
	}
	return out, nil
}

func (m muc) AppendMessage(ctx context.Context, room string, msg storage.MUCMessage) (storage.MUCMessage, error) {
	if err := storage.ValidateRoomJID(room); err != nil {
		return storage.MUCMessage{}, err
	}
	if err := storage.ValidateMUCMessage(msg); err != nil {
		return storage.MUCMessage{}, err
	}
	msg.Stamp = storage.CreatedTime(msg.Stamp)
	msg.Data = slices.Clone(nonNil(msg.Data))
	if _, err := m.w.ExecContext(ctx, `
		INSERT INTO muc_messages (room, stanza_id, stamp, data) VALUES ($1, $2, $3, $4)`,
		room, msg.ID, m.d.Time(msg.Stamp), msg.Data); err != nil {
		return storage.MUCMessage{}, m.errorf("archive message %q in %s: %w", msg.ID, room, m.roomError(err))
	}
	return msg, nil
}

func (m muc) Messages(ctx context.Context, room string, q storage.MUCQuery) (storage.MUCPage, error) {
	if err := storage.ValidateRoomJID(room); err != nil {
		return storage.MUCPage{}, err
	}
	if err := storage.ValidateMUCQuery(q); err != nil {
		return storage.MUCPage{}, err
	}
	var (
		page storage.MUCPage
		err  error
	)
	page.Messages, page.Count, page.Complete, err = readPage(ctx, m.Store, roomArchive, room, whereKey("room", room), q, "stanza_id, stamp, data", func(rows *sql.Rows) (storage.MUCMessage, error) {
		var msg storage.MUCMessage
		err := rows.Scan(&msg.ID, scanTime{&msg.Stamp}, &msg.Data)
		msg.Data = nonNil(msg.Data)
		return msg, err
	})
	if err != nil {
		return storage.MUCPage{}, m.errorf("query the archive of %s: %w", room, err)
	}
	return page, nil
}

func (m muc) ReplaceMessage(ctx context.Context, room, id string, data []byte) error {
	if err := storage.ValidateRoomJID(room); err != nil {
		return err
	}
	if err := storage.ValidateMUCMessage(storage.MUCMessage{ID: id, Data: data}); err != nil {
		return err
	}
	res, err := m.w.ExecContext(ctx, `UPDATE muc_messages SET data = $3 WHERE room = $1 AND stanza_id = $2`, room, id, nonNil(data))
	if err != nil {
		return m.errorf("replace message %q in %s: %w", id, room, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return m.errorf("replace message %q in %s: %w", id, room, err)
	} else if n == 0 {
		return m.errorf("replace message %q in %s: %w", id, room, storage.ErrNotFound)
	}
	return nil
}

func (m muc) DeleteMessagesBefore(ctx context.Context, t time.Time) (int, error) {
	n, err := m.deleteBefore(ctx, "muc_messages", "seq", "stamp", t)
	if err != nil {
		return n, m.errorf("delete room messages stamped before %v: %w", t, err)
	}
	return n, nil
}
