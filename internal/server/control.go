package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"parley/internal/admin"
	"parley/internal/control"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/storage"
)

// newControl builds the control socket's server with the commands the
// core answers itself. A module that keeps files (upload) makes
// attachments possible; the core finds it by interface, not by name.
func (s *Server) newControl(mods []module.Module) *control.Server {
	var files control.FileStore
	for _, m := range mods {
		if fs, ok := m.(control.FileStore); ok {
			files = fs
		}
	}
	// A stored file travels base64-encoded inside JSON: 4/3 of its size
	// and some room for the rest of the request.
	limit := 1 << 20
	if files != nil {
		limit += int(files.MaxFileSize()/3*4) + 1024
	}
	c := control.NewServer(control.SocketPath(s.cfg.DataDir), limit, s.log)
	c.Handle(control.CmdNotify, s.controlNotify)
	c.Handle(control.CmdSessions, s.controlSessions)
	c.Handle(control.CmdKick, s.controlKick)
	c.Handle(control.CmdAnnounce, s.controlAnnounce)
	c.Handle(control.CmdPasswd, s.controlPasswd)
	c.Handle(control.CmdDeleteUser, s.onAccount(s.deleteUser))
	c.Handle(control.CmdDisableUser, s.onAccount(s.disableUser))
	c.Handle(control.CmdHTTPS, func(context.Context, json.RawMessage) (any, error) {
		var r control.HTTPSResult
		if a := s.reg.HTTPSAddr(); a != nil {
			r.Addr = a.String()
		}
		return r, nil
	})
	c.Handle(control.CmdStore, func(ctx context.Context, raw json.RawMessage) (any, error) {
		if files == nil {
			return nil, errors.New("attachments need the file upload service: set [upload] host and [listen] https")
		}
		var a control.StoreArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("bad arguments: %w", err)
		}
		url, err := files.StoreFile(ctx, s.cfg.Hosts[0], a.Name, a.Type, a.Data)
		if err != nil {
			return nil, err
		}
		return control.StoreResult{URL: url}, nil
	})
	return c
}

// controlNotify sends a message from the server's own JID: the
// recipient's domain when it is served here, else the first host.
// Every address is checked before anything is sent, so a typo does not
// leave half the recipients notified.
func (s *Server) controlNotify(ctx context.Context, raw json.RawMessage) (any, error) {
	var a control.NotifyArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("bad arguments: %w", err)
	}
	switch a.Type {
	case "":
		a.Type = "chat"
	case "chat", "normal", "headline":
	default:
		return nil, fmt.Errorf("type %q: must be chat, normal or headline", a.Type)
	}
	if len(a.To) == 0 {
		return nil, errors.New("no recipient given")
	}
	if strings.TrimSpace(a.Message) == "" && len(a.URLs) == 0 {
		return nil, errors.New("the message is empty")
	}
	tos := make([]jid.JID, 0, len(a.To))
	for _, t := range a.To {
		j, err := jid.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("%q is not a valid JID: %w", t, err)
		}
		tos = append(tos, j)
	}
	for _, to := range tos {
		from := s.cfg.Hosts[0]
		if s.router.IsLocal(to.Domain()) {
			from = to.Domain()
		}
		if strings.TrimSpace(a.Message) != "" {
			s.router.Route(ctx, admin.Notice(from, to.String(), a.Type, a.Message, ""))
		}
		for _, u := range a.URLs {
			s.router.Route(ctx, admin.Notice(from, to.String(), a.Type, u, u))
		}
	}
	return nil, nil
}

// parseTarget reads an optional JID argument.
func parseTarget(s string) (jid.JID, error) {
	if s == "" {
		return jid.JID{}, nil
	}
	j, err := jid.Parse(s)
	if err != nil {
		return jid.JID{}, fmt.Errorf("%q is not a valid JID: %w", s, err)
	}
	return j, nil
}

func (s *Server) controlSessions(_ context.Context, raw json.RawMessage) (any, error) {
	var a control.SessionsArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("bad arguments: %w", err)
	}
	target, err := parseTarget(a.JID)
	if err != nil {
		return nil, err
	}
	out := []control.SessionInfo{}
	for _, ss := range admin.Matching(s.router.AllSessions(), target) {
		avail, _ := ss.State().Available()
		out = append(out, control.SessionInfo{JID: ss.JID().String(), Available: avail, Detached: ss.State().Detached()})
	}
	return out, nil
}

func (s *Server) controlKick(_ context.Context, raw json.RawMessage) (any, error) {
	var a control.KickArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("bad arguments: %w", err)
	}
	target, err := parseTarget(a.JID)
	if err != nil || target.IsZero() || target.Local() == "" {
		return nil, fmt.Errorf("kick needs an account or session address, got %q", a.JID)
	}
	return control.CountResult{Count: admin.Kick(s.router.AllSessions(), target, "an admin ended this session")}, nil
}

func (s *Server) controlAnnounce(ctx context.Context, raw json.RawMessage) (any, error) {
	var a control.AnnounceArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("bad arguments: %w", err)
	}
	if strings.TrimSpace(a.Message) == "" {
		return nil, errors.New("the announcement is empty")
	}
	if !a.All {
		return control.CountResult{Count: admin.Announce(ctx, s.router.AllSessions(), s.router.Route, a.Message)}, nil
	}
	// Every account: to the bare JID, so that those offline find it
	// stored at their next login.
	users, err := s.accounts.List(ctx, "")
	if err != nil {
		return nil, err
	}
	for _, u := range users {
		j, err := jid.Parse(u)
		if err != nil {
			continue
		}
		s.router.Route(ctx, admin.Notice(j.Domain(), u, "normal", a.Message, ""))
	}
	return control.CountResult{Count: len(users)}, nil
}

// account reads the account a command names: a bare JID of a host
// served here.
func (s *Server) account(raw string) (jid.JID, error) {
	j, err := jid.Parse(raw)
	if err != nil || j.Local() == "" || !j.IsBare() {
		return jid.JID{}, fmt.Errorf("%q is not an account address of the form user@domain", raw)
	}
	if !s.router.IsLocal(j.Domain()) {
		return jid.JID{}, fmt.Errorf("%s is not an account of this server", j)
	}
	return j, nil
}

// accountError names the account in what the admin sees.
func accountError(j jid.JID, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("%s does not exist", j)
	}
	return err
}

// controlPasswd changes a password inside the server, which may hold
// the account's key: then the same key is wrapped under the new password
// and nothing sealed is lost; otherwise the account gets a new key and
// any key held from before is forgotten (accounts.ChangePassword). The
// password is neither logged nor kept.
func (s *Server) controlPasswd(ctx context.Context, raw json.RawMessage) (any, error) {
	var a control.PasswdArgs
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, errors.New("bad arguments")
	}
	j, err := s.account(a.JID)
	if err != nil {
		return nil, err
	}
	if err := admin.KeyHeldElsewhere(s.vault.Held(j.String()), s.router.AllSessions(), j); err != nil {
		return nil, err
	}
	lost, err := s.accounts.ChangePassword(ctx, j, a.Password)
	if err != nil {
		return nil, accountError(j, err)
	}
	return control.PasswdResult{SealedLost: lost}, nil
}

// onAccount is a command on one account (AccountArgs), which do carries
// out, returning how many sessions it ended.
func (s *Server) onAccount(do func(context.Context, jid.JID) (int, error)) control.Handler {
	return func(ctx context.Context, raw json.RawMessage) (any, error) {
		var a control.AccountArgs
		if err := json.Unmarshal(raw, &a); err != nil {
			return nil, fmt.Errorf("bad arguments: %w", err)
		}
		j, err := s.account(a.JID)
		if err != nil {
			return nil, err
		}
		n, err := do(ctx, j)
		if err != nil {
			return nil, accountError(j, err)
		}
		return control.CountResult{Count: n}, nil
	}
}

// deleteUser ends the account's sessions and deletes it; the vault
// forgets its key (accounts.Delete), so nothing is sealed under it any
// more.
func (s *Server) deleteUser(ctx context.Context, j jid.JID) (int, error) {
	n := admin.Kick(s.router.AllSessions(), j, "this account was deleted")
	return n, s.accounts.Delete(ctx, j)
}

// disableUser disables the account, which forgets its key
// (accounts.SetDisabled), and ends its sessions.
func (s *Server) disableUser(ctx context.Context, j jid.JID) (int, error) {
	if err := s.accounts.SetDisabled(ctx, j, true); err != nil {
		return 0, err
	}
	return admin.Kick(s.router.AllSessions(), j, "this account was disabled"), nil
}
