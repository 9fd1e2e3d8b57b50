// Package contact publishes the server's contact addresses (XEP-0157) as
// an extended information form (XEP-0128) in its disco#info.
package contact

import (
	"parley/internal/dataform"
	"parley/internal/module"
)

// Addresses are the URIs of each kind; empty kinds are left out.
type Addresses struct {
	Abuse, Admin, Security, Support []string
}

type Module struct{ a Addresses }

func New(a Addresses) *Module { return &Module{a: a} }

func (*Module) Name() string { return "contact" }

func (m *Module) Start(h module.Host) error {
	f := dataform.New(dataform.TypeResult, dataform.ServerInfo)
	n := 0
	for _, k := range []struct {
		field string
		uris  []string
	}{{"abuse-addresses", m.a.Abuse}, {"admin-addresses", m.a.Admin}, {"security-addresses", m.a.Security}, {"support-addresses", m.a.Support}} {
		if len(k.uris) > 0 {
			f.Add(k.field, "", k.uris...)
			n++
		}
	}
	if n > 0 {
		h.AddInfoForm(f.Element())
	}
	return nil
}
