package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"time"

	"parley/internal/storage"
)

// offline implements storage.Offline.
type offline struct {
	w, r *sql.DB
}

var _ storage.Offline = (*offline)(nil)

func (o *offline) Push(ctx context.Context, owner string, data []byte, max int) (storage.OfflineMessage, error) {
	return o.PushAt(ctx, owner, time.Time{}, data, max)
}

func (o *offline) PushAt(ctx context.Context, owner string, stored time.Time, data []byte, max int) (storage.OfflineMessage, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.OfflineMessage{}, err
	}
	if err := storage.ValidateBlob("offline message", data); err != nil {
		return storage.OfflineMessage{}, err
	}
	msg := storage.OfflineMessage{Stored: storage.CreatedTime(stored), Data: nonNil(data)}
	// One statement holds the write lock from the count to the insert, so
	// concurrent pushes cannot both pass a count of max-1. A missing owner
	// has no messages, so the insert runs and the foreign key rejects it;
	// no row back therefore always means the limit.
	err := o.w.QueryRowContext(ctx, `
		INSERT INTO offline_messages (owner, stored, data)
		SELECT $1, $2, $3
		WHERE $4 <= 0 OR (SELECT COUNT(*) FROM offline_messages WHERE owner = $1) < $4
		RETURNING id`, owner, msg.Stored.UnixMicro(), msg.Data, max).Scan(&msg.ID)
	switch {
	case err == sql.ErrNoRows:
		return storage.OfflineMessage{}, fmt.Errorf("sqlite: push offline message for %s: limit of %d messages: %w", owner, max, storage.ErrLimit)
	case err != nil:
		return storage.OfflineMessage{}, fmt.Errorf("sqlite: push offline message for %s: %w", owner, ownerError(err))
	}
	return msg, nil
}

func (o *offline) List(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return nil, err
	}
	rows, err := o.r.QueryContext(ctx, `
		SELECT m.id, m.stored, m.data
		FROM accounts a LEFT JOIN offline_messages m ON m.owner = a.jid
		WHERE a.jid = $1
		ORDER BY m.id`, owner)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list offline messages of %s: %w", owner, err)
	}
	defer rows.Close()
	var (
		out   []storage.OfflineMessage
		found bool
	)
	for rows.Next() {
		var (
			id, stored sql.NullInt64
			data       []byte
		)
		if err := rows.Scan(&id, &stored, &data); err != nil {
			return nil, fmt.Errorf("sqlite: list offline messages of %s: %w", owner, err)
		}
		found = true
		if id.Valid { // NULL: the owner has no messages
			out = append(out, storage.OfflineMessage{ID: id.Int64, Stored: time.UnixMicro(stored.Int64).UTC(), Data: nonNil(data)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list offline messages of %s: %w", owner, err)
	}
	if !found {
		return nil, fmt.Errorf("sqlite: list offline messages of %s: %w", owner, storage.ErrNotFound)
	}
	return out, nil
}

func (o *offline) Delete(ctx context.Context, owner string, ids []int64) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	// The ids travel as one JSON array, so any number of them is one
	// statement with one parameter (SQLite caps parameters per statement).
	if _, err := deleteOwned(ctx, o.w, owner,
		`DELETE FROM offline_messages WHERE owner = $1 AND id IN (SELECT value FROM json_each($2))`,
		owner, jsonInts(ids)); err != nil {
		return fmt.Errorf("sqlite: delete offline messages of %s: %w", owner, err)
	}
	return nil
}

func jsonInts(ids []int64) string {
	b := make([]byte, 0, 2+len(ids)*8)
	b = append(b, '[')
	for i, id := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return string(append(b, ']'))
}

func (o *offline) Count(ctx context.Context, owner string) (int, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return 0, err
	}
	n, err := countOwned(ctx, o.r, "offline_messages", owner)
	if err != nil {
		return 0, fmt.Errorf("sqlite: count offline messages of %s: %w", owner, err)
	}
	return n, nil
}

func (o *offline) DeleteBefore(ctx context.Context, t time.Time) (int, error) {
	res, err := o.w.ExecContext(ctx, `DELETE FROM offline_messages WHERE stored < $1`, storage.CeilMicro(t).UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete offline messages stored before %v: %w", t, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete offline messages stored before %v: %w", t, err)
	}
	return int(n), nil
}
