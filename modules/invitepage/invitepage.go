// Package invitepage serves each invite's landing page on the HTTPS
// listener (https://HOST:PORT/invite/TOKEN, as Prosody's mod_invites_page
// and Snikket do): which server, who invited, until when, a QR code of
// the xmpp: link for a phone's client, and links to clients. Plain HTML
// with the QR code inline as SVG: no script, nothing fetched from
// anywhere else, and no Referer sent, since the token is in the address.
package invitepage

import (
	"bytes"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"parley/internal/invites"
	"parley/internal/module"
)

type Module struct {
	store *invites.Store
	now   func() time.Time
	host  module.Host
}

// New serves the pages of the invites in store.
func New(store *invites.Store) *Module { return &Module{store: store, now: time.Now} }

func (*Module) Name() string { return "invitepage" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	h.HandleHTTP(invites.PagePath, m)
	return nil
}

// maxToken bounds what is looked up: tokens are 24 characters.
const maxToken = 64

func validToken(t string) bool {
	if t == "" || len(t) > maxToken {
		return false
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Client is one XMPP client the page recommends.
type Client struct {
	Name, Platforms string
	Links           []Link
}

type Link struct{ Label, URL string }

// clients are those known to take invite links (XEP-0401) or at least
// xmpp: registration links; only links, nothing loaded from them.
var clients = []Client{
	{"Conversations", "Android", []Link{
		{"F-Droid", "https://f-droid.org/packages/eu.siacs.conversations/"},
		{"Google Play", "https://play.google.com/store/apps/details?id=eu.siacs.conversations"}}},
	{"Monal", "iPhone, iPad, Mac", []Link{{"App Store", "https://apps.apple.com/app/id317711500"}}},
	{"Siskin IM", "iPhone, iPad", []Link{{"App Store", "https://apps.apple.com/app/id1153516838"}}},
	{"Dino", "Linux", []Link{{"dino.im", "https://dino.im/#download"}}},
	{"Gajim", "Windows, Linux", []Link{{"gajim.org", "https://gajim.org/download/"}}},
}

type pageData struct {
	Host, Inviter, Expires, URI string
	Href                        template.URL // URI, whose xmpp: scheme html/template would refuse
	Admin                       bool
	QR                          template.HTML
	Clients                     []Client
	Gone                        string // why the invite can no longer be used; "" = usable
	Unknown                     bool
}

// headers go with every page: only its own inline style may apply,
// nothing is loaded or run, no Referer carries the token away, and
// neither caches nor search engines keep it.
var headers = map[string]string{
	"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"Referrer-Policy":         "no-referrer",
	"X-Content-Type-Options":  "nosniff",
	"Cache-Control":           "no-store",
	"X-Robots-Tag":            "noindex",
}

func (m *Module) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	for k, v := range headers {
		h.Set(k, v)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "only GET", http.StatusMethodNotAllowed)
		return
	}
	token := strings.TrimPrefix(r.URL.Path, invites.PagePath)
	var d pageData
	status := http.StatusOK
	inv, err := invites.Invite{}, error(nil)
	if validToken(token) {
		inv, err = m.store.Lookup(token, m.now())
	} else {
		err = invites.ErrInvalid
	}
	switch {
	case errors.Is(err, invites.ErrInvalid):
		status, d.Unknown = http.StatusNotFound, true
	case errors.Is(err, invites.ErrGone):
		status, d.Host, d.Gone = http.StatusGone, inv.Host, inv.Why(m.now())
	case err != nil:
		m.host.Logger().Error("invitepage: reading the invites failed", "err", err)
		http.Error(w, "the invites cannot be read now; try again later", http.StatusInternalServerError)
		return
	default:
		d = pageData{Host: inv.Host, Inviter: inv.Contact, Admin: inv.Admin, Clients: clients,
			Expires: inv.Expires.UTC().Format("2 January 2006, 15:04 MST"), URI: invites.URI(inv.Host, token)}
		d.Href = template.URL(d.URI) // the token was checked to be base64url
		svg, err := qrSVG(d.URI)
		if err != nil {
			m.host.Logger().Error("invitepage: drawing the QR code failed", "err", err)
			http.Error(w, "the page cannot be made now", http.StatusInternalServerError)
			return
		}
		d.QR = template.HTML(svg) // made here from numbers only
	}
	var buf bytes.Buffer
	if err := page.Execute(&buf, d); err != nil {
		m.host.Logger().Error("invitepage: rendering failed", "err", err)
		http.Error(w, "the page cannot be made now", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

var page = template.Must(template.New("invite").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<meta name="robots" content="noindex">
<title>{{if .Unknown}}Unknown invite{{else if .Gone}}Invite no longer valid{{else}}Invitation to {{.Host}}{{end}}</title>
<style>
body{font-family:system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em;line-height:1.5;color:#222}
h1{font-size:1.5em}.qr{margin:1em 0}.qr svg{width:16em;height:16em;max-width:100%}
.button{display:inline-block;padding:.6em 1.2em;background:#2a6;color:#fff;border-radius:.3em;text-decoration:none}
code{word-break:break-all;background:#f4f4f4;padding:.1em .3em}li{margin:.3em 0}
</style>
</head>
<body>
{{if .Unknown}}
<h1>Unknown invite</h1>
<p>There is no invite at this address. Check that the link was copied whole, or ask whoever invited you for a new one.</p>
{{else if .Gone}}
<h1>This invite can no longer be used</h1>
<p>This invite to <strong>{{.Host}}</strong> can no longer be used: {{.Gone}}. Ask whoever invited you for a new one.</p>
{{else}}
<h1>You are invited to chat on {{.Host}}</h1>
<p>{{if .Inviter}}<strong>{{.Inviter}}</strong> invites you{{else}}The admins of <strong>{{.Host}}</strong> invite you{{end}} to create an account on <strong>{{.Host}}</strong>, a server of the XMPP (Jabber) network: you can then chat with anyone on it and on every other XMPP server.{{if .Inviter}} {{.Inviter}} will be in your contacts.{{end}}{{if .Admin}} The account you create will be an admin of this server.{{end}}</p>
<p>The invite is valid until {{.Expires}}.</p>
<h2>1. Get an XMPP app</h2>
<ul>
{{range .Clients}}<li><strong>{{.Name}}</strong> ({{.Platforms}}):{{range $i, $l := .Links}}{{if $i}},{{end}} <a href="{{$l.URL}}" rel="noreferrer noopener">{{$l.Label}}</a>{{end}}</li>
{{end}}</ul>
<h2>2. Open the invite in it</h2>
<p>On the device with the app: <a class="button" href="{{.Href}}">Open the invite</a></p>
<p>Or scan this code with the app on your phone:</p>
<div class="qr">{{.QR}}</div>
<p>Or, in an app that asks for it, enter the server <strong>{{.Host}}</strong> and this link: <code>{{.URI}}</code></p>
{{end}}
</body>
</html>
`))
