package metrics

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHealth(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{{nil, http.StatusOK}, {errors.New("database is gone"), http.StatusServiceUnavailable}} {
		rec := httptest.NewRecorder()
		Health(func(context.Context) error { return tc.err }).ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
		if rec.Code != tc.code {
			t.Errorf("ping error %v: status %d, want %d", tc.err, rec.Code, tc.code)
		}
		if strings.Contains(rec.Body.String(), "gone") {
			t.Errorf("the storage error is shown: %q", rec.Body.String())
		}
	}
}

func TestCounting(t *testing.T) {
	var none *Metrics
	none.Stanza("message", In) // a nil Metrics counts nothing and does not fail
	none.AuthFailure()

	m := New()
	m.Stanza("message", In)
	m.Stanza("message", In)
	m.Stanza("presence", Out)
	m.Stanza("stream:features", Out) // not a stanza: not counted
	m.AuthFailure()
	m.GaugeByLabel("parley_test_gauge", "a test", "host", func() map[string]int { return map[string]int{"a.example": 3} })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	for _, want := range []string{
		`parley_stanzas_total{direction="in",kind="message"} 2`,
		`parley_stanzas_total{direction="out",kind="presence"} 1`,
		`parley_stanzas_total{direction="out",kind="iq"} 0`,
		`parley_auth_failures_total 1`,
		`parley_test_gauge{host="a.example"} 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %q", want)
		}
	}
}

func BenchmarkStanza(b *testing.B) {
	m := New()
	for b.Loop() {
		m.Stanza("message", In)
	}
}
