package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"parley/internal/storage"
)

// Helpers shared by the per-user repositories, whose rows all hang off
// accounts through an owner column.

// errNoAccount is what an operation on a missing owner reports: callers
// only need to know the account is not there, not which constraint said so.
var errNoAccount = fmt.Errorf("no such account: %w", storage.ErrNotFound)

// ownerError maps the foreign key violation, which is how an insert of an
// owned row fails for a missing account, to ErrNotFound.
func (s *Store) ownerError(err error) error {
	if s.d.IsForeignKey(err) {
		return errNoAccount
	}
	return err
}

// lockAccount checks that owner exists inside a write transaction and
// locks the account row with lock (a Dialect clause), taken first in every
// multi-statement write so concurrent transactions on one owner queue in
// one place and in one order.
func lockAccount(ctx context.Context, tx *sql.Tx, owner, lock string) error {
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE jid = $1 `+lock, owner).Scan(&one); {
	case err == sql.ErrNoRows:
		return errNoAccount
	case err != nil:
		return fmt.Errorf("look up account: %w", err)
	}
	return nil
}

// countOwned counts owner's rows in table, failing with ErrNotFound when the
// account does not exist; one statement, so both facts come from one
// snapshot. table is always a constant of this package.
func countOwned(ctx context.Context, db *sql.DB, table, owner string) (int, error) {
	var n int
	err := db.QueryRowContext(ctx,
		`SELECT (SELECT COUNT(*) FROM `+table+` WHERE owner = $1) FROM accounts WHERE jid = $1`, owner).Scan(&n)
	switch {
	case err == sql.ErrNoRows:
		return 0, errNoAccount
	case err != nil:
		return 0, err
	}
	return n, nil
}

// deleteOwned runs a DELETE of owner's rows and returns how many went.
// Deleting nothing is fine, unless the account itself is missing; that is
// checked only then, so the common case costs one statement.
func deleteOwned(ctx context.Context, db *sql.DB, owner, query string, args ...any) (int64, error) {
	res, err := db.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, err
	}
	if n > 0 {
		return n, nil
	}
	var one int
	switch err := db.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE jid = $1`, owner).Scan(&one); {
	case err == sql.ErrNoRows:
		return 0, errNoAccount
	case err != nil:
		return 0, fmt.Errorf("look up account: %w", err)
	}
	return 0, nil
}

// retentionBatch bounds how many rows one retention statement deletes: on
// SQLite every statement holds the single write lock, and on either
// database a run over a large table must not hold its locks for long.
const retentionBatch = 5000

// deleteBefore deletes the rows of table whose column stamp is before t,
// in batches by the table's key column, and returns how many went. table,
// key and stamp are constants of this package.
func (s *Store) deleteBefore(ctx context.Context, table, key, stamp string, t time.Time) (int, error) {
	cutoff := s.d.Time(storage.CeilMicro(t))
	total := 0
	for {
		res, err := s.w.ExecContext(ctx, `
			DELETE FROM `+table+` WHERE `+key+` IN (
				SELECT `+key+` FROM `+table+` WHERE `+stamp+` < $1 LIMIT $2)`, cutoff, retentionBatch)
		if err != nil {
			return total, err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, err
		}
		total += int(n)
		if n < retentionBatch {
			return total, nil
		}
	}
}

// nonNil maps a nil slice to an empty one: the drivers bind nil as NULL,
// which the NOT NULL columns reject.
func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func rollbackOnError(tx *sql.Tx, err *error) {
	if *err != nil {
		_ = tx.Rollback() // the original error is the one worth reporting
	}
}
