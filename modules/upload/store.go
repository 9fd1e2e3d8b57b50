package upload

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"parley/internal/seal"
	"parley/internal/stanza"
	"parley/internal/xmlstream"
	"parley/internal/xmpptime"
)

// The disk layout, all in one directory: <id> is a file's content and
// <id>.json its sidecar (meta). The sidecar is written last, so its
// presence is what makes an upload exist; <id>.part and <id>.json.part are
// uploads in progress. Keeping metadata beside the files rather than in
// the database means the quota counts exactly what is on disk, and an
// admin who deletes a file by hand deletes its record with it.

// meta is a stored file's sidecar. It is sealed under the server key
// (storage.key_file), bound to the file's id, so the disk shows neither
// who uploaded a file nor its name nor the key of its content (see
// filecrypt.go). Sidecars of earlier versions are plain JSON without a
// key, beside content in clear; they are served as they are until
// retention removes them.
type meta struct {
	Owner   string    `json:"owner"`
	Name    string    `json:"name"`
	Size    int64     `json:"size"` // of the content, not of the encrypted file
	Type    string    `json:"type"`
	Created time.Time `json:"created"`
	Key     []byte    `json:"key,omitempty"` // nil: content in clear (earlier versions)
}

// metaAD binds a sealed sidecar to its file's id.
func metaAD(id string) []byte { return seal.AD("upload record", id) }

type reservation struct {
	owner string
	size  int64
	at    time.Time
}

// store is the upload directory and an in-memory index of it, loaded at
// start. The index answers quota questions without reading the disk.
type store struct {
	dir    string
	log    *slog.Logger
	sealer *seal.Sealer

	mu    sync.Mutex
	files map[string]meta        // id → committed file
	busy  map[string]reservation // id → PUT in progress
	total int64                  // bytes of committed files
}

const (
	// day is the window of the per-user quota.
	day = 24 * time.Hour
	// staleAfter is when leftovers of an interrupted upload (a part
	// file, or content whose sidecar was never written) are removed.
	staleAfter = 24 * time.Hour
)

func openStore(dir string, log *slog.Logger, sealer *seal.Sealer) (*store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	// The files are users' private shares; an existing directory gets the
	// same protection as a new one.
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("protecting %s: %w", dir, err)
	}
	s := &store{dir: dir, log: log, sealer: sealer, files: map[string]meta{}, busy: map[string]reservation{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range entries {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !validID(id) {
			continue
		}
		md, err := s.readMeta(id)
		if err != nil {
			// Left for the clean-up; one damaged sidecar must not stop
			// the server.
			log.Warn("upload: unreadable file record skipped", "id", id, "err", err)
			continue
		}
		s.files[id] = md
		s.total += md.Size
	}
	return s, nil
}

func (s *store) dataPath(id string) string { return filepath.Join(s.dir, id) }
func (s *store) metaPath(id string) string { return filepath.Join(s.dir, id+".json") }

func (s *store) readMeta(id string) (meta, error) {
	b, err := os.ReadFile(s.metaPath(id))
	if err != nil {
		return meta{}, err
	}
	if len(b) > 0 && b[0] != '{' {
		if b, err = s.sealer.Open(b, metaAD(id)); err != nil {
			return meta{}, fmt.Errorf("the sealed record does not open: %w", err)
		}
	}
	var md meta
	if err := json.Unmarshal(b, &md); err != nil {
		return meta{}, err
	}
	fi, err := os.Stat(s.dataPath(id))
	if err != nil {
		return meta{}, err
	}
	onDisk := md.Size
	if md.Key != nil {
		onDisk = encryptedSize(md.Size)
	}
	if fi.Size() != onDisk || md.Owner == "" || md.Name == "" {
		return meta{}, fmt.Errorf("record says %d bytes on disk, the file has %d", onDisk, fi.Size())
	}
	return md, nil
}

// lookup returns a committed file's record.
func (s *store) lookup(id string) (meta, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	md, ok := s.files[id]
	return md, ok
}

type quotas struct {
	perUserPerDay, total int64
	concurrent           int // PUTs in progress per user; 0 = no limit
}

// quotaError says which quota a new upload would exceed.
type quotaError struct {
	text  string
	retry time.Time // when the user may try again; zero when unknown
}

func (q *quotaError) Error() string { return q.text }

func (q *quotaError) stanzaError() *stanza.Error {
	se := stanza.ResourceConstraint(q.text)
	if !q.retry.IsZero() {
		se.Extra = xmlstream.New(NS, "retry", "stamp", xmpptime.Format(q.retry))
	}
	return se
}

// checkQuota reports whether owner may add size bytes now.
func (s *store) checkQuota(owner string, size int64, now time.Time, q quotas) *quotaError {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkQuotaLocked(owner, size, now, q)
}

func (s *store) checkQuotaLocked(owner string, size int64, now time.Time, q quotas) *quotaError {
	if q.total > 0 {
		used := s.total
		for _, r := range s.busy {
			used += r.size
		}
		if used+size > q.total {
			return &quotaError{text: "the server's upload storage is full; try again when older files have expired"}
		}
	}
	if q.perUserPerDay > 0 {
		// Uploads in the last 24 hours, oldest first, so that the retry
		// time is when enough of them have left the window.
		var recent []reservation
		var used int64
		since := now.Add(-day)
		for _, md := range s.files {
			if md.Owner == owner && md.Created.After(since) {
				recent = append(recent, reservation{size: md.Size, at: md.Created})
				used += md.Size
			}
		}
		for _, r := range s.busy {
			if r.owner == owner {
				recent = append(recent, r)
				used += r.size
			}
		}
		if used+size > q.perUserPerDay {
			qe := &quotaError{text: fmt.Sprintf("daily upload quota reached: %d of %d bytes used in the last 24 hours", used, q.perUserPerDay)}
			sortByTime(recent)
			for _, r := range recent {
				used -= r.size
				if used+size <= q.perUserPerDay {
					qe.retry = r.at.Add(day).Truncate(time.Second).Add(time.Second)
					break
				}
			}
			return qe
		}
	}
	return nil
}

func sortByTime(rs []reservation) {
	// Insertion sort: the slices are one user's uploads of one day.
	for i := 1; i < len(rs); i++ {
		for j := i; j > 0 && rs[j].at.Before(rs[j-1].at); j-- {
			rs[j], rs[j-1] = rs[j-1], rs[j]
		}
	}
}

var errExists = errors.New("the slot has been used already")

// errTooMany is a PUT beyond the user's concurrent uploads.
var errTooMany = errors.New("too many uploads in progress at once; try again when one has finished")

// inProgress is how many PUTs of owner are running.
func (s *store) inProgress(owner string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inProgressLocked(owner)
}

func (s *store) inProgressLocked(owner string) int {
	n := 0
	for _, r := range s.busy {
		if r.owner == owner {
			n++
		}
	}
	return n
}

// reserve claims id for a PUT of size bytes by owner; the reservation
// counts toward the quotas until commit or release.
func (s *store) reserve(id, owner string, size int64, now time.Time, q quotas) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.files[id]; ok {
		return errExists
	}
	if _, ok := s.busy[id]; ok {
		return errExists
	}
	if q.concurrent > 0 && s.inProgressLocked(owner) >= q.concurrent {
		return errTooMany
	}
	if qe := s.checkQuotaLocked(owner, size, now, q); qe != nil {
		return qe
	}
	s.busy[id] = reservation{owner: owner, size: size, at: now}
	return nil
}

func (s *store) release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, id)
}

// errShort is a body that ended before the announced size.
var errShort = errors.New("the body is shorter than its Content-Length")

// readErrReader remembers read errors, to tell a client's broken body
// from the server's own disk trouble.
type readErrReader struct {
	r   io.Reader
	err error
}

func (r *readErrReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// write stores a reserved upload: the body goes to a part file, and only
// a body of exactly md.Size bytes is renamed into place and recorded.
// A client error (short body) is errShort; anything else is the server's.
func (s *store) write(id string, md meta, body io.Reader) (err error) {
	part := s.dataPath(id) + ".part"
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating %s: %w", part, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(part)
			os.Remove(s.dataPath(id))
			os.Remove(s.metaPath(id) + ".part")
		}
	}()
	rr := &readErrReader{r: body}
	md.Key = newFileKey()
	n, err := encryptTo(f, rr, md.Key, md.Size)
	switch {
	case rr.err != nil:
		return fmt.Errorf("%w: %w", errShort, rr.err)
	case err != nil:
		return fmt.Errorf("writing %s: %w", part, err)
	case n != md.Size:
		// The HTTP server stops the body at Content-Length, so more
		// cannot come; fewer means the client gave up.
		return errShort
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing %s: %w", part, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", part, err)
	}
	if err := os.Rename(part, s.dataPath(id)); err != nil {
		return fmt.Errorf("storing %s: %w", id, err)
	}
	rec, _ := json.Marshal(md) // strings, numbers and a time always encode
	if err := writeFileSync(s.metaPath(id)+".part", s.sealer.Seal(rec, metaAD(id))); err != nil {
		return err
	}
	if err := os.Rename(s.metaPath(id)+".part", s.metaPath(id)); err != nil {
		return fmt.Errorf("storing %s: %w", id, err)
	}
	s.mu.Lock()
	delete(s.busy, id)
	s.files[id] = md
	s.total += md.Size
	s.mu.Unlock()
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// expire deletes files older than retention (none when it is 0) and
// leftovers of interrupted uploads; it returns how many files went.
func (s *store) expire(now time.Time, retention time.Duration) (int, error) {
	var old []string
	s.mu.Lock()
	if retention > 0 {
		cutoff := now.Add(-retention)
		for id, md := range s.files {
			if !md.Created.After(cutoff) {
				old = append(old, id)
				delete(s.files, id)
				s.total -= md.Size
			}
		}
	}
	s.mu.Unlock()
	var errs []error
	for _, id := range old {
		// The sidecar first: without it the file is gone for GET at once.
		if err := os.Remove(s.metaPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		if err := os.Remove(s.dataPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	errs = append(errs, s.sweep(now))
	return len(old), errors.Join(errs...)
}

// sweep removes what no record points to and no upload is writing, once
// it is old enough that no upload can still be finishing it.
func (s *store) sweep(now time.Time) error {
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.dir, err)
	}
	var errs []error
	for _, e := range entries {
		id, _, _ := strings.Cut(e.Name(), ".")
		if !validID(id) {
			continue // not ours; leave it alone
		}
		s.mu.Lock()
		_, committed := s.files[id]
		_, busy := s.busy[id]
		s.mu.Unlock()
		if committed || busy {
			continue
		}
		fi, err := e.Info()
		if err != nil || now.Sub(fi.ModTime()) < staleAfter {
			continue
		}
		if err := os.Remove(filepath.Join(s.dir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
