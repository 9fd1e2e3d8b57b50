package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"parley/internal/config"
	"parley/internal/invites"
	"parley/internal/module"
	"parley/internal/server"
	"parley/modules/adhoc"
	"parley/modules/avatarconv"
	"parley/modules/blocking"
	"parley/modules/bookmarks"
	"parley/modules/carbons"
	"parley/modules/contact"
	"parley/modules/disco"
	"parley/modules/entitytime"
	"parley/modules/extdisco"
	"parley/modules/inactive"
	"parley/modules/invitepage"
	"parley/modules/last"
	"parley/modules/mam"
	"parley/modules/muc"
	"parley/modules/offline"
	"parley/modules/pep"
	"parley/modules/ping"
	"parley/modules/privacy"
	"parley/modules/private"
	"parley/modules/pubsubsvc"
	"parley/modules/push"
	"parley/modules/register"
	"parley/modules/roster"
	"parley/modules/upload"
	"parley/modules/vcard"
	"parley/modules/version"
	"parley/modules/welcome"
)

// modules is the list of features compiled into parley, one line each.
// Settings a reload may change are read from live when used.
func modules(live *config.Live) []module.Module {
	cfg := *live.Load()
	archiveKeep := func() time.Duration { return live.Load().Retention.Archive.Keep }
	inviteStore := invites.Open(cfg.DataDir)
	admins := func() []string { return mergeAdmins(live.Load().Admins, inviteStore.AdminJIDs()) }
	mods := []module.Module{
		disco.New(),
		ping.New(),
		roster.New(func() int { return live.Load().Limits.MaxRosterItems }),
		offline.New(cfg.Limits.MaxOfflineMessages, cfg.Retention.Offline.Keep).
			WithRetention(func() time.Duration { return live.Load().Retention.Offline.Keep }).
			WithLimit(func() int { return live.Load().Limits.MaxOfflineMessages }),
		register.New(func() register.Policy {
			c := live.Load()
			r := c.Registration
			return register.Policy{Open: r.Open, PerAddressPerHour: r.PerAddressPerHour,
				MaxAccounts: r.MaxAccounts, NotifyAdmins: notifyAdmins(*c, admins()),
				Invites: inviteStore, UserInvites: r.UserInvites}
		}),
		vcard.New(),
		private.New(),
		version.New(parleyVersion, cfg.Privacy.HideVersion),
		entitytime.New(),
		last.New(),
		blocking.New().WithLiveReports(admins),
		// The archive adds stanza-ids that carbons then copy: keep mam first.
		mam.New(cfg.Retention.Archive.Keep).WithRetention(archiveKeep),
		carbons.New(),
		pep.New().WithQuota(func() int64 { return live.Load().Limits.PEPBytesPerUser }),
		muc.New(cfg.MUCServices(), cfg.Retention.Archive.Keep).WithRetention(archiveKeep).WithLiveLimits(func() muc.Limits {
			c := live.Load().MUC
			return muc.Limits{MaxRooms: c.MaxRooms, CreationsPerHour: c.RoomCreationsPerHour}
		}),
		push.New(push.Options{IncludeSender: cfg.Push.IncludeSender, IncludeBody: cfg.Push.IncludeBody}),
	}
	mods = append(mods, avatarconv.New(mods)) // XEP-0398: works on pep and vcard
	mods = append(mods, bookmarks.New(mods))  // XEP-0402 compat: works on pep and private
	if u := cfg.Upload; u.Host != "" {
		mods = append(mods, upload.New(upload.Options{
			Domain:             u.Host,
			Dir:                cfg.UploadDir(),
			PublicURL:          u.PublicURL,
			MaxFileSize:        u.MaxFileSize,
			QuotaPerUserPerDay: u.QuotaPerUserPerDay,
			QuotaTotal:         u.QuotaTotal,
			Retention:          cfg.Retention.Uploads.Keep,
			MinRate:            u.MinRateBytesPerSecond,
			ConcurrentPerUser:  u.ConcurrentPerUser,
			Live: func() upload.Limits {
				u := live.Load().Upload
				return upload.Limits{MaxFileSize: u.MaxFileSize, QuotaPerUserPerDay: u.QuotaPerUserPerDay,
					QuotaTotal: u.QuotaTotal, MinRate: u.MinRateBytesPerSecond, ConcurrentPerUser: u.ConcurrentPerUser}
			},
		}))
	}
	if svcs := cfg.PubSubServices(); len(svcs) > 0 {
		mods = append(mods, pubsubsvc.New(pubsubsvc.Options{Domains: svcs, MaxNodesPerUser: cfg.PubSub.MaxNodesPerUser,
			MaxItems: cfg.PubSub.MaxItemsPerNode, MaxItemBytes: cfg.PubSub.MaxItemBytes, MaxBytesPerUser: cfg.PubSub.MaxBytesPerUser}))
	}
	if t := cfg.TURN; t.Host != "" {
		mods = append(mods, extdisco.New(extdisco.Options{
			Host: t.Host, Secret: t.Secret, TTL: t.TTL.Duration, Services: turnServices(cfg),
		}))
	}
	mods = append(mods, privacy.New(privacy.Options{AdminsNow: admins, Live: func() privacy.Options {
		p := live.Load().Privacy
		return privacy.Options{BlockStrangers: p.BlockStrangers, RequireE2EE: p.RequireE2EE}
	}}))
	mods = append(mods, contact.New(contact.Addresses{
		Abuse: cfg.Contact.Abuse, Admin: cfg.Contact.Admin, Security: cfg.Contact.Security, Support: cfg.Contact.Support}))
	mods = append(mods, inactive.New(inactive.Options{
		Expire: cfg.Registration.ExpireInactive.Keep, Warn: cfg.Registration.WarnInactive.Keep,
		Live: func() (time.Duration, time.Duration) {
			r := live.Load().Registration
			return r.ExpireInactive.Keep, r.WarnInactive.Keep
		}}))
	mods = append(mods, invitepage.New(inviteStore)) // served only with listen.https or listen.http
	mods = append(mods, welcome.New(welcome.Options{Dir: cfg.DataDir,
		WelcomeNow: func() string { return live.Load().Registration.Welcome }}))
	// Last: it offers the commands of the modules before it (XEP-0050).
	mods = append(mods, adhoc.New(adhoc.Options{AdminsNow: admins, Others: mods}))
	return mods
}

// notifyAdmins are the admins told of new accounts, when they asked.
func notifyAdmins(cfg config.Config, admins []string) []string {
	if !cfg.Registration.NotifyAdmins {
		return nil
	}
	return admins
}

// turnServices turns [turn] transports (validated) into the entries
// XEP-0215 announces.
func turnServices(cfg config.Config) []extdisco.Service {
	var out []extdisco.Service
	for _, e := range cfg.TURN.Transports {
		typ, transport, port, _ := config.ParseTURNTransport(e)
		if port == 0 {
			port = cfg.TURN.Port
		}
		out = append(out, extdisco.Service{Type: typ, Transport: transport, Port: port})
	}
	return out
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (TOML)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("serve takes no arguments, got %q", pos[0])}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	live := config.NewLive(cfg)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: live}))

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	// SIGHUP rereads the config file and the certificates; caught from
	// the start, so that an early one does not end the process.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	srv, err := server.New(ctx, live, log, modules(live))
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		srv.Stop(context.Background())
		return err
	}
	// parley check counts ports held by this process as in use by parley.
	if err := os.WriteFile(pidFile(cfg), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		log.Warn("writing the pid file", "err", err)
	}
	defer os.Remove(pidFile(cfg))
	fmt.Fprintf(stdout, "parley %s serving %v with data in %s (%s)\n", parleyVersion, cfg.AllHosts(), cfg.DataDir, cfg.Storage.Driver)
	for _, l := range srv.Listeners() {
		if l.Name == "admin" {
			fmt.Fprintf(stdout, "metrics on http://%s/metrics, health on http://%s/healthz\n", l.Addr, l.Addr)
			fmt.Fprintf(stdout, "profiler (pprof) on http://%s/debug/pprof/\n", l.Addr)
			continue
		}
		if l.Name == "s2s" {
			fmt.Fprintf(stdout, "listening for servers on %s\n", l.Addr)
			continue
		}
		if l.Name == "component" {
			fmt.Fprintf(stdout, "listening for components on %s\n", l.Addr)
			continue
		}
		if l.Name == "http_acme" {
			fmt.Fprintf(stdout, "answering ACME HTTP-01 challenges on %s\n", l.Addr)
			continue
		}
		if l.Name == "https" {
			fmt.Fprintf(stdout, "serving HTTPS (file upload, web clients) on %s\n", l.Addr)
			continue
		}
		if l.Name == "http" {
			fmt.Fprintf(stdout, "serving HTTP (web clients, for a proxy) on %s\n", l.Addr)
			continue
		}
		kind := "STARTTLS"
		if l.Name == "c2s_direct_tls" {
			kind = "direct TLS"
		}
		fmt.Fprintf(stdout, "listening for clients (%s) on %s\n", kind, l.Addr)
	}
	for ctx.Err() == nil {
		select {
		case <-hup:
			srv.Reload(*cfgPath)
		case <-ctx.Done():
		}
	}
	fmt.Fprintln(stdout, "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(sctx)
}
