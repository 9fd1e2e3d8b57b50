package avatarconv

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"image"
	_ "image/gif" // DecodeConfig learns the sizes of the usual avatar formats
	_ "image/jpeg"
	_ "image/png"
	"net/http"
	"strconv"
	"strings"

	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/modules/vcard"
)

const (
	nsData     = "urn:xmpp:avatar:data"
	nsMetadata = "urn:xmpp:avatar:metadata"
	nsUpdate   = "vcard-temp:x:update"
)

// photo is an avatar image.
type photo struct {
	typ  string // MIME type
	data []byte
}

// id is the image's SHA-1 in hex: the XEP-0084 item id and the XEP-0153
// presence hash.
func (p photo) id() string {
	sum := sha1.Sum(p.data)
	return hex.EncodeToString(sum[:])
}

// decodeBase64 reads base64 as found in BINVAL and avatar data: line
// breaks and spaces are allowed, padding may be missing.
func decodeBase64(s string) ([]byte, error) {
	s = strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, s)
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// photoOf returns the embedded photo of a vCard (XEP-0054 PHOTO with
// BINVAL); ok is false when it has none. A BINVAL that is not base64 is
// a bad request: the photo could be neither shown nor converted.
func photoOf(vc *xmlstream.Element) (p photo, ok bool, err error) {
	if vc == nil {
		return photo{}, false, nil
	}
	for ph := range vc.Elements() {
		if ph.Name.Space != vcard.NS || ph.Name.Local != "PHOTO" {
			continue
		}
		bin := ph.Child(vcard.NS, "BINVAL")
		if bin == nil {
			continue // EXTVAL: a link, not an image we hold
		}
		data, err := decodeBase64(bin.Text())
		if err != nil {
			return photo{}, false, stanza.BadRequest("the vCard photo's BINVAL is not base64")
		}
		if len(data) == 0 {
			continue // an empty PHOTO says there is none
		}
		typ := ""
		if t := ph.Child(vcard.NS, "TYPE"); t != nil {
			typ = strings.TrimSpace(t.Text())
		}
		if typ == "" {
			typ = http.DetectContentType(data)
		}
		return photo{typ: typ, data: data}, true, nil
	}
	return photo{}, false, nil
}

// withPhoto returns a copy of vc whose PHOTO is p, or without PHOTO when
// p is nil.
func withPhoto(vc *xmlstream.Element, p *photo) *xmlstream.Element {
	out := xmlstream.New(vcard.NS, "vCard")
	if vc != nil {
		out = vc.Copy()
		kept := out.Children[:0]
		for _, n := range out.Children {
			if n.Elem != nil && n.Elem.Name.Space == vcard.NS && n.Elem.Name.Local == "PHOTO" {
				continue
			}
			kept = append(kept, n)
		}
		out.Children = kept
	}
	if p != nil {
		ph := xmlstream.New(vcard.NS, "PHOTO")
		ph.AddChild(xmlstream.New(vcard.NS, "TYPE").AddText(p.typ))
		ph.AddChild(xmlstream.New(vcard.NS, "BINVAL").AddText(base64.StdEncoding.EncodeToString(p.data)))
		out.AddChild(ph)
	}
	return out
}

// dataPayload is the XEP-0084 data item of p.
func dataPayload(p photo) *xmlstream.Element {
	return xmlstream.New(nsData, "data").AddText(base64.StdEncoding.EncodeToString(p.data))
}

// metadataPayload is the XEP-0084 metadata item of p. Width and height
// are only given when the image's header tells them.
func metadataPayload(p photo) *xmlstream.Element {
	info := xmlstream.New(nsMetadata, "info", "bytes", strconv.Itoa(len(p.data)), "id", p.id(), "type", p.typ)
	if cfg, _, err := image.DecodeConfig(bytes.NewReader(p.data)); err == nil && cfg.Width > 0 && cfg.Height > 0 {
		info.SetAttr("width", strconv.Itoa(cfg.Width))
		info.SetAttr("height", strconv.Itoa(cfg.Height))
	}
	return xmlstream.New(nsMetadata, "metadata").AddChild(info)
}

// inlineInfo picks the info of a metadata payload that the data node
// holds: XEP-0398 §3.1 has the service skip those pointing to a URL.
// It returns nil for metadata without such an info (avatar disabled,
// or only hosted elsewhere).
func inlineInfo(md *xmlstream.Element) *xmlstream.Element {
	if md == nil || md.Name.Space != nsMetadata || md.Name.Local != "metadata" {
		return nil
	}
	for info := range md.Elements() {
		if info.Name.Space == nsMetadata && info.Name.Local == "info" && info.Attr("url") == "" && info.Attr("id") != "" {
			return info
		}
	}
	return nil
}
