package modtest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/internal/storage"
)

// MUC returns the multi-user chat repository.
func (s *Store) MUC() storage.MUC { return s.FakeMUC() }

// FakeMUC returns the in-memory multi-user chat repository behind MUC.
func (s *Store) FakeMUC() *MUC {
	s.mucOnce.Do(func() { s.muc = &MUC{rooms: map[string]*mucRoom{}} })
	return s.muc
}

type mucRoom struct {
	room storage.MUCRoom
	affs map[string]storage.MUCAffiliation
	msgs []storage.MUCMessage // archive order
}

// MUC is the in-memory multi-user chat repository with the drivers'
// semantics (storagetest.RunMUC proves it).
type MUC struct {
	mu    sync.Mutex
	rooms map[string]*mucRoom
}

func (m *MUC) lookup(ctx context.Context, room string) (*mucRoom, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := storage.ValidateRoomJID(room); err != nil {
		return nil, err
	}
	r := m.rooms[room]
	if r == nil {
		return nil, fmt.Errorf("modtest: room %s: %w", room, storage.ErrNotFound)
	}
	return r, nil
}

func cloneRoom(r storage.MUCRoom) storage.MUCRoom {
	r.Config = append([]byte{}, r.Config...)
	return r
}

func (m *MUC) PutRoom(ctx context.Context, r storage.MUCRoom) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := storage.ValidateRoomJID(r.JID); err != nil {
		return err
	}
	if err := storage.ValidateBlob("room config", r.Config); err != nil {
		return err
	}
	if old := m.rooms[r.JID]; old != nil {
		old.room.Config = append([]byte{}, r.Config...)
		return nil
	}
	r = cloneRoom(r)
	r.Created = storage.StoredTime()
	m.rooms[r.JID] = &mucRoom{room: r, affs: map[string]storage.MUCAffiliation{}}
	return nil
}

func (m *MUC) Room(ctx context.Context, room string) (storage.MUCRoom, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.lookup(ctx, room)
	if err != nil {
		return storage.MUCRoom{}, err
	}
	return cloneRoom(r.room), nil
}

func (m *MUC) Rooms(ctx context.Context, service string) ([]storage.MUCRoom, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []storage.MUCRoom
	for j, r := range m.rooms {
		if storage.ServiceOf(j) == service {
			out = append(out, cloneRoom(r.room))
		}
	}
	slices.SortFunc(out, func(a, b storage.MUCRoom) int { return strings.Compare(a.JID, b.JID) })
	return out, nil
}

func (m *MUC) DeleteRoom(ctx context.Context, room string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.lookup(ctx, room); err != nil {
		return err
	}
	delete(m.rooms, room)
	return nil
}

func (m *MUC) SetAffiliation(ctx context.Context, room string, a storage.MUCAffiliation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.lookup(ctx, room)
	if err != nil {
		return err
	}
	if err := storage.ValidateMUCAffiliation(a); err != nil {
		return err
	}
	if a.Affiliation == storage.AffNone {
		delete(r.affs, a.JID)
		return nil
	}
	r.affs[a.JID] = a
	return nil
}

func (m *MUC) Affiliations(ctx context.Context, room string) ([]storage.MUCAffiliation, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.lookup(ctx, room)
	if err != nil {
		return nil, err
	}
	var out []storage.MUCAffiliation
	for _, a := range r.affs {
		out = append(out, a)
	}
	slices.SortFunc(out, func(a, b storage.MUCAffiliation) int { return strings.Compare(a.JID, b.JID) })
	return out, nil
}

func cloneMUCMessage(msg storage.MUCMessage) storage.MUCMessage {
	msg.Data = append([]byte{}, msg.Data...)
	return msg
}

func (m *MUC) AppendMessage(ctx context.Context, room string, msg storage.MUCMessage) (storage.MUCMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.lookup(ctx, room)
	if err != nil {
		return storage.MUCMessage{}, err
	}
	if err := storage.ValidateMUCMessage(msg); err != nil {
		return storage.MUCMessage{}, err
	}
	for _, o := range r.msgs {
		if o.ID == msg.ID {
			return storage.MUCMessage{}, fmt.Errorf("modtest: room message %q in %s: %w", msg.ID, room, storage.ErrExists)
		}
	}
	msg.Stamp = storage.CreatedTime(msg.Stamp)
	msg = cloneMUCMessage(msg)
	r.msgs = append(r.msgs, msg)
	return cloneMUCMessage(msg), nil
}

func (m *MUC) Messages(ctx context.Context, room string, q storage.MUCQuery) (storage.MUCPage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.lookup(ctx, room)
	if err != nil {
		return storage.MUCPage{}, err
	}
	if err := storage.ValidateMUCQuery(q); err != nil {
		return storage.MUCPage{}, err
	}
	indexOf := func(id string) (int, error) {
		i := slices.IndexFunc(r.msgs, func(msg storage.MUCMessage) bool { return msg.ID == id })
		if i < 0 {
			return 0, fmt.Errorf("modtest: no room message with id %q: %w", id, storage.ErrNotFound)
		}
		return i, nil
	}
	// bounds narrows [lo, hi) to the messages strictly between two ids.
	bounds := func(lo, hi int, after, before string) (int, int, error) {
		if after != "" {
			i, err := indexOf(after)
			if err != nil {
				return 0, 0, err
			}
			lo = max(lo, i+1)
		}
		if before != "" {
			i, err := indexOf(before)
			if err != nil {
				return 0, 0, err
			}
			hi = min(hi, i)
		}
		return lo, hi, nil
	}
	lo, hi, err := bounds(0, len(r.msgs), q.AfterID, q.BeforeID)
	if err != nil {
		return storage.MUCPage{}, err
	}
	keep := func(msg storage.MUCMessage) bool {
		if (!q.Start.IsZero() && msg.Stamp.Before(q.Start)) || (!q.End.IsZero() && msg.Stamp.After(q.End)) {
			return false
		}
		return q.IDs == nil || slices.Contains(q.IDs, msg.ID)
	}
	var page storage.MUCPage
	for i := lo; i < hi; i++ {
		if keep(r.msgs[i]) {
			page.Count++
		}
	}
	if lo, hi, err = bounds(lo, hi, q.After, q.Before); err != nil {
		return storage.MUCPage{}, err
	}
	var sel []storage.MUCMessage
	for i := lo; i < hi; i++ {
		if keep(r.msgs[i]) {
			sel = append(sel, r.msgs[i])
		}
	}
	page.Complete = len(sel) <= q.Max
	if !page.Complete {
		if q.Last || q.Before != "" {
			sel = sel[len(sel)-q.Max:]
		} else {
			sel = sel[:q.Max]
		}
	}
	for _, msg := range sel {
		page.Messages = append(page.Messages, cloneMUCMessage(msg))
	}
	return page, nil
}

func (m *MUC) ReplaceMessage(ctx context.Context, room, id string, data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.lookup(ctx, room)
	if err != nil {
		return err
	}
	if err := storage.ValidateMUCMessage(storage.MUCMessage{ID: id, Data: data}); err != nil {
		return err
	}
	for i := range r.msgs {
		if r.msgs[i].ID == id {
			r.msgs[i].Data = append([]byte{}, data...)
			return nil
		}
	}
	return fmt.Errorf("modtest: replace room message %q in %s: %w", id, room, storage.ErrNotFound)
}

func (m *MUC) DeleteMessagesBefore(ctx context.Context, t time.Time) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n := 0
	for _, r := range m.rooms {
		before := len(r.msgs)
		r.msgs = slices.DeleteFunc(r.msgs, func(msg storage.MUCMessage) bool { return msg.Stamp.Before(t) })
		n += before - len(r.msgs)
	}
	return n, nil
}
