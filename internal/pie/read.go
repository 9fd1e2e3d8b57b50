package pie

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/internal/jid"
	"parley/internal/sasl"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
)

// Error is a problem at a place in a file.
type Error struct {
	Line, Column int
	User         string // the account concerned, "" when the file as a whole is broken
	Err          error
}

func (e *Error) Error() string {
	if e.User != "" {
		return fmt.Sprintf("line %d, column %d: user %s: %v", e.Line, e.Column, e.User, e.Err)
	}
	return fmt.Sprintf("line %d, column %d: %v", e.Line, e.Column, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// File is what one XEP-0227 file holds.
type File struct {
	Users []*User
	// Invalid are the users left out because their data is invalid;
	// the others are complete.
	Invalid []*Error
	// Includes are the href of XInclude elements (ejabberd's main file
	// names one file per host this way), relative to the file.
	Includes []string
}

// Limits that keep one hostile file from holding unbounded work in a
// single value; a real account is far below them.
const (
	maxIterations = 10_000_000
	maxSaltBytes  = 1024
)

// Read parses a whole file. A file that is not well-formed XML fails as a
// whole with an *Error giving the place; a user whose data is wrong is
// listed in Invalid and left out of Users.
func Read(data []byte) (*File, error) {
	f := &File{}
	d := newDecoder(bytes.NewReader(data), len(data))
	h, err := d.ReadHeader()
	if err != nil {
		return nil, at(data, skipSpace(data, 0), "", err)
	}
	switch {
	case h.Name.Local == "host" && pieNS(h.Name.Space):
		if err := readHost(data, 0, d, h, f); err != nil {
			return nil, err
		}
	case h.Name.Local == "server-data" && pieNS(h.Name.Space):
		if err := readServerData(data, int(d.InputOffset()), f); err != nil {
			return nil, err
		}
	default:
		return nil, at(data, skipSpace(data, 0), "", fmt.Errorf("the root element is {%s}%s, not a XEP-0227 <server-data/> or <host/>", h.Name.Space, h.Name.Local))
	}
	return f, nil
}

func newDecoder(r io.Reader, size int) *xmlstream.Decoder {
	// The whole file may be one element; its size is its bound. Depth
	// stays bounded: pubsub payloads and vCards are not deep.
	return xmlstream.NewDecoder(r, xmlstream.Limits{MaxStanzaBytes: size + 1, MaxDepth: 64, MaxAttrs: 256})
}

func pieNS(ns string) bool { return ns == NS || ns == NSOld || ns == "" }

// wrapper binds what server-data usually declares, for parsing its
// children one at a time.
const wrapper = "<w xmlns='" + NS + "' xmlns:xi='" + NSXInc + "'>"

// readServerData walks the children of <server-data/>, which starts
// (after its start tag) at off. Each <host/> gets its own decoder so that
// each user is a top-level element with a position of its own.
func readServerData(data []byte, off int, f *File) error {
	for {
		off = skipSpace(data, off)
		rest := data[off:]
		switch {
		case len(rest) == 0:
			return at(data, off, "", errors.New("the file ends inside <server-data/>"))
		case bytes.HasPrefix(rest, []byte("</")):
			end := bytes.IndexByte(rest, '>')
			if end < 0 || !isEndOf(rest[2:end], "server-data") {
				return at(data, off, "", errors.New("unexpected end tag, expected </server-data>"))
			}
			if tail := skipSpace(data, off+end+1); tail != len(data) {
				return at(data, tail, "", errors.New("content after </server-data>"))
			}
			return nil
		case rest[0] != '<':
			return at(data, off, "", errors.New("text inside <server-data/>"))
		}
		if local := localNameAt(rest[1:]); local == "host" {
			d := newDecoder(bytes.NewReader(rest), len(rest))
			h, err := d.ReadHeader()
			if err != nil {
				return at(data, off, "", err)
			}
			if err := readHost(data, off, d, h, f); err != nil {
				return err
			}
			off += int(d.InputOffset())
			continue
		}
		el, n, err := parseOne(rest)
		if err != nil {
			return at(data, off, "", err)
		}
		if el.Name.Space == NSXInc && el.Name.Local == "include" {
			href := el.Attr("href")
			if href == "" {
				return at(data, off, "", errors.New("<xi:include/> without href"))
			}
			f.Includes = append(f.Includes, href)
		}
		off += n
	}
}

func isEndOf(tag []byte, local string) bool {
	name := strings.TrimRight(string(tag), " \t\r\n")
	_, l, found := strings.Cut(name, ":")
	if !found {
		l = name
	}
	return l == local
}

// localNameAt returns the local part of the element name starting at b.
func localNameAt(b []byte) string {
	end := bytes.IndexAny(b, " \t\r\n/>")
	if end < 0 {
		return ""
	}
	name := string(b[:end])
	if _, l, ok := strings.Cut(name, ":"); ok {
		return l
	}
	return name
}

// parseOne parses the element at the start of b with the usual
// server-data bindings in scope and returns how many bytes it took.
func parseOne(b []byte) (*xmlstream.Element, int, error) {
	d := newDecoder(io.MultiReader(strings.NewReader(wrapper), bytes.NewReader(b)), len(b)+len(wrapper))
	if _, err := d.ReadHeader(); err != nil {
		return nil, 0, err
	}
	el, err := d.Next()
	if err != nil {
		if errors.Is(err, xmlstream.ErrStreamEnd) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = errors.New("the file ends inside an element")
		}
		return nil, 0, err
	}
	return el, int(d.InputOffset()) - len(wrapper), nil
}

// readHost reads the users of a host whose start tag d has read; base is
// where d's input starts in data.
func readHost(data []byte, base int, d *xmlstream.Decoder, h xmlstream.StreamHeader, f *File) error {
	var hostAttr string
	for _, a := range h.Attrs {
		if a.Name.Space == "" && a.Name.Local == "jid" {
			hostAttr = a.Value
		}
	}
	host, err := jid.Parse(hostAttr)
	if err != nil || !host.IsDomain() {
		return at(data, base, "", fmt.Errorf("<host/> has no valid jid attribute (%q)", hostAttr))
	}
	for {
		pos := skipSpace(data, base+int(d.InputOffset()))
		el, err := d.Next()
		if errors.Is(err, xmlstream.ErrStreamEnd) {
			return nil
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return at(data, pos, "", errors.New("the file ends inside <host/>"))
		}
		if err != nil {
			return at(data, pos, "", err)
		}
		if el.Name.Local != "user" || !pieNS(el.Name.Space) {
			continue // nothing else is defined under <host/>
		}
		line, col := lineCol(data, pos)
		u, err := readUser(el, host.Domain())
		if err != nil {
			name := el.Attr("name")
			if u != nil {
				name = u.JID
			}
			f.Invalid = append(f.Invalid, &Error{Line: line, Column: col, User: name, Err: err})
			continue
		}
		u.Line, u.Column = line, col
		f.Users = append(f.Users, u)
	}
}

func readUser(el *xmlstream.Element, domain string) (*User, error) {
	name := el.Attr("name")
	if name == "" {
		return nil, errors.New("<user/> without a name")
	}
	j, err := jid.New(name, domain, "")
	if err != nil {
		return nil, fmt.Errorf("%q is not a valid username: %w", name, err)
	}
	u := &User{JID: j.String(), Password: el.Attr("password")}
	seen := map[string]bool{}
	once := func(what string) error {
		if seen[what] {
			return fmt.Errorf("more than one %s", what)
		}
		seen[what] = true
		return nil
	}
	for c := range el.Elements() {
		var err error
		switch n := c.Name; {
		case n.Space == NSScram && n.Local == "scram-credentials":
			err = u.readScram(c)
		case n.Space == NSRoster && n.Local == "query":
			if err = once("roster"); err == nil {
				err = u.readRoster(c)
			}
		case n.Space == NSClient && n.Local == "presence":
			err = u.readPending(c)
		case n.Space == NSVCard && n.Local == "vCard":
			if err = once("vCard"); err == nil {
				u.VCard = c.Copy()
			}
		case n.Space == NSPrivate && n.Local == "query":
			err = u.readPrivate(c)
		case n.Space == NSOwner && n.Local == "pubsub":
			err = u.readNodeConfigs(c)
		case n.Space == NSPubSub && n.Local == "pubsub":
			err = u.readItems(c)
		case pieNS(n.Space) && n.Local == "offline-messages":
			err = u.readOffline(c)
		case n.Space == NSMAM && n.Local == "archive":
			err = u.readArchive(c)
		case n.Space == NSBlock && n.Local == "blocklist":
			err = u.readBlocklist(c)
		case n.Space == NSPrivacy && n.Local == "query":
			err = u.readPrivacy(c)
		}
		if err != nil {
			return u, err
		}
	}
	if u.Password == "" && len(u.Credentials) == 0 {
		return u, errors.New("no password and no SCRAM credentials: nobody could log in")
	}
	return u, nil
}

var hashSizes = map[string]int{"SHA-1": 20, "SHA-256": 32, "SHA-512": 64}

func (u *User) readScram(c *xmlstream.Element) error {
	mech := c.Attr("mechanism")
	hash, ok := strings.CutPrefix(mech, "SCRAM-")
	if !ok || hashSizes[hash] == 0 || !slices.Contains(sasl.Hashes, hash) {
		return fmt.Errorf("scram-credentials: unsupported mechanism %q", mech)
	}
	for _, have := range u.Credentials {
		if have.Hash == hash {
			return fmt.Errorf("scram-credentials: %s given twice", mech)
		}
	}
	text := func(local string) string {
		if e := c.Child(NSScram, local); e != nil {
			return strings.TrimSpace(e.Text())
		}
		return ""
	}
	iter, err := strconv.Atoi(text("iter-count"))
	if err != nil || iter < 1 || iter > maxIterations {
		return fmt.Errorf("scram-credentials %s: iter-count %q is not between 1 and %d", mech, text("iter-count"), maxIterations)
	}
	cred := storage.Credential{Hash: hash, Iterations: iter}
	for _, f := range []struct {
		name string
		dst  *[]byte
		size int
	}{{"salt", &cred.Salt, 0}, {"stored-key", &cred.StoredKey, hashSizes[hash]}, {"server-key", &cred.ServerKey, hashSizes[hash]}} {
		b, err := base64.StdEncoding.DecodeString(text(f.name))
		switch {
		case err != nil:
			return fmt.Errorf("scram-credentials %s: %s is not base64: %w", mech, f.name, err)
		case len(b) == 0:
			return fmt.Errorf("scram-credentials %s: no %s", mech, f.name)
		case f.size > 0 && len(b) != f.size:
			return fmt.Errorf("scram-credentials %s: %s is %d bytes, not %d", mech, f.name, len(b), f.size)
		case len(b) > maxSaltBytes:
			return fmt.Errorf("scram-credentials %s: %s is too long", mech, f.name)
		}
		*f.dst = b
	}
	u.Credentials = append(u.Credentials, cred)
	return nil
}

// bareJID parses a JID that must be bare (a contact, a blocked address).
func bareJID(what, s string) (string, error) {
	j, err := jid.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%s %q: %w", what, s, err)
	}
	if !j.IsBare() {
		return "", fmt.Errorf("%s %q is not a bare JID", what, s)
	}
	return j.String(), nil
}

func (u *User) readRoster(q *xmlstream.Element) error {
	seen := map[string]bool{}
	for it := range q.Elements() {
		if it.Name.Local != "item" {
			continue
		}
		contact, err := bareJID("roster item", it.Attr("jid"))
		if err != nil {
			return err
		}
		if seen[contact] {
			return fmt.Errorf("roster item %s appears twice", contact)
		}
		seen[contact] = true
		item := storage.RosterItem{Contact: contact, Name: it.Attr("name"), Subscription: it.Attr("subscription")}
		if item.Subscription == "" {
			item.Subscription = storage.SubNone
		}
		switch it.Attr("ask") {
		case "subscribe":
			item.Ask = true
		case "":
		default:
			return fmt.Errorf("roster item %s: unknown ask %q", contact, it.Attr("ask"))
		}
		for g := range it.Elements() {
			if g.Name.Local == "group" {
				item.Groups = append(item.Groups, g.Text())
			}
		}
		norm, err := storage.NormaliseRosterItem(item)
		if err != nil {
			return err
		}
		u.Roster = append(u.Roster, norm)
	}
	return nil
}

func (u *User) readPending(p *xmlstream.Element) error {
	if p.Attr("type") != "subscribe" {
		return nil
	}
	from, err := jid.Parse(p.Attr("from"))
	if err != nil {
		return fmt.Errorf("subscription request from %q: %w", p.Attr("from"), err)
	}
	b := from.Bare().String()
	if !slices.Contains(u.Pending, b) {
		u.Pending = append(u.Pending, b)
	}
	return nil
}

func (u *User) readPrivate(q *xmlstream.Element) error {
	for c := range q.Elements() {
		if c.Name.Space == "" || c.Name.Space == NSPrivate {
			return fmt.Errorf("private XML <%s/> has no namespace of its own", c.Name.Local)
		}
		for _, have := range u.Private {
			if have.Name.Space == c.Name.Space {
				return fmt.Errorf("private XML namespace %s given twice", c.Name.Space)
			}
		}
		u.Private = append(u.Private, c.Copy())
	}
	return nil
}

func (u *User) node(name string) (*Node, error) {
	if err := storage.ValidateNodeName(name); err != nil {
		return nil, fmt.Errorf("pubsub node: %w", err)
	}
	for i := range u.PEP {
		if u.PEP[i].Name == name {
			return &u.PEP[i], nil
		}
	}
	u.PEP = append(u.PEP, Node{Name: name})
	return &u.PEP[len(u.PEP)-1], nil
}

func (u *User) readNodeConfigs(ps *xmlstream.Element) error {
	for c := range ps.Elements() {
		if c.Name.Local != "configure" {
			continue // affiliations and subscriptions of a PEP node are not kept
		}
		n, err := u.node(c.Attr("node"))
		if err != nil {
			return err
		}
		if form := c.Child(NSData, "x"); form != nil {
			n.Config = form.Copy()
		}
	}
	return nil
}

func (u *User) readItems(ps *xmlstream.Element) error {
	for c := range ps.Elements() {
		if c.Name.Local != "items" {
			continue
		}
		n, err := u.node(c.Attr("node"))
		if err != nil {
			return err
		}
		for it := range c.Elements() {
			if it.Name.Local != "item" {
				continue
			}
			item := Item{ID: it.Attr("id"), Payload: it.FirstElement()}
			if item.Payload == nil {
				return fmt.Errorf("pubsub node %s: item %q has no payload", n.Name, item.ID)
			}
			item.Payload = item.Payload.Copy()
			if err := storage.ValidatePubSubItem(storage.PubSubItem{ID: item.ID, Publisher: u.JID}); err != nil {
				return fmt.Errorf("pubsub node %s: %w", n.Name, err)
			}
			if i := slices.IndexFunc(n.Items, func(x Item) bool { return x.ID == item.ID }); i >= 0 {
				n.Items = slices.Delete(n.Items, i, i+1) // republished: the later one counts
			}
			n.Items = append(n.Items, item)
		}
	}
	return nil
}

// message returns m as a jabber:client message, or an error.
func message(what string, m *xmlstream.Element) (*xmlstream.Element, error) {
	if m.Name.Local != "message" || (m.Name.Space != NSClient && m.Name.Space != "" && !pieNS(m.Name.Space)) {
		return nil, fmt.Errorf("%s: <%s xmlns='%s'/> is not a message", what, m.Name.Local, m.Name.Space)
	}
	c := m.Copy()
	c.Name.Space = NSClient
	for _, attr := range []string{"from", "to"} {
		if v := c.Attr(attr); v != "" {
			if _, err := jid.Parse(v); err != nil {
				return nil, fmt.Errorf("%s: %s %q: %w", what, attr, v, err)
			}
		}
	}
	return c, nil
}

func (u *User) readOffline(el *xmlstream.Element) error {
	for m := range el.Elements() {
		c, err := message("offline message", m)
		if err != nil {
			return err
		}
		u.Offline = append(u.Offline, c)
	}
	return nil
}

func (u *User) readArchive(el *xmlstream.Element) error {
	seen := map[string]bool{}
	for r := range el.Elements() {
		if r.Name.Space != NSMAM2 || r.Name.Local != "result" {
			continue
		}
		id := r.Attr("id")
		if id == "" || len(id) > storage.MaxArchiveIDBytes {
			return fmt.Errorf("archived message: id %q is empty or too long", id)
		}
		if seen[id] {
			return fmt.Errorf("archived message %s appears twice", id)
		}
		seen[id] = true
		fw := r.Child(NSForward, "forwarded")
		if fw == nil {
			return fmt.Errorf("archived message %s: no <forwarded/>", id)
		}
		delay := fw.Child(NSDelay, "delay")
		if delay == nil {
			return fmt.Errorf("archived message %s: no <delay/>", id)
		}
		stamp, err := xmpptime.Parse(delay.Attr("stamp"))
		if err != nil {
			return fmt.Errorf("archived message %s: stamp %q: %w", id, delay.Attr("stamp"), err)
		}
		var msg *xmlstream.Element
		for c := range fw.Elements() {
			if c.Name.Local == "message" {
				msg = c
			}
		}
		if msg == nil {
			return fmt.Errorf("archived message %s: no <message/>", id)
		}
		m, err := message("archived message "+id, msg)
		if err != nil {
			return err
		}
		u.Archive = append(u.Archive, ArchiveItem{ID: id, Stamp: stamp.UTC(), Message: m})
	}
	return nil
}

func (u *User) block(s string) error {
	b, err := jid.Parse(s)
	if err != nil {
		return fmt.Errorf("blocked JID %q: %w", s, err)
	}
	if !slices.Contains(u.Blocked, b.String()) {
		u.Blocked = append(u.Blocked, b.String())
	}
	return nil
}

func (u *User) readBlocklist(el *xmlstream.Element) error {
	for it := range el.Elements() {
		if it.Name.Local == "item" {
			if err := u.block(it.Attr("jid")); err != nil {
				return err
			}
		}
	}
	return nil
}

// readPrivacy takes from privacy lists (XEP-0016, what ejabberd exports)
// what a block list can say: JIDs denied everything. Rules by group or
// subscription, or for some stanza kinds only, have no equivalent.
func (u *User) readPrivacy(q *xmlstream.Element) error {
	for l := range q.Elements() {
		if l.Name.Local != "list" {
			continue
		}
		for it := range l.Elements() {
			if it.Name.Local == "item" && it.Attr("type") == "jid" && it.Attr("action") == "deny" && it.FirstElement() == nil {
				if err := u.block(it.Attr("value")); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func skipSpace(data []byte, off int) int {
	for off < len(data) && (data[off] == ' ' || data[off] == '\t' || data[off] == '\r' || data[off] == '\n') {
		off++
	}
	return off
}

// lineCol turns a byte offset into a 1-based line and column (in bytes).
func lineCol(data []byte, off int) (int, int) {
	off = min(off, len(data))
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := off - (bytes.LastIndexByte(before, '\n') + 1) + 1
	return line, col
}

func at(data []byte, off int, user string, err error) *Error {
	line, col := lineCol(data, off)
	return &Error{Line: line, Column: col, User: user, Err: err}
}

// Stamp format used when writing.
func formatStamp(t time.Time) string { return xmpptime.Format(t) }
