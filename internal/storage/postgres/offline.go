package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"parley/internal/storage"
)

// offline implements storage.Offline.
type offline struct {
	db *sql.DB
}

var _ storage.Offline = (*offline)(nil)

const offlineInsert = `INSERT INTO offline_messages (owner, stored, data) VALUES ($1, $2, $3) RETURNING id`

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
	if max <= 0 {
		if err := o.db.QueryRowContext(ctx, offlineInsert, owner, msg.Stored, msg.Data).Scan(&msg.ID); err != nil {
			return storage.OfflineMessage{}, fmt.Errorf("postgres: push offline message for %s: %w", owner, ownerError(err))
		}
		return msg, nil
	}
	if err := o.pushLimited(ctx, owner, &msg, max); err != nil {
		return storage.OfflineMessage{}, fmt.Errorf("postgres: push offline message for %s: %w", owner, err)
	}
	return msg, nil
}

// pushLimited inserts msg unless owner already has max messages. Under READ
// COMMITTED two transactions could both count max-1 and both insert, so the
// count runs under a lock on the account row that concurrent pushes for the
// same owner also take.
func (o *offline) pushLimited(ctx context.Context, owner string, msg *storage.OfflineMessage, max int) (err error) {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer rollbackOnError(tx, &err)
	if err := lockAccount(ctx, tx, owner, noKeyUpdate); err != nil {
		return err
	}
	// Count and insert in one statement saves a round trip; it starts after
	// the lock was granted, so its snapshot includes every message that the
	// previous holder committed.
	switch err := tx.QueryRowContext(ctx, `
		INSERT INTO offline_messages (owner, stored, data)
		SELECT $1, $2, $3
		WHERE (SELECT COUNT(*) FROM offline_messages WHERE owner = $1) < $4
		RETURNING id`, owner, msg.Stored, msg.Data, max).Scan(&msg.ID); {
	case err == sql.ErrNoRows:
		return fmt.Errorf("limit of %d messages: %w", max, storage.ErrLimit)
	case err != nil:
		return ownerError(err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (o *offline) List(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return nil, err
	}
	rows, err := o.db.QueryContext(ctx, `
		SELECT m.id, m.stored, m.data
		FROM accounts a LEFT JOIN offline_messages m ON m.owner = a.jid
		WHERE a.jid = $1
		ORDER BY m.id`, owner)
	if err != nil {
		return nil, fmt.Errorf("postgres: list offline messages of %s: %w", owner, err)
	}
	defer rows.Close()
	var (
		out   []storage.OfflineMessage
		found bool
	)
	for rows.Next() {
		var (
			id     sql.NullInt64
			stored sql.NullTime
			data   []byte
		)
		if err := rows.Scan(&id, &stored, &data); err != nil {
			return nil, fmt.Errorf("postgres: list offline messages of %s: %w", owner, err)
		}
		found = true
		if id.Valid { // NULL: the owner has no messages
			out = append(out, storage.OfflineMessage{ID: id.Int64, Stored: stored.Time.UTC(), Data: nonNil(data)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: list offline messages of %s: %w", owner, err)
	}
	if !found {
		return nil, fmt.Errorf("postgres: list offline messages of %s: %w", owner, storage.ErrNotFound)
	}
	return out, nil
}

func (o *offline) Delete(ctx context.Context, owner string, ids []int64) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	// One array parameter, however many ids.
	if _, err := deleteOwned(ctx, o.db, owner,
		`DELETE FROM offline_messages WHERE owner = $1 AND id = ANY($2)`, owner, ids); err != nil {
		return fmt.Errorf("postgres: delete offline messages of %s: %w", owner, err)
	}
	return nil
}

func (o *offline) Count(ctx context.Context, owner string) (int, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return 0, err
	}
	n, err := countOwned(ctx, o.db, "offline_messages", owner)
	if err != nil {
		return 0, fmt.Errorf("postgres: count offline messages of %s: %w", owner, err)
	}
	return n, nil
}

func (o *offline) DeleteBefore(ctx context.Context, t time.Time) (int, error) {
	res, err := o.db.ExecContext(ctx, `DELETE FROM offline_messages WHERE stored < $1`, storage.CeilMicro(t))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete offline messages stored before %v: %w", t, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("postgres: delete offline messages stored before %v: %w", t, err)
	}
	return int(n), nil
}
