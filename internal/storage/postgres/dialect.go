package postgres

import (
	"database/sql"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"parley/internal/storage/sqlstore"
)

// dialect is what PostgreSQL needs of the shared SQL implementation.
var dialect = sqlstore.Dialect{
	Name:   "postgres",
	Schema: migrator,
	// timestamptz; pgx encodes time.Time.
	Time: func(t time.Time) any { return t },
	// READ COMMITTED, the default, gives each statement its own snapshot;
	// a page must see one for its cursors, count and rows.
	ReadTx: &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true},
	// Row locks on the account (or node) row, taken first in every
	// multi-statement write. KEY SHARE only stops the row being deleted;
	// it is what a foreign key check takes anyway, but taking it up front
	// keeps a concurrent account deletion, which locks the account and
	// then the owned rows, from deadlocking against a write that locked
	// an owned row first. NO KEY UPDATE also excludes other NO KEY UPDATE
	// holders, to serialise check-then-insert sequences, yet still lets
	// other repositories insert rows for the same owner.
	LockUpdate:      "FOR UPDATE",
	LockNoKeyUpdate: "FOR NO KEY UPDATE",
	LockKeyShare:    "FOR KEY SHARE",
	// One array parameter, however many values; pgx sends a nil slice as
	// NULL, which = ANY never matches, as an empty list should not.
	InList: func(col, param string) string { return col + " = ANY(" + param + ")" },
	List:   func(values any) (any, error) { return values, nil },
	True:   "TRUE",
	Param:  func(n int) string { return "$" + strconv.Itoa(n) },
	Typed: func(param string, t sqlstore.ColumnType) string {
		switch t {
		case sqlstore.TimeColumn:
			return param + "::timestamptz"
		case sqlstore.BoolColumn:
			return param + "::boolean"
		default:
			return param + "::bytea"
		}
	},
	// The column's own sequence, so requests are ordered without a lock.
	PendingSeq:       "DEFAULT",
	PendingSealedSeq: "DEFAULT",
	IsForeignKey:     func(err error) bool { return sqlstate(err) == foreignKeyViolation },
	IsUnique:         func(err error) bool { return sqlstate(err) == uniqueViolation },
}

// SQLSTATE codes of the constraint violations the repositories map.
const (
	foreignKeyViolation = "23503"
	uniqueViolation     = "23505"
)

func sqlstate(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}
