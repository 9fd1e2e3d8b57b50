package upload

import (
	"errors"
	"fmt"
	"io"
	"math"
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
	// A refused PUT's body is not read, and must not be drained either:
	// over HTTP/1 the connection is closed after the answer, so a slow
	// body cannot hold it. (HTTP/2 resets just the stream.)
	refuse := func(text string, code int) {
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
		http.Error(w, text, code)
	}
	path := slotPath(id, name)
	g, err := m.verify(path, r.Header.Get("Authorization"))
	if err != nil {
		refuse(err.Error(), http.StatusForbidden)
		return
	}
	now := m.opts.Now()
	if now.Unix() > g.Expires {
		refuse("the slot has expired; request a new one", http.StatusForbidden)
		return
	}
	if r.ContentLength < 0 {
		refuse("Content-Length is required", http.StatusLengthRequired)
		return
	}
	if r.ContentLength != g.Size {
		refuse(fmt.Sprintf("Content-Length must be the slot's size, %d", g.Size), http.StatusBadRequest)
		return
	}
	ctype := "application/octet-stream"
	if got := r.Header.Get("Content-Type"); got != "" {
		var ok bool
		if ctype, ok = normalizeType(got); !ok {
			refuse("Content-Type is not a valid media type", http.StatusBadRequest)
			return
		}
	}
	if g.Type != "" && ctype != g.Type {
		refuse(fmt.Sprintf("Content-Type must be the slot's, %s", g.Type), http.StatusBadRequest)
		return
	}
	if err := m.files.reserve(id, g.Owner, g.Size, now, m.limits().quotas()); err != nil {
		var qe *quotaError
		switch {
		case errors.Is(err, errExists):
			refuse(err.Error(), http.StatusConflict)
		case errors.Is(err, errTooMany):
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(m.opts.RateWindow.Seconds()))))
			refuse(err.Error(), http.StatusTooManyRequests)
		case errors.As(err, &qe):
			refuse(qe.text, http.StatusRequestEntityTooLarge)
		default:
			m.internalError(w, "reserving", err)
		}
		return
	}
	md := meta{Owner: g.Owner, Name: name, Size: g.Size, Type: ctype, Created: now}
	body := newPaced(r.Body, http.NewResponseController(w), m.limits().MinRate, m.opts.RateWindow)
	if err := m.files.write(id, md, body); err != nil {
		m.files.release(id)
		switch {
		case body.tooSlow:
			refuse(fmt.Sprintf("the upload was too slow: at least %d bytes every %v are needed", body.need, m.opts.RateWindow), http.StatusRequestTimeout)
		case errors.Is(err, errShort):
			refuse("the body did not have Content-Length bytes", http.StatusBadRequest)
		default:
			m.internalError(w, "storing", err)
		}
		return
	}
	w.WriteHeader(http.StatusCreated)
}

// paced reads a request body that must keep moving: after a grace of
// one window, every window must bring rate*window bytes, or the read
// deadline passes and the body fails. A client trickling a byte now and
// then (slow loris) would otherwise hold a connection, a descriptor and
// a quota reservation for as long as it likes.
type paced struct {
	r      io.Reader
	rc     *http.ResponseController
	need   int64 // bytes each window must bring; 0 = no pacing
	window time.Duration

	deadline time.Time // the end of the current window
	got      int64     // bytes in the current window
	tooSlow  bool      // the deadline passed
}

func newPaced(r io.Reader, rc *http.ResponseController, rate int64, window time.Duration) *paced {
	p := &paced{r: r, rc: rc, need: int64(math.Ceil(float64(rate) * window.Seconds())), window: window}
	if p.need > 0 {
		p.setDeadline(time.Now().Add(2 * window)) // the grace and the first window
	}
	return p
}

func (p *paced) setDeadline(t time.Time) {
	p.deadline = t
	// Only http.ErrNotSupported can come back, from a server that cannot
	// time out reads; the upload then goes unpaced rather than failing.
	_ = p.rc.SetReadDeadline(t)
}

func (p *paced) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if p.need == 0 {
		return n, err
	}
	p.got += int64(n)
	now := time.Now()
	switch {
	case err != nil && err != io.EOF && !now.Before(p.deadline):
		p.tooSlow = true
	case err == io.EOF:
		// The body is complete: what the connection reads next (HTTP/1
		// keep-alive, the server's check for a vanished client) is no
		// longer the upload's business.
		p.setDeadline(time.Time{})
	case err == nil && p.got >= p.need:
		p.got = 0
		p.setDeadline(now.Add(p.window))
	}
	return n, err
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
	var content io.ReadSeeker = f
	if md.Key != nil {
		d, err := newDecrypter(f, md.Key, md.Size)
		if err != nil {
			m.internalError(w, "opening a file", err)
			return
		}
		content = io.NewSectionReader(d, 0, md.Size)
	}
	http.ServeContent(w, r, "", md.Created, content)
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
