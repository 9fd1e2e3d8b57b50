package server

import (
	"log/slog"

	"parley/internal/component"
	"parley/internal/config"
	"parley/internal/module"
	"parley/internal/router"
	"parley/internal/xmlstream"
)

// newComponents sets up the external components of [[components]]: each
// domain (and its subdomains) becomes a service domain of the router,
// answered by the component while it is connected. nil when none is
// configured.
func newComponents(cfg config.Config, reg *module.Registry, r *router.Router, log *slog.Logger) *component.Service {
	if len(cfg.Components) == 0 {
		return nil
	}
	specs := make([]component.Spec, 0, len(cfg.Components))
	for _, c := range cfg.Components {
		specs = append(specs, component.Spec{Domain: c.Domain, Secret: c.Secret})
	}
	svc := component.New(&component.Config{
		Components:        specs,
		ServerDomain:      cfg.Hosts[0],
		Route:             r.Route,
		Bounce:            r.RouteDirect,
		Limits:            xmlstream.Limits{MaxStanzaBytes: cfg.Limits.MaxStanzaBytes},
		HandshakeTimeout:  cfg.Limits.AuthTimeout.Duration,
		PreauthPerAddress: cfg.Limits.PreauthConnectionsPerAddress,
		MaxOutput:         4*cfg.Limits.MaxStanzaBytes + 1<<20,
		Log:               log,
	})
	for _, sp := range specs {
		reg.AddComponent(module.Component{Domain: sp.Domain, Subdomains: true}, svc.Handler(sp.Domain))
	}
	return svc
}
