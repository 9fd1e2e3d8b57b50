package pubsub

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"parley/internal/dataform"
	"parley/internal/jid"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
)

// Affiliations (XEP-0060 §4.1).
const (
	Owner       = "owner"
	Publisher   = "publisher"
	PublishOnly = "publish-only"
	Member      = "member"
	None        = "none"
	Outcast     = "outcast"
)

// Subscription states (XEP-0060 §4.2).
const (
	Subscribed = "subscribed"
	Pending    = "pending"
)

// Subscription is one subscription to a node.
type Subscription struct {
	JID   string `json:"jid"` // bare or full, as subscribed
	SubID string `json:"subid,omitempty"`
	State string `json:"state,omitempty"` // "" is subscribed (rows from before states)
	// NoDeliver: pubsub#deliver false, the subscriber wants no
	// notifications for now.
	NoDeliver bool `json:"no_deliver,omitempty"`
}

// Subscribed reports whether s is an approved subscription.
func (s Subscription) Subscribed() bool { return s.State == "" || s.State == Subscribed }

// StateName is the state as the protocol names it.
func (s Subscription) StateName() string {
	if s.State == "" {
		return Subscribed
	}
	return s.State
}

// State is everything stored of a node but its items: its configuration,
// affiliations and subscriptions. It is one record, sealed as one, and
// changed under the front door's lock on the node's owner; encoded, its
// Config fields are at the top level, so a configuration stored alone
// (PEP before subscriptions moved here) reads as a State.
type State struct {
	Config
	// Affiliations maps bare JIDs to affiliations other than none.
	Affiliations  map[string]string `json:"affiliations,omitempty"`
	Subscriptions []Subscription    `json:"subscriptions,omitempty"`
}

// Encode is the stored form of s.
func (s State) Encode() []byte {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // strings, ints and bools always marshal
	}
	return b
}

// DecodeState reads a stored state.
func DecodeState(b []byte) (State, error) {
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return State{}, fmt.Errorf("pubsub: damaged node state: %w", err)
	}
	return s, nil
}

// Affiliation is who's affiliation (by bare JID).
func (s State) Affiliation(who jid.JID) string {
	if a, ok := s.Affiliations[who.Bare().String()]; ok {
		return a
	}
	return None
}

// SetAffiliation changes an affiliation; none removes it.
func (s *State) SetAffiliation(who jid.JID, a string) {
	k := who.Bare().String()
	if a == None {
		delete(s.Affiliations, k)
		return
	}
	if s.Affiliations == nil {
		s.Affiliations = map[string]string{}
	}
	s.Affiliations[k] = a
}

// Owners lists the owners' bare JIDs, sorted.
func (s State) Owners() []string {
	var out []string
	for j, a := range s.Affiliations {
		if a == Owner {
			out = append(out, j)
		}
	}
	slices.Sort(out)
	return out
}

// ValidAffiliation reports whether a is an affiliation an owner may set.
func ValidAffiliation(a string) bool {
	return slices.Contains([]string{Owner, Publisher, PublishOnly, Member, None, Outcast}, a)
}

// MayPublish reports whether who may publish under the publish model.
func (s State) MayPublish(who jid.JID) bool {
	switch s.Affiliation(who) {
	case Owner, Publisher, PublishOnly:
		return true
	case Outcast:
		return false
	}
	switch s.Publishers() {
	case PublishOpen:
		return true
	case PublishSubscribers:
		return slices.ContainsFunc(s.Of(who), Subscription.Subscribed)
	}
	return false
}

// Find returns the index of who's subscription (exact JID, and subid
// when given).
func (s State) Find(who jid.JID, subid string) (int, bool) {
	for i, sub := range s.Subscriptions {
		if sub.JID == who.String() && (subid == "" || sub.SubID == subid) {
			return i, true
		}
	}
	return -1, false
}

// Of lists the subscriptions of who's bare JID (any resource).
func (s State) Of(who jid.JID) []Subscription {
	var out []Subscription
	for _, sub := range s.Subscriptions {
		if j, err := jid.Parse(sub.JID); err == nil && j.Bare().Equal(who.Bare()) {
			out = append(out, sub)
		}
	}
	return out
}

// Subscribe adds who's subscription, in state (Subscribed or Pending),
// or returns the one there is; limit bounds the node's subscriptions.
func (s *State) Subscribe(who jid.JID, state string, limit int) (Subscription, error) {
	if i, ok := s.Find(who, ""); ok {
		return s.Subscriptions[i], nil
	}
	if limit > 0 && len(s.Subscriptions) >= limit {
		return Subscription{}, &stanza.Error{Type: stanza.Wait, Condition: "resource-constraint",
			Text: fmt.Sprintf("at most %d subscriptions to one node", limit)}
	}
	sub := Subscription{JID: who.String(), SubID: NewID(), State: state}
	s.Subscriptions = append(s.Subscriptions, sub)
	return sub, nil
}

// Unsubscribe removes who's subscription; subid, when given, must match.
// It reports whether there was one.
func (s *State) Unsubscribe(who jid.JID, subid string) bool {
	i, ok := s.Find(who, subid)
	if !ok {
		return false
	}
	s.Subscriptions = slices.Delete(s.Subscriptions, i, i+1)
	return true
}

// NewID is a random item or subscription id.
func NewID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// SubscriptionElement renders a subscription in namespace space.
func SubscriptionElement(space, node string, sub Subscription) *xmlstream.Element {
	el := xmlstream.New(space, "subscription", "jid", sub.JID, "subscription", sub.StateName())
	if node != "" {
		el.SetAttr("node", node)
	}
	if sub.SubID != "" {
		el.SetAttr("subid", sub.SubID)
	}
	return el
}

// OptionsForm is the subscription options form (XEP-0060 §6.3).
func OptionsForm(sub Subscription, typ string) *xmlstream.Element {
	f := dataform.New(typ, FormSubOptions)
	f.AddBool("pubsub#deliver", "Enable delivery?", !sub.NoDeliver)
	f.AddBool("pubsub#digest", "Receive digest notifications (approx. one per day)?", false)
	f.AddBool("pubsub#include_body", "Receive message body in addition to payload?", false)
	return f.Element()
}

// ApplyOptions sets submitted options on sub. Digests and bodies are not
// offered: asking for them is refused rather than ignored.
func ApplyOptions(sub *Subscription, x *xmlstream.Element) *stanza.Error {
	f, err := dataform.Parse(x)
	if err != nil {
		return Cond(stanza.BadRequest("the options form is invalid"), "invalid-options")
	}
	for _, fd := range f.Fields {
		switch fd.Var {
		case "pubsub#deliver":
			b, err := dataform.ParseBool(fd.Value())
			if err != nil {
				return Cond(stanza.BadRequest("pubsub#deliver is not a boolean"), "invalid-options")
			}
			sub.NoDeliver = !b
		case "pubsub#digest", "pubsub#include_body":
			if b, err := dataform.ParseBool(fd.Value()); err != nil || b {
				return Cond(stanza.BadRequest(fd.Var+" is not offered"), "invalid-options")
			}
		}
	}
	return nil
}

// ChangeSubscriptions applies an owner's <subscriptions/> set (XEP-0060
// §8.8.2): each <subscription jid subscription [subid]/> subscribes,
// approves (subscribed), or removes (none) one.
func ChangeSubscriptions(st *State, action *xmlstream.Element, limit int) error {
	for c := range action.Elements() {
		if c.Name.Space != NSOwner || c.Name.Local != "subscription" {
			continue
		}
		j, err := jid.Parse(c.Attr("jid"))
		if err != nil {
			return stanza.JIDMalformed("a subscription's jid is not a JID")
		}
		switch c.Attr("subscription") {
		case "none":
			st.Unsubscribe(j, c.Attr("subid"))
		case Subscribed:
			if i, ok := st.Find(j, c.Attr("subid")); ok {
				st.Subscriptions[i].State = Subscribed
			} else if _, err := st.Subscribe(j, Subscribed, limit); err != nil {
				return err
			}
		default:
			return stanza.BadRequest("a subscription state is none or subscribed")
		}
	}
	return nil
}

// Subscriber reads the node and the 'jid' of a subscribe, unsubscribe or
// options request: one may only act for oneself (XEP-0060 §6.1.3.1,
// §6.2.3.3).
func Subscriber(from jid.JID, action *xmlstream.Element) (string, jid.JID, *stanza.Error) {
	node := action.Attr("node")
	if node == "" {
		return "", jid.JID{}, NodeRequired()
	}
	raw := action.Attr("jid")
	if raw == "" {
		return "", jid.JID{}, Cond(stanza.BadRequest("a subscription needs the subscriber's jid"), "jid-required")
	}
	j, err := jid.Parse(raw)
	if err != nil || !j.Bare().Equal(from.Bare()) {
		return "", jid.JID{}, Cond(stanza.BadRequest("the jid is not the requester's"), "invalid-jid")
	}
	return node, j, nil
}

// SubscribeWith is Subscribe followed by the options form x of the
// request (nil: none), which configures the subscription at once
// (XEP-0060 §6.3.7).
func (s *State) SubscribeWith(who jid.JID, state string, limit int, x *xmlstream.Element) (Subscription, error) {
	sub, err := s.Subscribe(who, state, limit)
	if err != nil || x == nil {
		return sub, err
	}
	i, _ := s.Find(who, sub.SubID)
	if se := ApplyOptions(&s.Subscriptions[i], x); se != nil {
		return Subscription{}, se
	}
	return s.Subscriptions[i], nil
}
