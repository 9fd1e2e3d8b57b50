package bench

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatusRSS(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr string
	}{
		{"typical", "Name:\tparley\nVmPeak:\t  99999 kB\nVmRSS:\t   12345 kB\nRssAnon:\t 1 kB\n", 12345, ""},
		{"last line without newline", "Name:\tx\nVmRSS:\t7 kB", 7, ""},
		{"missing", "Name:\tkthreadd\nState:\tS\n", 0, "no VmRSS"},
		{"bad unit", "VmRSS:\t7 MB\n", 0, "malformed"},
		{"bad number", "VmRSS:\tx kB\n", 0, "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusRSS([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("= %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestParseStatCPU(t *testing.T) {
	// Fields 14 and 15 are utime and stime.
	rest := " S 1 2 3 4 5 6 7 8 9 10 250 37 0 0 20 0 12 0 100 200 300"
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"plain", "4242 (parley)" + rest, 287, false},
		{"spaces and parens in the name", "4242 (a) b (c))" + rest, 287, false},
		{"no name", "4242 parley S 1", 0, true},
		{"truncated", "4242 (x) S 1 2 3", 0, true},
		{"bad utime", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 x 37", 0, true},
	}
	for _, tt := range tests {
		got, err := parseStatCPU([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: = %d, %v; want %d, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestReadProcSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc here")
	}
	// Burn a little CPU so the reading cannot be all zero by accident.
	deadline := time.Now().Add(50 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	s, err := ReadProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSSKiB <= 0 || s.CPU <= 0 {
		t.Errorf("own process: %+v, want positive RSS and CPU", s)
	}
	if _, err := ReadProc(1 << 30); err == nil {
		t.Error("a process that cannot exist was read")
	}
}
