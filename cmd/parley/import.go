package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"parley/internal/accounts"
	"parley/internal/config"
	"parley/internal/jid"
	"parley/internal/pie"
	"parley/internal/sasl"
	"parley/internal/sealstore"
	"parley/internal/server"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/xmlstream"
	"parley/modules/blocking"
	"parley/modules/mam"
	"parley/modules/offline"
	"parley/modules/pep"
	"parley/modules/private"
	"parley/modules/roster"
	"parley/modules/vcard"
)

// nsBookmarks is the XEP-0402 node; nsLegacyBookmarks the XEP-0048 list
// private XML storage holds, which parley keeps as a view of that node.
const (
	nsBookmarks       = "urn:xmpp:bookmarks:1"
	nsLegacyBookmarks = "storage:bookmarks"
)

// transfer moves users between XEP-0227 and a running set of modules,
// so imported data is stored exactly as the modules store what clients
// send (sealed where they seal) and exported data is what they serve.
type transfer struct {
	cfg      config.Config
	store    storage.Store
	roster   *sealstore.Roster // rosters are sealed under each user's key
	accts    *accounts.Service
	vcard    *vcard.Module
	private  *private.Module
	pep      *pep.Module
	offline  *offline.Module
	mam      *mam.Module
	blocking *blocking.Module
	rooms    *roomTransfer
	srv      *server.Server
	closed   bool
}

// openTransfer starts the modules on the configured store without
// listening. Run it while parley is stopped: the modules of a running
// server cache some data (block lists) that an import would change
// under them.
func openTransfer(ctx context.Context, cfg config.Config, stderr io.Writer) (*transfer, error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	live := config.NewLive(cfg)
	mods := modules(live)
	srv, err := server.New(ctx, live, log, mods)
	if err != nil {
		return nil, err
	}
	t := &transfer{cfg: cfg, store: srv.Store(), accts: srv.Accounts(), srv: srv}
	for _, m := range mods {
		switch m := m.(type) {
		case *vcard.Module:
			t.vcard = m
		case *private.Module:
			t.private = m
		case *pep.Module:
			t.pep = m
		case *offline.Module:
			t.offline = m
		case *mam.Module:
			t.mam = m
		case *blocking.Module:
			t.blocking = m
		case *roster.Module:
			t.roster = m.Store()
		}
	}
	t.rooms = newRoomTransfer(cfg, srv.Store(), mods)
	return t, nil
}

// close stops the modules and closes the store; later calls do nothing,
// so it can be deferred and also called for its error.
func (t *transfer) close() error {
	if t.closed {
		return nil
	}
	t.closed = true
	return t.srv.Stop(context.Background())
}

func cmdImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (TOML)")
	paths, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(paths) == 0 {
		return usageError{"import needs at least one file or directory"}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	files, err := importFiles(paths)
	if err != nil {
		return err
	}
	// Everything is read and checked before the database is opened: a
	// broken file stops the import before anything is written.
	var users []*pie.User
	var rooms []*pie.Room
	var invalid []string
	seen := map[string]bool{}
	for i := 0; i < len(files); i++ {
		name := files[i]
		data, err := os.ReadFile(name)
		if err != nil {
			return err
		}
		if pie.IsRooms(data) {
			rs, err := pie.ReadRooms(data)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			rooms = append(rooms, rs...)
			continue
		}
		f, err := pie.Read(data)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		for _, e := range f.Invalid {
			invalid = append(invalid, fmt.Sprintf("%s: %v", name, e))
		}
		for _, u := range f.Users {
			if err := checkUser(cfg, u); err != nil {
				invalid = append(invalid, fmt.Sprintf("%s: line %d, column %d: user %s: %v", name, u.Line, u.Column, u.JID, err))
				continue
			}
			users = append(users, u)
		}
		for _, inc := range f.Includes {
			p := filepath.Join(filepath.Dir(name), filepath.FromSlash(inc))
			if !seen[p] && !slices.Contains(files, p) {
				seen[p] = true
				files = append(files, p)
			}
		}
	}
	t, err := openTransfer(ctx, cfg, stderr)
	if err != nil {
		return err
	}
	var failed []string
	changed := 0
	for _, u := range users {
		sum, err := t.importUser(ctx, u)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", u.JID, err))
			fmt.Fprintf(stdout, "%s: failed: %v\n", u.JID, err)
			continue
		}
		if sum != "unchanged" {
			changed++
		}
		fmt.Fprintf(stdout, "%s: %s\n", u.JID, sum)
	}
	roomsChanged := 0
	for _, r := range rooms {
		sum, err := t.importRoom(ctx, r)
		if err != nil {
			failed = append(failed, fmt.Sprintf("room %s: %v", r.JID, err))
			fmt.Fprintf(stdout, "room %s: failed: %v\n", r.JID, err)
			continue
		}
		if sum != "unchanged" {
			roomsChanged++
		}
		fmt.Fprintf(stdout, "room %s: %s\n", r.JID, sum)
	}
	for _, s := range invalid {
		fmt.Fprintf(stdout, "%s: not imported\n", s)
	}
	fmt.Fprintf(stdout, "total: %d users read, %d changed, %d unchanged, %d invalid, %d failed", len(users), changed, len(users)-changed-countUsers(failed), len(invalid), countUsers(failed))
	if len(rooms) > 0 {
		fmt.Fprintf(stdout, "; %d rooms read, %d changed", len(rooms), roomsChanged)
	}
	fmt.Fprintln(stdout)
	err = t.close()
	if len(invalid)+len(failed) > 0 {
		return errors.Join(err, fmt.Errorf("%d users or rooms were not imported (see above)", len(invalid)+len(failed)))
	}
	return err
}

func countUsers(failed []string) int {
	n := 0
	for _, f := range failed {
		if !strings.HasPrefix(f, "room ") {
			n++
		}
	}
	return n
}

// importFiles expands directories into the .xml files in them (sorted),
// so a directory prosody-migrator or export wrote can be given as is.
func importFiles(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !st.IsDir() {
			out = append(out, filepath.Clean(p))
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && strings.EqualFold(filepath.Ext(path), ".xml") {
				found = append(found, filepath.Clean(path))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, nil
}

// checkUser finds, before anything is written, what the modules would
// refuse, so that a user is imported completely or not at all.
func checkUser(cfg config.Config, u *pie.User) error {
	owner := jid.MustParse(u.JID)
	if !slices.Contains(cfg.Hosts, owner.Domain()) {
		return fmt.Errorf("%s is not one of the configured hosts %v", owner.Domain(), cfg.Hosts)
	}
	if err := storage.ValidateCredentials(u.Credentials); err != nil {
		return err
	}
	if u.Password != "" {
		if _, err := sasl.NewCredentials("SHA-256", u.Password, sasl.DefaultIterations); err != nil {
			return fmt.Errorf("the password cannot be used: %w", err)
		}
	}
	if n := cfg.Limits.MaxRosterItems; n > 0 && len(u.Roster) > n {
		return fmt.Errorf("%d roster items, more than limits.max_roster_items (%d)", len(u.Roster), n)
	}
	for _, p := range u.Pending {
		if err := storage.ValidateContact(p); err != nil {
			return err
		}
	}
	if u.VCard != nil {
		if n := len(u.VCard.Append(nil, "")); n > vcard.MaxBytes {
			return fmt.Errorf("the vCard is %d bytes, more than %d", n, vcard.MaxBytes)
		}
	}
	if len(u.Private) > private.MaxNamespaces {
		return fmt.Errorf("private XML in %d namespaces, more than %d", len(u.Private), private.MaxNamespaces)
	}
	for _, c := range u.Private {
		if n := len(privateQuery(c).Append(nil, "")); n > private.MaxBytes {
			return fmt.Errorf("private XML %s is %d bytes, more than %d", c.Name.Space, n, private.MaxBytes)
		}
	}
	if len(u.PEP) > pep.MaxNodes {
		return fmt.Errorf("%d PEP nodes, more than %d", len(u.PEP), pep.MaxNodes)
	}
	var pepBytes int64
	for _, n := range u.PEP {
		if err := pep.CheckNodeConfig(n.Name, n.Config); err != nil {
			return err
		}
		for _, it := range n.Items {
			pepBytes += int64(len(it.Payload.Append(nil, "")))
			if err := storage.ValidatePubSubItem(storage.PubSubItem{ID: it.ID, Publisher: u.JID, Payload: it.Payload.Append(nil, "")}); err != nil {
				return fmt.Errorf("PEP node %s: %w", n.Name, err)
			}
		}
	}
	if q := cfg.Limits.PEPBytesPerUser; q > 0 && pepBytes > q {
		return fmt.Errorf("PEP items of %d bytes, more than limits.pep_bytes_per_user (%d)", pepBytes, q)
	}
	for _, m := range u.Offline {
		if err := storage.ValidateBlob("offline message", m.Append(nil, stanza.NSClient)); err != nil {
			return err
		}
	}
	for _, a := range u.Archive {
		if _, err := mam.CheckRestore(owner, mam.Archived{ID: a.ID, Stamp: a.Stamp, Message: a.Message}); err != nil {
			return err
		}
	}
	if len(u.Blocked) > blocking.MaxItems {
		return fmt.Errorf("%d blocked JIDs, more than %d", len(u.Blocked), blocking.MaxItems)
	}
	return nil
}

func privateQuery(c *xmlstream.Element) *xmlstream.Element {
	q := xmlstream.New(private.NS, "query")
	q.AddChild(c.Copy())
	return q
}

// importUser writes one checked user. Every step compares with what is
// stored and writes only differences, so a second run changes nothing
// and a run cut short converges when repeated.
func (t *transfer) importUser(ctx context.Context, u *pie.User) (string, error) {
	// Written as the old server kept it, in clear; sealed under the
	// user's key at their next login (what vault does for offline
	// messages too), so a second import and an export compare it.
	ctx = sealstore.KeepClear(ctx)
	owner := jid.MustParse(u.JID)
	var done []string
	count := func(n int, what string) {
		if n > 0 {
			done = append(done, fmt.Sprintf("%d %s", n, what))
		}
	}
	created, credsChanged, err := t.importAccount(ctx, owner, u)
	if err != nil {
		return "", err
	}
	if created {
		done = append(done, "account created")
	} else if credsChanged {
		done = append(done, "password replaced")
	}

	n := 0
	for _, it := range u.Roster {
		have, err := t.roster.Item(ctx, u.JID, it.Contact)
		if err == nil && reflect.DeepEqual(have, it) {
			continue
		}
		if sealstore.Locked(err) {
			// Sealed under the owner's key, which is not here: only the
			// state compares. Its name and groups are left as they are
			// (README: a rename in a newer file waits for the owner).
			if have, err = t.roster.State(ctx, u.JID, it.Contact); err != nil {
				return "", err
			}
			if have.Subscription == it.Subscription && have.Ask == it.Ask && have.Approved == it.Approved {
				continue
			}
			if _, err := t.roster.SetState(ctx, u.JID, it.Contact, it.Subscription, it.Ask, it.Approved, 0); err != nil {
				return "", fmt.Errorf("roster item %s: %w", it.Contact, err)
			}
			n++
			continue
		}
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return "", err
		}
		if _, err := t.roster.Put(ctx, u.JID, it, 0); err != nil {
			return "", fmt.Errorf("roster item %s: %w", it.Contact, err)
		}
		n++
	}
	count(n, "roster items")
	n = 0
	for _, p := range u.Pending {
		if have, err := t.roster.HasPending(ctx, u.JID, p); err != nil {
			return "", err
		} else if have {
			continue
		}
		pr := xmlstream.New(stanza.NSClient, "presence", "from", p, "to", u.JID, "type", "subscribe")
		if err := t.roster.AddPending(ctx, u.JID, storage.Pending{Contact: p, Stanza: pr.Append(nil, stanza.NSClient)}); err != nil {
			return "", err
		}
		n++
	}
	count(n, "subscription requests")

	if u.VCard != nil {
		have, _, err := t.vcard.Load(ctx, owner)
		if err != nil {
			return "", err
		}
		if have == nil || have.String() != u.VCard.String() {
			if err := t.vcard.Store(ctx, owner, u.VCard); err != nil {
				return "", err
			}
			done = append(done, "vCard")
		}
	}

	// The XEP-0402 node is where parley keeps bookmarks; a legacy list
	// only goes through the bookmarks module when the file has no node.
	hasNode := slices.ContainsFunc(u.PEP, func(n pie.Node) bool { return n.Name == nsBookmarks })
	n = 0
	for _, c := range u.Private {
		ns := c.Name.Space
		q := privateQuery(c)
		have, err := t.private.Stored(ctx, owner, ns)
		if err != nil {
			return "", err
		}
		if have != nil && have.String() == q.String() {
			continue
		}
		if ns == nsLegacyBookmarks && hasNode {
			err = t.private.Keep(ctx, owner, ns, q)
		} else {
			err = t.private.Restore(ctx, owner, ns, q)
		}
		if err != nil {
			return "", fmt.Errorf("private XML %s: %w", ns, err)
		}
		n++
	}
	count(n, "private XML namespaces")

	n, nodes := 0, 0
	for _, node := range u.PEP {
		if t.pep.IsView(node.Name) {
			// The module behind the view keeps this data in its own
			// format (the legacy bookmarks node is private XML); the
			// same data comes with the file's private XML.
			continue
		}
		configured, err := t.pep.RestoreNode(ctx, owner, node.Name, node.Config)
		if err != nil {
			return "", fmt.Errorf("PEP node %s: %w", node.Name, err)
		}
		if configured {
			nodes++
		}
		have, _, err := t.pep.ItemsOf(ctx, owner, node.Name)
		if err != nil {
			return "", err
		}
		for _, it := range node.Items {
			if slices.ContainsFunc(have, func(h pep.Item) bool { return h.ID == it.ID && h.Payload.String() == it.Payload.String() }) {
				continue
			}
			if err := t.pep.PublishItem(ctx, owner, node.Name, it.ID, it.Payload); err != nil {
				return "", fmt.Errorf("PEP node %s item %s: %w", node.Name, it.ID, err)
			}
			n++
		}
	}
	count(nodes, "PEP nodes configured")
	count(n, "PEP items")

	if len(u.Offline) > 0 {
		have, err := t.offline.Waiting(ctx, owner)
		if err != nil {
			return "", err
		}
		// A multiset: the same message twice in the file is kept twice,
		// but a second import adds nothing.
		waiting := map[string]int{}
		for _, h := range have {
			waiting[h.String()]++
		}
		n = 0
		for _, m := range u.Offline {
			if waiting[m.String()] > 0 {
				waiting[m.String()]--
				continue
			}
			if err := t.offline.Keep(ctx, owner, m); err != nil {
				return "", err
			}
			n++
		}
		count(n, "offline messages")
	}

	n, old, note := 0, 0, ""
	for _, a := range u.Archive {
		if t.expired(a.Stamp) {
			old++
			continue
		}
		added, err := t.mam.Restore(ctx, owner, mam.Archived{ID: a.ID, Stamp: a.Stamp, Message: a.Message})
		if err != nil {
			return "", err
		}
		if added {
			n++
		}
	}
	count(n, "archived messages")
	if old > 0 {
		note = fmt.Sprintf(" (%d archived messages older than retention.archive left out)", old)
	}

	if len(u.Blocked) > 0 {
		jids := make([]jid.JID, len(u.Blocked))
		for i, b := range u.Blocked {
			jids[i] = jid.MustParse(b)
		}
		added, err := t.blocking.Restore(ctx, owner, jids)
		if err != nil {
			return "", err
		}
		count(added, "blocked JIDs")
	}
	if len(done) == 0 {
		return "unchanged" + note, nil
	}
	return strings.Join(done, ", ") + note, nil
}

// importAccount creates the account or brings its credentials in line
// with the file. Credentials the account gained since (SHA-256 and
// SHA-512 after a PLAIN login) are kept as long as the file's still
// match.
func (t *transfer) importAccount(ctx context.Context, owner jid.JID, u *pie.User) (created, changed bool, err error) {
	a, err := t.store.Users().Get(ctx, u.JID)
	exists := err == nil
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return false, false, err
	}
	if u.Password != "" {
		if exists && passwordMatches(a.Credentials, u.Password) {
			return false, false, nil
		}
		if !exists {
			return true, false, t.accts.Create(ctx, owner, u.Password)
		}
		return false, true, t.accts.SetPassword(ctx, owner, u.Password)
	}
	if !exists {
		return true, false, t.store.Users().Create(ctx, storage.Account{JID: u.JID, Credentials: u.Credentials})
	}
	same := true
	for _, c := range u.Credentials {
		if !slices.ContainsFunc(a.Credentials, func(h storage.Credential) bool { return reflect.DeepEqual(h, c) }) {
			same = false
		}
	}
	if same {
		return false, false, nil
	}
	return false, true, t.store.Users().SetCredentials(ctx, u.JID, u.Credentials)
}

// expired says whether the archive's retention would delete a message
// of that stamp at once: importing it would only race the clean-up.
func (t *transfer) expired(stamp time.Time) bool {
	keep := t.cfg.Retention.Archive.Keep
	return keep > 0 && stamp.Before(time.Now().Add(-keep))
}

func passwordMatches(creds []storage.Credential, password string) bool {
	for _, c := range creds {
		sc := sasl.Credentials{Hash: c.Hash, Salt: c.Salt, Iterations: c.Iterations, StoredKey: c.StoredKey, ServerKey: c.ServerKey}
		if sc.VerifyPassword(password) {
			return true
		}
	}
	return false
}
