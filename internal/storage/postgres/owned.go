package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"parley/internal/storage"
)

// Helpers shared by the per-user repositories (roster, offline, kv), whose
// rows all hang off accounts through an owner column.

// errNoAccount is what an operation on a missing owner reports: callers only
// need to know the account is not there, not which constraint said so.
var errNoAccount = fmt.Errorf("no such account: %w", storage.ErrNotFound)

// foreignKeyViolation is SQLSTATE foreign_key_violation.
const foreignKeyViolation = "23503"

// ownerError maps the foreign key violation, which is how an insert of an
// owned row fails for a missing account, to ErrNotFound.
func ownerError(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == foreignKeyViolation {
		return errNoAccount
	}
	return err
}

// Row locks on the owner's account row, taken first in every multi-statement
// write so concurrent transactions on one owner queue in one place.
//
// keyShare only stops the account being deleted; it is what the foreign key
// check takes anyway, but taking it up front keeps a concurrent account
// deletion, which locks the account and then the owned rows, from
// deadlocking against a write that locked an owned row first.
// noKeyUpdate also excludes other noKeyUpdate holders, to serialise
// check-then-insert sequences, yet still lets other repositories insert
// rows for the same owner (their foreign key checks take keyShare).
const (
	keyShare    = "FOR KEY SHARE"
	noKeyUpdate = "FOR NO KEY UPDATE"
)

func lockAccount(ctx context.Context, tx *sql.Tx, owner, mode string) error {
	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE jid = $1 `+mode, owner).Scan(&one); {
	case err == sql.ErrNoRows:
		return errNoAccount
	case err != nil:
		return fmt.Errorf("lock account: %w", err)
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
