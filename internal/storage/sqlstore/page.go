package sqlstore

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

// Paging through a message archive (XEP-0313 with RSM, XEP-0059), the one
// implementation behind both the one-to-one archive and the rooms' archive.

// archiveTable names one archive table: rows of one parent (an account or
// a room) in archive order by seq, each with a stanza_id and a stamp.
type archiveTable struct {
	table  string // "archive", "muc_messages"
	key    string // the column naming the parent: "owner", "room"
	parent string // the parent's table, keyed by jid: "accounts", "muc_rooms"
	// missing is the error for a parent that does not exist.
	missing error
}

// readPage reads one page of parent's rows of t: those matching the
// conditions already in w (which must begin with t.key = $1) and q's
// filters. q is what both archives' queries share (a MUCQuery is exactly
// that): Start, End, AfterID, BeforeID and IDs make the result set that
// count reports, After, Before and Last page through it. It returns them oldest first, each read by scan from the
// columns cols, with the size of the result set and whether the page
// reaches its end in the paging direction. All statements run in one read
// transaction, so the cursors, the count and the page come from one
// snapshot.
func readPage[M any](ctx context.Context, s *Store, t archiveTable, parent string, w whereBuilder, q storage.MUCQuery,
	cols string, scan func(*sql.Rows) (M, error)) (msgs []M, count int, complete bool, err error) {
	tx, err := s.r.BeginTx(ctx, s.d.ReadTx)
	if err != nil {
		return nil, 0, false, err
	}
	defer func() { _ = tx.Rollback() }() // read-only: nothing to keep

	var one int
	switch err := tx.QueryRowContext(ctx, `SELECT 1 FROM `+t.parent+` WHERE jid = $1`, parent).Scan(&one); {
	case err == sql.ErrNoRows:
		return nil, 0, false, t.missing
	case err != nil:
		return nil, 0, false, fmt.Errorf("look up %s: %w", parent, err)
	}
	seqOf := func(id string) (int64, error) {
		var seq int64
		switch err := tx.QueryRowContext(ctx,
			`SELECT seq FROM `+t.table+` WHERE `+t.key+` = $1 AND stanza_id = $2`, parent, id).Scan(&seq); {
		case err == sql.ErrNoRows:
			return 0, fmt.Errorf("no archived message with id %q: %w", id, storage.ErrNotFound)
		case err != nil:
			return 0, fmt.Errorf("look up message %q: %w", id, err)
		}
		return seq, nil
	}

	if !q.Start.IsZero() {
		// Stamps are whole microseconds, so ">= ceil(start)" is exactly
		// ">= start" whatever the driver would do with nanoseconds.
		w.add("stamp >= ?", s.d.Time(storage.CeilMicro(q.Start)))
	}
	if !q.End.IsZero() {
		w.add("stamp <= ?", s.d.Time(q.End.Truncate(time.Microsecond)))
	}
	if err := w.seqBounds(q.AfterID, q.BeforeID, seqOf); err != nil {
		return nil, 0, false, err
	}
	if q.IDs != nil { // an empty, non-nil list matches nothing
		list, err := s.d.List(q.IDs)
		if err != nil {
			return nil, 0, false, fmt.Errorf("encode ids: %w", err)
		}
		w.args = append(w.args, list)
		w.conds = append(w.conds, s.d.InList("stanza_id", "$"+strconv.Itoa(len(w.args))))
	}
	if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM `+t.table+` WHERE `+w.where(), w.args...).Scan(&count); err != nil {
		return nil, 0, false, fmt.Errorf("count: %w", err)
	}

	// Paging bounds come after the count: RSM counts the whole result set.
	if err := w.seqBounds(q.After, q.Before, seqOf); err != nil {
		return nil, 0, false, err
	}
	backwards := q.Last || q.Before != ""
	order := "ASC"
	if backwards {
		order = "DESC"
	}
	// One row more than the page tells whether the page is complete.
	w.args = append(w.args, q.Max+1)
	rows, err := tx.QueryContext(ctx, `
		SELECT `+cols+` FROM `+t.table+`
		WHERE `+w.where()+`
		ORDER BY seq `+order+`
		LIMIT $`+strconv.Itoa(len(w.args)), w.args...)
	if err != nil {
		return nil, 0, false, fmt.Errorf("page: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		m, err := scan(rows)
		if err != nil {
			return nil, 0, false, fmt.Errorf("page: %w", err)
		}
		msgs = append(msgs, m)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, false, fmt.Errorf("page: %w", err)
	}
	complete = len(msgs) <= q.Max
	msgs = msgs[:min(len(msgs), q.Max)]
	if backwards {
		slices.Reverse(msgs)
	}
	if len(msgs) == 0 {
		msgs = nil
	}
	return msgs, count, complete, nil
}

// whereBuilder collects conditions with numbered parameters.
type whereBuilder struct {
	conds []string
	args  []any
}

// whereKey starts the conditions of a page with "key = $1".
func whereKey(key string, v any) whereBuilder {
	return whereBuilder{conds: []string{key + " = $1"}, args: []any{v}}
}

// add appends cond, whose "?"s stand for vs, in order.
func (w *whereBuilder) add(cond string, vs ...any) {
	for _, v := range vs {
		w.args = append(w.args, v)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
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
