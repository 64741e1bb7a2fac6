package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"text/tabwriter"
	"time"

	"campusid/internal/config"
	"campusid/internal/keys"
	"campusid/internal/store"
)

const keysAbout = `Manage the keys that sign tokens (ID tokens, JWT access tokens).

  keys list
      Every key: id, algorithm, state (active, published until..., expired), creation date.
  keys rotate [--algorithm ES256|RS256]
      Make a new key active. The old one stays in the JWKS until every token it
      signed has expired (the longest token lifetime, plus a margin); every node
      starts signing with the new key within a minute.

The keys live in the database, their private half encrypted with keys.encryption_key
(or keys.encryption_key_file, or data_dir/encryption.key when neither is set).`

// newKeys opens the signing keys with the configured encryption key,
// generating the key file under data_dir when none is configured.
func newKeys(cfg config.Config, db *store.DB, log *slog.Logger, now func() time.Time) (*keys.Manager, error) {
	secret, generated, err := keys.LoadSecret(cfg.Keys.EncryptionKey, cfg.Keys.EncryptionKeyFile, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	if generated != "" {
		log.Warn("generated the encryption key of the signing keys; keep this file, and give every node the same key "+
			"(keys.encryption_key_file) when several share one database", "path", generated, "fingerprint", keys.Fingerprint(secret))
	}
	return keys.New(db, secret, cfg.Keys.Algorithm, keyOverlap(cfg), now)
}

// keyOverlap is how long a retired key stays published: the longest token
// it may have signed, the time nodes take to notice the rotation, a margin.
func keyOverlap(cfg config.Config) time.Duration {
	return max(cfg.OIDC.IDTokenLifetime.D(), cfg.OIDC.AccessTokenLifetime.D()) + time.Minute + 10*time.Minute
}

func runKeys(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "keys", "keys <list|rotate> [flags]", keysAbout)
	path := fs.String("config", "", "configuration file (YAML)")
	alg := fs.String("algorithm", "", "algorithm of the new key: ES256 or RS256 (rotate; default keys.algorithm)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageError{"want one subcommand: list or rotate"}
	}
	if *alg != "" && !keys.ValidAlgorithm(*alg) {
		return usageError{fmt.Sprintf("--algorithm %q: want ES256 or RS256", *alg)}
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	if cfg.Keys.EncryptionKey == "" && cfg.Keys.EncryptionKeyFile == "" {
		// Generating a key here would make one that cannot open the keys serve made.
		if _, err := os.Stat(filepath.Join(cfg.DataDir, keys.KeyFileName)); err != nil {
			return fmt.Errorf("no encryption key: set keys.encryption_key or keys.encryption_key_file, or run where serve keeps %s (data_dir)",
				filepath.Join(cfg.DataDir, keys.KeyFileName))
		}
	}
	log := newLogger(e.stderr, cfg)
	db, err := openStore(ctx, cfg, newLogger(io.Discard, cfg), e.now)
	if err != nil {
		return err
	}
	defer db.Close()
	km, err := newKeys(cfg, db, log, e.now)
	if err != nil {
		return err
	}
	switch pos[0] {
	case "list":
		list, err := db.ListSigningKeys(ctx)
		if err != nil {
			return err
		}
		now := e.now()
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tALGORITHM\tSTATE\tCREATED")
		for _, k := range list {
			state := "active"
			switch {
			case k.Active:
			case k.NotAfter != nil && now.Before(*k.NotAfter):
				state = "retired, published until " + k.NotAfter.Local().Format(time.DateTime)
			default:
				state = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.Algorithm, state, k.CreatedAt.Local().Format(time.DateTime))
		}
		return tw.Flush()
	case "rotate":
		if err := km.Ensure(ctx); err != nil {
			return err
		}
		k, err := km.Rotate(ctx, *alg)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "new active key %s (%s); the previous one stays published for %s\n", k.ID, k.Algorithm, shortDuration(keyOverlap(cfg)))
		return nil
	}
	return usageError{fmt.Sprintf("unknown subcommand %q (want list or rotate)", pos[0])}
}
