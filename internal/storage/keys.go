package storage

import "context"

// UserKeys is an account's key material for sealing its data (package
// vault). None of it opens anything without the user's credentials: the
// data key is only stored wrapped under keys derived from the SCRAM
// ClientKey of each hash, and the mail-drop private key is sealed under
// the data key. The public key is in clear so the server can seal to the
// user while they are away.
type UserKeys struct {
	Public  []byte            // X25519 mail-drop public key
	Private []byte            // the matching private key, sealed under the data key
	Wraps   map[string][]byte // hash name ("SHA-1", ...) -> the data key, wrapped
}

// Keys is the repository of UserKeys; rows go with the account (ON DELETE
// CASCADE).
type Keys interface {
	Get(ctx context.Context, owner string) (UserKeys, error) // ErrNotFound when the account has none
	// Put replaces everything (a new data key); ErrNotFound when the
	// account does not exist.
	Put(ctx context.Context, owner string, k UserKeys) error
	// PutWrap adds or replaces the wrap for one hash of the keys the
	// account has; ErrNotFound when it has none.
	PutWrap(ctx context.Context, owner, hash string, wrapped []byte) error
}
