// Package entitytime answers Entity Time (XEP-0202) queries addressed to
// the server. The offset is always +00:00: the server's time zone says
// where it runs, which nobody needs to know to compare clocks.
package entitytime

import (
	"context"
	"time"

	"parley/internal/module"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
)

const NS = "urn:xmpp:time"

type Module struct {
	now func() time.Time
}

func New() *Module { return &Module{now: time.Now} }

func (*Module) Name() string { return "entitytime" }

func (m *Module) Start(h module.Host) error {
	h.HandleIQ(module.Server, "get", xmlstream.Name{Space: NS, Local: "time"}, m.get)
	h.AddFeature(module.Server, NS)
	return nil
}

func (m *Module) get(context.Context, module.IQ) (*xmlstream.Element, error) {
	// XEP-0082 DateTime in UTC; whole seconds are enough for a clock
	// comparison and do not expose the server's timer resolution.
	utc := xmpptime.Format(m.now().Truncate(time.Second))
	return xmlstream.New(NS, "time").
		AddChild(xmlstream.New(NS, "tzo").AddText("+00:00")).
		AddChild(xmlstream.New(NS, "utc").AddText(utc)), nil
}
