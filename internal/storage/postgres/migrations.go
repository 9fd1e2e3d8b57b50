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
		{
			Version: 2,
			Name:    "roster, offline messages, key-value store",
			Statements: []string{
				// groups is a JSON array of sorted, distinct names
				// (storage.EncodeGroups), the same encoding as SQLite's.
				`CREATE TABLE roster_items (
					owner        TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					contact      TEXT COLLATE "C" NOT NULL,
					name         TEXT NOT NULL,
					groups       TEXT NOT NULL,
					subscription TEXT NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
					ask          BOOLEAN NOT NULL,
					approved     BOOLEAN NOT NULL,
					PRIMARY KEY (owner, contact)
				)`,
				// The version row doubles as the lock that serialises an
				// owner's roster writes (see roster.Put).
				`CREATE TABLE roster_versions (
					owner   TEXT COLLATE "C" PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					version BIGINT NOT NULL
				)`,
				`CREATE TABLE pending_in (
					owner   TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					contact TEXT COLLATE "C" NOT NULL,
					stanza  BYTEA NOT NULL,
					seq     BIGSERIAL NOT NULL,
					PRIMARY KEY (owner, contact)
				)`,
				`CREATE INDEX pending_in_order ON pending_in (owner, seq)`,
				`CREATE TABLE offline_messages (
					id     BIGSERIAL PRIMARY KEY,
					owner  TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					stored TIMESTAMPTZ NOT NULL,
					data   BYTEA NOT NULL
				)`,
				// The offline module seals messages, and ciphertext does
				// not compress: skip TOAST's compression attempt.
				`ALTER TABLE offline_messages ALTER COLUMN data SET STORAGE EXTERNAL`,
				`CREATE INDEX offline_messages_owner ON offline_messages (owner, id)`,
				`CREATE INDEX offline_messages_stored ON offline_messages (stored)`,
				`CREATE TABLE kv (
					owner TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					ns    TEXT COLLATE "C" NOT NULL,
					key   TEXT COLLATE "C" NOT NULL,
					value BYTEA NOT NULL,
					PRIMARY KEY (owner, ns, key)
				)`,
			},
		},
		{
			Version: 3,
			Name:    "message archive",
			Statements: []string{
				// seq is the archive order that RSM pages through.
				// stanza_id is the XEP-0359 id clients see. with_full is
				// the other party as known (full JID when it had a
				// resource), with_bare its bare JID, so a query can
				// filter by either.
				`CREATE TABLE archive (
					seq       BIGSERIAL PRIMARY KEY,
					owner     TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					stanza_id TEXT COLLATE "C" NOT NULL,
					with_full TEXT COLLATE "C" NOT NULL,
					with_bare TEXT COLLATE "C" NOT NULL,
					stamp     TIMESTAMPTZ NOT NULL,
					outgoing  BOOLEAN NOT NULL,
					data      BYTEA NOT NULL,
					UNIQUE (owner, stanza_id)
				)`,
				// The archive module seals messages, and ciphertext does
				// not compress: skip TOAST's compression attempt.
				`ALTER TABLE archive ALTER COLUMN data SET STORAGE EXTERNAL`,
				`CREATE INDEX archive_owner ON archive (owner, seq)`,
				`CREATE INDEX archive_with ON archive (owner, with_bare, seq)`,
				`CREATE INDEX archive_stamp ON archive (stamp)`,
			},
		},
		{
			Version: 4,
			Name:    "personal pubsub nodes and items",
			Statements: []string{
				`CREATE TABLE pubsub_nodes (
					owner   TEXT COLLATE "C" NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					node    TEXT COLLATE "C" NOT NULL,
					config  BYTEA NOT NULL,
					created TIMESTAMPTZ NOT NULL,
					PRIMARY KEY (owner, node)
				)`,
				// seq orders a node's items by publication: the node's
				// highest plus one, assigned while the node row is
				// locked, so a republished id moves to the end.
				`CREATE TABLE pubsub_items (
					owner     TEXT COLLATE "C" NOT NULL,
					node      TEXT COLLATE "C" NOT NULL,
					id        TEXT COLLATE "C" NOT NULL,
					seq       BIGINT NOT NULL,
					publisher TEXT NOT NULL,
					published TIMESTAMPTZ NOT NULL,
					payload   BYTEA NOT NULL,
					PRIMARY KEY (owner, node, id),
					FOREIGN KEY (owner, node) REFERENCES pubsub_nodes (owner, node) ON DELETE CASCADE ON UPDATE CASCADE
				)`,
				`CREATE INDEX pubsub_items_order ON pubsub_items (owner, node, seq)`,
			},
		},
		{
			Version: 5,
			Name:    "multi-user chat rooms, affiliations and archive",
			Statements: []string{
				// Rooms are not accounts: a room's rows hang off the room.
				`CREATE TABLE muc_rooms (
					jid     TEXT COLLATE "C" PRIMARY KEY,
					service TEXT COLLATE "C" NOT NULL,
					config  BYTEA NOT NULL,
					created TIMESTAMPTZ NOT NULL
				)`,
				`CREATE INDEX muc_rooms_service ON muc_rooms (service, jid)`,
				`CREATE TABLE muc_affiliations (
					room        TEXT COLLATE "C" NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					jid         TEXT COLLATE "C" NOT NULL,
					affiliation TEXT NOT NULL CHECK (affiliation IN ('owner', 'admin', 'member', 'outcast')),
					reason      TEXT NOT NULL,
					PRIMARY KEY (room, jid)
				)`,
				`CREATE TABLE muc_messages (
					seq       BIGSERIAL PRIMARY KEY,
					room      TEXT COLLATE "C" NOT NULL REFERENCES muc_rooms (jid) ON DELETE CASCADE ON UPDATE CASCADE,
					stanza_id TEXT COLLATE "C" NOT NULL,
					stamp     TIMESTAMPTZ NOT NULL,
					data      BYTEA NOT NULL,
					UNIQUE (room, stanza_id)
				)`,
				`CREATE INDEX muc_messages_room ON muc_messages (room, seq)`,
				`CREATE INDEX muc_messages_stamp ON muc_messages (stamp)`,
			},
		},
		{
			// Renumbered at merge: the lead keeps versions consecutive.
			Version: 6,
			Name:    "pubsub service nodes and items",
			Statements: []string{
				// owner is the service's domain, not an account.
				`CREATE TABLE pubsub_service_nodes (
					owner   TEXT COLLATE "C" NOT NULL,
					node    TEXT COLLATE "C" NOT NULL,
					config  BYTEA NOT NULL,
					created TIMESTAMPTZ NOT NULL,
					PRIMARY KEY (owner, node)
				)`,
				`CREATE TABLE pubsub_service_items (
					owner     TEXT COLLATE "C" NOT NULL,
					node      TEXT COLLATE "C" NOT NULL,
					id        TEXT COLLATE "C" NOT NULL,
					seq       BIGINT NOT NULL,
					publisher TEXT NOT NULL,
					published TIMESTAMPTZ NOT NULL,
					payload   BYTEA NOT NULL,
					PRIMARY KEY (owner, node, id),
					FOREIGN KEY (owner, node) REFERENCES pubsub_service_nodes (owner, node) ON DELETE CASCADE ON UPDATE CASCADE
				)`,
				`CREATE INDEX pubsub_service_items_order ON pubsub_service_items (owner, node, seq)`,
			},
		},
	},
}
