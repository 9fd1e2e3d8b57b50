// Package version answers Software Version (XEP-0092) queries addressed to
// the server. It never reveals the operating system (the XEP makes <os/>
// optional and warns against it), and the version number can be hidden,
// since both help an attacker pick an exploit.
package version

import (
	"context"

	"parley/internal/module"
	"parley/internal/xmlstream"
)

const NS = "jabber:iq:version"

// Software is the name the server reports.
const Software = "parley"

type Module struct {
	version string
	hide    bool
}

// New returns the module reporting version; with hide set the version is
// withheld.
func New(version string, hide bool) *Module { return &Module{version: version, hide: hide} }

func (*Module) Name() string { return "version" }

func (m *Module) Start(h module.Host) error {
	h.HandleIQ(module.Server, "get", xmlstream.Name{Space: NS, Local: "query"}, m.get)
	h.AddFeature(module.Server, NS)
	return nil
}

func (m *Module) get(context.Context, module.IQ) (*xmlstream.Element, error) {
	// XEP-0092 §2 requires <version/> in every result, so a hidden
	// version is sent as an empty element rather than left out: clients
	// that insist on the element still parse the answer.
	v := xmlstream.New(NS, "version")
	if !m.hide {
		v.AddText(m.version)
	}
	return xmlstream.New(NS, "query").
		AddChild(xmlstream.New(NS, "name").AddText(Software)).
		AddChild(v), nil
}
