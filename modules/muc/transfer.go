package muc

import (
	"encoding/json"
	"fmt"
)

// CheckConfig says whether b is a room configuration the module can
// load, for `parley import` of rooms.
func CheckConfig(b []byte) error {
	var c config
	if err := json.Unmarshal(b, &c); err != nil {
		return fmt.Errorf("muc: not a room configuration: %w", err)
	}
	if !c.Persistent {
		return fmt.Errorf("muc: only persistent rooms are imported")
	}
	return nil
}

// UpgradeConfig returns a stored room configuration with a clear
// password (earlier versions, imported files) replaced by its hash;
// other configurations come back unchanged.
func UpgradeConfig(b []byte) ([]byte, error) {
	var c config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("muc: not a room configuration: %w", err)
	}
	if c.Password == "" {
		return b, nil
	}
	c.upgrade()
	return json.Marshal(c)
}
