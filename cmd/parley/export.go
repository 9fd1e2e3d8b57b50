package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"parley/internal/config"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/pie"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/muc"
)

// roomsFile is the name export gives the rooms of all services.
const roomsFile = "rooms.xml"

// stringList is a repeatable flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (TOML)")
	var only stringList
	fs.Var(&only, "user", "export only this account (repeatable)")
	withRooms := fs.Bool("rooms", false, "also export the persistent group chat rooms to DIR/"+roomsFile)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"export needs exactly one directory"}
	}
	dir := pos[0]
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	var users []string
	for _, u := range only {
		j, err := jid.Parse(u)
		if err != nil || j.Local() == "" || !j.IsBare() {
			return fmt.Errorf("--user %q is not an account address of the form user@domain", u)
		}
		users = append(users, j.String())
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	t, err := openTransfer(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	defer t.close()
	if len(users) == 0 {
		if users, err = t.store.Users().List(ctx, ""); err != nil {
			return err
		}
	}
	for _, bare := range users {
		u, err := t.exportUser(ctx, bare)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := pie.Write(&buf, u); err != nil {
			return err
		}
		// The file holds password verifiers and, opened, the messages
		// the server keeps sealed: only its owner may read it.
		name := filepath.Join(dir, bare+".xml")
		if err := os.WriteFile(name, buf.Bytes(), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d roster items, %d PEP nodes, %d offline and %d archived messages -> %s\n",
			bare, len(u.Roster), len(u.PEP), len(u.Offline), len(u.Archive), name)
	}
	total := fmt.Sprintf("total: %d users", len(users))
	if *withRooms {
		rooms, err := t.rooms.exportRooms(ctx)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		if err := pie.WriteRooms(&buf, rooms); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, roomsFile), buf.Bytes(), 0o600); err != nil {
			return err
		}
		total += fmt.Sprintf(", %d rooms", len(rooms))
	}
	fmt.Fprintln(stdout, total)
	return t.close()
}

// exportUser gathers one account as the modules serve it.
func (t *transfer) exportUser(ctx context.Context, bare string) (*pie.User, error) {
	owner, err := jid.Parse(bare)
	if err != nil {
		return nil, err
	}
	a, err := t.store.Users().Get(ctx, bare)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("%s has no account", bare)
	}
	if err != nil {
		return nil, err
	}
	u := &pie.User{JID: bare, Credentials: a.Credentials}
	if u.Roster, _, err = t.store.Roster().Items(ctx, bare); err != nil {
		return nil, err
	}
	pending, err := t.store.Roster().PendingIn(ctx, bare)
	if err != nil {
		return nil, err
	}
	for _, p := range pending {
		u.Pending = append(u.Pending, p.Contact)
	}
	if u.VCard, _, err = t.vcard.Load(ctx, owner); err != nil {
		return nil, err
	}
	nss, err := t.private.Namespaces(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, ns := range nss {
		q, err := t.private.Stored(ctx, owner, ns)
		if err != nil {
			return nil, err
		}
		for c := range q.Elements() {
			u.Private = append(u.Private, c)
		}
	}
	nodes, err := t.pep.NodeNames(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, n := range nodes {
		items, _, err := t.pep.ItemsOf(ctx, owner, n)
		if err != nil {
			return nil, err
		}
		conf, err := t.pep.ConfigFormOf(ctx, owner, n)
		if err != nil {
			return nil, err
		}
		node := pie.Node{Name: n, Config: conf}
		for _, it := range items {
			node.Items = append(node.Items, pie.Item{ID: it.ID, Payload: it.Payload})
		}
		u.PEP = append(u.PEP, node)
	}
	if u.Offline, err = t.offline.Waiting(ctx, owner); err != nil {
		return nil, err
	}
	archive, err := t.mam.ArchiveOf(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, m := range archive {
		u.Archive = append(u.Archive, pie.ArchiveItem{ID: m.ID, Stamp: m.Stamp, Message: m.Message})
	}
	if u.Blocked, err = t.blocking.Blocked(ctx, owner); err != nil {
		return nil, err
	}
	return u, nil
}

// roomTransfer moves persistent rooms; the MUC module keeps no state of
// its own for a room nobody is in, so rooms are read and written in the
// store, with the module checking the configuration.
type roomTransfer struct {
	services []string
	store    storage.MUC
	present  bool
}

func newRoomTransfer(cfg config.Config, store storage.Store, mods []module.Module) *roomTransfer {
	// Through the module, which seals and opens what rooms store.
	rt := &roomTransfer{services: cfg.MUCServices(), store: store.MUC()}
	for _, m := range mods {
		if m, ok := m.(*muc.Module); ok {
			rt.store, rt.present = m.Store(), true
		}
	}
	return rt
}

func (rt *roomTransfer) exportRooms(ctx context.Context) ([]*pie.Room, error) {
	var out []*pie.Room
	for _, s := range rt.services {
		rooms, err := rt.store.Rooms(ctx, s)
		if err != nil {
			return nil, err
		}
		for _, r := range rooms {
			pr := &pie.Room{JID: r.JID, Config: r.Config}
			if pr.Affiliations, err = rt.store.Affiliations(ctx, r.JID); err != nil {
				return nil, err
			}
			q := storage.MUCQuery{Max: storage.MaxArchivePage}
			for {
				page, err := rt.store.Messages(ctx, r.JID, q)
				if err != nil {
					return nil, err
				}
				for _, m := range page.Messages {
					el, err := xmlstream.ParseElement(m.Data, "")
					if err != nil {
						return nil, fmt.Errorf("room %s message %s is damaged: %w", r.JID, m.ID, err)
					}
					pr.Archive = append(pr.Archive, pie.RoomMessage{ID: m.ID, Stamp: m.Stamp, Message: el})
				}
				if page.Complete || len(page.Messages) == 0 {
					break
				}
				q.After = page.Messages[len(page.Messages)-1].ID
			}
			out = append(out, pr)
		}
	}
	return out, nil
}

func (t *transfer) importRoom(ctx context.Context, r *pie.Room) (string, error) {
	rt := t.rooms
	if !rt.present || !slices.Contains(rt.services, storage.ServiceOf(r.JID)) {
		return "", fmt.Errorf("%s is not a group chat service of this server (muc.host)", storage.ServiceOf(r.JID))
	}
	if err := muc.CheckConfig(r.Config); err != nil {
		return "", err
	}
	// A room password in the file is stored only as its hash.
	config, err := muc.UpgradeConfig(r.Config)
	if err != nil {
		return "", err
	}
	var done []string
	have, err := rt.store.Room(ctx, r.JID)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	if err != nil || !bytes.Equal(have.Config, config) {
		if err := rt.store.PutRoom(ctx, storage.MUCRoom{JID: r.JID, Config: config}); err != nil {
			return "", err
		}
		done = append(done, "configuration")
	}
	affs, err := rt.store.Affiliations(ctx, r.JID)
	if err != nil {
		return "", err
	}
	n := 0
	for _, a := range r.Affiliations {
		if slices.Contains(affs, a) {
			continue
		}
		if err := rt.store.SetAffiliation(ctx, r.JID, a); err != nil {
			return "", err
		}
		n++
	}
	if n > 0 {
		done = append(done, fmt.Sprintf("%d affiliations", n))
	}
	n = 0
	old, note := 0, ""
	for _, m := range r.Archive {
		if t.expired(m.Stamp) {
			old++
			continue
		}
		_, err := rt.store.AppendMessage(ctx, r.JID, storage.MUCMessage{ID: m.ID, Stamp: m.Stamp, Data: []byte(m.Message.String())})
		if errors.Is(err, storage.ErrExists) {
			continue
		}
		if err != nil {
			return "", err
		}
		n++
	}
	if n > 0 {
		done = append(done, fmt.Sprintf("%d archived messages", n))
	}
	if old > 0 {
		note = fmt.Sprintf(" (%d archived messages older than retention.archive left out)", old)
	}
	if len(done) == 0 {
		return "unchanged" + note, nil
	}
	return strings.Join(done, ", ") + note, nil
}
