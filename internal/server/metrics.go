package server

import (
	"parley/internal/module"
)

// addMetrics registers what is read from the server's state when scraped,
// and the modules' own metrics; it runs before the modules start, so
// their timers are set before anything can use them.
func (s *Server) addMetrics() {
	s.metrics.GaugeByLabel("parley_c2s_sessions", "Client sessions bound, by served host.", "host", s.router.SessionsPerHost)
	s.metrics.GaugeByLabel("parley_s2s_connections", "Server-to-server streams open, by direction.", "direction", func() map[string]int {
		in, out := s.s2s.Streams()
		return map[string]int{"in": in, "out": out}
	})
	for _, m := range s.modules {
		ms, ok := m.(module.Measured)
		if !ok {
			continue
		}
		gauges, timers := ms.Metrics()
		for _, g := range gauges {
			s.metrics.GaugeFunc(g.Name, g.Help, g.Value)
		}
		for _, t := range timers {
			t.Observe = s.metrics.Histogram(t.Name, t.Help)
		}
	}
}
