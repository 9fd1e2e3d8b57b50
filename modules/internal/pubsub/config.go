package pubsub

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/internal/dataform"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
)

// Access models of XEP-0060 §4.5.
const (
	AccessOpen      = "open"
	AccessPresence  = "presence"
	AccessRoster    = "roster"
	AccessWhitelist = "whitelist"
	AccessAuthorize = "authorize"
)

// send_last_published_item values (XEP-0060 §16.4.3).
const (
	SendLastNever            = "never"
	SendLastOnSub            = "on_sub"
	SendLastOnSubAndPresence = "on_sub_and_presence"
)

// Publish models (XEP-0060 §16.4.3).
const (
	PublishPublishers  = "publishers"
	PublishSubscribers = "subscribers"
	PublishOpen        = "open"
)

const (
	FormNodeConfig     = dataform.PubSubNodeConfig
	FormPublishOptions = dataform.PubSubPublishOpts
	FormSubOptions     = dataform.PubSubSubOptions

	fieldAccessModel          = "pubsub#access_model"
	fieldMaxItems             = "pubsub#max_items"
	fieldPersistItems         = "pubsub#persist_items"
	fieldSendLastPublished    = "pubsub#send_last_published_item"
	fieldNotifyRetract        = "pubsub#notify_retract"
	fieldNotifyDelete         = "pubsub#notify_delete"
	fieldNotifyConfig         = "pubsub#notify_config"
	fieldTitle                = "pubsub#title"
	fieldDescription          = "pubsub#description"
	fieldType                 = "pubsub#type"
	fieldDeliverNotifications = "pubsub#deliver_notifications"
	fieldDeliverPayloads      = "pubsub#deliver_payloads"
	fieldPublishModel         = "pubsub#publish_model"
	fieldRosterGroups         = "pubsub#roster_groups_allowed"
	fieldNodeType             = "pubsub#node_type"
)

// maxRosterGroups bounds the groups a node's roster access names; a
// roster has at most as many groups per contact (roster module).
const maxRosterGroups = 64

// Config is a node's configuration. It is stored JSON-encoded, so new
// options need no schema migration; options added after the first
// nodes were stored are named so that their zero value is what those
// nodes did (no_payloads rather than deliver_payloads).
type Config struct {
	AccessModel string `json:"access_model"`
	// MaxItems is the item limit; 0 means "max", the service's limit.
	MaxItems      int    `json:"max_items"`
	PersistItems  bool   `json:"persist_items"`
	SendLast      string `json:"send_last_published_item"`
	NotifyRetract bool   `json:"notify_retract"`
	NotifyDelete  bool   `json:"notify_delete"`
	NotifyConfig  bool   `json:"notify_config,omitempty"`
	Title         string `json:"title,omitempty"`
	Description   string `json:"description,omitempty"`
	// Type is the payload's namespace (pubsub#type), e.g. Atom for a
	// microblog (XEP-0277).
	Type string `json:"type,omitempty"`
	// NoPayloads: notifications carry the item ids only
	// (pubsub#deliver_payloads false).
	NoPayloads bool `json:"no_payloads,omitempty"`
	// NoNotifications: nothing is sent on publish
	// (pubsub#deliver_notifications false).
	NoNotifications bool `json:"no_notifications,omitempty"`
	// PublishModel is who may publish; "" is publishers.
	PublishModel string `json:"publish_model,omitempty"`
	// RosterGroups are the owner's roster groups whose contacts the
	// roster access model lets in; none: every contact with a presence
	// subscription.
	RosterGroups []string `json:"roster_groups,omitempty"`
}

// Models are what a front door offers of the access models.
type Models []string

// Limit is the item limit to enforce: "max" (0) is max.
func (c Config) Limit(max int) int {
	if c.MaxItems == 0 {
		return max
	}
	return c.MaxItems
}

// Publishers returns the publish model, "publishers" when unset.
func (c Config) Publishers() string {
	if c.PublishModel == "" {
		return PublishPublishers
	}
	return c.PublishModel
}

// Encode is the stored form of c.
func (c Config) Encode() []byte {
	b, err := json.Marshal(c)
	if err != nil {
		panic(err) // strings, ints and bools always marshal
	}
	return b
}

// DecodeConfig reads a stored configuration.
func DecodeConfig(b []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("pubsub: damaged node configuration: %w", err)
	}
	return c, nil
}

// ParseMaxItems accepts a count or "max" (XEP-0060 §16.4.3, version
// 1.15.5); "max" and anything at or above limit become 0, the limit.
func ParseMaxItems(s string, limit int) (int, error) {
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

func boolField(dst *bool, val string, negate bool) error {
	b, err := dataform.ParseBool(val)
	if err != nil {
		return err
	}
	*dst = b != negate
	return nil
}

// Apply sets the options a form gives on c. Options not kept are
// ignored, as XEP-0060 lets a service do for node configuration; the
// values of the ones kept must be valid, and the access model one of
// models.
func (c *Config) Apply(f *dataform.Form, limit int, models Models) *stanza.Error {
	for _, fd := range f.Fields {
		v, val := fd.Var, fd.Value()
		var err error
		switch v {
		case fieldAccessModel:
			if !slices.Contains(models, val) {
				return Unsupported(stanza.FeatureNotImplemented("access model "+val+" is not supported"), "access-"+val)
			}
			c.AccessModel = val
		case fieldMaxItems:
			c.MaxItems, err = ParseMaxItems(val, limit)
		case fieldPersistItems:
			err = boolField(&c.PersistItems, val, false)
		case fieldNotifyRetract:
			err = boolField(&c.NotifyRetract, val, false)
		case fieldNotifyDelete:
			err = boolField(&c.NotifyDelete, val, false)
		case fieldNotifyConfig:
			err = boolField(&c.NotifyConfig, val, false)
		case fieldDeliverPayloads:
			err = boolField(&c.NoPayloads, val, true)
		case fieldDeliverNotifications:
			err = boolField(&c.NoNotifications, val, true)
		case fieldSendLastPublished:
			switch val {
			case SendLastNever, SendLastOnSub, SendLastOnSubAndPresence:
				c.SendLast = val
			default:
				err = fmt.Errorf("%q is not a send_last_published_item value", val)
			}
		case fieldPublishModel:
			switch val {
			case PublishPublishers, PublishSubscribers, PublishOpen:
				c.PublishModel = val
			default:
				err = fmt.Errorf("%q is not a publish model", val)
			}
		case fieldNodeType:
			if val != "" && val != "leaf" {
				return Unsupported(stanza.FeatureNotImplemented("only leaf nodes are supported"), "collections")
			}
		case fieldTitle:
			c.Title = val
		case fieldDescription:
			c.Description = val
		case fieldType:
			c.Type = val
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

// Meets reports whether c satisfies publish-options used as
// preconditions (XEP-0223, XEP-0060 §7.1.5): each option must have the
// value given; options not kept cannot be checked and fail.
func (c Config) Meets(f *dataform.Form, limit int) bool {
	for _, fd := range f.Fields {
		v, val := fd.Var, fd.Value()
		switch v {
		case fieldAccessModel:
			if val != c.AccessModel {
				return false
			}
		case fieldMaxItems:
			n, err := ParseMaxItems(val, limit)
			if err != nil || n != c.MaxItems {
				return false
			}
		case fieldPersistItems, fieldNotifyRetract, fieldNotifyDelete, fieldNotifyConfig, fieldDeliverNotifications, fieldDeliverPayloads:
			b, err := dataform.ParseBool(val)
			want := map[string]bool{fieldPersistItems: c.PersistItems, fieldNotifyRetract: c.NotifyRetract,
				fieldNotifyDelete: c.NotifyDelete, fieldNotifyConfig: c.NotifyConfig,
				fieldDeliverNotifications: !c.NoNotifications, fieldDeliverPayloads: !c.NoPayloads}[v]
			if err != nil || b != want {
				return false
			}
		case fieldSendLastPublished:
			if val != c.SendLast {
				return false
			}
		case fieldPublishModel:
			if val != c.Publishers() {
				return false
			}
		case fieldTitle, fieldDescription:
			if val != map[string]string{fieldTitle: c.Title, fieldDescription: c.Description}[v] {
				return false
			}
		case fieldType:
			// A node that declares no payload type makes no claim a
			// client's could contradict: social feed clients (XEP-0472)
			// send pubsub#type with every publish, also to nodes other
			// clients made.
			if c.Type != "" && val != c.Type {
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

// Form renders c as a node configuration form (XEP-0060 §8.2); groups
// are the owner's roster groups, offered for the roster access model,
// and models the access models the front door offers.
func (c Config) Form(groups []string, models Models) *xmlstream.Element {
	f := dataform.New(dataform.TypeForm, FormNodeConfig)
	access := f.Add(fieldAccessModel, "Who may subscribe and retrieve items", c.AccessModel)
	access.Options = slices.DeleteFunc(access.Options, func(o dataform.Option) bool {
		return !slices.Contains(models, o.Value)
	})
	maxItems := strconv.Itoa(c.MaxItems)
	if c.MaxItems == 0 {
		maxItems = "max"
	}
	f.Add(fieldMaxItems, "Maximum number of items to keep", maxItems)
	f.AddBool(fieldPersistItems, "Keep items", c.PersistItems)
	f.Add(fieldSendLastPublished, "When to send the last item", c.SendLast)
	f.AddBool(fieldDeliverNotifications, "Deliver event notifications", !c.NoNotifications)
	f.AddBool(fieldDeliverPayloads, "Deliver payloads with event notifications", !c.NoPayloads)
	f.AddBool(fieldNotifyRetract, "Notify retractions", c.NotifyRetract)
	f.AddBool(fieldNotifyDelete, "Notify deletion", c.NotifyDelete)
	f.AddBool(fieldNotifyConfig, "Notify configuration changes", c.NotifyConfig)
	f.Add(fieldPublishModel, "Who may publish", c.Publishers())
	f.Add(fieldTitle, "Title", c.Title)
	f.Add(fieldDescription, "Description", c.Description)
	f.Add(fieldType, "Payload type", c.Type)
	if offered := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(groups), c.RosterGroups...)))); len(offered) > 0 {
		// A list with nothing to choose from is no field at all.
		allowed := f.Add(fieldRosterGroups, "Roster groups allowed (roster access)", c.RosterGroups...)
		for _, g := range offered {
			allowed.AddOption(g, g)
		}
	}
	return f.Element()
}

// MetaData renders what disco#info shows of a node (XEP-0060 §5.4).
func (s State) MetaData(created time.Time) *xmlstream.Element {
	c := s.Config
	f := dataform.New(dataform.TypeResult, dataform.PubSubMetaData)
	f.Add("pubsub#access_model", "Access model", c.AccessModel)
	if !created.IsZero() {
		f.Add("pubsub#creation_date", "Creation date", xmpptime.Format(created))
	}
	n := 0
	for _, sub := range s.Subscriptions {
		if sub.Subscribed() {
			n++
		}
	}
	f.Add("pubsub#num_subscribers", "Number of subscribers", strconv.Itoa(n))
	owners := s.Owners()
	if c.Title != "" {
		f.Add("pubsub#title", "Title", c.Title)
	}
	if c.Description != "" {
		f.Add("pubsub#description", "Description", c.Description)
	}
	if c.Type != "" {
		f.Add("pubsub#type", "Payload type", c.Type)
	}
	if len(owners) > 0 {
		f.Add("pubsub#owner", "Owners", owners...)
	}
	return f.Element()
}

// HasPrefix reports whether node starts with one of prefixes.
func HasPrefix(node string, prefixes ...string) bool {
	return slices.ContainsFunc(prefixes, func(p string) bool { return strings.HasPrefix(node, p) })
}
