package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"parley/internal/storage"
)

// archive implements storage.Archive.
type archive struct{ *Store }

var _ storage.Archive = archive{}

var archiveTableOf = archiveTable{table: "archive", key: "owner", parent: "accounts", missing: errNoAccount}

func (a archive) Append(ctx context.Context, owner string, m storage.ArchiveMessage) (storage.ArchiveMessage, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.ArchiveMessage{}, err
	}
	if err := storage.ValidateArchiveMessage(m); err != nil {
		return storage.ArchiveMessage{}, err
	}
	m.Stamp = storage.CreatedTime(m.Stamp)
	m.Data = nonNil(m.Data)
	// DO NOTHING reports a duplicate id as zero rows, which is clearer than
	// telling the unique constraint's error from the foreign key's.
	res, err := a.w.ExecContext(ctx, `
		INSERT INTO archive (owner, stanza_id, with_full, with_bare, stamp, outgoing, data, with_full_index, with_bare_index, reseal)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (owner, stanza_id) DO NOTHING`,
		owner, m.ID, m.With, storage.BareOf(m.With), a.d.Time(m.Stamp), m.Outgoing, m.Data, index(m.WithIndex), index(m.WithBareIndex), m.Reseal)
	if err != nil {
		return storage.ArchiveMessage{}, a.errorf("archive a message for %s: %w", owner, a.ownerError(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return storage.ArchiveMessage{}, a.errorf("archive a message for %s: %w", owner, err)
	} else if n == 0 {
		return storage.ArchiveMessage{}, a.errorf("archive message %q for %s: %w", m.ID, owner, storage.ErrExists)
	}
	return m, nil
}

func (a archive) Query(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.ArchivePage{}, err
	}
	if err := storage.ValidateArchiveQuery(q); err != nil {
		return storage.ArchivePage{}, err
	}
	w := whereKey("owner", owner)
	full := strings.Contains(q.With, "/") || (q.With == "" && q.WithFull)
	col, idx, args := "with_bare", "with_bare_index = ?", []any{q.WithIndex}
	if full {
		col, idx = "with_full", "with_full_index = ?"
		if q.WithBareIndex != nil {
			// Found through the index on the bare JID's.
			idx, args = "(with_bare_index = ? AND with_full_index = ?)", []any{q.WithBareIndex, q.WithIndex}
		}
	}
	switch {
	case q.With != "" && q.WithIndex != nil:
		w.add("("+col+" = ? OR "+idx+")", append([]any{q.With}, args...)...)
	case q.With != "":
		w.add(col+" = ?", q.With)
	case q.WithIndex != nil:
		w.add(idx, args...)
	}
	var (
		page storage.ArchivePage
		err  error
	)
	page.Messages, page.Count, page.Complete, err = readPage(ctx, a.Store, archiveTableOf, owner, w, storage.MUCQuery{
		Start: q.Start, End: q.End, AfterID: q.AfterID, BeforeID: q.BeforeID, IDs: q.IDs,
		After: q.After, Before: q.Before, Last: q.Last, Max: q.Max,
	}, archiveColumns, scanArchive)
	if err != nil {
		return storage.ArchivePage{}, a.errorf("query the archive of %s: %w", owner, err)
	}
	return page, nil
}

const archiveColumns = "stanza_id, with_full, stamp, outgoing, data, with_full_index, with_bare_index, reseal"

func scanArchive(rows *sql.Rows) (storage.ArchiveMessage, error) {
	var m storage.ArchiveMessage
	err := rows.Scan(&m.ID, &m.With, scanTime{&m.Stamp}, &m.Outgoing, &m.Data, &m.WithIndex, &m.WithBareIndex, &m.Reseal)
	m.Data = nonNil(m.Data)
	return m, err
}

// index stores an absent blind index as NULL.
func index(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func (a archive) PendingReseal(ctx context.Context, owner string, max int) ([]storage.ArchiveMessage, error) {
	rows, err := a.r.QueryContext(ctx, `SELECT `+archiveColumns+` FROM archive
		WHERE owner = $1 AND reseal = `+a.d.True+` ORDER BY seq LIMIT $2`, owner, max)
	if err != nil {
		return nil, a.errorf("archived messages of %s to reseal: %w", owner, err)
	}
	defer rows.Close()
	var out []storage.ArchiveMessage
	for rows.Next() {
		m, err := scanArchive(rows)
		if err != nil {
			return nil, a.errorf("archived messages of %s to reseal: %w", owner, err)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, a.errorf("archived messages of %s to reseal: %w", owner, err)
	}
	return out, nil
}

func (a archive) Reseal(ctx context.Context, owner string, msgs []storage.ArchiveMessage) (err error) {
	for _, m := range msgs {
		if err := storage.ValidateArchiveMessage(m); err != nil {
			return err
		}
	}
	tx, err := a.w.BeginTx(ctx, nil)
	if err != nil {
		return a.errorf("reseal archived messages of %s: %w", owner, err)
	}
	defer rollbackOnError(tx, &err)
	for _, m := range msgs {
		if _, err := tx.ExecContext(ctx, `UPDATE archive SET data = $3, with_full = $4, with_bare = $5,
			with_full_index = $6, with_bare_index = $7, reseal = $8 WHERE owner = $1 AND stanza_id = $2`,
			owner, m.ID, nonNil(m.Data), m.With, storage.BareOf(m.With), index(m.WithIndex), index(m.WithBareIndex), m.Reseal); err != nil {
			return a.errorf("reseal archived messages of %s: %w", owner, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return a.errorf("reseal archived messages of %s: commit: %w", owner, err)
	}
	return nil
}

func (a archive) DeleteBefore(ctx context.Context, t time.Time) (int, error) {
	n, err := a.deleteBefore(ctx, "archive", "seq", "stamp", t)
	if err != nil {
		return n, a.errorf("delete archived messages stamped before %v: %w", t, err)
	}
	return n, nil
}

// appendChunk is how many entries one INSERT carries: per-statement costs
// (binding, stepping, resetting through database/sql; a round trip to
// PostgreSQL) are paid once per chunk instead of once per row. 64 rows use
// 448 parameters, far below SQLite's 32,766 and PostgreSQL's 65,535.
const appendChunk = 64

// appendSQL returns an INSERT of n entries that skips entries whose owner
// no longer exists and stanza-ids the owner already has. Each row carries
// its place in the batch (column8) to keep archive order: PostgreSQL may
// turn the EXISTS into a hash join that reorders the rows, and seq must
// follow the order of the batch.
func (a archive) appendSQL(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO archive (owner, stanza_id, with_full, with_bare, stamp, outgoing, data, with_full_index, with_bare_index, reseal)
		SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8, v.column9, v.column10 FROM (VALUES `)
	p := 0
	param := func() string { p++; return a.d.Param(p) }
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%d)", param(), param(), param(), param(),
			a.d.Typed(param(), TimeColumn), a.d.Typed(param(), BoolColumn), a.d.Typed(param(), BlobColumn),
			a.d.Typed(param(), BlobColumn), a.d.Typed(param(), BlobColumn), a.d.Typed(param(), BoolColumn), i)
	}
	b.WriteString(`) AS v WHERE EXISTS (SELECT 1 FROM accounts WHERE jid = v.column1)
		ORDER BY v.column11
		ON CONFLICT (owner, stanza_id) DO NOTHING`)
	return b.String()
}

func (a archive) AppendBatch(ctx context.Context, entries []storage.ArchiveEntry) error {
	entries, err := storage.PrepareArchiveEntries(entries)
	if err != nil || len(entries) == 0 {
		return err
	}
	tx, err := a.w.BeginTx(ctx, nil)
	if err != nil {
		return a.errorf("archive a batch: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	// The prepared full-chunk statement, on this transaction's
	// connection (prepared there once per connection).
	full := tx.StmtContext(ctx, a.archiveChunk)
	defer full.Close()
	args := make([]any, 0, 10*appendChunk)
	for len(entries) > 0 {
		n := min(len(entries), appendChunk)
		args = args[:0]
		for _, e := range entries[:n] {
			m := e.Message
			args = append(args, e.Owner, m.ID, m.With, storage.BareOf(m.With), a.d.Time(m.Stamp), m.Outgoing, m.Data,
				index(m.WithIndex), index(m.WithBareIndex), m.Reseal)
		}
		entries = entries[n:]
		if n == appendChunk {
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, a.appendSQL(n), args...)
		}
		if err != nil {
			return a.errorf("archive a batch: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return a.errorf("archive a batch: %w", err)
	}
	return nil
}
