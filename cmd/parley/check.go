package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"

	"parley/internal/check"
	"parley/internal/config"
)

// errCheckFailed makes `parley check` exit with status 1 after its report,
// which already said what is wrong.
type errCheckFailed struct{}

func (errCheckFailed) Error() string { return "check failed" }

func cmdCheck(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	cfgPath := fs.String("config", "", "config file (TOML)")
	strict := fs.Bool("strict", false, "warnings fail too")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError{fmt.Sprintf("check takes no arguments, got %q", pos[0])}
	}
	var o check.Options
	if cfg, err := config.Load(*cfgPath); err == nil {
		o.PIDFile = pidFile(cfg)
	}
	if !check.Print(stdout, check.Run(ctx, *cfgPath, o), *strict) {
		return errCheckFailed{}
	}
	return nil
}

// pidFile is where `parley serve` keeps its process id while it runs.
func pidFile(cfg config.Config) string { return filepath.Join(cfg.DataDir, "parley.pid") }
