package pie

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"parley/internal/jid"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
)

// NSRooms is parley's own format for persistent group chat rooms, which
// XEP-0227 does not cover:
//
//	<rooms xmlns='urn:parley:rooms:0'>
//	  <room jid='room@conference.example.org'>
//	    <config>{...}</config>                     the room configuration (JSON, as parley's MUC module keeps it)
//	    <affiliation jid='a@example.org' affiliation='owner'>reason</affiliation>
//	    <archived id='stanza-id' stamp='...'><message xmlns='jabber:client' .../></archived>
//	  </room>
//	</rooms>
const NSRooms = "urn:parley:rooms:0"

// Room is one persistent room.
type Room struct {
	JID          string
	Config       []byte // JSON
	Affiliations []storage.MUCAffiliation
	Archive      []RoomMessage // oldest first
}

// RoomMessage is one archived groupchat message.
type RoomMessage struct {
	ID      string
	Stamp   time.Time
	Message *xmlstream.Element
}

// IsRooms says whether data looks like a rooms file rather than XEP-0227.
func IsRooms(data []byte) bool {
	head := data[:min(len(data), 512)]
	return bytes.Contains(head, []byte(NSRooms))
}

// ReadRooms parses a rooms file; any error fails it as a whole.
func ReadRooms(data []byte) ([]*Room, error) {
	d := newDecoder(bytes.NewReader(data), len(data))
	h, err := d.ReadHeader()
	if err != nil {
		return nil, at(data, skipSpace(data, 0), "", err)
	}
	if h.Name.Space != NSRooms || h.Name.Local != "rooms" {
		return nil, at(data, skipSpace(data, 0), "", errors.New("the root element is not <rooms xmlns='"+NSRooms+"'/>"))
	}
	var out []*Room
	for {
		pos := skipSpace(data, int(d.InputOffset()))
		el, err := d.Next()
		if errors.Is(err, xmlstream.ErrStreamEnd) {
			return out, nil
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, at(data, pos, "", errors.New("the file ends inside <rooms/>"))
		}
		if err != nil {
			return nil, at(data, pos, "", err)
		}
		if el.Name.Local != "room" {
			continue
		}
		r, err := readRoom(el)
		if err != nil {
			return nil, at(data, pos, "", err)
		}
		out = append(out, r)
	}
}

func readRoom(el *xmlstream.Element) (*Room, error) {
	j, jerr := jid.Parse(el.Attr("jid"))
	if jerr != nil || j.Local() == "" || !j.IsBare() {
		return nil, fmt.Errorf("room %q is not a room JID", el.Attr("jid"))
	}
	r := &Room{JID: j.String()}
	var err error
	ids := map[string]bool{}
	for c := range el.Elements() {
		switch c.Name.Local {
		case "config":
			r.Config = []byte(c.Text())
			if !json.Valid(r.Config) {
				return nil, fmt.Errorf("room %s: the configuration is not JSON", r.JID)
			}
		case "affiliation":
			a := storage.MUCAffiliation{JID: c.Attr("jid"), Affiliation: c.Attr("affiliation"), Reason: c.Text()}
			if aj, err := jid.Parse(a.JID); err == nil {
				a.JID = aj.String()
			}
			if err := storage.ValidateMUCAffiliation(a); err != nil || a.Affiliation == storage.AffNone {
				return nil, fmt.Errorf("room %s: affiliation of %q: %v", r.JID, a.JID, err)
			}
			r.Affiliations = append(r.Affiliations, a)
		case "archived":
			m := RoomMessage{ID: c.Attr("id"), Message: c.FirstElement()}
			if m.Stamp, err = xmpptime.Parse(c.Attr("stamp")); err != nil {
				return nil, fmt.Errorf("room %s message %q: %w", r.JID, m.ID, err)
			}
			if m.Message == nil || ids[m.ID] {
				return nil, fmt.Errorf("room %s message %q: no message, or the id is repeated", r.JID, m.ID)
			}
			ids[m.ID] = true
			m.Message = m.Message.Copy()
			if err := storage.ValidateMUCMessage(storage.MUCMessage{ID: m.ID, Data: []byte(m.Message.String())}); err != nil {
				return nil, fmt.Errorf("room %s: %w", r.JID, err)
			}
			r.Archive = append(r.Archive, m)
		}
	}
	if r.Config == nil {
		return nil, fmt.Errorf("room %s has no configuration", r.JID)
	}
	return r, nil
}

// WriteRooms writes rooms as one file.
func WriteRooms(w io.Writer, rooms []*Room) error {
	var b strings.Builder
	b.WriteString("<?xml version='1.0' encoding='UTF-8'?>\n<rooms xmlns='" + NSRooms + "'>\n")
	for _, r := range rooms {
		el := xmlstream.New(NSRooms, "room", "jid", r.JID)
		el.AddText("\n")
		child(el, xmlstream.New(NSRooms, "config")).AddText(string(r.Config))
		for _, a := range r.Affiliations {
			el.AddText("\n")
			af := child(el, xmlstream.New(NSRooms, "affiliation", "jid", a.JID, "affiliation", a.Affiliation))
			if a.Reason != "" {
				af.AddText(a.Reason)
			}
		}
		for _, m := range r.Archive {
			el.AddText("\n")
			child(el, xmlstream.New(NSRooms, "archived", "id", m.ID, "stamp", xmpptime.Format(m.Stamp))).AddChild(m.Message)
		}
		el.AddText("\n")
		b.Write(el.Append(nil, NSRooms))
		b.WriteString("\n")
	}
	b.WriteString("</rooms>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
