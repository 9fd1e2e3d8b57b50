// Package ping answers XMPP Ping (XEP-0199) addressed to the server or to
// the user's own account, which clients use to check their connection.
package ping

import (
	"context"

	"parley/internal/module"
	"parley/internal/xmlstream"
)

const NS = "urn:xmpp:ping"

type Module struct{}

func New() *Module { return &Module{} }

func (*Module) Name() string { return "ping" }

func (*Module) Start(h module.Host) error {
	pong := func(context.Context, module.IQ) (*xmlstream.Element, error) { return nil, nil }
	name := xmlstream.Name{Space: NS, Local: "ping"}
	h.HandleIQ(module.Server, "get", name, pong)
	h.HandleIQ(module.Account, "get", name, pong)
	h.AddFeature(module.Server, NS)
	return nil
}
