package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"parley/internal/storage"
)

// Helpers shared by the per-user repositories (roster, offline, kv), whose
// rows all hang off accounts through an owner column.

// errNoAccount is what a write for a missing owner reports: callers only
// need to know the account is not there, not which constraint said so.
var errNoAccount = fmt.Errorf("no such account: %w", storage.ErrNotFound)

// ownerError maps SQLite's foreign key violation, the only way an insert of
// an owned row fails for a missing account, to ErrNotFound. The connection
// reports extended result codes, so the code names the constraint kind.
func ownerError(err error) error {
	var se *msqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY {
		return errNoAccount
	}
	return err
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
