package storage

import (
	"context"
	"strings"
	"time"
)

// MaxPubSubItems bounds how many items a publish may keep in one node, so
// a single node cannot hold an unbounded amount of a user's data whatever
// the module asks for.
const MaxPubSubItems = 10000

// PubSubNode is one node of a personal publish-subscribe service (PEP,
// XEP-0163), owned by an account.
type PubSubNode struct {
	Name string // the node name, e.g. "urn:xmpp:avatar:metadata"
	// Config is the node configuration, encoded by the module; storage
	// keeps it opaque so that new options never need a migration.
	Config  []byte
	Created time.Time // UTC, microsecond precision; set by the driver
}

// PubSubItem is one published item.
type PubSubItem struct {
	ID        string    // unique within its node
	Publisher string    // JID of the publisher
	Payload   []byte    // the item's payload, serialised XML
	Published time.Time // UTC, microsecond precision; set by the driver
}

// PubSubLast is the newest item of one node.
type PubSubLast struct {
	Node string
	Item PubSubItem
}

// PubSubQuery selects items of a node. The zero value selects them all.
type PubSubQuery struct {
	// IDs, when not empty, restricts the result to these item ids; ids
	// that do not exist are left out, not reported.
	IDs []string
	// Last > 0 keeps only the Last most recently published items.
	Last int
}

// PubSub is the repository of personal pubsub nodes and their items.
// Items are ordered by publication: republishing an id replaces the item
// and makes it the newest. Deleting an account deletes its nodes, and
// deleting a node its items.
type PubSub interface {
	// CreateNode creates a node: ErrExists if owner has one of that name,
	// ErrNotFound if the account does not exist.
	CreateNode(ctx context.Context, owner string, node PubSubNode) error
	Node(ctx context.Context, owner, node string) (PubSubNode, error) // ErrNotFound
	// Nodes lists owner's nodes sorted by name (byte order); ErrNotFound
	// when the account does not exist.
	Nodes(ctx context.Context, owner string) ([]PubSubNode, error)
	// Configure replaces a node's configuration and, with maxItems > 0,
	// drops the oldest items beyond maxItems. ErrNotFound.
	Configure(ctx context.Context, owner, node string, config []byte, maxItems int) error
	DeleteNode(ctx context.Context, owner, node string) error // ErrNotFound
	// Publish stores item in an existing node (ErrNotFound otherwise) and
	// returns it with Published set. With maxItems > 0 the oldest items
	// beyond maxItems are dropped.
	Publish(ctx context.Context, owner, node string, item PubSubItem, maxItems int) (PubSubItem, error)
	// Retract deletes one item; ErrNotFound when the node or item is
	// missing.
	Retract(ctx context.Context, owner, node, id string) error
	// Items returns the selected items of a node, oldest first;
	// ErrNotFound when the node does not exist.
	Items(ctx context.Context, owner, node string, q PubSubQuery) ([]PubSubItem, error)
	// LastItems returns the newest item of each of owner's nodes that has
	// one, sorted by node name; nothing (no error) for an owner without
	// nodes or without an account.
	LastItems(ctx context.Context, owner string) ([]PubSubLast, error)
	// PayloadBytes is the total size of the payloads of all owner's
	// items, in every node (0 for an owner without items or account):
	// what a per-user quota counts.
	PayloadBytes(ctx context.Context, owner string) (int64, error)
	// NodesBytes is the same total over the named nodes of owner only
	// (0 for none or missing ones): what a quota on the nodes one user
	// owns on a service counts. At most MaxPubSubItems names.
	NodesBytes(ctx context.Context, owner string, nodes []string) (int64, error)
}

// ValidateService checks the owner of a pubsub service's nodes: a domain.
func ValidateService(domain string) error {
	if domain == "" || strings.ContainsAny(domain, "@/") {
		return invalid("pubsub service %q is not a domain", domain)
	}
	return storableText("pubsub service", domain, MaxJIDPartBytes)
}

// ValidateNodeName checks a pubsub node name: not empty (the empty name is
// the service's root, never a stored node) and text both databases keep.
func ValidateNodeName(name string) error {
	if name == "" {
		return invalid("empty pubsub node name")
	}
	return storableText("pubsub node name", name, MaxKeyBytes)
}

// ValidatePubSubItem checks an item before it is stored.
func ValidatePubSubItem(it PubSubItem) error {
	if it.ID == "" {
		return invalid("empty pubsub item id")
	}
	if err := storableText("pubsub item id", it.ID, MaxKeyBytes); err != nil {
		return err
	}
	if err := storableText("pubsub publisher", it.Publisher, 3*MaxJIDPartBytes+2); err != nil {
		return err
	}
	return ValidateBlob("pubsub payload", it.Payload)
}

// ValidateMaxItems checks a node's item limit (0: unlimited up to
// MaxPubSubItems).
func ValidateMaxItems(n int) error {
	if n < 0 || n > MaxPubSubItems {
		return invalid("pubsub max items %d is outside 0..%d", n, MaxPubSubItems)
	}
	return nil
}

// EffectiveMaxItems is the limit a driver applies: the caller's, or
// MaxPubSubItems when the caller set none.
func EffectiveMaxItems(n int) int {
	if n <= 0 {
		return MaxPubSubItems
	}
	return n
}
