package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/internal/config"
	"parley/internal/control"
	"parley/internal/invites"
	"parley/internal/jid"
)

// parseLifetime reads --expires: a Go duration or a number of days ("7d").
func parseLifetime(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n > 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--expires must be a positive duration such as \"7d\" or \"12h\", got %q", s)
	}
	return d, nil
}

func cmdInvite(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"invite needs a subcommand: create, list, revoke, admins or unadmin"}
	}
	sub := args[0]
	fs := flag.NewFlagSet("invite "+sub, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (TOML)")
	host := fs.String("host", "", "the domain the account is created on (default: the first host)")
	uses := fs.Int("uses", 1, "how many accounts the invite may create")
	expires := fs.String("expires", "7d", "how long the invite is valid")
	contact := fs.String("contact", "", "a local account that becomes a mutual contact of each invitee")
	adminFlag := fs.Bool("admin", false, "the account created with the invite becomes an admin")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	store := invites.Open(cfg.DataDir)
	now := time.Now()
	switch sub {
	case "create":
		if len(pos) > 0 {
			return usageError{"invite create takes no arguments"}
		}
		if *uses < 1 {
			return usageError{"--uses must be at least 1"}
		}
		ttl, err := parseLifetime(*expires)
		if err != nil {
			return usageError{err.Error()}
		}
		d := cfg.Hosts[0]
		if *host != "" {
			hj, err := jid.New("", *host, "")
			if err != nil || !slices.Contains(cfg.Hosts, hj.Domain()) {
				return fmt.Errorf("--host %q is not one of the configured hosts %v", *host, cfg.Hosts)
			}
			d = hj.Domain()
		}
		c := ""
		if *contact != "" {
			cj, err := jid.Parse(*contact)
			if err != nil || cj.Local() == "" || !cj.IsBare() || !slices.Contains(cfg.Hosts, cj.Domain()) {
				return fmt.Errorf("--contact %q is not an account of this server", *contact)
			}
			c = cj.String()
		}
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return fmt.Errorf("creating the data directory: %w", err)
		}
		token, inv, err := store.Create(invites.Spec{Host: d, Uses: *uses, TTL: ttl, Contact: c, Admin: *adminFlag}, now)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, invites.URI(d, token))
		if cfg.Listen.HTTPS != "" {
			base, err := pageBase(ctx, cfg, d)
			if err != nil {
				fmt.Fprintf(stdout, "no landing page link: %v\n", err)
			} else {
				fmt.Fprintln(stdout, invites.PageURL(base, token))
			}
		}
		what := "account(s)"
		if inv.Admin {
			what = "admin account(s)"
		}
		fmt.Fprintf(stdout, "invite %s: %d %s on %s until %s\n", inv.ID, inv.Uses, what, inv.Host, inv.Expires.Format(time.RFC3339))
	case "list":
		list, err := store.List(now)
		if err != nil {
			return err
		}
		for _, i := range list {
			line := fmt.Sprintf("%s\t%s\t%d/%d used\texpires %s", i.ID, i.Host, i.Used, i.Uses, i.Expires.Format(time.RFC3339))
			if i.Contact != "" {
				line += "\tcontact " + i.Contact
			}
			if i.Admin {
				line += "\tadmin"
			}
			fmt.Fprintln(stdout, line)
		}
		fmt.Fprintf(stdout, "%d invites\n", len(list))
	case "revoke":
		if len(pos) != 1 {
			return usageError{"invite revoke needs the invite's id (see invite list)"}
		}
		if err := store.Revoke(pos[0], now); err != nil {
			return fmt.Errorf("invite %s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "invite %s revoked\n", pos[0])
	case "admins":
		list, err := store.Admins()
		if err != nil {
			return err
		}
		for _, a := range cfg.Admins {
			fmt.Fprintf(stdout, "%s\tconfig\n", a)
		}
		for _, a := range list {
			fmt.Fprintf(stdout, "%s\tinvite %s\tsince %s\n", a.JID, a.Invite, a.Added.Format(time.RFC3339))
		}
		fmt.Fprintf(stdout, "%d admins\n", len(mergeAdmins(cfg.Admins, adminJIDs(list))))
	case "unadmin":
		if len(pos) != 1 {
			return usageError{"invite unadmin needs the JID of an admin an invite made (see invite admins)"}
		}
		j, err := jid.Parse(pos[0])
		if err != nil {
			return fmt.Errorf("%q is not a valid JID: %w", pos[0], err)
		}
		if err := store.RemoveAdmin(j.Bare().String()); err != nil {
			if errors.Is(err, invites.ErrNotAdmin) && cfg.IsAdmin(j.Bare().String()) {
				return fmt.Errorf("%s is an admin by the config's admins key: remove it there", j.Bare())
			}
			return fmt.Errorf("%s: %w", j.Bare(), err)
		}
		fmt.Fprintf(stdout, "%s is no longer an admin\n", j.Bare())
	default:
		return usageError{fmt.Sprintf("unknown invite subcommand %q", sub)}
	}
	return nil
}

// pageBase is the https://host:port the invite's landing page is served
// under: the invite's domain and the HTTPS listener's port, asked of the
// running server when the config lets the kernel choose it.
func pageBase(ctx context.Context, cfg config.Config, domain string) (string, error) {
	_, port, err := net.SplitHostPort(cfg.Listen.HTTPS)
	if err != nil {
		return "", fmt.Errorf("listen.https %q: %w", cfg.Listen.HTTPS, err)
	}
	if port == "0" {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		var r control.HTTPSResult
		if err := control.Call(ctx, control.SocketPath(cfg.DataDir), control.CmdHTTPS, nil, &r); err != nil {
			return "", fmt.Errorf("listen.https lets the system choose the port, and the running server could not say which: %w", err)
		}
		if r.Addr == "" {
			return "", errors.New("the running server has no HTTPS listener")
		}
		if _, port, err = net.SplitHostPort(r.Addr); err != nil {
			return "", err
		}
	}
	if port == "443" {
		return "https://" + domain, nil
	}
	return "https://" + net.JoinHostPort(domain, port), nil
}

// mergeAdmins is the config's admins followed by those invites made,
// each once. Without invite-made admins it is the config's list itself.
func mergeAdmins(cfg, invited []string) []string {
	if len(invited) == 0 {
		return cfg
	}
	out := slices.Clone(cfg)
	for _, a := range invited {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}

func adminJIDs(list []invites.Admin) []string {
	out := make([]string, 0, len(list))
	for _, a := range list {
		out = append(out, a.JID)
	}
	return out
}
