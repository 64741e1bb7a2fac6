package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"campusid/internal/config"
)

func runConfig(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "config", "config check [--config FILE] | config keys",
		`check: validate the configuration (file + environment) and list every problem at once.
keys:  print every key with its environment variable, default and meaning (Markdown).`)
	path := fs.String("config", "", "configuration file (YAML)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageError{"too many arguments"}
	}
	switch strings.Join(pos, "") {
	case "check":
		cfg, err := loadConfig(e, *path)
		if err != nil {
			return err
		}
		if err := checkClients(cfg); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "configuration OK\n  listen:     %s\n  public_url: %s\n  database:   %s\n  mail:       %s\n",
			cfg.Listen, cfg.PublicURL, dbKind(cfg.Database.URL), cfg.Mail.Driver)
		return nil
	case "keys":
		fmt.Fprintln(e.stdout, "| key | environment variable | default | meaning |")
		fmt.Fprintln(e.stdout, "| --- | --- | --- | --- |")
		for _, k := range config.Keys() {
			def := k.Default
			if def == "" {
				def = "(empty)"
			}
			fmt.Fprintf(e.stdout, "| `%s` | `%s` | `%s` | %s |\n", k.Path, config.EnvName(k.Path), def, k.Doc)
		}
		return nil
	case "":
		return usageError{"missing subcommand: check or keys"}
	default:
		return usageError{fmt.Sprintf("unknown subcommand %q (want check or keys)", pos[0])}
	}
}

func dbKind(url string) string {
	if len(url) > 7 && url[:7] == "sqlite:" {
		return "SQLite " + url[7:]
	}
	return "PostgreSQL"
}

// checkClients applies the rules of registered applications to those of
// the configuration file (redirect URIs, grants...), as serve would.
func checkClients(cfg config.Config) error {
	clients, err := configClients(cfg)
	if err != nil {
		return fmt.Errorf("invalid configuration:\n  %w", err)
	}
	var errs []error
	for _, c := range clients {
		if _, err := c.Client(); err != nil {
			errs = append(errs, fmt.Errorf("oidc.clients %s: %w", c.ID, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return nil
}
