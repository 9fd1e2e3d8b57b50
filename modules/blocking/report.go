package blocking

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"parley/internal/admin"
	"parley/internal/jid"
	"parley/internal/xmlstream"
)

// NSReporting is Spam Reporting (XEP-0377): a report rides inside a
// block request's item.
const NSReporting = "urn:xmpp:reporting:1"

// maxReportText bounds the reporter's words forwarded to each admin.
const maxReportText = 2000

// WithReports has spam reports delivered to admins (bare JIDs) as
// messages from the server; without admins, reports are not advertised
// and only the block is done.
func (m *Module) WithReports(admins []string) *Module {
	m.reportTo = func() []string { return admins }
	return m
}

// WithLiveReports is WithReports with the admins in force at each report
// (a reload may change them); reports are advertised when there are
// admins at start.
func (m *Module) WithLiveReports(admins func() []string) *Module {
	m.reportTo = admins
	return m
}

// report forwards the reports in a block request to the admins.
func (m *Module) report(ctx context.Context, owner jid.JID, payload *xmlstream.Element) {
	if m.reportTo == nil {
		return
	}
	admins := m.reportTo()
	if len(admins) == 0 {
		return
	}
	for c := range payload.Elements() {
		if c.Name.Space != NS || c.Name.Local != "item" {
			continue
		}
		r := c.Child(NSReporting, "report")
		if r == nil {
			continue
		}
		reason := "spam"
		switch r.Attr("reason") {
		case "urn:xmpp:reporting:abuse":
			reason = "abuse"
		case "urn:xmpp:reporting:spam", "":
		default:
			reason = "other (" + truncate(r.Attr("reason"), 100) + ")"
		}
		var b strings.Builder
		fmt.Fprintf(&b, "%s report from %s about %s", reason, owner, c.Attr("jid"))
		if t := strings.TrimSpace(r.Child(NSReporting, "text").Text()); t != "" {
			fmt.Fprintf(&b, ": %s", truncate(t, maxReportText))
		}
		for _, a := range admins {
			aj, err := jid.Parse(a)
			if err != nil {
				continue
			}
			m.host.Route(ctx, admin.Notice(aj.Domain(), a, "chat", b.String(), ""))
		}
	}
}

// truncate cuts s to at most n bytes on a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
