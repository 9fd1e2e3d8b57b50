package integration

import (
	"crypto/tls"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches /metrics from the admin listener and parses it with
// Prometheus's own text parser.
func scrape(t *testing.T, s *server) map[string]*dto.MetricFamily {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + s.admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose labels
// include want; ok is false when there is none.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		for k, wv := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == wv {
					found = true
				}
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		case m.Untyped != nil:
			return m.GetUntyped().GetValue(), true
		}
	}
	return 0, false
}

// TestMetrics: /metrics on the admin listener counts two live sessions
// as 2, counts stanzas and failed logins, has the runtime and process
// metrics, never a JID or address in a label, and /healthz answers.
func TestMetrics(t *testing.T) {
	s := startServer(t, serverOpts{admin: true, https: true, extra: "[upload]\nhost = \"upload.localhost\"\n"})
	s.addUser("mia@localhost", "pw")
	s.addUser("noah@localhost", "pw")
	a := dialRaw(t, s.starttls)
	a.login("mia@localhost", "pw", "one")
	b := dialRaw(t, s.starttls)
	b.login("noah@localhost", "pw", "two")
	a.send("<message to='noah@localhost/two' type='chat' id='m1'><body>hi</body></message>")
	b.expect("</message>")
	bad := dialRaw(t, s.starttls)
	bad.startTLS(&tls.Config{InsecureSkipVerify: true})
	bad.send(header)
	bad.expect("</stream:features>")
	bad.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00mia\x00not her password")) + "</auth>")
	bad.expect("<not-authorized")

	fams := scrape(t, s)
	if v, ok := value(fams, "parley_c2s_sessions", map[string]string{"host": "localhost"}); !ok || v != 2 {
		t.Errorf("parley_c2s_sessions{host=localhost} = %v (present %v), want 2", v, ok)
	}
	if v, _ := value(fams, "parley_stanzas_total", map[string]string{"kind": "message", "direction": "in"}); v < 1 {
		t.Errorf("parley_stanzas_total{kind=message,direction=in} = %v", v)
	}
	if v, _ := value(fams, "parley_stanzas_total", map[string]string{"kind": "message", "direction": "out"}); v < 1 {
		t.Errorf("parley_stanzas_total{kind=message,direction=out} = %v", v)
	}
	if v, _ := value(fams, "parley_auth_failures_total", nil); v != 1 {
		t.Errorf("parley_auth_failures_total = %v, want 1", v)
	}
	for _, name := range []string{"parley_s2s_connections", "parley_offline_messages", "parley_archive_write_seconds",
		"parley_upload_bytes", "go_goroutines", "process_resident_memory_bytes"} {
		if fams[name] == nil {
			t.Errorf("%s missing", name)
		}
	}
	for name, f := range fams {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "@") || strings.Contains(l.GetValue(), "127.0.0.1") {
					t.Errorf("%s has the label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	b.send("</stream:stream>")
	b.expectClosed()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _ := value(scrape(t, s), "parley_c2s_sessions", map[string]string{"host": "localhost"})
		if v == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after one session ended parley_c2s_sessions = %v, want 1", v)
		}
		time.Sleep(100 * time.Millisecond)
	}

	resp, err := http.Get("http://" + s.admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %s %q", resp.Status, body)
	}
}
