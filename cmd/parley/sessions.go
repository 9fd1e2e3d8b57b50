package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"parley/internal/config"
	"parley/internal/control"
)

// cmdSessions runs sessions, kick and announce, the commands that act on
// the running server's sessions through its control socket.
func cmdSessions(ctx context.Context, name string, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (TOML)")
	online := fs.Bool("online", false, "announce: to every online session (the default)")
	all := fs.Bool("all", false, "announce: to every account, online or not")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if name != "announce" && (*online || *all) {
		return usageError{"--online and --all are for announce"}
	}
	if *online && *all {
		return usageError{"announce takes --online or --all, not both"}
	}
	cfg, err := config.Load(*cfgPath)
	if err != nil {
		return err
	}
	sock := control.SocketPath(cfg.DataDir)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch name {
	case "sessions":
		if len(pos) > 1 {
			return usageError{"sessions takes at most one JID"}
		}
		var a control.SessionsArgs
		if len(pos) == 1 {
			a.JID = pos[0]
		}
		var list []control.SessionInfo
		if err := control.Call(ctx, sock, control.CmdSessions, a, &list); err != nil {
			return err
		}
		for _, s := range list {
			state := "available"
			if !s.Available {
				state = "unavailable"
			}
			if s.Detached {
				state += ", detached"
			}
			fmt.Fprintf(stdout, "%s\t%s\n", s.JID, state)
		}
		fmt.Fprintf(stdout, "%d sessions\n", len(list))
	case "kick":
		if len(pos) != 1 {
			return usageError{"kick needs exactly one JID"}
		}
		var n control.CountResult
		if err := control.Call(ctx, sock, control.CmdKick, control.KickArgs{JID: pos[0]}, &n); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d sessions ended\n", pos[0], n.Count)
	case "announce":
		if len(pos) == 0 {
			return usageError{"announce needs the text"}
		}
		var n control.CountResult
		if err := control.Call(ctx, sock, control.CmdAnnounce, control.AnnounceArgs{Message: strings.Join(pos, " "), All: *all}, &n); err != nil {
			return err
		}
		to := "sessions"
		if *all {
			to = "accounts"
		}
		fmt.Fprintf(stdout, "announced to %d %s\n", n.Count, to)
	}
	return nil
}
