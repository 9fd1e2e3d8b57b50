package xmpptime

import (
	"testing"
	"time"
)

func TestFormatParse(t *testing.T) {
	at := time.Date(2025, 6, 1, 10, 0, 1, 123456789, time.FixedZone("", 2*3600))
	s := Format(at)
	if s != "2025-06-01T08:00:01.123456Z" {
		t.Fatalf("Format = %s", s)
	}
	back, err := Parse(s)
	if err != nil || !back.Equal(at.Truncate(time.Microsecond)) || back.Location() != time.UTC {
		t.Fatalf("Parse(%s) = %v, %v", s, back, err)
	}
	for _, in := range []string{"2025-06-01T10:00:01Z", "2025-06-01T12:00:01+02:00", "2025-06-01T10:00:01.5Z"} {
		if _, err := Parse(in); err != nil {
			t.Errorf("Parse(%s): %v", in, err)
		}
	}
	for _, in := range []string{"", "2025-06-01", "2025-06-01T10:00:01", "yesterday", "2025-13-01T10:00:01Z"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) accepted", in)
		}
	}
}
