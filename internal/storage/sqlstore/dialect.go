package sqlstore

import (
	"database/sql"
	"fmt"
	"time"

	"parley/internal/storage"
)

// Dialect is what differs between the databases behind the one SQL
// implementation. Everything else, statements included, is shared.
type Dialect struct {
	// Name prefixes every error ("sqlite", "postgres").
	Name string

	// Schema is the database's schema history: the tables are the same,
	// their column types and tuning are not.
	Schema storage.Migrator

	// Time encodes a timestamp parameter, already whole microseconds in
	// UTC: SQLite keeps Unix microseconds in an INTEGER column,
	// PostgreSQL a timestamptz. Reading needs no dialect: scanTime takes
	// either.
	Time func(time.Time) any

	// ReadTx are the options of the read transactions that must see one
	// snapshot (an archive page with its cursors and count). SQLite's
	// read transactions are snapshots already and take no options;
	// PostgreSQL's default READ COMMITTED would see each statement's own.
	ReadTx *sql.TxOptions

	// SingleWriter is true where write statements run one at a time
	// (SQLite's one writer connection and write lock): a statement that
	// checks and inserts cannot race another writer, so it needs no
	// transaction and no row lock around it.
	SingleWriter bool

	// Row lock clauses appended to a SELECT inside a write transaction,
	// or "" where a write transaction excludes every other writer anyway
	// (SQLite begins each one IMMEDIATE, taking the database's one write
	// lock). LockUpdate excludes every other locker of the row;
	// LockNoKeyUpdate serialises check-then-insert sequences on an owner
	// while still letting inserts that reference the row go on; and
	// LockKeyShare only keeps the row from being deleted.
	LockUpdate, LockNoKeyUpdate, LockKeyShare string

	// InList returns a condition that col is one of the values of the
	// list parameter param, and List encodes a []string or []int64 for
	// it: one parameter however many values (SQLite caps the parameters
	// of a statement, so it gets a JSON array; PostgreSQL an array).
	InList func(col, param string) string
	List   func(values any) (any, error)

	// Param is the placeholder of the n-th parameter (from 1) in a
	// statement generated with its parameters in order. PostgreSQL
	// numbers them ($n); SQLite takes anonymous ? fastest: it treats $n
	// as a name and finds each by a linear search when binding, which the
	// 448 parameters of an archive batch INSERT feel.
	Param func(n int) string

	// Typed spells out a parameter's type where the database cannot
	// infer it from a column: in the VALUES rows feeding an INSERT ...
	// SELECT, PostgreSQL would take them all for text.
	Typed func(param string, t ColumnType) string

	// PendingSeq is the value a new or renewed subscription request gets
	// for pending_in.seq, which orders an owner's requests: PostgreSQL
	// draws it from the column's sequence; SQLite, which has no
	// sequences, takes the owner's highest plus one under its write lock.
	PendingSeq string
	// PendingSealedSeq is the same for pending_sealed.seq.
	PendingSealedSeq string

	// True is the literal of a true boolean column (SQLite keeps 0 and 1
	// in INTEGER columns), written into a statement so that a partial
	// index on the column can serve it.
	True string

	// IsForeignKey and IsUnique tell the constraint violations apart
	// from other errors; only the drivers know their error types.
	IsForeignKey, IsUnique func(error) bool
}

// ColumnType names the column types Typed is asked about.
type ColumnType int

const (
	TimeColumn ColumnType = iota
	BoolColumn
	BlobColumn
)

// scanTime reads a timestamp in either encoding Dialect.Time writes
// (int64 Unix microseconds or time.Time) and returns it in UTC; NULL, from
// an outer join with nothing to join, reads as the zero time.
type scanTime struct{ t *time.Time }

func (s scanTime) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.t = time.Time{}
	case int64:
		*s.t = time.UnixMicro(v).UTC()
	case time.Time:
		*s.t = v.UTC()
	default:
		return fmt.Errorf("timestamp column holds a %T", src)
	}
	return nil
}
