// Package extdisco announces the STUN/TURN server of [turn] with External
// Service Discovery (XEP-0215), so that clients (Conversations, Dino,
// Monal) can place audio and video calls through NATs. TURN credentials
// are made for each request as coturn's use-auth-secret ("TURN REST
// API") expects: the username is "expiry:localpart" and the password
// base64(HMAC-SHA1(secret, username)), so the TURN server checks them
// with the shared secret alone and they stop working at expiry.
package extdisco

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

const NS = "urn:xmpp:extdisco:2"

// Service is one announced entry: a type ("stun", "turn" or "turns"), a
// transport ("udp" or "tcp") and a port.
type Service struct {
	Type, Transport string
	Port            int
}

// Options configure the module from [turn].
type Options struct {
	Host     string
	Secret   string
	TTL      time.Duration
	Services []Service
}

type Module struct {
	opt  Options
	host module.Host
	now  func() time.Time
}

func New(opt Options) *Module { return &Module{opt: opt, now: time.Now} }

func (*Module) Name() string { return "extdisco" }

func (m *Module) Start(h module.Host) error {
	if m.opt.Host == "" || m.opt.Secret == "" || len(m.opt.Services) == 0 {
		return fmt.Errorf("extdisco: a host, a secret and at least one service are needed")
	}
	m.host = h
	h.AddFeature(module.Server, NS)
	h.HandleIQ(module.Server, "get", xmlstream.Name{Space: NS, Local: "services"}, m.services)
	h.HandleIQ(module.Server, "get", xmlstream.Name{Space: NS, Local: "credentials"}, m.credentials)
	return nil
}

// allowed: credentials are for the server's own accounts, not for anyone
// who can reach it over federation.
func (m *Module) allowed(iq module.IQ) error {
	if iq.From.Local() == "" || !m.host.IsLocal(iq.From.Domain()) {
		return stanza.Forbidden("the TURN server is for this server's own users")
	}
	return nil
}

// services answers a services request (XEP-0215 §3), all of them or
// those of one type; TURN entries carry time-limited credentials.
func (m *Module) services(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := m.allowed(iq); err != nil {
		return nil, err
	}
	typ := iq.Payload.Attr("type")
	res := xmlstream.New(NS, "services")
	if typ != "" {
		res.SetAttr("type", typ)
	}
	for _, s := range m.opt.Services {
		if typ == "" || typ == s.Type {
			res.AddChild(m.entry(s, iq.From.Local()))
		}
	}
	return res, nil
}

// credentials answers a credentials request (XEP-0215 §5) for one
// service, named by host and type (and port, if given).
func (m *Module) credentials(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if err := m.allowed(iq); err != nil {
		return nil, err
	}
	want := iq.Payload.Child(NS, "service")
	if want == nil {
		return nil, stanza.BadRequest("a credentials request names a <service/>")
	}
	for _, s := range m.opt.Services {
		if want.Attr("host") != m.opt.Host || want.Attr("type") != s.Type {
			continue
		}
		if p := want.Attr("port"); p != "" && p != strconv.Itoa(s.Port) {
			continue
		}
		return xmlstream.New(NS, "credentials").AddChild(m.entry(s, iq.From.Local())), nil
	}
	return nil, stanza.ItemNotFound("no such service here")
}

// entry is the <service/> element of s; TURN entries get credentials
// for localpart (STUN needs none).
func (m *Module) entry(s Service, localpart string) *xmlstream.Element {
	el := xmlstream.New(NS, "service", "type", s.Type, "host", m.opt.Host, "port", strconv.Itoa(s.Port), "transport", s.Transport)
	if s.Type == "stun" {
		return el
	}
	expires := m.now().Add(m.opt.TTL).UTC().Truncate(time.Second)
	user, pass := Credentials(m.opt.Secret, localpart, expires)
	el.SetAttr("username", user)
	el.SetAttr("password", pass)
	el.SetAttr("expires", expires.Format(time.RFC3339))
	el.SetAttr("restricted", "1")
	return el
}

// Credentials are the TURN REST API credentials of localpart valid until
// expires, as coturn's use-auth-secret checks them.
func Credentials(secret, localpart string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + localpart
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(mac.Sum(nil))
}
