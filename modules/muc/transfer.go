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
