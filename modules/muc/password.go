package muc

import (
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// Room passwords are kept only as salted PBKDF2-SHA256 hashes: a copy of
// the database (even with the server key) gives a dictionary attack, not
// the password. The cost is modest because every join under the room's
// lock pays it; a room password guards a conversation the joiners see
// anyway, not an account.
const (
	passwordIter    = 10000
	passwordHashAlg = "pbkdf2-sha256"
)

// hashPassword returns the stored form of a room password:
// "pbkdf2-sha256$iterations$salt$hash", salt and hash in base64.
func hashPassword(pw string) string {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	return encodePassword(passwordIter, salt, derive(pw, salt, passwordIter))
}

func derive(pw string, salt []byte, iter int) []byte {
	k, err := pbkdf2.Key(sha256.New, pw, salt, iter, 32)
	if err != nil {
		panic(fmt.Sprintf("muc: pbkdf2: %v", err)) // only for lengths and counts it cannot take
	}
	return k
}

func encodePassword(iter int, salt, hash []byte) string {
	b64 := base64.RawStdEncoding.EncodeToString
	return passwordHashAlg + "$" + strconv.Itoa(iter) + "$" + b64(salt) + "$" + b64(hash)
}

// passwordMatches checks pw against a stored hash; a hash it cannot
// parse matches nothing.
func passwordMatches(stored, pw string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 4 || parts[0] != passwordHashAlg {
		return false
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > 10_000_000 {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[2])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[3])
	if err1 != nil || err2 != nil || len(want) != 32 {
		return false
	}
	return subtle.ConstantTimeCompare(derive(pw, salt, iter), want) == 1
}

// protected reports whether joining the room needs a password.
func (c *config) protected() bool { return c.PasswordHash != "" }

// upgrade replaces a clear password stored by an earlier version with
// its hash; the next save stores only the hash.
func (c *config) upgrade() {
	if c.Password != "" {
		c.PasswordHash = hashPassword(c.Password)
		c.Password = ""
	}
}
