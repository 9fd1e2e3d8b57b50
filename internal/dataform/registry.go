package dataform

import (
	"fmt"
	"slices"
	"strings"

	"parley/internal/xmlstream"
)

// Spec is what the registry says of one field.
type Spec struct {
	Type string
	// Options, when set, are the only values the field may take.
	// Open lists (muc#roomconfig_maxusers) leave them to the form.
	Options []Option
}

// FORM_TYPEs parley writes or reads.
const (
	MUCRoomConfig     = "http://jabber.org/protocol/muc#roomconfig"
	MUCRoomInfo       = "http://jabber.org/protocol/muc#roominfo"
	MUCRequest        = "http://jabber.org/protocol/muc#request"
	MUCRegister       = "http://jabber.org/protocol/muc#register"
	PubSubNodeConfig  = "http://jabber.org/protocol/pubsub#node_config"
	PubSubPublishOpts = "http://jabber.org/protocol/pubsub#publish-options"
	PubSubMetaData    = "http://jabber.org/protocol/pubsub#meta-data"
	PubSubSubOptions  = "http://jabber.org/protocol/pubsub#subscribe_options"
	PubSubSubAuth     = "http://jabber.org/protocol/pubsub#subscribe_authorization"
	MAM2              = "urn:xmpp:mam:2"
	HTTPUpload        = "urn:xmpp:http:upload:0"
	PushSummary       = "urn:xmpp:push:summary"
	ServerInfo        = "http://jabber.org/network/serverinfo"
	Admin             = "http://jabber.org/protocol/admin"
	Privacy           = "urn:parley:privacy"
)

func opts(values ...string) []Option {
	out := make([]Option, len(values))
	for i, v := range values {
		out[i] = Option{Label: v, Value: v}
	}
	return out
}

var (
	accessModels = opts("authorize", "open", "presence", "roster", "whitelist")
	sendLast     = opts("never", "on_sub", "on_sub_and_presence")
)

// nodeConfig is the pubsub#node_config registry (XEP-0060 §16.4.4);
// publish-options reuse its fields (XEP-0060 §7.1.5, XEP-0223).
var nodeConfig = map[string]Spec{
	"pubsub#access_model":                   {Type: ListSingle, Options: accessModels},
	"pubsub#body_xslt":                      {Type: TextSingle},
	"pubsub#children_association_policy":    {Type: ListSingle, Options: opts("all", "owners", "whitelist")},
	"pubsub#children_association_whitelist": {Type: JIDMulti},
	"pubsub#children":                       {Type: TextMulti},
	"pubsub#children_max":                   {Type: TextSingle},
	"pubsub#collection":                     {Type: TextMulti},
	"pubsub#contact":                        {Type: JIDMulti},
	"pubsub#dataform_xslt":                  {Type: TextSingle},
	"pubsub#deliver_notifications":          {Type: Boolean},
	"pubsub#deliver_payloads":               {Type: Boolean},
	"pubsub#description":                    {Type: TextSingle},
	"pubsub#item_expire":                    {Type: TextSingle},
	"pubsub#itemreply":                      {Type: ListSingle, Options: opts("owner", "publisher", "none")},
	"pubsub#language":                       {Type: ListSingle},
	"pubsub#max_items":                      {Type: TextSingle},
	"pubsub#max_payload_size":               {Type: TextSingle},
	"pubsub#node_type":                      {Type: ListSingle, Options: opts("leaf", "collection")},
	"pubsub#notification_type":              {Type: ListSingle, Options: opts("normal", "headline")},
	"pubsub#notify_config":                  {Type: Boolean},
	"pubsub#notify_delete":                  {Type: Boolean},
	"pubsub#notify_retract":                 {Type: Boolean},
	"pubsub#notify_sub":                     {Type: Boolean},
	"pubsub#persist_items":                  {Type: Boolean},
	"pubsub#presence_based_delivery":        {Type: Boolean},
	"pubsub#publish_model":                  {Type: ListSingle, Options: opts("publishers", "subscribers", "open")},
	"pubsub#purge_offline":                  {Type: Boolean},
	"pubsub#roster_groups_allowed":          {Type: ListMulti},
	"pubsub#send_last_published_item":       {Type: ListSingle, Options: sendLast},
	"pubsub#tempsub":                        {Type: Boolean},
	"pubsub#subscribe":                      {Type: Boolean},
	"pubsub#title":                          {Type: TextSingle},
	"pubsub#type":                           {Type: TextSingle},
}

// registry is the table of XEP-0068 registrations for the FORM_TYPEs
// parley uses, from the XMPP Registrar's formtypes registry and the
// registry sections of the XEPs named beside each. A field a XEP's own
// text defines after its registry submission is marked with where it
// comes from.
var registry = map[string]map[string]Spec{
	// XEP-0045 §15.5.3, plus muc#maxhistoryfetch and
	// muc#roomconfig_allowpm of XEP-0045 1.25+, and
	// muc#roomconfig_enablearchiving, the field Prosody's and
	// ejabberd's MUC archives and their clients use to turn a room's
	// archive (XEP-0313 §8) on and off.
	MUCRoomConfig: {
		"muc#maxhistoryfetch":                  {Type: TextSingle},
		"muc#roomconfig_allowinvites":          {Type: Boolean},
		"muc#roomconfig_allowpm":               {Type: ListSingle, Options: opts("anyone", "participants", "moderators", "none")},
		"muc#roomconfig_changesubject":         {Type: Boolean},
		"muc#roomconfig_enablearchiving":       {Type: Boolean},
		"muc#roomconfig_enablelogging":         {Type: Boolean},
		"muc#roomconfig_getmemberlist":         {Type: ListMulti},
		"muc#roomconfig_lang":                  {Type: TextSingle},
		"muc#roomconfig_pubsub":                {Type: TextSingle},
		"muc#roomconfig_maxusers":              {Type: ListSingle},
		"muc#roomconfig_membersonly":           {Type: Boolean},
		"muc#roomconfig_moderatedroom":         {Type: Boolean},
		"muc#roomconfig_passwordprotectedroom": {Type: Boolean},
		"muc#roomconfig_persistentroom":        {Type: Boolean},
		"muc#roomconfig_presencebroadcast":     {Type: ListMulti, Options: opts("moderator", "participant", "visitor")},
		"muc#roomconfig_publicroom":            {Type: Boolean},
		"muc#roomconfig_roomadmins":            {Type: JIDMulti},
		"muc#roomconfig_roomdesc":              {Type: TextSingle},
		"muc#roomconfig_roomname":              {Type: TextSingle},
		"muc#roomconfig_roomowners":            {Type: JIDMulti},
		"muc#roomconfig_roomsecret":            {Type: TextPrivate},
		"muc#roomconfig_whois":                 {Type: ListSingle, Options: opts("moderators", "anyone")},
	},
	// XEP-0045 §15.5.4, plus muc#roominfo_subjectmod and
	// muc#maxhistoryfetch of XEP-0045 §6.4, and
	// muc#roominfo_avatarhash of XEP-0486 §3.3.
	MUCRoomInfo: {
		"muc#maxhistoryfetch":      {Type: TextSingle},
		"muc#roominfo_avatarhash":  {Type: TextMulti},
		"muc#roominfo_contactjid":  {Type: JIDMulti},
		"muc#roominfo_description": {Type: TextSingle},
		"muc#roominfo_lang":        {Type: TextSingle},
		"muc#roominfo_ldapgroup":   {Type: TextSingle},
		"muc#roominfo_logs":        {Type: TextSingle},
		"muc#roominfo_occupants":   {Type: TextSingle},
		"muc#roominfo_subject":     {Type: TextSingle},
		"muc#roominfo_subjectmod":  {Type: Boolean},
	},
	// XEP-0045 §15.5.2.
	MUCRequest: {
		"muc#role":          {Type: TextSingle},
		"muc#jid":           {Type: TextSingle},
		"muc#roomnick":      {Type: TextSingle},
		"muc#request_allow": {Type: Boolean},
	},
	// XEP-0045 §15.5.1.
	MUCRegister: {
		"muc#register_allow":    {Type: Boolean},
		"muc#register_email":    {Type: TextSingle},
		"muc#register_faqentry": {Type: TextMulti},
		"muc#register_first":    {Type: TextSingle},
		"muc#register_last":     {Type: TextSingle},
		"muc#register_roomnick": {Type: TextSingle},
		"muc#register_url":      {Type: TextSingle},
	},
	PubSubNodeConfig:  nodeConfig,
	PubSubPublishOpts: nodeConfig,
	// XEP-0060 §16.4.3.
	PubSubMetaData: {
		"pubsub#contact":         {Type: JIDMulti},
		"pubsub#creation_date":   {Type: TextSingle},
		"pubsub#creator":         {Type: JIDSingle},
		"pubsub#description":     {Type: TextSingle},
		"pubsub#language":        {Type: ListSingle},
		"pubsub#num_subscribers": {Type: TextSingle},
		"pubsub#owner":           {Type: JIDMulti},
		"pubsub#publisher":       {Type: JIDMulti},
		"pubsub#title":           {Type: TextSingle},
		"pubsub#type":            {Type: TextSingle},
		"pubsub#max_items":       {Type: TextSingle},
		"pubsub#access_model":    {Type: ListSingle, Options: accessModels},
	},
	// XEP-0060 §16.4.2.
	PubSubSubOptions: {
		"pubsub#deliver":            {Type: Boolean},
		"pubsub#digest":             {Type: Boolean},
		"pubsub#digest_frequency":   {Type: TextSingle},
		"pubsub#expire":             {Type: TextSingle},
		"pubsub#include_body":       {Type: Boolean},
		"pubsub#show-values":        {Type: ListMulti, Options: opts("away", "chat", "dnd", "online", "xa")},
		"pubsub#subscription_type":  {Type: ListSingle, Options: opts("items", "nodes")},
		"pubsub#subscription_depth": {Type: ListSingle, Options: opts("1", "all")},
	},
	// XEP-0060 §16.4.1.
	PubSubSubAuth: {
		"pubsub#allow":          {Type: Boolean},
		"pubsub#node":           {Type: TextSingle},
		"pubsub#subscriber_jid": {Type: JIDSingle},
		"pubsub#subid":          {Type: TextSingle},
	},
	// XEP-0313 §4.1 and §5.1.2 (#extended).
	MAM2: {
		"with":      {Type: JIDSingle},
		"start":     {Type: TextSingle},
		"end":       {Type: TextSingle},
		"before-id": {Type: TextSingle},
		"after-id":  {Type: TextSingle},
		"ids":       {Type: TextMulti},
	},
	// XEP-0363 §11.2.
	HTTPUpload: {
		"max-file-size": {Type: TextSingle},
	},
	// XEP-0357 §9.2.
	PushSummary: {
		"message-count":              {Type: TextSingle},
		"pending-subscription-count": {Type: TextSingle},
		"last-message-sender":        {Type: JIDSingle},
		"last-message-body":          {Type: TextSingle},
	},
	// XEP-0133 §5 (the fields of the service administration commands),
	// plus welcome, the field of its set-welcome command.
	Admin: {
		"accountjid":         {Type: JIDSingle},
		"accountjids":        {Type: JIDMulti},
		"password":           {Type: TextPrivate},
		"password-verify":    {Type: TextPrivate},
		"max_items":          {Type: ListSingle, Options: opts("25", "50", "75", "100", "150", "200", "none")},
		"registereduserjids": {Type: JIDMulti},
		"registeredusersnum": {Type: TextSingle},
		"onlineuserjids":     {Type: JIDMulti},
		"onlineusersnum":     {Type: TextSingle},
		"announcement":       {Type: TextMulti},
		"motd":               {Type: TextMulti},
		"welcome":            {Type: TextMulti},
	},
	// parley's own per-user privacy settings (the block-strangers
	// ad-hoc command).
	Privacy: {
		"block_strangers": {Type: Boolean},
	},
	// XEP-0157 §6.
	ServerInfo: {
		"abuse-addresses":    {Type: ListMulti},
		"admin-addresses":    {Type: ListMulti},
		"feedback-addresses": {Type: ListMulti},
		"sales-addresses":    {Type: ListMulti},
		"security-addresses": {Type: ListMulti},
		"support-addresses":  {Type: ListMulti},
	},
}

// Lookup returns the registered spec of field v of formType.
func Lookup(formType, v string) (Spec, bool) {
	s, ok := registry[formType][v]
	return s, ok
}

// Registered reports whether the table knows formType.
func Registered(formType string) bool { return registry[formType] != nil }

// Validate checks a form as a client that validates forms against
// XEP-0004 and the registry would: every field of a registered FORM_TYPE
// is registered (or an "x-" extension, XEP-0068 §3.4) with the type the
// registry gives, list fields of a form to fill in offer options and
// their values are among them, booleans are booleans, single-valued
// fields have one value at most and JID fields hold JIDs. It returns
// every problem found, not only the first.
func Validate(x *xmlstream.Element) error {
	f, err := Parse(x)
	if err != nil {
		return err
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if x.Attr("type") == "" {
		bad("the form has no type")
	}
	reg := registry[f.FormType]
	for _, fd := range f.Fields {
		if fd.Var == "" && fd.Type != Fixed {
			bad("a %s field has no var", fd.Type)
			continue
		}
		typ := fd.Type
		if typ == "" && f.Type != TypeSubmit {
			typ = TextSingle // XEP-0004 §3.3: the default
		}
		spec, known := reg[fd.Var]
		switch {
		case reg == nil || strings.HasPrefix(fd.Var, "x-"):
		case !known && f.Type != TypeSubmit:
			bad("%s: not registered for %s", fd.Var, f.FormType)
		case known && typ != "" && typ != spec.Type:
			bad("%s: type %s, registered as %s", fd.Var, typ, spec.Type)
		}
		if known && typ == "" {
			typ = spec.Type // a submitted value is read with the registered type
		}
		if len(fd.Values) > 1 && !slices.Contains([]string{Hidden, JIDMulti, ListMulti, TextMulti}, typ) {
			bad("%s: %d values in a %s field", fd.Var, len(fd.Values), typ)
		}
		if (typ == ListSingle || typ == ListMulti) && f.Type == TypeForm && len(fd.Options) == 0 {
			bad("%s: a %s field without options", fd.Var, typ)
		}
		if len(fd.Options) > 0 && typ != ListSingle && typ != ListMulti {
			bad("%s: options on a %s field", fd.Var, typ)
		}
		if f.Type == TypeForm && len(fd.Options) > 0 {
			for _, v := range fd.Values {
				if !slices.ContainsFunc(fd.Options, func(o Option) bool { return o.Value == v }) {
					bad("%s: value %q is not one of the options", fd.Var, v)
				}
			}
		}
		if known && len(spec.Options) > 0 {
			allowed := func(v string) bool {
				return slices.ContainsFunc(spec.Options, func(o Option) bool { return o.Value == v })
			}
			for _, o := range fd.Options {
				if !allowed(o.Value) {
					bad("%s: option %q is not registered", fd.Var, o.Value)
				}
			}
			for _, v := range fd.Values {
				if !allowed(v) {
					bad("%s: value %q is not registered", fd.Var, v)
				}
			}
		}
		for _, v := range fd.Values {
			switch typ {
			case Boolean:
				if _, err := ParseBool(v); err != nil {
					bad("%s: %v", fd.Var, err)
				}
			case JIDSingle, JIDMulti:
				if !validJID(v) {
					bad("%s: %q is not a JID", fd.Var, v)
				}
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("data form %s: %s", f.FormType, strings.Join(problems, "; "))
	}
	return nil
}
