package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"parley/internal/config"
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

func cmdInvite(_ context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError{"invite needs a subcommand: create, list or revoke"}
	}
	sub := args[0]
	fs := flag.NewFlagSet("invite "+sub, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (TOML)")
	host := fs.String("host", "", "the domain the account is created on (default: the first host)")
	uses := fs.Int("uses", 1, "how many accounts the invite may create")
	expires := fs.String("expires", "7d", "how long the invite is valid")
	contact := fs.String("contact", "", "a local account that becomes a mutual contact of each invitee")
	adminFlag := fs.Bool("admin", false, "not supported: admins are listed in the config's admins key")
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
		if *adminFlag {
			return errors.New("--admin: admins are the JIDs of the config's admins key; create the invite without --admin and add the account there")
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
		token, inv, err := store.Create(d, *uses, ttl, c, now)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, invites.URI(d, token))
		fmt.Fprintf(stdout, "invite %s: %d account(s) on %s until %s\n", inv.ID, inv.Uses, inv.Host, inv.Expires.Format(time.RFC3339))
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
			fmt.Fprintln(stdout, line)
		}
		fmt.Fprintf(stdout, "%d invites\n", len(list))
	case "revoke":
		if len(pos) != 1 {
			return usageError{"invite revoke needs the invite's id (see invite list)"}
		}
		if err := store.Revoke(pos[0]); err != nil {
			return fmt.Errorf("invite %s: %w", pos[0], err)
		}
		fmt.Fprintf(stdout, "invite %s revoked\n", pos[0])
	default:
		return usageError{fmt.Sprintf("unknown invite subcommand %q", sub)}
	}
	return nil
}
