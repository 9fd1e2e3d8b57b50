package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"parley/internal/storage"
)

// muc implements storage.MUC. It holds no state of its own.
type muc struct {
	db *sql.DB
}

var _ storage.MUC = (*muc)(nil)

// MUC returns the multi-user chat repository.
func (s *Store) MUC() storage.MUC { return &muc{db: s.db} }

// uniqueViolation is SQLSTATE unique_violation.
const uniqueViolation = "23505"

var errNoRoom = fmt.Errorf("no such room: %w", storage.ErrNotFound)

// roomError maps the foreign key violation of a row for a missing room to
// ErrNotFound and a taken stanza id to ErrExists.
func roomError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case foreignKeyViolation:
			return errNoRoom
		case uniqueViolation:
			return fmt.Errorf("%w: %w", storage.ErrExists, err)
		}
	}
	return err
}

func (m *muc) PutRoom(ctx context.Context, r storage.MUCRoom) error {
	if err := storage.ValidateRoomJID(r.JID); err != nil {
		return err
	}
	if err := storage.ValidateBlob("room config", r.Config); err != nil {
		return err
	}
	if _, err := m.db.ExecContext(ctx, `
		INSERT INTO muc_rooms (jid, service, config, created) VALUES ($1, $2, $3, $4)
		ON CONFLICT (jid) DO UPDATE SET config = excluded.config`,
		r.JID, storage.ServiceOf(r.JID), nonNil(r.Config), storage.StoredTime()); err != nil {
		return fmt.Errorf("postgres: put room %s: %w", r.JID, err)
	}
	return nil
}

func (m *muc) Room(ctx context.Context, room string) (storage.MUCRoom, error) {
	if err := storage.ValidateRoomJID(room); err != nil {
		return storage.MUCRoom{}, err
	}
	r := storage.MUCRoom{JID: room}
	var created time.Time
	switch err := m.db.QueryRowContext(ctx, `SELECT config, created FROM muc_rooms WHERE jid = $1`, room).Scan(&r.Config, &created); {
	case err == sql.ErrNoRows:
		return r, fmt.Errorf("postgres: room %s: %w", room, storage.ErrNotFound)
	case err != nil:
		return r, fmt.Errorf("postgres: room %s: %w", room, err)
	}
	r.Config = nonNil(r.Config)
	r.Created = created.UTC()
	return r, nil
}

func (m *muc) Rooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	rows, err := m.db.QueryContext(ctx, `SELECT jid, config, created FROM muc_rooms WHERE service = $1 ORDER BY jid`, service)
	if err != nil {
		return nil, fmt.Errorf("postgres: rooms of %s: %w", service, err)
	}
	defer rows.Close()
	var out []storage.MUCRoom
	for rows.Next() {
		var (
			r       storage.MUCRoom
			created time.Time
		)
		if err := rows.Scan(&r.JID, &r.Config, &created); err != nil {
			return nil, fmt.Errorf("postgres: rooms of %s: %w", service, err)
		}
		r.Config = nonNil(r.Config)
		r.Created = created.UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: rooms of %s: %w", service, err)
	}
	return out, nil
}

func (m *muc) DeleteRoom(ctx context.Context, room string) error {
	if err := storage.ValidateRoomJID(room); err != nil {
		return err
	}
	res, err := m.db.ExecContext(ctx, `DELETE FROM muc_rooms WHERE jid = $1`, room)
	if err != nil {
		return fmt.Errorf("postgres: delete room %s: %w", room, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: delete room %s: %w", room, err)
	} else if n == 0 {
		return fmt.Errorf("postgres: delete room %s: %w", room, storage.ErrNotFound)
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

func (m *muc) SetAffiliation(ctx context.Context, room string, a storage.MUCAffiliation) error {
	if err := storage.ValidateRoomJID(room); err != nil {
		return err
	}
	if err := storage.ValidateMUCAffiliation(a); err != nil {
		return err
	}
	if a.Affiliation == storage.AffNone {
		tx, err := m.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("postgres: remove affiliation of %s in %s: %w", a.JID, room, err)
		}
		defer func() { _ = tx.Rollback() }()
		if err := roomExists(ctx, tx, room); err != nil {
			return fmt.Errorf("postgres: remove affiliation of %s in %s: %w", a.JID, room, err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM muc_affiliations WHERE room = $1 AND jid = $2`, room, a.JID); err != nil {
			return fmt.Errorf("postgres: remove affiliation of %s in %s: %w", a.JID, room, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("postgres: remove affiliation of %s in %s: %w", a.JID, room, err)
		}
		return nil
	}
	if _, err := m.db.ExecContext(ctx, `
		INSERT INTO muc_affiliations (room, jid, affiliation, reason) VALUES ($1, $2, $3, $4)
		ON CONFLICT (room, jid) DO UPDATE SET affiliation = excluded.affiliation, reason = excluded.reason`,
		room, a.JID, a.Affiliation, a.Reason); err != nil {
		return fmt.Errorf("postgres: set affiliation of %s in %s: %w", a.JID, room, roomError(err))
	}
	return nil
}

func (m *muc) Affiliations(ctx context.Context, room string) ([]storage.MUCAffiliation, error) {
	if err := storage.ValidateRoomJID(room); err != nil {
		return nil, err
	}
	tx, err := m.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("postgres: affiliations of %s: %w", room, err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := roomExists(ctx, tx, room); err != nil {
		return nil, fmt.Errorf("postgres: affiliations of %s: %w", room, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT jid, affiliation, reason FROM muc_affiliations WHERE room = $1 ORDER BY jid`, room)
	if err != nil {
		return nil, fmt.Errorf("postgres: affiliations of %s: %w", room, err)
	}
	defer rows.Close()
	var out []storage.MUCAffiliation
	for rows.Next() {
		var a storage.MUCAffiliation
		if err := rows.Scan(&a.JID, &a.Affiliation, &a.Reason); err != nil {
			return nil, fmt.Errorf("postgres: affiliations of %s: %w", room, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: affiliations of %s: %w", room, err)
	}
	return out, nil
}

func (m *muc) AppendMessage(ctx context.Context, room string, msg storage.MUCMessage) (storage.MUCMessage, error) {
	if err := storage.ValidateRoomJID(room); err != nil {
		return storage.MUCMessage{}, err
	}
	if err := storage.ValidateMUCMessage(msg); err != nil {
		return storage.MUCMessage{}, err
	}
	msg.Stamp = storage.CreatedTime(msg.Stamp)
	msg.Data = slices.Clone(nonNil(msg.Data))
	if _, err := m.db.ExecContext(ctx, `
		INSERT INTO muc_messages (room, stanza_id, stamp, data) VALUES ($1, $2, $3, $4)`,
		room, msg.ID, msg.Stamp, msg.Data); err != nil {
		return storage.MUCMessage{}, fmt.Errorf("postgres: archive message %q in %s: %w", msg.ID, room, roomError(err))
	}
	return msg, nil
}

func (m *muc) Messages(ctx context.Context, room string, q storage.MUCQuery) (storage.MUCPage, error) {
	if err := storage.ValidateRoomJID(room); err != nil {
		return storage.MUCPage{}, err
	}
	if err := storage.ValidateMUCQuery(q); err != nil {
		return storage.MUCPage{}, err
	}
	page, err := m.messages(ctx, room, q)
	if err != nil {
		return storage.MUCPage{}, fmt.Errorf("postgres: query the archive of %s: %w", room, err)
	}
	return page, nil
}

// messages reads the bounds and the page in one read transaction, so they
// come from one snapshot.
func (m *muc) messages(ctx context.Context, room string, q storage.MUCQuery) (page storage.MUCPage, err error) {
	tx, err := m.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return page, err
	}
	defer func() { _ = tx.Rollback() }()
	if err := roomExists(ctx, tx, room); err != nil {
		return page, err
	}
	w := whereBuilder{args: []any{room}, conds: []string{"room = $1"}}
	if !q.Start.IsZero() {
		w.add("stamp >= ?", storage.CeilMicro(q.Start))
	}
	if !q.End.IsZero() {
		w.add("stamp <= ?", q.End.Truncate(time.Microsecond))
	}
	seqOf := func(id string) (int64, error) {
		var seq int64
		switch err := tx.QueryRowContext(ctx, `SELECT seq FROM muc_messages WHERE room = $1 AND stanza_id = $2`, room, id).Scan(&seq); {
		case err == sql.ErrNoRows:
			return 0, fmt.Errorf("no archived message with id %q: %w", id, storage.ErrNotFound)
		case err != nil:
			return 0, fmt.Errorf("look up message %q: %w", id, err)
		}
		return seq, nil
	}
	if err := w.seqBounds(q.AfterID, q.BeforeID, seqOf); err != nil {
		return page, err
	}
	w.ids(q.IDs)
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM muc_messages WHERE `+w.where(), w.args...).Scan(&page.Count); err != nil {
		return page, fmt.Errorf("count: %w", err)
	}
	// Paging bounds come after the count: RSM counts the whole result set.
	if err := w.seqBounds(q.After, q.Before, seqOf); err != nil {
		return page, err
	}
	backwards := q.Last || q.Before != ""
	order := "ASC"
	if backwards {
		order = "DESC"
	}
	// One row more than the page tells whether the page is complete.
	w.args = append(w.args, q.Max+1)
	rows, err := tx.QueryContext(ctx, `
		SELECT stanza_id, stamp, data FROM muc_messages
		WHERE `+w.where()+`
		ORDER BY seq `+order+`
		LIMIT $`+strconv.Itoa(len(w.args)), w.args...)
	if err != nil {
		return page, fmt.Errorf("page: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			msg   storage.MUCMessage
			stamp time.Time
		)
		if err := rows.Scan(&msg.ID, &stamp, &msg.Data); err != nil {
			return page, fmt.Errorf("page: %w", err)
		}
		msg.Stamp = stamp.UTC()
		msg.Data = nonNil(msg.Data)
		page.Messages = append(page.Messages, msg)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("page: %w", err)
	}
	page.Complete = len(page.Messages) <= q.Max
	page.Messages = page.Messages[:min(len(page.Messages), q.Max)]
	if backwards {
		slices.Reverse(page.Messages)
	}
	if len(page.Messages) == 0 {
		page.Messages = nil
	}
	return page, nil
}

func (m *muc) ReplaceMessage(ctx context.Context, room, id string, data []byte) error {
	if err := storage.ValidateRoomJID(room); err != nil {
		return err
	}
	if err := storage.ValidateMUCMessage(storage.MUCMessage{ID: id, Data: data}); err != nil {
		return err
	}
	res, err := m.db.ExecContext(ctx, `UPDATE muc_messages SET data = $3 WHERE room = $1 AND stanza_id = $2`, room, id, nonNil(data))
	if err != nil {
		return fmt.Errorf("postgres: replace message %q in %s: %w", id, room, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("postgres: replace message %q in %s: %w", id, room, err)
	} else if n == 0 {
		return fmt.Errorf("postgres: replace message %q in %s: %w", id, room, storage.ErrNotFound)
	}
	return nil
}

func (m *muc) DeleteMessagesBefore(ctx context.Context, t time.Time) (int, error) {
	res, err := m.db.ExecContext(ctx, `DELETE FROM muc_messages WHERE stamp < $1`, storage.CeilMicro(t))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete room messages stamped before %v: %w", t, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("postgres: delete room messages stamped before %v: %w", t, err)
	}
	return int(n), nil
}
