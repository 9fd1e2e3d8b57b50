package pep

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// Access models of XEP-0060 §4.5 that a personal node can have.
const (
	AccessOpen      = "open"
	AccessPresence  = "presence"
	AccessRoster    = "roster"
	AccessWhitelist = "whitelist"
)

// send_last_published_item values (XEP-0060 §16.4.3).
const (
	SendLastNever             = "never"
	SendLastOnSub             = "on_sub"
	SendLastOnSubAndPresence  = "on_sub_and_presence"
	formTypeNodeConfig        = "http://jabber.org/protocol/pubsub#node_config"
	formTypePublishOptions    = "http://jabber.org/protocol/pubsub#publish-options"
	nsData                    = "jabber:x:data"
	fieldAccessModel          = "pubsub#access_model"
	fieldMaxItems             = "pubsub#max_items"
	fieldPersistItems         = "pubsub#persist_items"
	fieldSendLastPublished    = "pubsub#send_last_published_item"
	fieldNotifyRetract        = "pubsub#notify_retract"
	fieldNotifyDelete         = "pubsub#notify_delete"
	fieldTitle                = "pubsub#title"
	fieldDeliverNotifications = "pubsub#deliver_notifications"
)

// nodeConfig is a node's configuration, stored JSON-encoded as the node's
// config blob: new options can be added without a schema migration.
type nodeConfig struct {
	AccessModel string `json:"access_model"`
	// MaxItems is the item limit; 0 means "max", the module's limit.
	MaxItems      int    `json:"max_items"`
	PersistItems  bool   `json:"persist_items"`
	SendLast      string `json:"send_last_published_item"`
	NotifyRetract bool   `json:"notify_retract"`
	NotifyDelete  bool   `json:"notify_delete"`
	Title         string `json:"title,omitempty"`
}

// Node name prefixes whose items other people must be able to fetch
// without being contacts: OMEMO (XEP-0384) device lists and bundles. A
// client that publishes them without publish-options still gets a
// working node.
var openByDefault = []string{
	"eu.siacs.conversations.axolotl.",
	"urn:xmpp:omemo:2:",
}

// defaultConfig is the configuration of a new node before the publisher's
// options apply: XEP-0163's presence access and the newest item only,
// except for bookmarks (XEP-0402 §5: private, many items) and OMEMO.
func defaultConfig(node string) nodeConfig {
	c := nodeConfig{AccessModel: AccessPresence, MaxItems: 1, PersistItems: true,
		SendLast: SendLastOnSubAndPresence, NotifyRetract: true, NotifyDelete: true}
	switch {
	case node == nsBookmarks:
		c.AccessModel, c.MaxItems, c.SendLast = AccessWhitelist, 0, SendLastNever
	default:
		for _, p := range openByDefault {
			if strings.HasPrefix(node, p) {
				c.AccessModel = AccessOpen
			}
		}
	}
	return c
}

// limit is the item limit to enforce: "max" is the module's MaxItems.
func (c nodeConfig) limit() int {
	if c.MaxItems == 0 {
		return MaxItems
	}
	return c.MaxItems
}

func (c nodeConfig) encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // a struct of strings, ints and bools always marshals
	}
	return b
}

func decodeConfig(b []byte) (nodeConfig, error) {
	var c nodeConfig
	if err := json.Unmarshal(b, &c); err != nil {
		return nodeConfig{}, fmt.Errorf("pep: damaged node configuration: %w", err)
	}
	return c, nil
}

// form is a data form (XEP-0004) as field var → values.
type form struct {
	typ    string // "form", "submit", "cancel", "result"
	fields map[string][]string
	order  []string // field vars in document order, FORM_TYPE excluded
}

func parseForm(x *xmlstream.Element) form {
	f := form{typ: x.Attr("type"), fields: map[string][]string{}}
	for fe := range x.Elements() {
		if fe.Name.Space != nsData || fe.Name.Local != "field" {
			continue
		}
		v := fe.Attr("var")
		var vals []string
		for ve := range fe.Elements() {
			if ve.Name.Space == nsData && ve.Name.Local == "value" {
				vals = append(vals, ve.Text())
			}
		}
		if _, seen := f.fields[v]; !seen && v != "FORM_TYPE" {
			f.order = append(f.order, v)
		}
		f.fields[v] = vals
	}
	return f
}

func (f form) formType() string {
	if v := f.fields["FORM_TYPE"]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (f form) value(v string) string {
	if vs := f.fields[v]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

func parseBool(s string) (bool, error) {
	switch s {
	case "1", "true":
		return true, nil
	case "0", "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not a boolean", s)
}

// parseMaxItems accepts a count or "max" (XEP-0060 §16.4.3, version 1.15.5);
// "max" and anything above limit become 0, the module's limit.
func parseMaxItems(s string, limit int) (int, error) {
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("%q is not a positive number of items", s)
	}
	if n >= limit {
		return 0, nil
	}
	return n, nil
}

// apply sets the options a form gives on c. Options the module does not
// keep are ignored, as XEP-0060 lets a service do for node configuration;
// the values of the ones it keeps must be valid.
func (c *nodeConfig) apply(f form, limit int) *stanza.Error {
	for _, v := range f.order {
		val := f.value(v)
		var err error
		switch v {
		case fieldAccessModel:
			switch val {
			case AccessOpen, AccessPresence, AccessRoster, AccessWhitelist:
				c.AccessModel = val
			default:
				return unsupported(stanza.FeatureNotImplemented("access model "+val+" is not supported"), "access-"+val)
			}
		case fieldMaxItems:
			c.MaxItems, err = parseMaxItems(val, limit)
		case fieldPersistItems:
			c.PersistItems, err = parseBool(val)
		case fieldNotifyRetract:
			c.NotifyRetract, err = parseBool(val)
		case fieldNotifyDelete:
			c.NotifyDelete, err = parseBool(val)
		case fieldSendLastPublished:
			switch val {
			case SendLastNever, SendLastOnSub, SendLastOnSubAndPresence:
				c.SendLast = val
			default:
				err = fmt.Errorf("%q is not a send_last_published_item value", val)
			}
		case fieldTitle:
			c.Title = val
		}
		if err != nil {
			return stanza.BadRequest(v + ": " + err.Error())
		}
	}
	return nil
}

// meets reports whether c satisfies publish-options used as preconditions
// (XEP-0223, XEP-0060 §7.1.5): each option the module keeps must have the
// value given; options it does not keep cannot be checked and fail.
func (c nodeConfig) meets(f form, limit int) bool {
	for _, v := range f.order {
		val := f.value(v)
		switch v {
		case fieldAccessModel:
			if val != c.AccessModel {
				return false
			}
		case fieldMaxItems:
			n, err := parseMaxItems(val, limit)
			if err != nil || n != c.MaxItems {
				return false
			}
		case fieldPersistItems, fieldNotifyRetract, fieldNotifyDelete, fieldDeliverNotifications:
			b, err := parseBool(val)
			want := map[string]bool{fieldPersistItems: c.PersistItems, fieldNotifyRetract: c.NotifyRetract,
				fieldNotifyDelete: c.NotifyDelete, fieldDeliverNotifications: true}[v]
			if err != nil || b != want {
				return false
			}
		case fieldSendLastPublished:
			if val != c.SendLast {
				return false
			}
		case fieldTitle:
			if val != c.Title {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// configForm renders c as a node configuration form (XEP-0060 §8.2).
func (c nodeConfig) configForm() *xmlstream.Element {
	x := xmlstream.New(nsData, "x", "type", "form")
	field := func(v, typ string, val string, options ...string) {
		f := xmlstream.New(nsData, "field", "var", v, "type", typ)
		for _, o := range options {
			f.AddChild(xmlstream.New(nsData, "option").AddChild(xmlstream.New(nsData, "value").AddText(o)))
		}
		f.AddChild(xmlstream.New(nsData, "value").AddText(val))
		x.AddChild(f)
	}
	field("FORM_TYPE", "hidden", formTypeNodeConfig)
	field(fieldAccessModel, "list-single", c.AccessModel, AccessOpen, AccessPresence, AccessRoster, AccessWhitelist)
	maxItems := strconv.Itoa(c.MaxItems)
	if c.MaxItems == 0 {
		maxItems = "max"
	}
	field(fieldMaxItems, "text-single", maxItems)
	field(fieldPersistItems, "boolean", strconv.FormatBool(c.PersistItems))
	field(fieldSendLastPublished, "list-single", c.SendLast, SendLastNever, SendLastOnSub, SendLastOnSubAndPresence)
	field(fieldNotifyRetract, "boolean", strconv.FormatBool(c.NotifyRetract))
	field(fieldNotifyDelete, "boolean", strconv.FormatBool(c.NotifyDelete))
	field(fieldTitle, "text-single", c.Title)
	return x
}
