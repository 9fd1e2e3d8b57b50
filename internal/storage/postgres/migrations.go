package postgres

import "parley/internal/storage"

// migrator holds the PostgreSQL schema history. Append new migrations; never
// edit a released one.
//
// JIDs and hash names use the "C" collation so ORDER BY is byte order, the
// same as SQLite and Go's sort, whatever the database's locale.
var migrator = storage.Migrator{
	// Serialises concurrent migrators of the same schema (two processes
	// starting at once). The first key is constant to parley; the lock is
	// released with the transaction.
	Lock: `SELECT pg_advisory_xact_lock(1885434466, hashtext(current_schema()))`,
	Migrations: []storage.Migration{
		{
			Version: 1,
			Name:    "accounts and credentials",
			Statements: []string{
				`CREATE TABLE accounts (
					jid     TEXT COLLATE "C" PRIMARY KEY,
					domain  TEXT COLLATE "C" NOT NULL,
					created TIMESTAMPTZ NOT NULL
				)`,
				`CREATE INDEX accounts_domain ON accounts (domain, jid)`,
				`CREATE TABLE credentials (
					jid        TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					hash       TEXT COLLATE "C" NOT NULL,
					salt       BYTEA NOT NULL,
					iterations INTEGER NOT NULL,
					stored_key BYTEA NOT NULL,
					server_key BYTEA NOT NULL,
					PRIMARY KEY (jid, hash)
				)`,
			},
		},
	},
}
