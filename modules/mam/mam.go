// Package mam keeps a per-user archive of one-to-one messages and lets
// clients page through it: Message Archive Management (XEP-0313,
// urn:xmpp:mam:2 and #extended) with Result Set Management (XEP-0059),
// per-user preferences, and unique stanza ids (XEP-0359) on every archived
// message, so a client can tell where it left off.
//
// Every archived message is sealed with AES-256-GCM under a key derived
// from the server's secret, which lives outside the database. The owner,
// the stanza id, the other party, the direction and the timestamp are
// authenticated with it, so whoever copies or edits the database can
// neither read a message nor alter, move or re-date one unnoticed. A
// message that fails to open is left out of results, never handed out as
// genuine; the owner is told once how many were withheld, and a key that
// changed (a lost server secret) is told apart from tampering.
//
// The inbound hook runs before delivery and before offline storage, so
// messages kept offline are archived too and a client that uses MAM can
// fetch them from the archive.
package mam

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/seal"
	"parley/internal/sealstore"
	"parley/internal/stanza"
	"parley/internal/storage"
	"parley/internal/vault"
	"parley/internal/xmlstream"
	"parley/modules/internal/mamquery"
	"parley/modules/internal/retention"
	"parley/modules/internal/unverified"
)

// Namespaces of the protocols the module speaks.
const (
	NS         = mamquery.NS
	NSExtended = mamquery.NSExtended
	NSSID      = stanza.NSSID
	NSRSM      = mamquery.NSRSM
	nsOMEMO    = "eu.siacs.conversations.axolotl"
	nsOMEMO2   = "urn:xmpp:omemo:2"
)

// Page sizes: DefaultPage when the client sets no RSM max, and never more
// than MaxPage, so one query stays a bounded amount of work and output.
const (
	DefaultPage = 50
	MaxPage     = 250
)

// Limits on preferences, which live in one KV value per user.
const maxPrefsJIDs = 1000

// kvKey holds a user's preferences in the KV namespace NS.
const kvKey = "prefs"

// Module is the message archive. Create it with New.
type Module struct {
	retention time.Duration
	keepFor   func() time.Duration // see WithRetention
	now       func() time.Time

	host    module.Host
	archive storage.Archive
	kv      *sealstore.KV // preferences: JIDs always/never archived
	sealer  *seal.Sealer  // rows of accounts without keys, and from before the vault
	vault   *vault.Vault
	report  *unverified.Reporter
	fails   *storage.FailureLog

	writer *writer
	// writeTimer times the archive's batch writes, for metrics.
	writeTimer *module.Timer

	prefsMu    sync.Mutex
	prefsCache map[string]prefs // bare JID -> preferences, bounded
}

// New returns the module; archived messages older than retention are
// deleted by the module itself (0 keeps them for ever).
func New(retention time.Duration) *Module {
	return &Module{retention: retention, now: time.Now, writeTimer: &module.Timer{
		Name: "parley_archive_write_seconds",
		Help: "Time to write one batch of messages to the archive (XEP-0313).",
	}}
}

// WithRetention reads the retention period from keep at each clean-up
// (a reload may change it); call it before Start.
func (m *Module) WithRetention(keep func() time.Duration) *Module { m.keepFor = keep; return m }

func (m *Module) retentionNow() time.Duration { return retention.Now(m.retention, m.keepFor) }

func (*Module) Name() string { return "mam" }

func (m *Module) Start(h module.Host) error {
	if m.retentionNow() < 0 {
		return fmt.Errorf("mam: negative retention %v", m.retentionNow())
	}
	m.host = h
	m.archive = h.Store().Archive()
	// Preferences list JIDs and are read while the owner is away (an
	// arriving message is checked against them): sealed under a server
	// key, clear ones of earlier versions sealed at the owner's login.
	prefsKey, err := sealstore.NewServerKey(h.Key("archive preferences"))
	if err != nil {
		return fmt.Errorf("mam: %w", err)
	}
	m.kv = sealstore.NewKV(h.Store().KV(), prefsKey, NS)
	h.Vault().OnUnlock(func(ctx context.Context, owner string) {
		if err := m.kv.Reseal(ctx, owner); err != nil {
			h.Logger().Error("mam: sealing preferences kept in clear failed", "jid", owner, "err", err)
		}
	})
	if m.sealer, err = seal.New(h.Key("archive")); err != nil {
		return fmt.Errorf("mam: %w", err)
	}
	m.vault = h.Vault()
	m.vault.OnUnlock(m.reseal)
	m.report = unverified.New("archived messages", h.Logger())
	m.fails = storage.NewFailureLog(h.Logger())
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NS, Local: "query"}, m.query)
	h.HandleIQ(module.Account, "get", xmlstream.Name{Space: NS, Local: "query"}, m.form)
	h.HandleIQ(module.Account, "get", xmlstream.Name{Space: NS, Local: "prefs"}, m.getPrefs)
	h.HandleIQ(module.Account, "set", xmlstream.Name{Space: NS, Local: "prefs"}, m.setPrefs)
	h.HandleIQ(module.Account, "get", xmlstream.Name{Space: NS, Local: "metadata"}, m.metadata)
	h.AddFeature(module.Account, NS)
	h.AddFeature(module.Account, NSExtended)
	h.AddFeature(module.Account, NSSID)
	m.writer = newWriter(m.archive, h.Logger().Error, m.writeTimer)
	h.OnMessage(m.hook)
	if m.retention > 0 || m.keepFor != nil {
		// Retention is enforced by the server itself: no cron job. The
		// period in force is read at every round, so a reload applies.
		h.Every(module.RetentionInterval(cmp.Or(m.retentionNow(), time.Hour)), m.expire)
	}
	return nil
}

// Stop writes what the archive still holds in memory.
func (m *Module) Stop(ctx context.Context) error {
	if m.writer != nil {
		if err := m.writer.close(ctx); err != nil {
			return fmt.Errorf("mam: writing the last archive entries: %w", err)
		}
	}
	return nil
}

func (m *Module) expire(ctx context.Context) {
	keep := m.retentionNow()
	if keep <= 0 {
		return // keep everything (changed by a reload)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	n, err := m.archive.DeleteBefore(ctx, m.now().Add(-keep))
	if err != nil {
		m.host.Logger().Error("mam: retention clean-up failed", "err", err)
	} else if n > 0 {
		m.host.Logger().Info("mam: expired archived messages deleted", "count", n)
	}
}

// newID returns a stanza id: 96 random bits, unguessable, so an id tells
// nothing about the archive and cannot be forged to probe it.
func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// additionalData binds a sealed message to everything its row says about
// it (owner, stanza id, the other party, whose bare JID the conversation
// filter uses, direction and time), so no column can be changed, and no
// row moved to another owner or conversation, without the seal failing.
func additionalData(owner jid.JID, am storage.ArchiveMessage) []byte {
	dir := "in"
	if am.Outgoing {
		dir = "out"
	}
	return seal.AD(NS, owner.String(), am.ID, am.With, storage.BareOf(am.With), dir,
		strconv.FormatInt(am.Stamp.UnixMicro(), 10))
}

// additionalDataV1 is what the first seal format bound.
func additionalDataV1(owner jid.JID, am storage.ArchiveMessage) []byte {
	dir := "in"
	if am.Outgoing {
		dir = "out"
	}
	b := make([]byte, 0, 128)
	for _, s := range []string{NS, owner.String(), am.ID, am.With, dir} {
		b = append(b, s...)
		b = append(b, 0)
	}
	return strconv.AppendInt(b, am.Stamp.UnixMicro(), 10)
}

func (m *Module) seal(owner jid.JID, am storage.ArchiveMessage, plain []byte) []byte {
	return m.sealer.Seal(plain, additionalData(owner, am))
}

// open returns a message's plain stanza, seal.ErrWrongKey when it was
// sealed under another key, seal.ErrTampered when it fails its check.
func (m *Module) open(owner jid.JID, am storage.ArchiveMessage) ([]byte, error) {
	if seal.Format(am.Data) == seal.V1 {
		return m.sealer.OpenV1(am.Data, additionalDataV1(owner, am))
	}
	return m.sealer.Open(am.Data, additionalData(owner, am))
}

// storageError maps a storage failure to what the client is told.
func storageError(err error, what string) error {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return stanza.ItemNotFound(what)
	case errors.Is(err, storage.ErrInvalid):
		return stanza.BadRequest(what)
	}
	return err
}

// own checks that an IQ is about the sender's own archive: an archive is
// private to its owner.
func own(iq module.IQ) error {
	if !iq.To.Equal(iq.From.Bare()) {
		return stanza.Forbidden("only the owner may use an archive")
	}
	return nil
}

// Metrics reports how long archive writes take.
func (m *Module) Metrics() ([]module.Gauge, []*module.Timer) {
	return nil, []*module.Timer{m.writeTimer}
}
