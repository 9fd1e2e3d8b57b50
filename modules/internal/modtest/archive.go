package modtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/internal/storage"
)

// Archive is the in-memory message archive with the drivers' semantics
// (storagetest.RunArchive proves it). SetData lets a test alter a stored
// message the way someone with database access could.
type Archive struct {
	mu    sync.Mutex
	users *Users
	rows  []archiveRow // archive order across all owners
	fail  error
}

type archiveRow struct {
	owner string
	// created is the owner's account creation time when the row was
	// added: a row whose account was deleted and created again since
	// belongs to the old account and is gone, as with ON DELETE CASCADE.
	created time.Time
	m       storage.ArchiveMessage
}

// Archive returns the archive repository.
func (s *Store) Archive() storage.Archive { return s.FakeArchive() }

// FakeArchive returns the in-memory archive behind Archive.
func (s *Store) FakeArchive() *Archive {
	s.archiveOnce.Do(func() { s.archive = &Archive{users: s.users} })
	return s.archive
}

// SetFail makes every later call fail with err (nil heals the archive).
func (a *Archive) SetFail(err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail = err
}

// Stored returns owner's messages as stored, in archive order.
func (a *Archive) Stored(owner string) []storage.ArchiveMessage {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []storage.ArchiveMessage
	for _, r := range a.rows {
		if r.owner == owner {
			out = append(out, cloneArchived(r.m))
		}
	}
	return out
}

// SetData replaces the stored data of owner's message id and reports
// whether there was such a message.
func (a *Archive) SetData(owner, id string, data []byte) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i := range a.rows {
		if a.rows[i].owner == owner && a.rows[i].m.ID == id {
			a.rows[i].m.Data = slices.Clone(data)
			return true
		}
	}
	return false
}

func cloneArchived(m storage.ArchiveMessage) storage.ArchiveMessage {
	m.Data = append([]byte{}, m.Data...)
	return m
}

// account returns owner's account creation time, if there is an account.
func (a *Archive) account(owner string) (time.Time, bool) {
	a.users.mu.Lock()
	defer a.users.mu.Unlock()
	acc, ok := a.users.m[owner]
	return acc.Created, ok
}

// begin runs the checks every call starts with, under a.mu.
func (a *Archive) begin(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return a.fail
}

// gc drops the rows of deleted accounts, as the drivers' ON DELETE
// CASCADE does, so a re-created account starts empty.
func (a *Archive) gc() {
	a.users.mu.Lock()
	defer a.users.mu.Unlock()
	a.rows = slices.DeleteFunc(a.rows, func(r archiveRow) bool {
		acc, ok := a.users.m[r.owner]
		return !ok || !acc.Created.Equal(r.created)
	})
}

func (a *Archive) Append(ctx context.Context, owner string, m storage.ArchiveMessage) (storage.ArchiveMessage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(ctx); err != nil {
		return storage.ArchiveMessage{}, err
	}
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.ArchiveMessage{}, err
	}
	if err := storage.ValidateArchiveMessage(m); err != nil {
		return storage.ArchiveMessage{}, err
	}
	a.gc()
	created, ok := a.account(owner)
	if !ok {
		return storage.ArchiveMessage{}, fmt.Errorf("modtest: archive for %s: no such account: %w", owner, storage.ErrNotFound)
	}
	for _, r := range a.rows {
		if r.owner == owner && r.m.ID == m.ID {
			return storage.ArchiveMessage{}, fmt.Errorf("modtest: archive message %q for %s: %w", m.ID, owner, storage.ErrExists)
		}
	}
	m.Stamp = storage.CreatedTime(m.Stamp)
	m = cloneArchived(m)
	a.rows = append(a.rows, archiveRow{owner: owner, created: created, m: m})
	return cloneArchived(m), nil
}

func (a *Archive) Query(ctx context.Context, owner string, q storage.ArchiveQuery) (storage.ArchivePage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(ctx); err != nil {
		return storage.ArchivePage{}, err
	}
	if err := storage.ValidateOwner(owner); err != nil {
		return storage.ArchivePage{}, err
	}
	if err := storage.ValidateArchiveQuery(q); err != nil {
		return storage.ArchivePage{}, err
	}
	a.gc()
	if _, ok := a.account(owner); !ok {
		return storage.ArchivePage{}, fmt.Errorf("modtest: query archive of %s: no such account: %w", owner, storage.ErrNotFound)
	}
	var mine []storage.ArchiveMessage
	pos := map[string]int{}
	for _, r := range a.rows {
		if r.owner == owner {
			pos[r.m.ID] = len(mine)
			mine = append(mine, r.m)
		}
	}
	posOf := func(id string) (int, error) {
		p, ok := pos[id]
		if !ok {
			return 0, fmt.Errorf("modtest: no archived message with id %q: %w", id, storage.ErrNotFound)
		}
		return p, nil
	}
	// Bounds are positions in mine: lo < i < hi.
	lo, hi := -1, len(mine)
	tighten := func(after, before string) error {
		if after != "" {
			p, err := posOf(after)
			if err != nil {
				return err
			}
			lo = max(lo, p)
		}
		if before != "" {
			p, err := posOf(before)
			if err != nil {
				return err
			}
			hi = min(hi, p)
		}
		return nil
	}
	if err := tighten(q.AfterID, q.BeforeID); err != nil {
		return storage.ArchivePage{}, err
	}
	var set []int
	for i := lo + 1; i < hi; i++ {
		if matches(mine[i], q) {
			set = append(set, i)
		}
	}
	page := storage.ArchivePage{Count: len(set)}
	if err := tighten(q.After, q.Before); err != nil {
		return storage.ArchivePage{}, err
	}
	var window []int
	for _, i := range set {
		if lo < i && i < hi {
			window = append(window, i)
		}
	}
	page.Complete = len(window) <= q.Max
	if !page.Complete {
		if q.Last || q.Before != "" {
			window = window[len(window)-q.Max:]
		} else {
			window = window[:q.Max]
		}
	}
	for _, i := range window {
		page.Messages = append(page.Messages, cloneArchived(mine[i]))
	}
	return page, nil
}

// matches applies the filters of q other than the id bounds.
func matches(m storage.ArchiveMessage, q storage.ArchiveQuery) bool {
	switch {
	case strings.Contains(q.With, "/") && m.With != q.With:
		return false
	case q.With != "" && !strings.Contains(q.With, "/") && storage.BareOf(m.With) != q.With:
		return false
	case !q.Start.IsZero() && m.Stamp.Before(q.Start):
		return false
	case !q.End.IsZero() && m.Stamp.After(q.End):
		return false
	case q.IDs != nil && !slices.Contains(q.IDs, m.ID):
		return false
	}
	return true
}

func (a *Archive) DeleteBefore(ctx context.Context, t time.Time) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.begin(ctx); err != nil {
		return 0, err
	}
	a.gc()
	n := len(a.rows)
	a.rows = slices.DeleteFunc(a.rows, func(r archiveRow) bool { return r.m.Stamp.Before(t) })
	return n - len(a.rows), nil
}

// AppendBatch appends each entry, skipping missing owners and taken ids
// like the drivers do.
func (a *Archive) AppendBatch(ctx context.Context, entries []storage.ArchiveEntry) error {
	entries, err := storage.PrepareArchiveEntries(entries)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if _, err := a.Append(ctx, e.Owner, e.Message); err != nil && !errors.Is(err, storage.ErrNotFound) && !errors.Is(err, storage.ErrExists) {
			return err
		}
	}
	return nil
}
