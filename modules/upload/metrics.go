package upload

import "parley/internal/module"

// Metrics reports the bytes of stored files, the figure quota_total
// bounds.
func (m *Module) Metrics() ([]module.Gauge, []*module.Timer) {
	return []module.Gauge{{
		Name: "parley_upload_bytes",
		Help: "Bytes of uploaded files stored (XEP-0363).",
		Value: func() float64 {
			m.files.mu.Lock()
			defer m.files.mu.Unlock()
			return float64(m.files.total)
		},
	}}, nil
}
