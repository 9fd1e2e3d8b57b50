package sqlite

import (
	"encoding/json"
	"errors"
	"time"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"parley/internal/storage/sqlstore"
)

// dialect is what SQLite needs of the shared SQL implementation.
var dialect = sqlstore.Dialect{
	Name:   "sqlite",
	Schema: migrator,
	// Unix microseconds in an INTEGER column: an integer sorts and
	// compares correctly, unlike SQLite's text timestamps.
	Time: func(t time.Time) any { return t.UnixMicro() },
	// A read transaction on the query_only pool is a snapshot already.
	ReadTx: nil,
	// One writer connection, and every write transaction begins
	// IMMEDIATE (_txlock in the writer's DSN), holding the database's one
	// write lock: writes never interleave, so no row locks.
	SingleWriter: true,
	LockUpdate:   "", LockNoKeyUpdate: "", LockKeyShare: "",
	// A JSON array in one parameter: SQLite caps the parameters of a
	// statement.
	InList: func(col, param string) string { return col + " IN (SELECT value FROM json_each(" + param + "))" },
	List: func(values any) (any, error) {
		b, err := json.Marshal(values)
		return string(b), err
	},
	Param: func(int) string { return "?" },
	True:  "1",
	// SQLite's columns take what they are given; STRICT tables check it.
	Typed: func(param string, _ sqlstore.ColumnType) string { return param },
	// No sequences: the owner's highest plus one, unique per owner because
	// the statement runs under the write lock.
	PendingSeq:       `(SELECT COALESCE(MAX(seq), 0) + 1 FROM pending_in WHERE owner = $1)`,
	PendingSealedSeq: `(SELECT COALESCE(MAX(seq), 0) + 1 FROM pending_sealed WHERE owner = $1)`,
	// The connection reports extended result codes, so the code names the
	// constraint kind.
	IsForeignKey: func(err error) bool { return code(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY },
	IsUnique: func(err error) bool {
		c := code(err)
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	},
}

func code(err error) int {
	var se *msqlite.Error
	if errors.As(err, &se) {
		return se.Code()
	}
	return 0
}
