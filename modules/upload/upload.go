// Package upload implements HTTP File Upload (XEP-0363 v1.1) as a
// service on its own domain. A local user asks the service for a slot;
// the answer holds a PUT URL with an Authorization header that carries a
// grant signed by the server (size, content type, owner, expiry), so the
// HTTPS side checks a PUT without any state shared with the XMPP side.
// Files live on disk with a JSON sidecar each; quotas are counted from
// those sidecars, and files older than the retention are deleted by the
// module's own goroutine.
package upload

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/module"
	"parley/internal/seal"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

const (
	NS           = "urn:xmpp:http:upload:0"
	nsDiscoInfo  = stanza.NSDiscoInf
	nsDiscoItems = stanza.NSDiscoIt

	// pathPrefix is where slots live on the HTTPS listener.
	pathPrefix = "/upload/"
	// slotLifetime is how long after the slot request its PUT may start:
	// long enough for a phone to pick the file, short enough that a
	// leaked header is soon worthless.
	slotLifetime = 10 * time.Minute
)

// Options configure the service.
type Options struct {
	Domain string // the service domain, e.g. upload.example.org
	Dir    string // where files are kept (created 0700)
	// PublicURL is the https base URL put into slots; "" means
	// https://Domain:<port of the HTTPS listener>.
	PublicURL          string
	MaxFileSize        int64
	QuotaPerUserPerDay int64         // bytes in any 24 hours; 0 = no limit
	QuotaTotal         int64         // bytes stored at once; 0 = no limit
	Retention          time.Duration // 0 = keep files until removed by hand
	// MinRate is the slowest a PUT body may arrive, in bytes per
	// second: after a grace of RateWindow, each RateWindow must bring
	// MinRate*RateWindow bytes, or the upload is cut. 0 = no limit.
	MinRate    int64
	RateWindow time.Duration // 0 = defaultRateWindow
	// ConcurrentPerUser is how many PUTs one user may have in progress;
	// 0 = no limit.
	ConcurrentPerUser int
	// Live, when set, gives the limits in force at each request (a
	// reload may change them) instead of those above.
	Live func() Limits
	Now  func() time.Time
}

// Limits are the options a reload may change.
type Limits struct {
	MaxFileSize, QuotaPerUserPerDay, QuotaTotal, MinRate int64
	ConcurrentPerUser                                    int
}

// limits returns the limits in force.
func (m *Module) limits() Limits {
	if m.opts.Live != nil {
		return m.opts.Live()
	}
	o := m.opts
	return Limits{MaxFileSize: o.MaxFileSize, QuotaPerUserPerDay: o.QuotaPerUserPerDay,
		QuotaTotal: o.QuotaTotal, MinRate: o.MinRate, ConcurrentPerUser: o.ConcurrentPerUser}
}

// defaultRateWindow is the period over which an upload's progress is
// measured: long enough to ride out a phone's radio switching cells.
const defaultRateWindow = 10 * time.Second

type Module struct {
	opts  Options
	host  module.Host
	key   []byte
	files *store
}

func New(opts Options) *Module {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RateWindow <= 0 {
		opts.RateWindow = defaultRateWindow
	}
	return &Module{opts: opts}
}

func (*Module) Name() string { return "upload" }

func (m *Module) Start(h module.Host) error {
	if m.opts.Domain == "" || m.opts.Dir == "" || m.opts.MaxFileSize < 1 {
		return fmt.Errorf("upload: domain, directory and a positive maximum file size are required")
	}
	m.host = h
	m.key = h.Key("upload")
	sealer, err := seal.New(h.Key("upload records"))
	if err != nil {
		return err
	}
	files, err := openStore(m.opts.Dir, h.Logger(), sealer)
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	m.files = files
	h.AddComponent(module.Component{Domain: m.opts.Domain, Name: "HTTP file upload"}, m.handle)
	h.HandleHTTP(pathPrefix, m)
	// Retention, and the removal of what interrupted uploads left, run
	// even without a retention (hourly then), so the disk never needs a
	// cron job.
	every := time.Hour
	if m.opts.Retention > 0 {
		every = module.RetentionInterval(m.opts.Retention)
	}
	h.Every(every, func(context.Context) { m.expire(m.opts.Now()) })
	return nil
}

func (m *Module) expire(now time.Time) {
	n, err := m.files.expire(now, m.opts.Retention)
	if err != nil {
		m.host.Logger().Error("upload: retention clean-up failed", "err", err)
	}
	if n > 0 {
		m.host.Logger().Info("upload: expired files deleted", "count", n)
	}
}

// handle takes every stanza for the service domain.
func (m *Module) handle(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if el.Name.Local != "iq" {
		// Nothing here reads messages; say so rather than drop them.
		if el.Name.Local == "message" {
			m.reply(ctx, from, to, stanza.ErrorReply(el, stanza.ServiceUnavailable()))
		}
		return
	}
	typ := el.Attr("type")
	if typ != "get" && typ != "set" {
		return // the service sends no requests, so no answer is awaited
	}
	res, err := m.answer(from, to, typ, el)
	if err != nil {
		se := stanza.AsError(err)
		if se.Condition == "internal-server-error" {
			m.host.Logger().Error("upload: request failed", "from", from.String(), "err", err)
		}
		m.reply(ctx, from, to, stanza.ErrorReply(el, se))
		return
	}
	m.reply(ctx, from, to, stanza.Result(el, res))
}

func (m *Module) reply(ctx context.Context, from, to jid.JID, el *xmlstream.Element) {
	if el == nil {
		return
	}
	el.SetAttr("from", to.String())
	el.SetAttr("to", from.String())
	m.host.Route(ctx, el)
}

func (m *Module) answer(from, to jid.JID, typ string, el *xmlstream.Element) (*xmlstream.Element, error) {
	payload := el.FirstElement()
	if payload == nil {
		return nil, stanza.BadRequest("an IQ get or set needs a payload")
	}
	if !to.IsDomain() {
		return nil, stanza.ServiceUnavailable()
	}
	if typ == "get" {
		switch payload.Name {
		case xmlstream.Name{Space: nsDiscoInfo, Local: "query"}:
			if payload.Attr("node") != "" {
				return nil, stanza.ItemNotFound("")
			}
			return m.discoInfo(), nil
		case xmlstream.Name{Space: nsDiscoItems, Local: "query"}:
			if payload.Attr("node") != "" {
				return nil, stanza.ItemNotFound("")
			}
			return xmlstream.New(nsDiscoItems, "query"), nil
		case xmlstream.Name{Space: NS, Local: "request"}:
			return m.requestSlot(from, payload)
		}
	}
	return nil, stanza.ServiceUnavailable()
}

// discoInfo is XEP-0363 §3 with the XEP-0128 form giving the size limit.
func (m *Module) discoInfo() *xmlstream.Element {
	q := xmlstream.New(nsDiscoInfo, "query")
	q.AddChild(xmlstream.New(nsDiscoInfo, "identity", "category", "store", "type", "file", "name", "HTTP File Upload"))
	q.AddChild(xmlstream.New(nsDiscoInfo, "feature", "var", nsDiscoInfo))
	q.AddChild(xmlstream.New(nsDiscoInfo, "feature", "var", NS))
	form := dataform.New(dataform.TypeResult, NS)
	form.Add("max-file-size", "Largest file in bytes", strconv.FormatInt(m.limits().MaxFileSize, 10))
	return q.AddChild(form.Element())
}

func (m *Module) requestSlot(from jid.JID, req *xmlstream.Element) (*xmlstream.Element, error) {
	// Only this server's users: the disk and bandwidth are theirs.
	if from.Local() == "" || !m.host.IsLocal(from.Domain()) {
		return nil, stanza.NotAllowed("only users of this server may upload files")
	}
	if req.Attr("filename") == "" {
		return nil, stanza.BadRequest("the request needs a filename")
	}
	name := sanitizeFilename(req.Attr("filename"))
	size, err := strconv.ParseInt(req.Attr("size"), 10, 64)
	if err != nil || size < 0 {
		return nil, stanza.BadRequest("the request needs the file's size in bytes")
	}
	ctype := req.Attr("content-type")
	if ctype != "" {
		var ok bool
		if ctype, ok = normalizeType(ctype); !ok {
			return nil, stanza.BadRequest("the content-type is not a valid media type")
		}
	}
	lim := m.limits()
	if size > lim.MaxFileSize {
		return nil, fileTooLarge(lim.MaxFileSize)
	}
	owner := from.Bare().String()
	if n := lim.ConcurrentPerUser; n > 0 && m.files.inProgress(owner) >= n {
		return nil, stanza.ResourceConstraint(fmt.Sprintf("you have %d uploads in progress, the most allowed at once; ask again when one has finished", n))
	}
	now := m.opts.Now()
	if qe := m.files.checkQuota(owner, size, now, lim.quotas()); qe != nil {
		return nil, qe.stanzaError()
	}
	base, err := m.baseURL()
	if err != nil {
		return nil, err
	}
	id, err := newID()
	if err != nil {
		return nil, fmt.Errorf("upload: %w", err)
	}
	p := slotPath(id, name)
	g := grant{Owner: owner, Size: size, Type: ctype, Expires: now.Add(slotLifetime).Unix()}
	u := base + escapePath(p)
	slot := xmlstream.New(NS, "slot")
	put := xmlstream.New(NS, "put", "url", u)
	put.AddChild(xmlstream.New(NS, "header", "name", "Authorization").AddText(m.sign(p, g)))
	slot.AddChild(put)
	slot.AddChild(xmlstream.New(NS, "get", "url", u))
	return slot, nil
}

func (l Limits) quotas() quotas {
	return quotas{perUserPerDay: l.QuotaPerUserPerDay, total: l.QuotaTotal, concurrent: l.ConcurrentPerUser}
}

// fileTooLarge is the error of XEP-0363 §4 that tells the limit.
func fileTooLarge(limit int64) *stanza.Error {
	extra := xmlstream.New(NS, "file-too-large")
	extra.AddChild(xmlstream.New(NS, "max-file-size").AddText(strconv.FormatInt(limit, 10)))
	return &stanza.Error{
		Type:      stanza.Modify,
		Condition: "not-acceptable",
		Text:      fmt.Sprintf("file too large: the maximum is %d bytes", limit),
		Extra:     extra,
	}
}

var errNoHTTPS = errors.New("upload: the HTTPS listener is not running")

// baseURL is where clients reach the HTTPS listener.
func (m *Module) baseURL() (string, error) {
	if m.opts.PublicURL != "" {
		return m.opts.PublicURL, nil
	}
	a := m.host.HTTPSAddr()
	if a == nil {
		return "", errNoHTTPS
	}
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return "", fmt.Errorf("upload: HTTPS address %s: %w", a, err)
	}
	if port == "443" {
		return "https://" + m.opts.Domain, nil
	}
	return "https://" + net.JoinHostPort(m.opts.Domain, port), nil
}

// newID is the unguessable part of a slot's path: 128 random bits.
func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func validID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
