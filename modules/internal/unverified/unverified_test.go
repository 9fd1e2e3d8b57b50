package unverified

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"parley/internal/jid"
	"parley/internal/seal"
	"parley/internal/vault"
)

// TestWithholdTellsUserKeyFromServerKey: a vault blob under another key
// is the user's loss to an admin password reset, which the admin's log
// must not blame on the server key; a record under another server key
// is; anything else failed its integrity check.
func TestWithholdTellsUserKeyFromServerKey(t *testing.T) {
	var logs bytes.Buffer
	r := New("archived messages", slog.New(slog.NewTextHandler(&logs, nil)))
	vaultBlob := []byte{0x20, 1, 2, 3} // vault's data format
	serverBlob := []byte{2, 1, 2, 3}   // internal/seal's format
	var tl Tally
	tl.Withhold("a", vaultBlob, fmt.Errorf("vault: %w", seal.ErrWrongKey))
	tl.Withhold("b", serverBlob, seal.ErrWrongKey)
	tl.Withhold("c", vaultBlob, seal.ErrTampered)
	if !vault.IsVault(vaultBlob) || vault.IsVault(serverBlob) {
		t.Fatal("the test's blobs are not of the formats they stand for")
	}
	if fmt.Sprint(tl.UserKey, tl.WrongKey, tl.Tampered) != "[a] [b] [c]" || tl.Withheld() != 3 {
		t.Fatalf("tally = %+v", tl)
	}

	owner := jid.MustParse("carol@example.org")
	r.Report(owner, nil, Tally{UserKey: []string{"a", "d"}})
	got := logs.String()
	if strings.Contains(got, "server key") || !strings.Contains(got, "admin reset its password") || !strings.Contains(got, "count=2") {
		t.Fatalf("the log of a reset's loss: %s", got)
	}
	logs.Reset()
	r.Report(owner, nil, Tally{UserKey: []string{"a"}})
	if logs.Len() != 0 {
		t.Fatalf("a record reported twice: %s", logs.String())
	}
	r.Report(owner, nil, Tally{WrongKey: []string{"b"}})
	if !strings.Contains(logs.String(), "the server key") {
		t.Fatalf("the log of a server key change: %s", logs.String())
	}
}
