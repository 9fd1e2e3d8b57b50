// Package metrics counts what the server does for Prometheus: a registry
// owned by one server (never the global default), the Go runtime and
// process collectors, and parley's own metrics. Labels never carry a JID
// or an address. Counting on the message path is one atomic add on a
// counter resolved in advance; anything that can be read from state
// (sessions, streams, stored messages) is read when scraped instead.
package metrics

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Direction is which way a stanza went through the server.
type Direction int

const (
	In  Direction = iota // received from a client or another server
	Out                  // sent to a client or another server
)

var kinds = [...]string{"message", "presence", "iq"}

// Metrics is one server's metrics. A nil *Metrics counts nothing, so
// packages tested without a server need no setup.
type Metrics struct {
	reg          *prometheus.Registry
	stanzas      [len(kinds)][2]prometheus.Counter
	authFailures prometheus.Counter
}

// New makes the registry with the runtime and process collectors and
// parley's counters.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	stanzas := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "parley_stanzas_total",
		Help: "Stanzas received (direction=in) and sent (direction=out) on client and server streams, by kind.",
	}, []string{"kind", "direction"})
	for k, kind := range kinds {
		m.stanzas[k][In] = stanzas.WithLabelValues(kind, "in")
		m.stanzas[k][Out] = stanzas.WithLabelValues(kind, "out")
	}
	m.authFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "parley_auth_failures_total",
		Help: "Client logins refused for a wrong password.",
	})
	m.reg.MustRegister(stanzas, m.authFailures)
	return m
}

// Stanza counts one stanza named local ("message", "presence" or "iq").
func (m *Metrics) Stanza(local string, d Direction) {
	if m == nil {
		return
	}
	switch local {
	case "message":
		m.stanzas[0][d].Inc()
	case "presence":
		m.stanzas[1][d].Inc()
	case "iq":
		m.stanzas[2][d].Inc()
	}
}

// AuthFailure counts a wrong password.
func (m *Metrics) AuthFailure() {
	if m != nil {
		m.authFailures.Inc()
	}
}

// GaugeByLabel adds a gauge whose values, one per value of label, are
// read from f when scraped.
func (m *Metrics) GaugeByLabel(name, help, label string, f func() map[string]int) {
	m.reg.MustRegister(&labelledGauge{desc: prometheus.NewDesc(name, help, []string{label}, nil), f: f})
}

// GaugeFunc adds a gauge read from f when scraped.
func (m *Metrics) GaugeFunc(name, help string, f func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, f))
}

// Histogram adds a histogram of durations in seconds and returns what
// records one.
func (m *Metrics) Histogram(name, help string) func(time.Duration) {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: prometheus.DefBuckets})
	m.reg.MustRegister(h)
	return func(d time.Duration) { h.Observe(d.Seconds()) }
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, Timeout: 10 * time.Second})
}

type labelledGauge struct {
	desc *prometheus.Desc
	f    func() map[string]int
}

func (g *labelledGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

func (g *labelledGauge) Collect(ch chan<- prometheus.Metric) {
	for v, n := range g.f() {
		ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, float64(n), v)
	}
}

// Health answers 200 when ping succeeds within 5 s and 503 otherwise:
// for /healthz, with ping asking storage.
func Health(ping func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if err := ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			// The reason stays in the server's log: it may name hosts.
			w.Write([]byte("storage does not answer\n"))
			return
		}
		w.Write([]byte("ok\n"))
	})
}
