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
	{
		Version: 3,
		Name:    "message archive",
		Statements: []string{
			// seq is the archive order that RSM pages through; AUTOINCREMENT
			// so it only grows, even after retention deleted the newest
			// rows. stanza_id is the XEP-0359 id clients see. with_full is
			// the other party as known (full JID when it had a resource),
			// with_bare its bare JID, so a query can filter by either.
			// stamp is Unix microseconds (UTC); outgoing is 0 or 1.
			`CREATE TABLE archive (
				seq       INTEGER PRIMARY KEY AUTOINCREMENT,
				owner     TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				stanza_id TEXT NOT NULL,
				with_full TEXT NOT NULL,
				with_bare TEXT NOT NULL,
				stamp     INTEGER NOT NULL,
				outgoing  INTEGER NOT NULL CHECK (outgoing IN (0, 1)),
				data      BLOB NOT NULL,
				UNIQUE (owner, stanza_id)
			) STRICT`,
			`CREATE INDEX archive_owner ON archive (owner, seq)`,
			`CREATE INDEX archive_with ON archive (owner, with_bare, seq)`,
			`CREATE INDEX archive_stamp ON archive (stamp)`,
		},
	},
	{
		Version: 4,
		Name:    "personal pubsub nodes and items",
		Statements: []string{
			// config is the module's encoded node configuration;
			// created is Unix microseconds (UTC).
			`CREATE TABLE pubsub_nodes (
				owner   TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				node    TEXT NOT NULL,
				config  BLOB NOT NULL,
				created INTEGER NOT NULL,
				PRIMARY KEY (owner, node)
			) STRICT, WITHOUT ROWID`,
			// seq orders a node's items by publication; it is the node's
			// highest plus one, assigned under the write lock, so a
			// republished id moves to the end. Items hang off their node,
			// which hangs off the account.
			`CREATE TABLE pubsub_items (
				owner     TEXT NOT NULL,
				node      TEXT NOT NULL,
				id        TEXT NOT NULL,
				seq       INTEGER NOT NULL,
				publisher TEXT NOT NULL,
				published INTEGER NOT NULL,
				payload   BLOB NOT NULL,
				PRIMARY KEY (owner, node, id),
				FOREIGN KEY (owner, node) REFERENCES pubsub_nodes (owner, node) ON DELETE CASCADE ON UPDATE CASCADE
			) STRICT`,
			`CREATE INDEX pubsub_items_order ON pubsub_items (owner, node, seq)`,
		},
	},
	{
		Version: 5,
		Name:    "multi-user chat rooms, affiliations and archive",
		Statements: []string{
			// Rooms are not accounts, so nothing here references accounts;
			// a room's rows hang off the room. config is the module's
			// encoded configuration; created and stamp are Unix
			// microseconds (UTC).
			`CREATE TABLE muc_rooms (
				jid     TEXT PRIMARY KEY NOT NULL,
				service TEXT NOT NULL,
				config  BLOB NOT NULL,
				created INTEGER NOT NULL
			) STRICT, WITHOUT ROWID`,
			`CREATE INDEX muc_rooms_service ON muc_rooms (service, jid)`,
			`CREATE TABLE muc_affiliations (
				room        TEXT NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				jid         TEXT NOT NULL,
				affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
				reason      TEXT NOT NULL,
				PRIMARY KEY (room, jid)
			) STRICT, WITHOUT ROWID`,
			// seq is the archive order; AUTOINCREMENT so it only grows.
			`CREATE TABLE muc_messages (
				seq       INTEGER PRIMARY KEY AUTOINCREMENT,
				room      TEXT NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE ON UPDATE CASCADE,
				stanza_id TEXT NOT NULL,
				stamp     INTEGER NOT NULL,
				data      BLOB NOT NULL,
				UNIQUE (room, stanza_id)
			) STRICT`,
			`CREATE INDEX muc_messages_room ON muc_messages (room, seq)`,
			`CREATE INDEX muc_messages_stamp ON muc_messages (stamp)`,
		},
	},
	{
		// Renumbered at merge: the lead keeps versions consecutive.
		Version: 6,
		Name:    "pubsub service nodes and items",
		Statements: []string{
			// The nodes of a pubsub service domain (XEP-0060): owner is
			// the service's domain, not an account, so nothing
			// references accounts; otherwise as pubsub_nodes/items.
			`CREATE TABLE pubsub_service_nodes (
				owner   TEXT NOT NULL,
				node    TEXT NOT NULL,
				config  BLOB NOT NULL,
				created INTEGER NOT NULL,
				PRIMARY KEY (owner, node)
			) STRICT, WITHOUT ROWID`,
			`CREATE TABLE pubsub_service_items (
				owner     TEXT NOT NULL,
				node      TEXT NOT NULL,
				id        TEXT NOT NULL,
				seq       INTEGER NOT NULL,
				publisher TEXT NOT NULL,
				published INTEGER NOT NULL,
				payload   BLOB NOT NULL,
				PRIMARY KEY (owner, node, id),
				FOREIGN KEY (owner, node) REFERENCES pubsub_service_nodes (owner, node) ON DELETE CASCADE ON UPDATE CASCADE
			) STRICT`,
			`CREATE INDEX pubsub_service_items_order ON pubsub_service_items (owner, node, seq)`,
		},
	},
}}
