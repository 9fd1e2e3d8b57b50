// Package control is the local channel between the `parley` admin
// commands (notify, sessions, kick, announce) and a running server: a unix
// socket in the data directory, readable and writable by the server's
// owner only, so nothing of it is reachable from the network and the
// file permissions are the authentication.
//
// One connection carries one request and its response. Each is a JSON
// document preceded by its length as four big-endian bytes, so that a
// reader knows how much to expect and can refuse a frame that is too big
// before reading it.
package control

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// SocketName is the control socket's file name inside data_dir.
const SocketName = "control.sock"

// SocketPath is where the server for dataDir listens.
func SocketPath(dataDir string) string { return filepath.Join(dataDir, SocketName) }

// Request is one command for the server.
type Request struct {
	Cmd  string          `json:"cmd"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is the server's answer: OK with Data, or Error.
type Response struct {
	OK    bool            `json:"ok"`
	Error string          `json:"error,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// maxResponse bounds what a client reads back: answers are lists of
// sessions or short confirmations.
const maxResponse = 16 << 20

func writeFrame(w io.Writer, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(body)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err = w.Write(body)
	return err
}

// errTooBig is a frame longer than the reader accepts.
type errTooBig struct{ size, limit uint32 }

func (e errTooBig) Error() string {
	return fmt.Sprintf("control: a frame of %d bytes is over the limit of %d", e.size, e.limit)
}

func readFrame(r io.Reader, limit uint32, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > limit {
		return errTooBig{size, limit}
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(r, body); err != nil {
		return err
	}
	return json.Unmarshal(body, v)
}

// ErrNotRunning says that no server answers on the control socket.
var ErrNotRunning = errors.New("no parley server is running for this configuration")

// Call sends one command with args to the server listening at path and
// decodes its data into result (which may be nil). A refusal by the
// server comes back as an error holding its text.
func Call(ctx context.Context, path, cmd string, args, result any) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w (no control socket at %s): start it with `parley serve`", ErrNotRunning, path)
		}
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("control socket %s: permission denied: run this as the user the server runs as", path)
		}
		return fmt.Errorf("connecting to the server at %s: %w", path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	} else {
		conn.SetDeadline(time.Now().Add(time.Minute))
	}
	req := Request{Cmd: cmd}
	if args != nil {
		if req.Args, err = json.Marshal(args); err != nil {
			return fmt.Errorf("control: encoding %s: %w", cmd, err)
		}
	}
	// A request the server refuses early (over its size limit) is
	// answered and the socket closed while the rest is still being
	// written: the answer is read even when the write failed.
	werr := writeFrame(conn, req)
	var resp Response
	if err := readFrame(conn, maxResponse, &resp); err != nil {
		if werr != nil {
			return fmt.Errorf("sending %s to the server: %w", cmd, werr)
		}
		return fmt.Errorf("reading the server's answer to %s: %w", cmd, err)
	}
	if !resp.OK {
		return fmt.Errorf("the server refused %s: %s", cmd, resp.Error)
	}
	if result != nil && len(resp.Data) > 0 {
		if err := json.Unmarshal(resp.Data, result); err != nil {
			return fmt.Errorf("control: decoding the answer to %s: %w", cmd, err)
		}
	}
	return nil
}

// Commands and their arguments, shared by the server and cmd/parley.
const (
	CmdNotify = "notify" // NotifyArgs
	CmdStore  = "store"  // StoreArgs -> StoreResult
)

// NotifyArgs asks the server to send a message from its own JID.
type NotifyArgs struct {
	To      []string `json:"to"`
	Message string   `json:"message,omitempty"`
	Type    string   `json:"type,omitempty"` // chat, normal or headline
	// URLs are files stored with CmdStore, each sent as its own message
	// with XEP-0066 out-of-band data and the URL as body, the form
	// clients show inline.
	URLs []string `json:"urls,omitempty"`
}

// StoreArgs is a file to keep for download.
type StoreArgs struct {
	Name string `json:"name"`
	Type string `json:"type,omitempty"` // media type; "" = guessed
	Data []byte `json:"data"`
}

// StoreResult says where a stored file can be downloaded.
type StoreResult struct {
	URL string `json:"url"`
}

// FileStore keeps files for download; the file upload module is one.
// The server looks for it among its modules, so the core names no module.
type FileStore interface {
	// StoreFile keeps data under name for owner (a JID) and returns the
	// URL it can be fetched at.
	StoreFile(ctx context.Context, owner, name, contentType string, data []byte) (url string, err error)
	// MaxFileSize is the largest file StoreFile takes.
	MaxFileSize() int64
}

// The commands on sessions.
const (
	CmdSessions = "sessions" // SessionsArgs -> []SessionInfo
	CmdKick     = "kick"     // KickArgs -> CountResult
	CmdAnnounce = "announce" // AnnounceArgs -> CountResult
)

// SessionsArgs filters the sessions listed: JID "" lists all, a bare JID
// that account's, a full JID that one session.
type SessionsArgs struct {
	JID string `json:"jid,omitempty"`
}

// SessionInfo is one bound session.
type SessionInfo struct {
	JID       string `json:"jid"`
	Available bool   `json:"available"`
	// Detached: the connection broke and the session waits for the
	// client to resume it (XEP-0198); the device may be asleep.
	Detached bool `json:"detached,omitempty"`
}

// KickArgs ends the sessions of an account (bare JID) or one session
// (full JID).
type KickArgs struct {
	JID string `json:"jid"`
}

// AnnounceArgs sends Message from the host to every online session, or
// with All to every account (offline ones get it at their next login).
type AnnounceArgs struct {
	Message string `json:"message"`
	All     bool   `json:"all,omitempty"`
}

// CountResult says how many sessions or accounts a command reached.
type CountResult struct {
	Count int `json:"count"`
}

// CmdHTTPS asks where the HTTPS listener is bound -> HTTPSResult, for
// links to it when the config lets the kernel choose the port.
const CmdHTTPS = "https"

// HTTPSResult is the HTTPS listener's address; "" = none.
type HTTPSResult struct {
	Addr string `json:"addr"`
}

// The commands on accounts whose keys the running server may hold
// (issue 16): while a server runs, `parley user passwd`, `del` and
// `disable` go through it, so that it rewraps the key it holds instead of
// the account getting a new one, and forgets a key that no longer
// matches the account.
const (
	CmdPasswd      = "passwd"       // PasswdArgs -> PasswdResult
	CmdDeleteUser  = "delete-user"  // AccountArgs -> CountResult
	CmdDisableUser = "disable-user" // AccountArgs -> CountResult
)

// PasswdArgs sets the password of an account. The password travels only
// over the owner-only socket, and the server never logs it.
type PasswdArgs struct {
	JID      string `json:"jid"`
	Password string `json:"password"`
}

// PasswdResult says whether the data sealed for the account was lost:
// the server did not hold its key (the user was not logged in), so the
// account got a new one.
type PasswdResult struct {
	SealedLost bool `json:"sealed_lost"`
}

// AccountArgs names one account (bare JID).
type AccountArgs struct {
	JID string `json:"jid"`
}
