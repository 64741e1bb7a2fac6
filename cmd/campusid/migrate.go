package main

import (
	"context"
	"fmt"
)

func runMigrate(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "migrate", "migrate [--config FILE]", `Apply the pending database migrations and print them. 'serve' applies them too
at start; several nodes may start at once (PostgreSQL advisory lock).`)
	path := fs.String("config", "", "configuration file (YAML)")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	db, err := openStore(ctx, cfg, newLogger(e.stderr, cfg), e.now)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := db.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "database at schema version %d (%s)\n", v, dbKind(cfg.Database.URL))
	return nil
}
