package upload

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"testing"
)

func encrypt(t *testing.T, content, key []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	n, err := encryptTo(&out, bytes.NewReader(content), key, int64(len(content)))
	if err != nil || n != int64(len(content)) {
		t.Fatalf("encrypt %d bytes: %d, %v", len(content), n, err)
	}
	if int64(out.Len()) != encryptedSize(int64(len(content))) {
		t.Fatalf("%d bytes encrypt to %d, encryptedSize says %d", len(content), out.Len(), encryptedSize(int64(len(content))))
	}
	return out.Bytes()
}

// TestFileCryptRoundTrip: every size around the chunk boundaries comes
// back whole, and any range of it comes back as that range.
func TestFileCryptRoundTrip(t *testing.T) {
	key := newFileKey()
	for _, size := range []int{0, 1, chunkSize - 1, chunkSize, chunkSize + 1, 3*chunkSize + 5} {
		content := make([]byte, size)
		rand.Read(content)
		enc := encrypt(t, content, key)
		if size > 16 && bytes.Contains(enc, content[:16]) {
			t.Fatalf("size %d: the content is on disk in clear", size)
		}
		d, err := newDecrypter(bytes.NewReader(enc), key, int64(size))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(io.NewSectionReader(d, 0, int64(size)))
		if err != nil || !bytes.Equal(got, content) {
			t.Fatalf("size %d: read back %d bytes, %v", size, len(got), err)
		}
		for _, r := range [][2]int{{0, 1}, {size / 2, size/2 + 1}, {chunkSize - 3, chunkSize + 3}, {size - 1, size}, {1, 2*chunkSize + 1}} {
			from, to := r[0], min(r[1], size)
			if from < 0 || from >= to {
				continue
			}
			part := make([]byte, to-from)
			if _, err := io.ReadFull(io.NewSectionReader(d, int64(from), int64(to-from)), part); err != nil || !bytes.Equal(part, content[from:to]) {
				t.Errorf("size %d, range %d-%d: %v", size, from, to, err)
			}
		}
	}
}

// TestFileCryptTampered: a changed byte, a cut-off end, swapped chunks
// or another key fail instead of serving something else.
func TestFileCryptTampered(t *testing.T) {
	key := newFileKey()
	content := make([]byte, 2*chunkSize+100)
	rand.Read(content)
	enc := encrypt(t, content, key)
	size := int64(len(content))
	read := func(enc, key []byte, size int64) error {
		d, err := newDecrypter(bytes.NewReader(enc), key, size)
		if err != nil {
			return err
		}
		_, err = io.ReadAll(io.NewSectionReader(d, 0, size))
		return err
	}
	flipped := bytes.Clone(enc)
	flipped[chunkSize+tagSize+7] ^= 1
	swapped := bytes.Clone(enc)
	copy(swapped, enc[chunkSize+tagSize:2*(chunkSize+tagSize)])
	copy(swapped[chunkSize+tagSize:], enc[:chunkSize+tagSize])
	// Cut to two whole chunks, and told the file has two chunks' worth:
	// the second chunk was not sealed as the last.
	cut := enc[:2*(chunkSize+tagSize)]
	for name, err := range map[string]error{
		"flipped byte":   read(flipped, key, size),
		"swapped chunks": read(swapped, key, size),
		"cut off":        read(cut, key, 2*chunkSize),
		"another key":    read(enc, newFileKey(), size),
	} {
		if !errors.Is(err, errChunk) {
			t.Errorf("%s: %v, want errChunk", name, err)
		}
	}
}

// TestFileCryptShortBody: a body that ends early reports how much came.
func TestFileCryptShortBody(t *testing.T) {
	var out bytes.Buffer
	n, err := encryptTo(&out, bytes.NewReader(make([]byte, chunkSize+10)), newFileKey(), chunkSize+20)
	if err != nil || n != chunkSize+10 {
		t.Fatalf("short body: %d, %v", n, err)
	}
}
