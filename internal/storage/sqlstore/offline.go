package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"parley/internal/storage"
)

// offline implements storage.Offline.
type offline struct{ *Store }

var _ storage.Offline = offline{}

const offlineInsert = `INSERT INTO offline_messages (owner, stored, data) VALUES ($1, $2, $3) RETURNING id`

func (o offline) Replace(ctx context.Context, owner string, id int64, data []byte) error {
	if err := storage.ValidateBlob("offline message", data); err != nil {
		return err
	}
	if _, err := o.w.ExecContext(ctx, `UPDATE offline_messages SET data = $3 WHERE owner = $1 AND id = $2`, owner, id, nonNil(data)); err != nil {
		return o.errorf("replace offline message %d of %s: %w", id, owner, err)
	}
	return nil
}

func (o offline) Push(ctx context.Context, owner string, data []byte, max int) (storage.OfflineMessage, error) {
	return o.PushAt(ctx, owner, time.Time{}, data, max)
}

func (o offline) PushAt(ctx context.Context, owner string, stored time.Time, data []byte, max int) (storage.OfflineMessage, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.OfflineMessage{}, err
	}
	if err := storage.ValidateBlob("offline message", data); err != nil {
		return storage.OfflineMessage{}, err
	}
	msg := storage.OfflineMessage{Stored: storage.CreatedTime(stored), Data: nonNil(data)}
	if max <= 0 {
		if err := o.w.QueryRowContext(ctx, offlineInsert, owner, o.d.Time(msg.Stored), msg.Data).Scan(&msg.ID); err != nil {
			return storage.OfflineMessage{}, o.errorf("push offline message for %s: %w", owner, o.ownerError(err))
		}
		return msg, nil
	}
	if err := o.pushLimited(ctx, owner, &msg, max); err != nil {
		return storage.OfflineMessage{}, o.errorf("push offline message for %s: %w", owner, err)
	}
	return msg, nil
}

// pushLimited inserts msg unless owner already has max messages, counting
// and inserting in one statement. Where writers run one at a time
// (SQLite) that statement is all it takes. Under PostgreSQL's READ
// COMMITTED two pushes could both count max-1 and both insert, so there
// the statement runs after taking a lock on the account row that
// concurrent pushes for the same owner also take: starting after the lock
// was granted, its snapshot includes every message the previous holder
// committed.
func (o offline) pushLimited(ctx context.Context, owner string, msg *storage.OfflineMessage, max int) (err error) {
	var (
		tx *sql.Tx
		q  interface {
			QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
		} = o.w
	)
	if !o.d.SingleWriter {
		if tx, err = o.w.BeginTx(ctx, nil); err != nil {
			return err
		}
		defer rollbackOnError(tx, &err)
		if err := lockAccount(ctx, tx, owner, o.d.LockNoKeyUpdate); err != nil {
			return err
		}
		q = tx
	}
	// A missing owner has no messages, so the insert runs and its foreign
	// key rejects it: no row back always means the limit.
	switch err := q.QueryRowContext(ctx, `
		INSERT INTO offline_messages (owner, stored, data)
		SELECT $1, $2, $3
		WHERE (SELECT COUNT(*) FROM offline_messages WHERE owner = $1) < $4
		RETURNING id`, owner, o.d.Time(msg.Stored), msg.Data, max).Scan(&msg.ID); {
	case err == sql.ErrNoRows:
		return fmt.Errorf("limit of %d messages: %w", max, storage.ErrLimit)
	case err != nil:
		return o.ownerError(err)
	}
	if tx != nil {
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
	}
	return nil
}
func (o offline) List(ctx context.Context, owner string) ([]storage.OfflineMessage, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return nil, err
	}
	rows, err := o.r.QueryContext(ctx, `
		SELECT m.id, m.stored, m.data
		FROM accounts a LEFT JOIN offline_messages m ON m.owner = a.jid
		WHERE a.jid = $1
		ORDER BY m.id`, owner)
	if err != nil {
		return nil, o.errorf("list offline messages of %s: %w", owner, err)
	}
	defer rows.Close()
	var (
		out   []storage.OfflineMessage
		found bool
	)
	for rows.Next() {
		var (
			id     sql.NullInt64
			stored time.Time
			data   []byte
		)
		if err := rows.Scan(&id, scanTime{&stored}, &data); err != nil {
			return nil, o.errorf("list offline messages of %s: %w", owner, err)
		}
		found = true
		if id.Valid { // NULL: the owner has no messages
			out = append(out, storage.OfflineMessage{ID: id.Int64, Stored: stored, Data: nonNil(data)})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, o.errorf("list offline messages of %s: %w", owner, err)
	}
	if !found {
		return nil, o.errorf("list offline messages of %s: %w", owner, storage.ErrNotFound)
	}
	return out, nil
}

func (o offline) Delete(ctx context.Context, owner string, ids []int64) error {
	if err := storage.ValidateOwner(owner); err != nil {
		return err
	}
	list, err := o.d.List(ids)
	if err != nil {
		return o.errorf("delete offline messages of %s: %w", owner, err)
	}
	if _, err := deleteOwned(ctx, o.w, owner,
		`DELETE FROM offline_messages WHERE owner = $1 AND `+o.d.InList("id", "$2"), owner, list); err != nil {
		return o.errorf("delete offline messages of %s: %w", owner, err)
	}
	return nil
}

func (o offline) Count(ctx context.Context, owner string) (int, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return 0, err
	}
	n, err := countOwned(ctx, o.r, "offline_messages", owner)
	if err != nil {
		return 0, o.errorf("count offline messages of %s: %w", owner, err)
	}
	return n, nil
}

func (o offline) DeleteBefore(ctx context.Context, t time.Time) (int, error) {
	n, err := o.deleteBefore(ctx, "offline_messages", "id", "stored", t)
	if err != nil {
		return n, o.errorf("delete offline messages stored before %v: %w", t, err)
	}
	return n, nil
}

// Total counts every stored offline message, for the metrics.
func (o offline) Total(ctx context.Context) (int, error) {
	var n int
	if err := o.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM offline_messages`).Scan(&n); err != nil {
		return 0, o.errorf("count offline messages: %w", err)
	}
	return n, nil
}
