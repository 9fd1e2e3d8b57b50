package upload

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Stored files are encrypted with a random key of their own, kept only in
// their sealed record, in chunks that each carry their own tag: a range
// request decrypts just the chunks it touches, and a chunk changed,
// swapped or cut off on disk fails instead of being served.
//
// Chunk i (from 0) is chunkSize bytes of content (the last one fewer, an
// empty file one empty chunk) sealed with AES-256-GCM under the file key,
// the nonce being i, the additional data i and whether it is the last.
const (
	chunkSize = 64 << 10
	tagSize   = 16
)

var errChunk = errors.New("an encrypted chunk of the file fails its check")

func newFileKey() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand panics instead)
	return k
}

func fileAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("file key: %w", err)
	}
	return cipher.NewGCM(block)
}

// chunks is how many chunks a file of size bytes has.
func chunks(size int64) int64 { return max(1, (size+chunkSize-1)/chunkSize) }

// encryptedSize is the size on disk of a file of size bytes.
func encryptedSize(size int64) int64 { return size + chunks(size)*tagSize }

func chunkNonce(i int64) []byte {
	n := make([]byte, 12)
	binary.BigEndian.PutUint64(n[4:], uint64(i))
	return n
}

func chunkAD(i int64, last bool) []byte {
	ad := binary.BigEndian.AppendUint64(nil, uint64(i))
	if last {
		return append(ad, 1)
	}
	return append(ad, 0)
}

// encryptTo copies exactly size bytes of content from r to w encrypted;
// it returns how many content bytes it read, which is less than size
// when r ended early (then the output is incomplete), and the read error
// if any. Reading one byte more than size tells an overlong body.
func encryptTo(w io.Writer, r io.Reader, key []byte, size int64) (int64, error) {
	aead, err := fileAEAD(key)
	if err != nil {
		return 0, err
	}
	buf := make([]byte, chunkSize, chunkSize+tagSize)
	var n int64
	for i := int64(0); i < chunks(size); i++ {
		want := min(chunkSize, size-n)
		got, err := io.ReadFull(r, buf[:want])
		n += int64(got)
		if err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				err = nil
			}
			return n, err
		}
		out := aead.Seal(buf[:0], chunkNonce(i), buf[:want], chunkAD(i, i == chunks(size)-1))
		if _, err := w.Write(out); err != nil {
			return n, &writeError{err}
		}
		buf = buf[:chunkSize]
	}
	return n, nil
}

// writeError is a failure to write the encrypted file (the server's
// trouble, not the client's).
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// decrypter reads the content of an encrypted file at any offset, for
// io.NewSectionReader and so http.ServeContent's ranges.
type decrypter struct {
	f    io.ReaderAt
	aead cipher.AEAD
	size int64 // content bytes

	cached int64 // index of the chunk in plain, -1 when none
	plain  []byte
	ct     []byte
}

func newDecrypter(f io.ReaderAt, key []byte, size int64) (*decrypter, error) {
	aead, err := fileAEAD(key)
	if err != nil {
		return nil, err
	}
	return &decrypter{f: f, aead: aead, size: size, cached: -1, ct: make([]byte, chunkSize+tagSize)}, nil
}

func (d *decrypter) chunk(i int64) ([]byte, error) {
	if i == d.cached {
		return d.plain, nil
	}
	n := min(chunkSize, d.size-i*chunkSize)
	ct := d.ct[:n+tagSize]
	if _, err := d.f.ReadAt(ct, i*(chunkSize+tagSize)); err != nil {
		return nil, fmt.Errorf("reading chunk %d: %w", i, err)
	}
	plain, err := d.aead.Open(d.plain[:0], chunkNonce(i), ct, chunkAD(i, i == chunks(d.size)-1))
	if err != nil {
		d.cached = -1
		return nil, errChunk
	}
	d.plain, d.cached = plain, i
	return plain, nil
}

func (d *decrypter) ReadAt(p []byte, off int64) (int, error) {
	if off >= d.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && off < d.size {
		plain, err := d.chunk(off / chunkSize)
		if err != nil {
			return n, err
		}
		c := copy(p[n:], plain[off%chunkSize:])
		n += c
		off += int64(c)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
