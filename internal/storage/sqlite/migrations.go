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
	{
		Version: 2,
		Name:    "roster, offline messages, key-value store",
		Statements: []string{
			// groups is a JSON array of sorted, distinct names
			// (storage.EncodeGroups); ask and approved are 0 or 1.
			`CREATE TABLE roster_items (
				owner        TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				contact      TEXT NOT NULL,
				name         TEXT NOT NULL,
				groups       TEXT NOT NULL,
				subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
				ask          INTEGER NOT NULL CHECK (ask IN (0, 1)),
				approved     INTEGER NOT NULL CHECK (approved IN (0, 1)),
				PRIMARY KEY (owner, contact)
			) STRICT, WITHOUT ROWID`,
			`CREATE TABLE roster_versions (
				owner   TEXT PRIMARY KEY NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				version INTEGER NOT NULL
			) STRICT, WITHOUT ROWID`,
			// seq orders an owner's requests oldest first; it is assigned
			// under the write lock as that owner's highest plus one.
			`CREATE TABLE pending_in (
				owner   TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				contact TEXT NOT NULL,
				stanza  BLOB NOT NULL,
				seq     INTEGER NOT NULL,
				PRIMARY KEY (owner, contact)
			) STRICT`,
			`CREATE INDEX pending_in_order ON pending_in (owner, seq)`,
			// AUTOINCREMENT so an id is never reused after its message is
			// deleted: callers hand ids out as message identifiers.
			// stored is Unix microseconds (UTC), like accounts.created.
			`CREATE TABLE offline_messages (
				id     INTEGER PRIMARY KEY AUTOINCREMENT,
				owner  TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				stored INTEGER NOT NULL,
				data   BLOB NOT NULL
			) STRICT`,
			`CREATE INDEX offline_messages_owner ON offline_messages (owner, id)`,
			`CREATE INDEX offline_messages_stored ON offline_messages (stored)`,
			// A rowid table, not WITHOUT ROWID: values may reach 1 MiB,
			// and large rows make WITHOUT ROWID b-trees inefficient.
			`CREATE TABLE kv (
				owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				ns    TEXT NOT NULL,
				key   TEXT NOT NULL,
				value BLOB NOT NULL,
				PRIMARY KEY (owner, ns, key)
			) STRICT`,
		},
	},
}}
