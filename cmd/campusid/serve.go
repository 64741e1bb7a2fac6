package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

func runServe(ctx context.Context, e *env, args []string) error {
	fs := flagSet(e, "serve", "serve [--config FILE]", `Run the server. With no configuration it listens on http://localhost:8080, keeps its
SQLite database under ./campusid-data/ and shows emails at /dev/mail. Migrations
are applied at start. SIGINT or SIGTERM stop it gracefully.`)
	path := fs.String("config", "", "configuration file (YAML)")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(e, *path)
	if err != nil {
		return err
	}
	log := newLogger(e.stderr, cfg)
	slog.SetDefault(log) // libraries (zitadel/oidc) log through the default logger
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	db, err := openStore(ctx, cfg, log, e.now)
	if err != nil {
		return err
	}
	defer db.Close()
	srv, err := newServer(cfg, db, log, e.now)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	hs := &http.Server{Handler: srv.handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10}
	if cfg.Mail.Driver == "dev" {
		log.Warn("DEVELOPMENT MAILBOX: no email leaves this server; messages are shown at " + cfg.PublicURL + "/dev/mail — configure mail.smtp for production")
	}
	log.Info("campusid listening", "listen", ln.Addr().String(), "public_url", cfg.PublicURL, "database", dbKind(cfg.Database.URL))

	var wg sync.WaitGroup
	bg, cancelBG := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(3)
	go func() { defer wg.Done(); srv.worker.Run(bg) }()
	go func() { defer wg.Done(); srv.delivery.Run(bg) }()
	go func() { defer wg.Done(); srv.cleanup(bg) }()

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down")
		sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
	}
	cancelBG()
	wg.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	log.Info("stopped")
	return err
}
