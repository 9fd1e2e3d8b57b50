package postgres

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/internal/storage"
)

// archive implements storage.Archive.
type archive struct {
	db *sql.DB
}

var _ storage.Archive = (*archive)(nil)

// Archive returns the message archive repository. It holds no state of its
// own beyond the pool, so it is made on demand.
func (s *Store) Archive() storage.Archive { return &archive{db: s.db} }

func (a *archive) Append(ctx context.Context, owner string, m storage.ArchiveMessage) (storage.ArchiveMessage, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.ArchiveMessage{}, err
	}
	if err := storage.ValidateArchiveMessage(m); err != nil {
		return storage.ArchiveMessage{}, err
	}
	m.Stamp = storage.CreatedTime(m.Stamp)
	m.Data = nonNil(m.Data)
	// DO NOTHING reports a duplicate id as zero rows, which is clearer than
	// decoding SQLSTATE 23505; the foreign key still fails loudly.
	res, err := a.db.ExecContext(ctx, `
		INSERT INTO archive (owner, stanza_id, with_full, with_bare, stamp, outgoing, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (owner, stanza_id) DO NOTHING`,
		owner, m.ID, m.With, storage.BareOf(m.With), m.Stamp, m.Outgoing, m.Data)
	if err != nil {
		return storage.ArchiveMessage{}, fmt.Errorf("postgres: archive a message for %s: %w", owner, ownerError(err))
	}
	if n, err := res.RowsAffected(); err != nil {
		return storage.ArchiveMessage{}, fmt.Errorf("postgres: archive a message for %s: %w", owner, err)
	} else if n == 0 {
		return storage.ArchiveMessage{}, fmt.Errorf("postgres: archive message %q for %s: %w", m.ID, owner, storage.ErrExists)
	}
	return m, nil
}

func (a *archive) Query(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.ArchivePage{}, err
	}
	if err := storage.ValidateArchiveQuery(q); err != nil {
		return storage.ArchivePage{}, err
	}
	page, err := a.query(ctx, owner, q)
	if err != nil {
		return storage.ArchivePage{}, fmt.Errorf("postgres: query the archive of %s: %w", owner, err)
	}
	return page, nil
}

// query runs every statement of one query in one REPEATABLE READ
// transaction, so the cursors, the count and the page all come from the
// same snapshot.
func (a *archive) query(ctx context.Context, owner string, q storage.ArchiveQuery) (page storage.ArchivePage, err error) {
	tx, err := a.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return page, err
	}
	defer func() { _ = tx.Rollback() }() // read-only: nothing to keep

	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM accounts WHERE jid = $1`, owner).Scan(&one); {
	case err == sql.ErrNoRows:
		return page, errNoAccount
	case err != nil:
		return page, fmt.Errorf("look up account: %w", err)
	}
	seqOf := func(id string) (int64, error) {
		var seq int64
		switch err := tx.QueryRowContext(ctx,
			`SELECT seq FROM archive WHERE owner = $1 AND stanza_id = $2`, owner, id).Scan(&seq); {
		case err == sql.ErrNoRows:
			return 0, fmt.Errorf("no archived message with id %q: %w", id, storage.ErrNotFound)
		case err != nil:
			return 0, fmt.Errorf("look up message %q: %w", id, err)
		}
		return seq, nil
	}

	w := whereBuilder{args: []any{owner}, conds: []string{"owner = $1"}}
	switch {
	case strings.Contains(q.With, "/"):
		w.add("with_full = ?", q.With)
	case q.With != "":
		w.add("with_bare = ?", q.With)
	}
	if !q.Start.IsZero() {
		// Stamps are whole microseconds, so ">= ceil(start)" is exactly
		// ">= start" whatever the driver would do with nanoseconds.
		w.add("stamp >= ?", storage.CeilMicro(q.Start))
	}
	if !q.End.IsZero() {
		w.add("stamp <= ?", q.End.Truncate(time.Microsecond))
	}
	if err := w.seqBounds(q.AfterID, q.BeforeID, seqOf); err != nil {
		return page, err
	}
	w.ids(q.IDs)
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM archive WHERE `+w.where(), w.args...).Scan(&page.Count); err != nil {
		return page, fmt.Errorf("count: %w", err)
	}

	// Paging bounds come after the count: RSM counts the whole result set.
	if err := w.seqBounds(q.After, q.Before, seqOf); err != nil {
		return page, err
	}
	backwards := q.Last || q.Before != ""
	order := "ASC"
	if backwards {
		order = "DESC"
	}
	// One row more than the page tells whether the page is complete.
	w.args = append(w.args, q.Max+1)
	rows, err := tx.QueryContext(ctx, `
		SELECT stanza_id, with_full, stamp, outgoing, data FROM archive
		WHERE `+w.where()+`
		ORDER BY seq `+order+`
		LIMIT $`+strconv.Itoa(len(w.args)), w.args...)
	if err != nil {
		return page, fmt.Errorf("page: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m storage.ArchiveMessage
		if err := rows.Scan(&m.ID, &m.With, &m.Stamp, &m.Outgoing, &m.Data); err != nil {
			return page, fmt.Errorf("page: %w", err)
		}
		m.Stamp = m.Stamp.UTC()
		m.Data = nonNil(m.Data)
		page.Messages = append(page.Messages, m)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("page: %w", err)
	}
	page.Complete = len(page.Messages) <= q.Max
	page.Messages = page.Messages[:min(len(page.Messages), q.Max)]
	if backwards {
		slices.Reverse(page.Messages)
	}
	if len(page.Messages) == 0 {
		page.Messages = nil
	}
	return page, nil
}

// whereBuilder collects conditions with numbered parameters.
type whereBuilder struct {
	conds []string
	args  []any
}

// add appends cond, whose one "?" stands for v.
func (w *whereBuilder) add(cond string, v any) {
	w.args = append(w.args, v)
	w.conds = append(w.conds, strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1))
}

func (w *whereBuilder) where() string { return strings.Join(w.conds, " AND ") }

// seqBounds limits the rows to those after the message with id after and
// before the one with id before (either may be empty), by sequence.
func (w *whereBuilder) seqBounds(after, before string, seqOf func(id string) (int64, error)) error {
	for _, c := range []struct{ id, op string }{{after, ">"}, {before, "<"}} {
		if c.id == "" {
			continue
		}
		seq, err := seqOf(c.id)
		if err != nil {
			return err
		}
		w.add("seq "+c.op+" ?", seq)
	}
	return nil
}

// ids limits the rows to the given stanza-ids (none at all for an empty,
// non-nil list) in one array parameter, however many; a nil slice would
// be sent as NULL, hence the non-nil copy.
func (w *whereBuilder) ids(ids []string) {
	if ids != nil {
		w.add("stanza_id = ANY(?)", append([]string{}, ids...))
	}
}

func (a *archive) DeleteBefore(ctx context.Context, t time.Time) (int, error) {
	res, err := a.db.ExecContext(ctx, `DELETE FROM archive WHERE stamp < $1`, storage.CeilMicro(t))
	if err != nil {
		return 0, fmt.Errorf("postgres: delete archived messages stamped before %v: %w", t, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("postgres: delete archived messages stamped before %v: %w", t, err)
	}
	return int(n), nil
}

func (a *archive) AppendBatch(ctx context.Context, entries []storage.ArchiveEntry) error {
	entries, err := storage.PrepareArchiveEntries(entries)
	if err != nil || len(entries) == 0 {
		return err
	}
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("postgres: archive a batch: %w", err)
	}
	defer func() { _ = tx.Rollback() }() // a no-op after Commit
	stmt, err := tx.PrepareContext(ctx, `
		INSERT INTO archive (owner, stanza_id, with_full, with_bare, stamp, outgoing, data)
		SELECT $1, $2, $3, $4, $5, $6, $7
		WHERE EXISTS (SELECT 1 FROM accounts WHERE jid = $1)
		ON CONFLICT (owner, stanza_id) DO NOTHING`)
	if err != nil {
		return fmt.Errorf("postgres: archive a batch: %w", err)
	}
	defer stmt.Close()
	for _, e := range entries {
		m := e.Message
		if _, err := stmt.ExecContext(ctx, e.Owner, m.ID, m.With, storage.BareOf(m.With), m.Stamp, m.Outgoing, m.Data); err != nil {
			return fmt.Errorf("postgres: archive a batch: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("postgres: archive a batch: %w", err)
	}
	return nil
}
