package upload

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"os"
	"strconv"
	"time"
)

const allowedMethods = "GET, HEAD, PUT, OPTIONS"

// ServeHTTP serves slots: PUT stores a file once, GET and HEAD serve it.
func (m *Module) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	// Uploaded files are other people's content on the server's origin:
	// never sniffed into something executable, never allowed to run
	// scripts or load anything, never told where the reader came from.
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hdr.Set("Referrer-Policy", "no-referrer")
	// Web clients (Converse, Movim) run on other origins.
	hdr.Set("Access-Control-Allow-Origin", "*")
	hdr.Set("Access-Control-Allow-Methods", allowedMethods)
	hdr.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
	hdr.Set("Access-Control-Max-Age", "86400")

	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	id, name, ok := splitPath(r.URL.Path)
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		if !ok {
			http.NotFound(w, r)
			return
		}
		m.serveFile(w, r, id, name)
	case http.MethodPut:
		if !ok {
			http.NotFound(w, r)
			return
		}
		m.put(w, r, id, name)
	default:
		hdr.Set("Allow", allowedMethods)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (m *Module) put(w http.ResponseWriter, r *http.Request, id, name string) {
	path := slotPath(id, name)
	g, err := m.verify(path, r.Header.Get("Authorization"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	now := m.opts.Now()
	if now.Unix() > g.Expires {
		http.Error(w, "the slot has expired; request a new one", http.StatusForbidden)
		return
	}
	if r.ContentLength < 0 {
		http.Error(w, "Content-Length is required", http.StatusLengthRequired)
		return
	}
	if r.ContentLength != g.Size {
		http.Error(w, fmt.Sprintf("Content-Length must be the slot's size, %d", g.Size), http.StatusBadRequest)
		return
	}
	ctype := "application/octet-stream"
	if got := r.Header.Get("Content-Type"); got != "" {
		var ok bool
		if ctype, ok = normalizeType(got); !ok {
			http.Error(w, "Content-Type is not a valid media type", http.StatusBadRequest)
			return
		}
	}
	if g.Type != "" && ctype != g.Type {
		http.Error(w, fmt.Sprintf("Content-Type must be the slot's, %s", g.Type), http.StatusBadRequest)
		return
	}
	if err := m.files.reserve(id, g.Owner, g.Size, now, m.quotas()); err != nil {
		var qe *quotaError
		switch {
		case errors.Is(err, errExists):
			http.Error(w, err.Error(), http.StatusConflict)
		case errors.As(err, &qe):
			http.Error(w, qe.text, http.StatusRequestEntityTooLarge)
		default:
			m.internalError(w, "reserving", err)
		}
		return
	}
	md := meta{Owner: g.Owner, Name: name, Size: g.Size, Type: ctype, Created: now}
	if err := m.files.write(id, md, r.Body); err != nil {
		m.files.release(id)
		if errors.Is(err, errShort) {
			http.Error(w, "the body did not have Content-Length bytes", http.StatusBadRequest)
			return
		}
		m.internalError(w, "storing", err)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (m *Module) internalError(w http.ResponseWriter, what string, err error) {
	m.host.Logger().Error("upload: "+what+" failed", "err", err)
	http.Error(w, "internal error", http.StatusInternalServerError)
}

func (m *Module) serveFile(w http.ResponseWriter, r *http.Request, id, name string) {
	md, ok := m.files.lookup(id)
	if !ok || md.Name != name {
		http.NotFound(w, r)
		return
	}
	f, err := os.Open(m.files.dataPath(id))
	if err != nil {
		// Expired between the lookup and here.
		http.NotFound(w, r)
		return
	}
	defer f.Close()
	ctype, inline := servingType(md.Type)
	disposition := "attachment"
	if inline {
		disposition = "inline"
	}
	hdr := w.Header()
	hdr.Set("Content-Type", ctype)
	if d := mime.FormatMediaType(disposition, map[string]string{"filename": name}); d != "" {
		disposition = d
	}
	hdr.Set("Content-Disposition", disposition)
	hdr.Set("Cache-Control", "private, max-age="+strconv.Itoa(int(m.cacheFor(md).Seconds())))
	// ServeContent answers ranges and conditional requests; the content
	// type set above keeps it from guessing one.
	http.ServeContent(w, r, "", md.Created, f)
}

// cacheFor is how long a client may cache a file: until it expires, and
// at most a day.
func (m *Module) cacheFor(md meta) time.Duration {
	if m.opts.Retention <= 0 {
		return day
	}
	left := md.Created.Add(m.opts.Retention).Sub(m.opts.Now())
	return max(0, min(left, day))
}
