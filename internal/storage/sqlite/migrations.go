package sqlite

import "parley/internal/storage"

// migrator holds the SQLite schema history. Append new migrations; never edit
// a released one. Tables are STRICT so a type mix-up fails loudly instead of
// SQLite storing whatever it is given.
var migrator = storage.Migrator{Migrations: []storage.Migration{
	{
		Version: 1,
		Name:    "accounts and credentials",
		Statements: []string{
			// created is Unix microseconds (UTC): an integer sorts and
			// compares correctly, unlike SQLite's text timestamps.
			`CREATE TABLE accounts (
				jid     TEXT PRIMARY KEY NOT NULL,
				domain  TEXT NOT NULL,
				created INTEGER NOT NULL
			) STRICT, WITHOUT ROWID`,
			`CREATE INDEX accounts_domain ON accounts (domain, jid)`,
			`CREATE TABLE credentials (
				jid        TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				hash       TEXT NOT NULL,
				salt       BLOB NOT NULL,
				iterations INTEGER NOT NULL,
				stored_key BLOB NOT NULL,
				server_key BLOB NOT NULL,
				PRIMARY KEY (jid, hash)
			) STRICT, WITHOUT ROWID`,
		},
	},
}}
