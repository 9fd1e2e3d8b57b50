package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os/signal"
	"path/filepath"
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
	"parley/modules/last"
	"parley/modules/mam"
	"parley/modules/muc"
	"parley/modules/offline"
	"parley/modules/pep"
	"parley/modules/ping"
	"parley/modules/privacy"
	"parley/modules/private"
	"parley/modules/push"
	"parley/modules/register"
	"parley/modules/roster"
	"parley/modules/upload"
	"parley/modules/vcard"
	"parley/modules/version"
	"parley/modules/welcome"
)

// modules is the list of features compiled into parley, one line each.
func modules(cfg config.Config) []module.Module {
	mods := []module.Module{
		disco.New(),
		ping.New(),
		roster.New(cfg.Limits.MaxRosterItems),
		offline.New(cfg.Limits.MaxOfflineMessages, cfg.Retention.Offline.Keep),
		register.New(cfg.Registration.Open, cfg.Registration.PerAddressPerHour).WithPolicy(register.Policy{
			MaxAccounts: cfg.Registration.MaxAccounts, NotifyAdmins: notifyAdmins(cfg),
			Invites: invites.Open(cfg.DataDir), UserInvites: cfg.Registration.UserInvites}),
		vcard.New(),
		private.New(),
		version.New(parleyVersion, cfg.Privacy.HideVersion),
		entitytime.New(),
		last.New(),
		blocking.New().WithReports(cfg.Admins),
		// The archive adds stanza-ids that carbons then copy: keep mam first.
		mam.New(cfg.Retention.Archive.Keep),
		carbons.New(),
		pep.New().WithQuota(cfg.Limits.PEPBytesPerUser),
		muc.New(cfg.MUCServices(), cfg.Retention.Archive.Keep).WithLimits(muc.Limits{
			MaxRooms: cfg.MUC.MaxRooms, CreationsPerHour: cfg.MUC.RoomCreationsPerHour}),
		push.New(push.Options{IncludeSender: cfg.Push.IncludeSender, IncludeBody: cfg.Push.IncludeBody}),
	}
	mods = append(mods, avatarconv.New(mods)) // XEP-0398: works on pep and vcard
	mods = append(mods, bookmarks.New(mods))  // XEP-0402 compat: works on pep and private
	if u := cfg.Upload; u.Host != "" {
		mods = append(mods, upload.New(upload.Options{
			Domain:             u.Host,
			Dir:                filepath.Join(cfg.DataDir, "uploads"),
			PublicURL:          u.PublicURL,
			MaxFileSize:        u.MaxFileSize,
			QuotaPerUserPerDay: u.QuotaPerUserPerDay,
			QuotaTotal:         u.QuotaTotal,
			Retention:          cfg.Retention.Uploads.Keep,
			MinRate:            u.MinRateBytesPerSecond,
			ConcurrentPerUser:  u.ConcurrentPerUser,
		}))
	}
	if t := cfg.TURN; t.Host != "" {
		mods = append(mods, extdisco.New(extdisco.Options{
			Host: t.Host, Secret: t.Secret, TTL: t.TTL.Duration, Services: turnServices(cfg),
		}))
	}
	mods = append(mods, privacy.New(privacy.Options{
		BlockStrangers: cfg.Privacy.BlockStrangers, RequireE2EE: cfg.Privacy.RequireE2EE, Admins: cfg.Admins}))
	mods = append(mods, contact.New(contact.Addresses{
		Abuse: cfg.Contact.Abuse, Admin: cfg.Contact.Admin, Security: cfg.Contact.Security, Support: cfg.Contact.Support}))
	mods = append(mods, inactive.New(inactive.Options{
		Expire: cfg.Registration.ExpireInactive.Keep, Warn: cfg.Registration.WarnInactive.Keep}))
	mods = append(mods, welcome.New(welcome.Options{Welcome: cfg.Registration.Welcome, Dir: cfg.DataDir}))
	// Last: it offers the commands of the modules before it (XEP-0050).
	mods = append(mods, adhoc.New(adhoc.Options{Admins: cfg.Admins, Others: mods}))
	return mods
}

// notifyAdmins are the admins told of new accounts, when they asked.
func notifyAdmins(cfg config.Config) []string {
	if !cfg.Registration.NotifyAdmins {
		return nil
	}
	return cfg.Admins
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
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		return fmt.Errorf("log.level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := server.New(ctx, cfg, log, modules(cfg))
	if err != nil {
		return err
	}
	if err := srv.Listen(); err != nil {
		srv.Stop(context.Background())
		return err
	}
	fmt.Fprintf(stdout, "parley %s serving %v with data in %s (%s)\n", parleyVersion, cfg.AllHosts(), cfg.DataDir, cfg.Storage.Driver)
	for _, l := range srv.Listeners() {
		if l.Name == "admin" {
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
		if l.Name == "https" {
			fmt.Fprintf(stdout, "serving HTTPS (file upload) on %s\n", l.Addr)
			continue
		}
		kind := "STARTTLS"
		if l.Name == "c2s_direct_tls" {
			kind = "direct TLS"
		}
		fmt.Fprintf(stdout, "listening for clients (%s) on %s\n", kind, l.Addr)
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return srv.Stop(sctx)
}
