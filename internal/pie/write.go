package pie

import (
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"

	"parley/internal/jid"
	"parley/internal/xmlstream"
)

// Write writes u as a complete XEP-0227 file of one user, the layout
// prosody-migrator writes, one child of <user/> per line.
func Write(w io.Writer, u *User) error {
	j, err := jid.Parse(u.JID)
	if err != nil || j.Local() == "" || !j.IsBare() {
		return fmt.Errorf("pie: %q is not an account JID", u.JID)
	}
	user := xmlstream.New(NS, "user", "name", j.Local())
	if u.Password != "" {
		user.SetAttr("password", u.Password)
	}
	add := func(c *xmlstream.Element) {
		user.AddText("\n")
		user.AddChild(c)
	}
	for _, c := range u.Credentials {
		sc := xmlstream.New(NSScram, "scram-credentials", "mechanism", "SCRAM-"+c.Hash)
		textChild(sc, NSScram, "iter-count", strconv.Itoa(c.Iterations))
		textChild(sc, NSScram, "salt", base64.StdEncoding.EncodeToString(c.Salt))
		textChild(sc, NSScram, "server-key", base64.StdEncoding.EncodeToString(c.ServerKey))
		textChild(sc, NSScram, "stored-key", base64.StdEncoding.EncodeToString(c.StoredKey))
		add(sc)
	}
	if len(u.Roster) > 0 {
		q := xmlstream.New(NSRoster, "query")
		for _, it := range u.Roster {
			item := child(q, xmlstream.New(NSRoster, "item", "jid", it.Contact, "subscription", it.Subscription))
			if it.Name != "" {
				item.SetAttr("name", it.Name)
			}
			if it.Ask {
				item.SetAttr("ask", "subscribe")
			}
			for _, g := range it.Groups {
				textChild(item, NSRoster, "group", g)
			}
		}
		add(q)
	}
	for _, p := range u.Pending {
		add(xmlstream.New(NSClient, "presence", "from", p, "to", u.JID, "type", "subscribe"))
	}
	if u.VCard != nil {
		add(u.VCard)
	}
	if len(u.Private) > 0 {
		q := xmlstream.New(NSPrivate, "query")
		for _, c := range u.Private {
			q.AddChild(c)
		}
		add(q)
	}
	if len(u.PEP) > 0 {
		owner := xmlstream.New(NSOwner, "pubsub")
		items := xmlstream.New(NSPubSub, "pubsub")
		for _, n := range u.PEP {
			conf := child(owner, xmlstream.New(NSOwner, "configure", "node", n.Name))
			if n.Config != nil {
				conf.AddChild(n.Config)
			}
			if len(n.Items) == 0 {
				continue
			}
			its := child(items, xmlstream.New(NSPubSub, "items", "node", n.Name))
			for _, it := range n.Items {
				child(its, xmlstream.New(NSPubSub, "item", "id", it.ID)).AddChild(it.Payload)
			}
		}
		add(owner)
		if items.FirstElement() != nil {
			add(items)
		}
	}
	if len(u.Offline) > 0 {
		off := xmlstream.New(NS, "offline-messages")
		for _, m := range u.Offline {
			off.AddChild(m)
		}
		add(off)
	}
	if len(u.Archive) > 0 {
		arch := xmlstream.New(NSMAM, "archive")
		for _, a := range u.Archive {
			fw := child(child(arch, xmlstream.New(NSMAM2, "result", "id", a.ID)), xmlstream.New(NSForward, "forwarded"))
			fw.AddChild(xmlstream.New(NSDelay, "delay", "stamp", formatStamp(a.Stamp)))
			fw.AddChild(a.Message)
		}
		add(arch)
	}
	if len(u.Blocked) > 0 {
		bl := xmlstream.New(NSBlock, "blocklist")
		for _, b := range u.Blocked {
			bl.AddChild(xmlstream.New(NSBlock, "item", "jid", b))
		}
		add(bl)
	}
	user.AddText("\n")

	var b strings.Builder
	b.WriteString("<?xml version='1.0' encoding='UTF-8'?>\n<server-data xmlns='" + NS + "'>\n")
	host := xmlstream.New(NS, "host", "jid", j.Domain())
	host.AddText("\n")
	host.AddChild(user)
	host.AddText("\n")
	b.Write(host.Append(nil, NS))
	b.WriteString("\n</server-data>\n")
	_, err = io.WriteString(w, b.String())
	return err
}

// child adds c to parent and returns c (AddChild returns the parent).
func child(parent, c *xmlstream.Element) *xmlstream.Element {
	parent.AddChild(c)
	return c
}

func textChild(parent *xmlstream.Element, space, local, text string) {
	child(parent, xmlstream.New(space, local)).AddText(text)
}
