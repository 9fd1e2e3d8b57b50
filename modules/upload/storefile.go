package upload

import (
	"bytes"
	"context"
	"fmt"
	"mime"
	"path/filepath"
)

// MaxFileSize is the largest file the service takes.
func (m *Module) MaxFileSize() int64 { return m.limits().MaxFileSize }

// StoreFile keeps a file the server itself sends (`parley notify
// --attach`) and returns its download URL. It counts toward the total
// quota like any upload, but not toward a per-user one: the owner is the
// server's own JID, not a user.
func (m *Module) StoreFile(_ context.Context, owner, name, contentType string, data []byte) (string, error) {
	size := int64(len(data))
	lim := m.limits()
	if size > lim.MaxFileSize {
		return "", fmt.Errorf("upload: %s is %d bytes, over the maximum of %d (upload.max_file_size)", name, size, lim.MaxFileSize)
	}
	name = sanitizeFilename(name)
	if contentType == "" {
		contentType = mime.TypeByExtension(filepath.Ext(name))
	}
	ctype := "application/octet-stream"
	if contentType != "" {
		var ok bool
		if ctype, ok = normalizeType(contentType); !ok {
			return "", fmt.Errorf("upload: %q is not a valid media type", contentType)
		}
	}
	base, err := m.baseURL()
	if err != nil {
		return "", err
	}
	id, err := newID()
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	now := m.opts.Now()
	q := lim.quotas()
	q.perUserPerDay, q.concurrent = 0, 0
	if err := m.files.reserve(id, owner, size, now, q); err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	md := meta{Owner: owner, Name: name, Size: size, Type: ctype, Created: now}
	if err := m.files.write(id, md, bytes.NewReader(data)); err != nil {
		m.files.release(id)
		return "", fmt.Errorf("upload: storing %s: %w", name, err)
	}
	return base + escapePath(slotPath(id, name)), nil
}
