package pep

import (
	"parley/internal/dataform"
	"parley/modules/internal/pubsub"
)

// A personal node's configuration, affiliations and subscriptions are
// the engine's node state (modules/internal/pubsub).
type nodeConfig = pubsub.State

// Access models a personal node can have (XEP-0163 §4); authorize,
// which needs the owner to approve each subscriber, is the service's.
const (
	AccessOpen      = pubsub.AccessOpen
	AccessPresence  = pubsub.AccessPresence
	AccessRoster    = pubsub.AccessRoster
	AccessWhitelist = pubsub.AccessWhitelist
)

const (
	SendLastNever            = pubsub.SendLastNever
	SendLastOnSub            = pubsub.SendLastOnSub
	SendLastOnSubAndPresence = pubsub.SendLastOnSubAndPresence
	formTypePublishOptions   = pubsub.FormPublishOptions
	formTypeNodeConfig       = pubsub.FormNodeConfig
	nsData                   = dataform.NS
	nsMicroblog              = "urn:xmpp:microblog:0"
)

// models are the access models PEP offers.
var models = pubsub.Models{AccessOpen, AccessPresence, AccessRoster, AccessWhitelist}

// Node name prefixes whose items other people must be able to fetch
// without being contacts: OMEMO (XEP-0384) device lists and bundles, and
// the microblog (XEP-0277 §3: a blog is public unless its owner says
// otherwise). A client that publishes them without publish-options still
// gets a working node.
var openByDefault = []string{
	"eu.siacs.conversations.axolotl.",
	"urn:xmpp:omemo:2:",
}

// defaultConfig is the configuration of a new node before the publisher's
// options apply: XEP-0163's presence access and the newest item only,
// except for bookmarks (XEP-0402 §5: private, many items), OMEMO and the
// microblog (open, many items: a blog keeps its posts).
func defaultConfig(node string) nodeConfig {
	c := pubsub.Config{AccessModel: AccessPresence, MaxItems: 1, PersistItems: true,
		SendLast: SendLastOnSubAndPresence, NotifyRetract: true, NotifyDelete: true}
	switch {
	case node == nsBookmarks:
		c.AccessModel, c.MaxItems, c.SendLast = AccessWhitelist, 0, SendLastNever
	case node == nsMicroblog:
		c.AccessModel, c.MaxItems = AccessOpen, 0
	case pubsub.HasPrefix(node, openByDefault...):
		c.AccessModel = AccessOpen
	}
	return nodeConfig{Config: c}
}

func decodeConfig(b []byte) (nodeConfig, error) { return pubsub.DecodeState(b) }

func parseMaxItems(s string, limit int) (int, error) { return pubsub.ParseMaxItems(s, limit) }

// Form fields PEP's own code names.
const (
	fieldAccessModel  = "pubsub#access_model"
	fieldMaxItems     = "pubsub#max_items"
	fieldPersistItems = "pubsub#persist_items"
	fieldRosterGroups = "pubsub#roster_groups_allowed"
)
