package adhoc

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"parley/internal/accounts"
	"parley/internal/admin"
	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/storage"
)

// NSAdmin prefixes the XEP-0133 command nodes.
const NSAdmin = dataform.Admin

// adminCommands is the XEP-0133 set parley implements.
func (m *Module) adminCommands() []Command {
	return []Command{
		{Node: NSAdmin + "#add-user", Name: "Add a user", Admin: true,
			Form: staticForm("Add a user", func(f *dataform.Form) {
				f.Add("accountjid", "The address of the new account")
				f.Add("password", "Password")
				f.Add("password-verify", "Password again")
			}),
			Run: m.addUser},
		{Node: NSAdmin + "#delete-user", Name: "Delete users", Admin: true,
			Form: staticForm("Delete users and all their data", accountsField),
			Run: m.eachAccount("deleted", func(ctx context.Context, j jid.JID) error {
				admin.Kick(m.host.AllSessions(), j, "this account was deleted")
				return m.host.Accounts().Delete(ctx, j)
			})},
		{Node: NSAdmin + "#disable-user", Name: "Disable users", Admin: true,
			Form: staticForm("Disable users: they cannot log in until enabled again", accountsField),
			Run: m.eachAccount("disabled", func(ctx context.Context, j jid.JID) error {
				if err := m.host.Accounts().SetDisabled(ctx, j, true); err != nil {
					return err
				}
				admin.Kick(m.host.AllSessions(), j, "this account was disabled")
				return nil
			})},
		{Node: NSAdmin + "#reenable-user", Name: "Re-enable users", Admin: true,
			Form: staticForm("Re-enable users", accountsField),
			Run: m.eachAccount("enabled", func(ctx context.Context, j jid.JID) error {
				return m.host.Accounts().SetDisabled(ctx, j, false)
			})},
		{Node: NSAdmin + "#change-user-password", Name: "Change a user's password", Admin: true,
			Form: staticForm("Change a user's password", func(f *dataform.Form) {
				f.Add("accountjid", "The account")
				f.Add("password", "New password")
			}),
			Run: m.changePassword},
		{Node: NSAdmin + "#end-user-session", Name: "End user sessions", Admin: true,
			Form: staticForm("End the sessions of accounts (bare JID) or single sessions (full JID)", accountsField),
			Run:  m.endSessions},
		{Node: NSAdmin + "#get-registered-users-num", Name: "Number of registered users", Admin: true,
			Run: m.registeredNum},
		{Node: NSAdmin + "#get-registered-users-list", Name: "List registered users", Admin: true,
			Form: staticForm("List registered users", maxItemsField), Run: m.registeredList},
		{Node: NSAdmin + "#get-online-users-num", Name: "Number of online users", Admin: true,
			Run: m.onlineNum},
		{Node: NSAdmin + "#get-online-users-list", Name: "List online users", Admin: true,
			Form: staticForm("List online users", maxItemsField), Run: m.onlineList},
		{Node: NSAdmin + "#announce", Name: "Send an announcement to all online users", Admin: true,
			Form: staticForm("Announcement to every online user", func(f *dataform.Form) {
				f.Add("announcement", "Text")
			}),
			Run: m.announce},
	}
}

// staticForm is a Form function for a form that does not depend on the
// requester.
func staticForm(title string, fill func(*dataform.Form)) func(context.Context, jid.JID) (*dataform.Form, error) {
	return func(context.Context, jid.JID) (*dataform.Form, error) {
		f := dataform.New(dataform.TypeForm, NSAdmin)
		f.Title = title
		fill(f)
		return f, nil
	}
}

func accountsField(f *dataform.Form) { f.Add("accountjids", "Accounts") }

func maxItemsField(f *dataform.Form) { f.Add("max_items", "How many at most", "100") }

// account reads a local account's address from a form value.
func (m *Module) account(v string) (jid.JID, error) {
	j, err := jid.Parse(strings.TrimSpace(v))
	if err != nil || j.Local() == "" || !j.IsBare() {
		return jid.JID{}, stanza.BadRequest(fmt.Sprintf("%q is not an account address of the form user@domain", v))
	}
	if !m.host.IsLocal(j.Domain()) {
		return jid.JID{}, stanza.NotAllowed(fmt.Sprintf("%s is not an account of this server", j))
	}
	return j, nil
}

func (m *Module) addUser(ctx context.Context, _ jid.JID, f *dataform.Form) (Result, error) {
	j, err := m.account(f.Value("accountjid"))
	if err != nil {
		return Result{}, err
	}
	pw := f.Value("password")
	if pw == "" || pw != f.Value("password-verify") {
		return Result{}, notAcceptable("the two passwords are empty or differ")
	}
	err = m.host.Accounts().Create(ctx, j, pw)
	if errors.Is(err, storage.ErrExists) {
		return Result{}, stanza.Conflict(j.String() + " already exists")
	}
	if err != nil {
		return Result{}, accountError(j, err)
	}
	return Result{Note: j.String() + " created"}, nil
}

func (m *Module) changePassword(ctx context.Context, _ jid.JID, f *dataform.Form) (Result, error) {
	j, err := m.account(f.Value("accountjid"))
	if err != nil {
		return Result{}, err
	}
	if err := admin.KeyHeldElsewhere(m.host.Vault().Held(j.String()), m.host.AllSessions(), j); err != nil {
		return Result{}, stanza.NotAllowed(err.Error())
	}
	lost, err := m.host.Accounts().ChangePassword(ctx, j, f.Value("password"))
	if err != nil {
		return Result{}, accountError(j, err)
	}
	if lost {
		// The user was not logged in, so their key could not be
		// rewrapped under the new password.
		return Result{Note: "the password of " + j.String() + " was changed; " + SealedLostNote}, nil
	}
	return Result{Note: "the password of " + j.String() + " was changed"}, nil
}

// SealedLostNote says what an admin reset of a password costs the user.
const SealedLostNote = "the user was not logged in, so the data sealed for them (archive, offline messages and other sealed data) can no longer be read"

// accountError turns what the account service says into what the admin
// can act on.
func accountError(j jid.JID, err error) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return stanza.ItemNotFound(j.String() + " does not exist")
	case errors.Is(err, accounts.ErrBadPassword):
		return notAcceptable(err.Error())
	}
	return err
}

// eachAccount runs do on every account of the accountjids field, all
// checked before any is changed.
func (m *Module) eachAccount(done string, do func(context.Context, jid.JID) error) func(context.Context, jid.JID, *dataform.Form) (Result, error) {
	return func(ctx context.Context, _ jid.JID, f *dataform.Form) (Result, error) {
		var js []jid.JID
		for _, v := range f.Values("accountjids") {
			j, err := m.account(v)
			if err != nil {
				return Result{}, err
			}
			js = append(js, j)
		}
		if len(js) == 0 {
			return Result{}, stanza.BadRequest("no account given")
		}
		var names []string
		for _, j := range js {
			if err := do(ctx, j); err != nil {
				return Result{}, accountError(j, err)
			}
			names = append(names, j.String())
		}
		return Result{Note: strings.Join(names, ", ") + ": " + done}, nil
	}
}

func (m *Module) endSessions(_ context.Context, _ jid.JID, f *dataform.Form) (Result, error) {
	var targets []jid.JID
	for _, v := range f.Values("accountjids") {
		j, err := jid.Parse(strings.TrimSpace(v))
		if err != nil || j.Local() == "" || !m.host.IsLocal(j.Domain()) {
			return Result{}, stanza.BadRequest(fmt.Sprintf("%q is not an address of this server's users", v))
		}
		targets = append(targets, j)
	}
	if len(targets) == 0 {
		return Result{}, stanza.BadRequest("no account given")
	}
	n := 0
	for _, j := range targets {
		n += admin.Kick(m.host.AllSessions(), j, "an admin ended this session")
	}
	return Result{Note: fmt.Sprintf("%d sessions ended", n)}, nil
}

// maxItems reads the max_items field: a number, or "none" for all.
func maxItems(f *dataform.Form) (int, error) {
	v := f.Value("max_items")
	if v == "" || v == "none" {
		return -1, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, stanza.BadRequest("max_items must be a positive number or none")
	}
	return n, nil
}

func resultForm(fill func(*dataform.Form)) *dataform.Form {
	f := dataform.New(dataform.TypeResult, NSAdmin)
	fill(f)
	return f
}

func (m *Module) registeredNum(ctx context.Context, _ jid.JID, _ *dataform.Form) (Result, error) {
	n, err := m.host.Store().Users().Count(ctx, "")
	if err != nil {
		return Result{}, err
	}
	return Result{Form: resultForm(func(f *dataform.Form) {
		f.Add("registeredusersnum", "Registered users", strconv.Itoa(n))
	})}, nil
}

func (m *Module) registeredList(ctx context.Context, _ jid.JID, in *dataform.Form) (Result, error) {
	limit, err := maxItems(in)
	if err != nil {
		return Result{}, err
	}
	users, err := m.host.Store().Users().List(ctx, "")
	if err != nil {
		return Result{}, err
	}
	total := len(users)
	if limit >= 0 && len(users) > limit {
		users = users[:limit]
	}
	return Result{Note: fmt.Sprintf("%d registered users", total), Form: resultForm(func(f *dataform.Form) {
		f.Add("registeredusersnum", "Registered users", strconv.Itoa(total))
		f.Add("registereduserjids", "Accounts", users...)
	})}, nil
}

// online lists the accounts with at least one session, sorted.
func (m *Module) online() (accounts []string, sessions int) {
	all := m.host.AllSessions()
	for _, s := range all {
		accounts = append(accounts, s.JID().Bare().String())
	}
	slices.Sort(accounts)
	return slices.Compact(accounts), len(all)
}

func (m *Module) onlineNum(context.Context, jid.JID, *dataform.Form) (Result, error) {
	users, sessions := m.online()
	return Result{Note: fmt.Sprintf("%d sessions", sessions), Form: resultForm(func(f *dataform.Form) {
		f.Add("onlineusersnum", "Online users", strconv.Itoa(len(users)))
	})}, nil
}

func (m *Module) onlineList(_ context.Context, _ jid.JID, in *dataform.Form) (Result, error) {
	limit, err := maxItems(in)
	if err != nil {
		return Result{}, err
	}
	users, sessions := m.online()
	total := len(users)
	if limit >= 0 && len(users) > limit {
		users = users[:limit]
	}
	return Result{Note: fmt.Sprintf("%d online users, %d sessions", total, sessions), Form: resultForm(func(f *dataform.Form) {
		f.Add("onlineusersnum", "Online users", strconv.Itoa(total))
		f.Add("onlineuserjids", "Online users", users...)
	})}, nil
}

func (m *Module) announce(ctx context.Context, _ jid.JID, f *dataform.Form) (Result, error) {
	text := strings.Join(f.Values("announcement"), "\n")
	if strings.TrimSpace(text) == "" {
		return Result{}, stanza.BadRequest("the announcement is empty")
	}
	n := admin.Announce(ctx, m.host.AllSessions(), m.host.Route, text)
	return Result{Note: fmt.Sprintf("announced to %d sessions", n)}, nil
}

func notAcceptable(text string) *stanza.Error {
	return &stanza.Error{Type: stanza.Modify, Condition: "not-acceptable", Text: text}
}
