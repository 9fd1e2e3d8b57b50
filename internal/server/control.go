package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"parley/internal/control"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// nsOOB is XEP-0066 out-of-band data, which clients read to show a
// file inline.
const nsOOB = "jabber:x:oob"

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
			s.router.Route(ctx, noticeMessage(from, to.String(), a.Type, a.Message, ""))
		}
		for _, u := range a.URLs {
			s.router.Route(ctx, noticeMessage(from, to.String(), a.Type, u, u))
		}
	}
	return nil, nil
}

// noticeMessage is a message from the server; with url, it carries the
// URL as XEP-0066 data too (the body must equal it for clients to show
// the file inline).
func noticeMessage(from, to, typ, body, url string) *xmlstream.Element {
	m := xmlstream.New(stanza.NSClient, "message", "from", from, "to", to, "type", typ, "id", newStanzaID())
	m.AddChild(xmlstream.New(stanza.NSClient, "body").AddText(body))
	if url != "" {
		x := xmlstream.New(nsOOB, "x")
		x.AddChild(xmlstream.New(nsOOB, "url").AddText(url))
		m.AddChild(x)
	}
	return m
}

func newStanzaID() string {
	b := make([]byte, 9)
	rand.Read(b) // never fails (crypto/rand)
	return "parley-" + hex.EncodeToString(b)
}
