// Package welcome greets users from the server's own JID: the welcome
// message ([registration] welcome) once, at an account's first login, and
// the message of the day at every login until an admin changes or
// deletes it. Admins edit both with ad-hoc commands (XEP-0133).
package welcome

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"parley/internal/admin"
	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/session"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/modules/adhoc"
)

// Options configure the module.
type Options struct {
	Welcome string // the configured welcome text; "" = none
	// WelcomeNow, when set, gives the configured text in force (a reload
	// may change it) instead of Welcome.
	WelcomeNow func() string
	// Dir keeps the texts admins set (motd.txt, welcome.txt): server
	// state rather than any user's, and readable by whoever runs it.
	Dir string
}

const (
	motdFile    = "motd.txt"
	welcomeFile = "welcome.txt"
	// The per-account flag that the welcome was handled: set at the
	// first login whether or not a welcome was configured then, so that
	// setting one later greets only accounts created afterwards.
	nsWelcome  = "urn:parley:welcome"
	keyWelcome = "welcomed"
)

type Module struct {
	opts Options
	host module.Host

	mu   sync.Mutex
	motd string
	// welcome is the text an admin set, which wins over the configured
	// one; "" = the configured one.
	welcome string
}

// configured is the welcome text of the config in force.
func (m *Module) configured() string {
	if m.opts.WelcomeNow != nil {
		return m.opts.WelcomeNow()
	}
	return m.opts.Welcome
}

func New(opts Options) *Module { return &Module{opts: opts} }

func (*Module) Name() string { return "welcome" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	var err error
	if m.motd, err = readText(filepath.Join(m.opts.Dir, motdFile)); err != nil {
		return err
	}
	if m.welcome, err = readText(filepath.Join(m.opts.Dir, welcomeFile)); err != nil {
		return err
	}
	h.OnEvent(module.EventAvailable, m.available)
	return nil
}

func readText(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("welcome: %w", err)
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// writeText replaces a file whole, so that a crash leaves the old text
// or the new one; an empty text removes it.
func writeText(path, text string) error {
	if text == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	tmp := path + ".part"
	if err := os.WriteFile(tmp, []byte(text+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// available greets a session that just became available.
func (m *Module) available(ctx context.Context, s session.Session) {
	full := s.JID()
	bare := full.Bare()
	m.mu.Lock()
	motd, welcome := m.motd, m.welcome
	m.mu.Unlock()
	if welcome == "" {
		welcome = m.configured()
	}
	kv := m.host.Store().KV()
	_, err := kv.Get(ctx, bare.String(), nsWelcome, keyWelcome)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		// The flag first: a failure to store it must not greet the user
		// at every login.
		if err := kv.Put(ctx, bare.String(), nsWelcome, keyWelcome, []byte("1")); err != nil {
			m.host.Logger().Error("welcome: storing the welcome flag failed", "err", err)
		} else if welcome != "" {
			m.host.Route(ctx, admin.Notice(full.Domain(), full.String(), "normal", welcome, ""))
		}
	case err != nil:
		m.host.Logger().Error("welcome: reading the welcome flag failed", "err", err)
	}
	if motd != "" {
		m.host.Route(ctx, admin.Notice(full.Domain(), full.String(), "normal", motd, ""))
	}
}

// Commands are the XEP-0133 message-of-the-day and welcome commands.
func (m *Module) Commands() []adhoc.Command {
	text := func(field, label string, current func() string) func(context.Context, jid.JID) (*dataform.Form, error) {
		return func(context.Context, jid.JID) (*dataform.Form, error) {
			f := dataform.New(dataform.TypeForm, dataform.Admin)
			f.Title = label
			var vals []string
			if cur := current(); cur != "" {
				vals = strings.Split(cur, "\n")
			}
			f.Add(field, label, vals...)
			return f, nil
		}
	}
	none := func() string { return "" }
	return []adhoc.Command{
		{Node: adhoc.NSAdmin + "#set-motd", Name: "Set the message of the day", Admin: true,
			Form: text("motd", "Message of the day", none), Run: m.setMOTD},
		{Node: adhoc.NSAdmin + "#edit-motd", Name: "Edit the message of the day", Admin: true,
			Form: text("motd", "Message of the day", m.currentMOTD), Run: m.setMOTD},
		{Node: adhoc.NSAdmin + "#delete-motd", Name: "Delete the message of the day", Admin: true,
			Run: func(context.Context, jid.JID, *dataform.Form) (adhoc.Result, error) {
				if err := m.set(&m.motd, motdFile, ""); err != nil {
					return adhoc.Result{}, err
				}
				return adhoc.Result{Note: "the message of the day is deleted"}, nil
			}},
		{Node: adhoc.NSAdmin + "#set-welcome", Name: "Edit the welcome message", Admin: true,
			Form: text("welcome", "Welcome message for new accounts", m.currentWelcome), Run: m.setWelcome},
	}
}

func (m *Module) currentMOTD() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.motd
}

func (m *Module) currentWelcome() string {
	m.mu.Lock()
	w := m.welcome
	m.mu.Unlock()
	if w == "" {
		return m.configured()
	}
	return w
}

// set stores a text and makes it current.
func (m *Module) set(field *string, file, text string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := writeText(filepath.Join(m.opts.Dir, file), text); err != nil {
		return fmt.Errorf("welcome: storing %s: %w", file, err)
	}
	*field = text
	return nil
}

func (m *Module) setMOTD(_ context.Context, _ jid.JID, f *dataform.Form) (adhoc.Result, error) {
	text := strings.TrimSpace(strings.Join(f.Values("motd"), "\n"))
	if text == "" {
		return adhoc.Result{}, stanza.BadRequest("the message of the day is empty; use delete-motd to remove it")
	}
	if err := m.set(&m.motd, motdFile, text); err != nil {
		return adhoc.Result{}, err
	}
	return adhoc.Result{Note: "the message of the day is set"}, nil
}

// setWelcome stores the admin's text, which wins over the configured
// one; an empty text goes back to the configured one.
func (m *Module) setWelcome(_ context.Context, _ jid.JID, f *dataform.Form) (adhoc.Result, error) {
	text := strings.TrimSpace(strings.Join(f.Values("welcome"), "\n"))
	if err := m.set(&m.welcome, welcomeFile, text); err != nil {
		return adhoc.Result{}, err
	}
	if text == "" {
		return adhoc.Result{Note: "the welcome message is the configured one again"}, nil
	}
	return adhoc.Result{Note: "the welcome message is set"}, nil
}
