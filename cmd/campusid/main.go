// Command campusid is the identity provider and self-service account
// portal. Each subcommand lives in its own file; this package builds the
// object graph and is the only one that imports every other.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"campusid/internal/config"
	"campusid/internal/store"
)

// env is what a command sees of the world; tests give their own.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	environ        []string
	now            func() time.Time
}

type command struct {
	name, summary string
	run           func(ctx context.Context, e *env, args []string) error
}

func commands() []command {
	return []command{
		{"serve", "run the server", runServe},
		{"migrate", "apply database migrations", runMigrate},
		{"user", "manage accounts (add, list, show, disable, enable, set-password, send-reset)", runUser},
		{"audit", "list security events", runAudit},
		{"config", "check the configuration or list every key", runConfig},
		{"client", "manage applications (OpenID Connect clients)", runClient},
		{"cas-service", "manage CAS services (the CAS service registry)", runCASService},
		{"keys", "list or rotate the token-signing keys", runKeys},
	}
}

func main() {
	e := &env{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, environ: os.Environ(), now: time.Now}
	os.Exit(run(context.Background(), e, os.Args[1:]))
}

// usageError is shown with the command's usage and exit status 2.
type usageError struct{ msg string }

func (u usageError) Error() string { return u.msg }

func run(ctx context.Context, e *env, args []string) int {
	if len(args) == 0 {
		printUsage(e.stderr)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(e.stdout)
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, e, args[1:])
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, new(usageError)):
			fmt.Fprintf(e.stderr, "campusid %s: %v\nRun 'campusid %s --help' for usage.\n", c.name, err, c.name)
			return 2
		default:
			fmt.Fprintf(e.stderr, "campusid %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(e.stderr, "campusid: unknown command %q\n\n", args[0])
	printUsage(e.stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `campusid — identity provider and self-service account portal

Usage:
  campusid <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
With no configuration, 'campusid serve' listens on http://localhost:8080, keeps
its SQLite database under ./campusid-data/ and shows emails at /dev/mail.
Every command takes --config FILE (or CAMPUSID_CONFIG); any key can be set by an
environment variable: database.url -> CAMPUSID_DATABASE_URL.
Run 'campusid <command> --help' for a command's flags.
`)
}

// flagSet makes a FlagSet whose --help prints the synopsis and the flags.
func flagSet(e *env, name, synopsis, about string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: campusid %s\n\n%s\n", synopsis, strings.TrimSpace(about))
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprint(e.stdout, "\nFlags:\n")
			fs.SetOutput(e.stdout)
			fs.PrintDefaults()
			fs.SetOutput(e.stderr)
		}
	}
	return fs
}

// parseArgs parses flags wherever they stand among the positional
// arguments ("user show jdupont --config f" works) and returns the
// positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

// parse parses args; a bad flag becomes a usageError.
func parse(fs *flag.FlagSet, args []string) error {
	fs.SetOutput(io.Discard)
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
		return err
	}
	if err != nil {
		return usageError{err.Error()}
	}
	return nil
}

// loadConfig reads --config (or CAMPUSID_CONFIG) and the environment, and validates.
func loadConfig(e *env, path string) (config.Config, error) {
	if path == "" {
		for _, kv := range e.environ {
			if v, ok := strings.CutPrefix(kv, "CAMPUSID_CONFIG="); ok {
				path = v
			}
		}
	}
	cfg, err := config.Load(path, e.environ)
	if errors.Is(err, os.ErrNotExist) {
		return cfg, err
	}
	// Validate even after a bad value, so every problem is listed at once.
	if err := errors.Join(err, cfg.Validate()); err != nil {
		return cfg, fmt.Errorf("invalid configuration:\n  %s", strings.ReplaceAll(err.Error(), "\n", "\n  "))
	}
	return cfg, nil
}

// openCLI loads the configuration and opens (and migrates) the database
// for a command that works on it.
func openCLI(ctx context.Context, e *env, path string) (*store.DB, error) {
	cfg, err := loadConfig(e, path)
	if err != nil {
		return nil, err
	}
	return openStore(ctx, cfg, newLogger(io.Discard, cfg), e.now)
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
