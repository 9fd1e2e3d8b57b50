// Package adhoc implements Ad-Hoc Commands (XEP-0050) on the server's
// domains, with a registry other modules add their commands to, and the
// Service Administration set (XEP-0133) for the configured admins.
//
// A command is at most two steps: execute shows a form, and submitting
// it completes the command. Only the admins see admin commands in
// disco#items and may run them; anyone else gets forbidden.
package adhoc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"slices"
	"sync"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// NS is XEP-0050's namespace, also the disco node listing the commands.
const NS = "http://jabber.org/protocol/commands"

// Command is one ad-hoc command.
type Command struct {
	Node, Name string
	// Admin: only the admins see and run it.
	Admin bool
	// Form is what the command asks for; nil runs it at once.
	Form func(ctx context.Context, from jid.JID) (*dataform.Form, error)
	// Run completes the command with the submitted form (nil for a
	// command without a form). A *stanza.Error is sent to the client as
	// is, with its text.
	Run func(ctx context.Context, from jid.JID, form *dataform.Form) (Result, error)
}

// Result is a completed command's answer.
type Result struct {
	Note string         // shown to the user
	Form *dataform.Form // a result form, or nil
}

// Provider is a module that offers commands; the adhoc module collects
// them from the modules it is given.
type Provider interface {
	Commands() []Command
}

// Options configure the module.
type Options struct {
	Admins []string // bare JIDs, normalised
	// AdminsNow, when set, gives the admins in force (a reload may
	// change them) instead of Admins.
	AdminsNow func() []string
	// Others are the modules whose commands (Provider) are offered too.
	Others []module.Module
}

// sessionLifetime is how long a form shown stays valid: time to type
// a password, not to hold state for ever.
const sessionLifetime = 10 * time.Minute

// maxSessions bounds the forms waiting for an answer, all users
// together; the oldest go first.
const maxSessions = 1000

type session struct {
	from    jid.JID
	node    string
	expires time.Time
}

type Module struct {
	opts     Options
	host     module.Host
	commands []Command // in registration order, which is disco order

	mu       sync.Mutex
	sessions map[string]session
}

func New(opts Options) *Module {
	return &Module{opts: opts, sessions: make(map[string]session)}
}

func (*Module) Name() string { return "adhoc" }

// Add registers a command; a node registered twice panics at start-up.
func (m *Module) Add(c Command) {
	if slices.ContainsFunc(m.commands, func(o Command) bool { return o.Node == c.Node }) {
		panic("adhoc: command " + c.Node + " registered twice")
	}
	m.commands = append(m.commands, c)
}

func (m *Module) Start(h module.Host) error {
	m.host = h
	for _, c := range m.adminCommands() {
		m.Add(c)
	}
	for _, o := range m.opts.Others {
		if p, ok := o.(Provider); ok {
			for _, c := range p.Commands() {
				m.Add(c)
			}
		}
	}
	h.AddFeature(module.Server, NS)
	h.HandleIQ(module.Server, "set", xmlstream.Name{Space: NS, Local: "command"}, m.execute)
	h.HandleDiscoNode(NS, module.DiscoNode{Items: m.items})
	for _, c := range m.commands {
		h.HandleDiscoNode(c.Node, module.DiscoNode{Info: m.info})
	}
	return nil
}

// IsAdmin reports whether from's account is one of the admins.
func (m *Module) IsAdmin(from jid.JID) bool {
	admins := m.opts.Admins
	if m.opts.AdminsNow != nil {
		admins = m.opts.AdminsNow()
	}
	return slices.Contains(admins, from.Bare().String())
}

// allowed says whether from may see and run c: local users only, and
// admin commands only for the admins.
func (m *Module) allowed(from jid.JID, c Command) bool {
	if from.Local() == "" || !m.host.IsLocal(from.Domain()) {
		return false
	}
	return !c.Admin || m.IsAdmin(from)
}

// find returns the command at node if from may run it.
func (m *Module) find(from jid.JID, node string) (Command, error) {
	i := slices.IndexFunc(m.commands, func(c Command) bool { return c.Node == node })
	if i < 0 {
		return Command{}, stanza.ItemNotFound("no such command")
	}
	if !m.allowed(from, m.commands[i]) {
		return Command{}, stanza.Forbidden("this command is for the server's admins")
	}
	return m.commands[i], nil
}

// items lists the commands from may run (XEP-0050 §2.2).
func (m *Module) items(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	q := xmlstream.New(stanza.NSDiscoIt, "query", "node", NS)
	for _, c := range m.commands {
		if m.allowed(iq.From, c) {
			q.AddChild(xmlstream.New(stanza.NSDiscoIt, "item", "jid", iq.To.String(), "node", c.Node, "name", c.Name))
		}
	}
	return q, nil
}

// info describes one command node (XEP-0050 §2.3).
func (m *Module) info(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	node := iq.Payload.Attr("node")
	c, err := m.find(iq.From, node)
	if err != nil {
		return nil, err
	}
	q := xmlstream.New(stanza.NSDiscoInf, "query", "node", node)
	q.AddChild(xmlstream.New(stanza.NSDiscoInf, "identity", "category", "automation", "type", "command-node", "name", c.Name))
	q.AddChild(xmlstream.New(stanza.NSDiscoInf, "feature", "var", NS))
	q.AddChild(xmlstream.New(stanza.NSDiscoInf, "feature", "var", dataform.NS))
	return q, nil
}

func (m *Module) execute(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	node := iq.Payload.Attr("node")
	c, err := m.find(iq.From, node)
	if err != nil {
		return nil, err
	}
	action := iq.Payload.Attr("action")
	sid := iq.Payload.Attr("sessionid")
	switch action {
	case "", "execute", "complete", "next", "cancel":
	case "prev":
		return nil, badAction("a command here has one step: there is no previous one")
	default:
		return nil, badAction("unknown action " + action)
	}
	if sid != "" && !m.takeSession(sid, iq.From, node) {
		return nil, badSession()
	}
	if action == "cancel" {
		if sid == "" {
			return nil, badSession()
		}
		return answer(node, sid, "canceled"), nil
	}
	var submitted *dataform.Form
	if x := iq.Payload.Child(dataform.NS, "x"); x != nil && sid != "" {
		f, err := dataform.Parse(x)
		if err != nil {
			return nil, stanza.BadRequest("the form: " + err.Error())
		}
		if f.Type == dataform.TypeCancel {
			return answer(node, sid, "canceled"), nil
		}
		submitted = f
	}
	if sid == "" && c.Form != nil {
		form, err := c.Form(ctx, iq.From)
		if err != nil {
			return nil, err
		}
		sid, err = m.newSession(iq.From, node)
		if err != nil {
			return nil, err
		}
		el := answer(node, sid, "executing")
		el.AddChild(xmlstream.New(NS, "actions", "execute", "complete").AddChild(xmlstream.New(NS, "complete")))
		el.AddChild(form.Element())
		return el, nil
	}
	if c.Form != nil && submitted == nil {
		return nil, stanza.BadRequest("submit the command's form")
	}
	res, err := c.Run(ctx, iq.From, submitted)
	if err != nil {
		var se *stanza.Error
		if errors.As(err, &se) {
			return nil, se
		}
		return nil, err
	}
	if sid == "" {
		if sid, err = newID(); err != nil {
			return nil, err
		}
	}
	el := answer(node, sid, "completed")
	if res.Note != "" {
		el.AddChild(xmlstream.New(NS, "note", "type", "info").AddText(res.Note))
	}
	if res.Form != nil {
		el.AddChild(res.Form.Element())
	}
	return el, nil
}

func answer(node, sid, status string) *xmlstream.Element {
	return xmlstream.New(NS, "command", "node", node, "sessionid", sid, "status", status)
}

// badAction and badSession are XEP-0050 §4.6's errors.
func badAction(text string) *stanza.Error {
	e := stanza.BadRequest(text)
	e.Extra = xmlstream.New(NS, "bad-action")
	return e
}

func badSession() *stanza.Error {
	e := stanza.BadRequest("no such command session: it ended or expired, execute the command again")
	e.Extra = xmlstream.New(NS, "bad-sessionid")
	return e
}

func (m *Module) newSession(from jid.JID, node string) (string, error) {
	sid, err := newID()
	if err != nil {
		return "", err
	}
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, s := range m.sessions {
		if now.After(s.expires) {
			delete(m.sessions, k)
		}
	}
	if len(m.sessions) >= maxSessions {
		// The oldest gives way: a flood of executes cannot grow memory.
		var oldest string
		for k, s := range m.sessions {
			if oldest == "" || s.expires.Before(m.sessions[oldest].expires) {
				oldest = k
			}
		}
		delete(m.sessions, oldest)
	}
	m.sessions[sid] = session{from: from, node: node, expires: now.Add(sessionLifetime)}
	return sid, nil
}

// takeSession ends a session, reporting whether it was from's for node
// and still valid: a form is answered once.
func (m *Module) takeSession(sid string, from jid.JID, node string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.sessions[sid]
	if !ok || !s.from.Equal(from) || s.node != node {
		return false
	}
	delete(m.sessions, sid)
	return time.Now().Before(s.expires)
}

func newID() (string, error) {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
