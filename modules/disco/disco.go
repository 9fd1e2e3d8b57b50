// Package disco answers Service Discovery (XEP-0030) for the server and
// for accounts, and advertises the server's entity capabilities (XEP-0115)
// in stream features: disco#info lists exactly the features the loaded
// modules registered, so the server never advertises what it does not do.
package disco

import (
	"cmp"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"slices"
	"strings"
	"sync"

	"parley/internal/dataform"
	"parley/internal/module"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

const (
	NSInfo  = stanza.NSDiscoInf
	NSItems = stanza.NSDiscoIt
	NSCaps  = "http://jabber.org/protocol/caps"
	// CapsNode names the software in XEP-0115 caps.
	CapsNode = "urn:parley:caps"
)

type Module struct {
	host module.Host

	// The caps hash is computed once, on first use, when every module
	// has registered its features.
	capsOnce sync.Once
	capsVer  string
}

func New() *Module { return &Module{} }

func (*Module) Name() string { return "disco" }

func (m *Module) Start(h module.Host) error {
	m.host = h
	h.AddIdentity(module.Identity{Category: "server", Type: "im", Name: "parley"})
	for _, t := range []module.Target{module.Server, module.Account} {
		h.AddFeature(t, NSInfo)
		h.AddFeature(t, NSItems)
	}
	h.HandleIQ(module.Server, "get", xmlstream.Name{Space: NSInfo, Local: "query"}, m.serverInfo)
	h.HandleIQ(module.Server, "get", xmlstream.Name{Space: NSItems, Local: "query"}, m.serverItems)
	h.HandleIQ(module.Account, "get", xmlstream.Name{Space: NSInfo, Local: "query"}, m.accountInfo)
	h.HandleIQ(module.Account, "get", xmlstream.Name{Space: NSItems, Local: "query"}, m.accountItems)
	h.AddStreamFeature(func(fc module.FeatureContext) *xmlstream.Element {
		if !fc.Authenticated {
			return nil
		}
		return xmlstream.New(NSCaps, "c", "hash", "sha-1", "node", CapsNode, "ver", m.ver())
	})
	return nil
}

func sortedIdentities(ids []module.Identity) []module.Identity {
	ids = slices.Clone(ids)
	slices.SortFunc(ids, func(a, b module.Identity) int {
		return cmp.Or(cmp.Compare(a.Category, b.Category), cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name))
	})
	return ids
}

// ver is the XEP-0115 §5.1 verification string of the server's disco#info.
func (m *Module) ver() string {
	m.capsOnce.Do(func() {
		var b strings.Builder
		for _, id := range sortedIdentities(m.host.Identities()) {
			b.WriteString(id.Category + "/" + id.Type + "//" + id.Name + "<")
		}
		for _, f := range m.host.Features(module.Server) {
			b.WriteString(f + "<")
		}
		writeForms(&b, m.host.InfoForms())
		sum := sha1.Sum([]byte(b.String()))
		m.capsVer = base64.StdEncoding.EncodeToString(sum[:])
	})
	return m.capsVer
}

func (m *Module) serverInfo(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	node := iq.Payload.Attr("node")
	if node != "" && node != CapsNode+"#"+m.ver() {
		return m.node(ctx, iq, func(n module.DiscoNode) module.IQHandler { return n.Info })
	}
	q := xmlstream.New(NSInfo, "query")
	if node != "" {
		q.SetAttr("node", node)
	}
	for _, id := range sortedIdentities(m.host.Identities()) {
		el := xmlstream.New(NSInfo, "identity", "category", id.Category, "type", id.Type)
		if id.Name != "" {
			el.SetAttr("name", id.Name)
		}
		q.AddChild(el)
	}
	for _, f := range m.host.Features(module.Server) {
		q.AddChild(xmlstream.New(NSInfo, "feature", "var", f))
	}
	for _, f := range m.host.InfoForms() {
		q.AddChild(f.Copy())
	}
	return q, nil
}

// node answers a query on a node a module registered.
func (m *Module) node(ctx context.Context, iq module.IQ, which func(module.DiscoNode) module.IQHandler) (*xmlstream.Element, error) {
	n, ok := m.host.DiscoNode(iq.Payload.Attr("node"))
	if !ok || which(n) == nil {
		return nil, stanza.ItemNotFound("no such node")
	}
	return which(n)(ctx, iq)
}

func (m *Module) serverItems(ctx context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if iq.Payload.Attr("node") != "" {
		return m.node(ctx, iq, func(n module.DiscoNode) module.IQHandler { return n.Items })
	}
	// Services on their own domains (MUC, upload) for this host.
	q := xmlstream.New(NSItems, "query")
	for _, c := range m.host.Components() {
		if strings.HasSuffix(c.Domain, "."+iq.To.Domain()) {
			el := xmlstream.New(NSItems, "item", "jid", c.Domain)
			if c.Name != "" {
				el.SetAttr("name", c.Name)
			}
			q.AddChild(el)
		}
	}
	return q, nil
}

// accountInfo answers for a registered account (XEP-0030 §3.1: the server
// replies on behalf of the bare JID); the router has checked it exists.
func (m *Module) accountInfo(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if iq.Payload.Attr("node") != "" {
		return nil, stanza.ItemNotFound("no such node")
	}
	q := xmlstream.New(NSInfo, "query")
	q.AddChild(xmlstream.New(NSInfo, "identity", "category", "account", "type", "registered"))
	features := m.host.Features(module.Account)
	// An account is a PEP service exactly when the PEP module is loaded
	// (XEP-0163 §1: identity pubsub/pep), which its features tell.
	if slices.Contains(features, "http://jabber.org/protocol/pubsub#publish") {
		q.AddChild(xmlstream.New(NSInfo, "identity", "category", "pubsub", "type", "pep"))
	}
	for _, f := range features {
		q.AddChild(xmlstream.New(NSInfo, "feature", "var", f))
	}
	return q, nil
}

func (m *Module) accountItems(_ context.Context, iq module.IQ) (*xmlstream.Element, error) {
	if iq.Payload.Attr("node") != "" {
		return nil, stanza.ItemNotFound("no such node")
	}
	return xmlstream.New(NSItems, "query"), nil
}

// writeForms adds extended information forms to a verification string
// as XEP-0115 §5.4 step 3.7 orders them: by FORM_TYPE, then each form's
// fields by var, each field's values sorted.
func writeForms(b *strings.Builder, els []*xmlstream.Element) {
	var forms []*dataform.Form
	for _, el := range els {
		if f, err := dataform.Parse(el); err == nil {
			forms = append(forms, f)
		}
	}
	slices.SortFunc(forms, func(a, c *dataform.Form) int { return cmp.Compare(a.FormType, c.FormType) })
	for _, f := range forms {
		b.WriteString(f.FormType + "<")
		fields := slices.Clone(f.Fields)
		slices.SortFunc(fields, func(a, c *dataform.Field) int { return cmp.Compare(a.Var, c.Var) })
		for _, fd := range fields {
			if fd.Var == dataform.FormTypeVar {
				continue
			}
			b.WriteString(fd.Var + "<")
			vals := slices.Clone(fd.Values)
			slices.Sort(vals)
			for _, v := range vals {
				b.WriteString(v + "<")
			}
		}
	}
}
