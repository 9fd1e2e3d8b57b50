package pep

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"parley/internal/dataform"
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
	formTypeNodeConfig        = dataform.PubSubNodeConfig
	formTypePublishOptions    = dataform.PubSubPublishOpts
	nsData                    = dataform.NS
	fieldAccessModel          = "pubsub#access_model"
	fieldMaxItems             = "pubsub#max_items"
	fieldPersistItems         = "pubsub#persist_items"
	fieldSendLastPublished    = "pubsub#send_last_published_item"
	fieldNotifyRetract        = "pubsub#notify_retract"
	fieldNotifyDelete         = "pubsub#notify_delete"
	fieldTitle                = "pubsub#title"
	fieldDeliverNotifications = "pubsub#deliver_notifications"
	fieldRosterGroups         = "pubsub#roster_groups_allowed"
)

// maxRosterGroups bounds the groups a node's roster access names; a
// roster has at most as many groups per contact (roster module).
const maxRosterGroups = 64

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
	// RosterGroups are the owner's roster groups whose contacts the
	// roster access model lets in; none: every contact with a presence
	// subscription, as before groups were kept.
	RosterGroups []string `json:"roster_groups,omitempty"`
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
func (c *nodeConfig) apply(f *dataform.Form, limit int) *stanza.Error {
	for _, fd := range f.Fields {
		v, val := fd.Var, fd.Value()
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
			c.PersistItems, err = dataform.ParseBool(val)
		case fieldNotifyRetract:
			c.NotifyRetract, err = dataform.ParseBool(val)
		case fieldNotifyDelete:
			c.NotifyDelete, err = dataform.ParseBool(val)
		case fieldSendLastPublished:
			switch val {
			case SendLastNever, SendLastOnSub, SendLastOnSubAndPresence:
				c.SendLast = val
			default:
				err = fmt.Errorf("%q is not a send_last_published_item value", val)
			}
		case fieldTitle:
			c.Title = val
		case fieldRosterGroups:
			groups := slices.Compact(slices.Sorted(slices.Values(fd.Values)))
			if len(groups) > maxRosterGroups {
				err = fmt.Errorf("at most %d groups", maxRosterGroups)
			}
			c.RosterGroups = groups
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
func (c nodeConfig) meets(f *dataform.Form, limit int) bool {
	for _, fd := range f.Fields {
		v, val := fd.Var, fd.Value()
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
			b, err := dataform.ParseBool(val)
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
		case fieldRosterGroups:
			if !slices.Equal(slices.Compact(slices.Sorted(slices.Values(fd.Values))), c.RosterGroups) {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// configForm renders c as a node configuration form (XEP-0060 §8.2);
// groups are the owner's roster groups, offered for the roster access
// model.
func (c nodeConfig) configForm(groups []string) *xmlstream.Element {
	f := dataform.New(dataform.TypeForm, formTypeNodeConfig)
	// The registry lists every access model; a node here can have these.
	access := f.Add(fieldAccessModel, "Who may subscribe and retrieve items", c.AccessModel)
	access.Options = slices.DeleteFunc(access.Options, func(o dataform.Option) bool {
		return !slices.Contains([]string{AccessOpen, AccessPresence, AccessRoster, AccessWhitelist}, o.Value)
	})
	maxItems := strconv.Itoa(c.MaxItems)
	if c.MaxItems == 0 {
		maxItems = "max"
	}
	f.Add(fieldMaxItems, "Maximum number of items to keep", maxItems)
	f.AddBool(fieldPersistItems, "Keep items", c.PersistItems)
	f.Add(fieldSendLastPublished, "When to send the last item", c.SendLast)
	f.AddBool(fieldNotifyRetract, "Notify retractions", c.NotifyRetract)
	f.AddBool(fieldNotifyDelete, "Notify deletion", c.NotifyDelete)
	f.Add(fieldTitle, "Title", c.Title)
	if offered := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(groups), c.RosterGroups...)))); len(offered) > 0 {
		// A list with nothing to choose from is no field at all.
		allowed := f.Add(fieldRosterGroups, "Roster groups allowed (roster access)", c.RosterGroups...)
		for _, g := range offered {
			allowed.AddOption(g, g)
		}
	}
	return f.Element()
}
