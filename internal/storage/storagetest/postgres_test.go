package storagetest

import "testing"

func TestWithSearchPath(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://u@h:5432/db?sslmode=disable", "postgres://u@h:5432/db?search_path=s1&sslmode=disable"},
		{"postgresql://u@h/db", "postgresql://u@h/db?search_path=s1"},
		{"postgres://u@h/db?search_path=old", "postgres://u@h/db?search_path=s1"},
		{"host=h user=u dbname=db", "host=h user=u dbname=db search_path=s1"},
	}
	for _, tc := range tests {
		if got := withSearchPath(tc.dsn, "s1"); got != tc.want {
			t.Errorf("withSearchPath(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}
