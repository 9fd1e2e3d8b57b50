package upload

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// grant is what a slot allows; it travels in the PUT's Authorization
// header next to its MAC, so the HTTPS side needs no slot table.
type grant struct {
	Owner   string `json:"o"`
	Size    int64  `json:"s"`
	Type    string `json:"t,omitempty"` // normalised; "" = any
	Expires int64  `json:"e"`           // Unix seconds
}

const authScheme = "Bearer "

// mac binds the grant to the method and path. Every field is length-
// prefixed, so no two different inputs can run together into the same
// bytes.
func (m *Module) mac(path string, g grant) []byte {
	h := hmac.New(sha256.New, m.key)
	for _, f := range []string{"PUT", path, strconv.FormatInt(g.Size, 10), g.Type, strconv.FormatInt(g.Expires, 10), g.Owner} {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write([]byte(f))
	}
	return h.Sum(nil)
}

// sign returns the Authorization header value for a PUT to path.
func (m *Module) sign(path string, g grant) string {
	body, _ := json.Marshal(g) // a struct of strings and numbers always encodes
	enc := base64.RawURLEncoding
	return authScheme + enc.EncodeToString(body) + "." + enc.EncodeToString(m.mac(path, g))
}

var errBadAuth = errors.New("the Authorization header is not a valid slot grant")

// verify checks an Authorization header for a PUT to path and returns
// its grant; expiry is the caller's to check.
func (m *Module) verify(path, header string) (grant, error) {
	tok, ok := strings.CutPrefix(header, authScheme)
	if !ok {
		return grant{}, errBadAuth
	}
	body64, mac64, ok := strings.Cut(tok, ".")
	if !ok {
		return grant{}, errBadAuth
	}
	enc := base64.RawURLEncoding
	body, err1 := enc.DecodeString(body64)
	mac, err2 := enc.DecodeString(mac64)
	var g grant
	if err1 != nil || err2 != nil || json.Unmarshal(body, &g) != nil {
		return grant{}, errBadAuth
	}
	if !hmac.Equal(mac, m.mac(path, g)) {
		return grant{}, errBadAuth
	}
	return g, nil
}

// slotPath is the server-side path of a slot; the MAC covers it.
func slotPath(id, name string) string { return pathPrefix + id + "/" + name }

// escapePath escapes the file name part for use in a URL.
func escapePath(p string) string {
	dir, name := p[:strings.LastIndexByte(p, '/')+1], p[strings.LastIndexByte(p, '/')+1:]
	return dir + url.PathEscape(name)
}

// splitPath takes a request path apart; ok is false for anything that is
// not exactly a slot path (directories included).
func splitPath(p string) (id, name string, ok bool) {
	rest, ok := strings.CutPrefix(p, pathPrefix)
	if !ok {
		return "", "", false
	}
	id, name, ok = strings.Cut(rest, "/")
	if !ok || !validID(id) || name == "" || strings.Contains(name, "/") {
		return "", "", false
	}
	return id, name, true
}

// maxNameBytes keeps URLs and Content-Disposition headers reasonable.
const maxNameBytes = 120

// sanitizeFilename makes the client's file name safe for a URL path
// segment and for a download dialog: no directories, no control or
// bidirectional-override characters (which disguise "gpj.exe" as
// "exe.jpg"), no characters file systems reject, bounded length.
func sanitizeFilename(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError, unicode.IsControl(r), unicode.Is(unicode.Cf, r), strings.ContainsRune(`"*:<>?|`, r):
			b.WriteByte('_')
		case unicode.IsSpace(r):
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	name := strings.Trim(b.String(), ". ")
	if len(name) > maxNameBytes {
		ext := ""
		if i := strings.LastIndexByte(name, '.'); i > 0 && len(name)-i <= 16 {
			ext = name[i:]
		}
		// Trimmed again so that the cut cannot leave a trailing dot or
		// space, which would make the result change when sanitised twice.
		name = strings.TrimRight(truncate(name[:len(name)-len(ext)], maxNameBytes-len(ext)), ". ") + ext
	}
	if name == "" {
		return "file"
	}
	return name
}

// truncate cuts s to at most n bytes without splitting a character.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// normalizeType parses a media type and writes it in one canonical form
// (lower-case type, sorted parameters), so the slot's and the PUT's
// Content-Type compare equal when they mean the same.
func normalizeType(s string) (string, bool) {
	if len(s) > 255 {
		return "", false
	}
	mt, params, err := mime.ParseMediaType(s)
	if err != nil || strings.Count(mt, "/") != 1 || strings.HasPrefix(mt, "/") || strings.HasSuffix(mt, "/") {
		return "", false
	}
	out := mime.FormatMediaType(mt, params)
	return out, out != ""
}

// safeTypes are the media types a browser shows without running
// anything; everything else is served as an attachment.
var safeTypes = map[string]bool{
	"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true,
	"image/avif": true, "image/heic": true, "image/heif": true, "image/bmp": true,
	"audio/mpeg": true, "audio/mp4": true, "audio/aac": true, "audio/ogg": true,
	"audio/opus": true, "audio/webm": true, "audio/wav": true, "audio/x-wav": true,
	"audio/flac": true, "audio/x-m4a": true,
	"video/mp4": true, "video/webm": true, "video/ogg": true, "video/quicktime": true,
	"video/3gpp": true,
	"text/plain": true,
}

// servingType is the Content-Type a stored file is served with, and
// whether it may be shown inline.
func servingType(stored string) (string, bool) {
	mt, params, err := mime.ParseMediaType(stored)
	if err != nil || !safeTypes[mt] {
		return "application/octet-stream", false
	}
	if cs := params["charset"]; mt == "text/plain" && cs != "" {
		if t := mime.FormatMediaType(mt, map[string]string{"charset": cs}); t != "" {
			return t, true
		}
	}
	return mt, true
}
