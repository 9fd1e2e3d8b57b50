package invites

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"
)

// AdminsFile, in data_dir, lists the accounts that admin invites
// (`parley invite create --admin`) made admins; the server adds them to
// the config's admins.
const AdminsFile = "admins.json"

// Admin is an account made admin by an invite.
type Admin struct {
	JID    string    `json:"jid"`
	Invite string    `json:"invite"` // the invite's id
	Added  time.Time `json:"added"`
}

// ErrNotAdmin: RemoveAdmin found no such admin.
var ErrNotAdmin = errors.New("not an admin made by an invite")

// AddAdmin records bare as an admin made by the invite with id.
func (s *Store) AddAdmin(bare, inviteID string, now time.Time) error {
	err := updateJSON(s.admins.path, func(list []Admin) ([]Admin, bool, error) {
		if slices.ContainsFunc(list, func(a Admin) bool { return a.JID == bare }) {
			return list, false, nil
		}
		return append(list, Admin{JID: bare, Invite: inviteID, Added: now.UTC()}), true, nil
	})
	s.admins.forget()
	return err
}

// RemoveAdmin takes bare off the invite-made admins.
func (s *Store) RemoveAdmin(bare string) error {
	err := updateJSON(s.admins.path, func(list []Admin) ([]Admin, bool, error) {
		n := len(list)
		list = slices.DeleteFunc(list, func(a Admin) bool { return a.JID == bare })
		if len(list) == n {
			return nil, false, ErrNotAdmin
		}
		return list, true, nil
	})
	s.admins.forget()
	return err
}

// Admins lists the admins invites made, oldest first. It reads without
// the lock (the file is replaced whole) and creates nothing, so that
// parley check can call it before the data directory exists.
func (s *Store) Admins() ([]Admin, error) {
	b, err := os.ReadFile(s.admins.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("invites: %w", err)
	}
	var out []Admin
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("invites: %s is damaged: %w", s.admins.path, err)
	}
	return out, nil
}

// AdminJIDs is Admins' JIDs for the running server, which asks at every
// admin check: kept in memory and reread when the file changed (the CLI
// removed one), looked at no more than once per adminRecheck.
func (s *Store) AdminJIDs() []string { return s.admins.get(s) }

const adminRecheck = 2 * time.Second

type adminCache struct {
	path string

	mu      sync.Mutex
	checked time.Time // when the file was last looked at; zero = never
	stamp   time.Time // its modification time then
	size    int64
	jids    []string
}

func (c *adminCache) forget() {
	c.mu.Lock()
	c.checked = time.Time{}
	c.mu.Unlock()
}

func (c *adminCache) get(s *Store) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if !c.checked.IsZero() && now.Sub(c.checked) < adminRecheck {
		return c.jids
	}
	c.checked = now
	fi, err := os.Stat(c.path)
	if err != nil {
		c.jids, c.stamp, c.size = nil, time.Time{}, 0
		return nil
	}
	if fi.ModTime().Equal(c.stamp) && fi.Size() == c.size && c.jids != nil {
		return c.jids
	}
	list, err := s.Admins()
	if err != nil {
		return c.jids // a damaged file keeps those known; the CLI reports it
	}
	jids := make([]string, 0, len(list))
	for _, a := range list {
		jids = append(jids, a.JID)
	}
	c.jids, c.stamp, c.size = jids, fi.ModTime(), fi.Size()
	return jids
}
