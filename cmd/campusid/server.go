package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"campusid/internal/account"
	"campusid/internal/audit"
	"campusid/internal/cas"
	"campusid/internal/config"
	"campusid/internal/delivery"
	"campusid/internal/keys"
	"campusid/internal/login"
	"campusid/internal/notify"
	"campusid/internal/oidc"
	"campusid/internal/onetime"
	"campusid/internal/outbox"
	"campusid/internal/portal"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/throttle"
	"campusid/internal/web"
)

// server is the whole object graph of one campusid node.
type server struct {
	cfg      config.Config
	log      *slog.Logger
	db       *store.DB
	accounts *account.Service
	audit    *audit.Log
	worker   *outbox.Worker
	delivery *delivery.Worker // back-channel deliveries (logout tokens)
	keys     *keys.Manager
	handler  http.Handler
	registry *prometheus.Registry
	now      func() time.Time
}

// openStore opens and migrates the database.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger, now func() time.Time) (*store.DB, error) {
	db, err := store.Open(ctx, cfg.Database.URL, cfg.Database.MaxOpenConns)
	if err != nil {
		return nil, err
	}
	applied, err := db.Migrate(ctx, now())
	if err != nil {
		db.Close()
		return nil, err
	}
	for _, m := range applied {
		log.Info("migration applied", "migration", m)
	}
	return db, nil
}

// newAccounts builds the account service (also used by the CLI).
func newAccounts(cfg config.Config, db *store.DB, log *slog.Logger, now func() time.Time) (*account.Service, *audit.Log, error) {
	policy, err := account.NewPolicy(cfg.Password.Preset, cfg.Password.MinLength, cfg.Password.MaxLength)
	if err != nil {
		return nil, nil, fmt.Errorf("password policy: %w", err)
	}
	p := account.DefaultHashParams()
	p.Memory, p.Iterations, p.Parallelism = cfg.Password.Hash.MemoryKiB, cfg.Password.Hash.Iterations, cfg.Password.Hash.Parallelism
	if err := account.ValidateHashParams(p); err != nil {
		return nil, nil, fmt.Errorf("password.hash: %w", err)
	}
	hasher := account.NewHasher(p, cfg.Password.Hash.MaxConcurrent, cfg.Password.Hash.MaxWait.D())
	al := &audit.Log{DB: db, Log: log, Now: now}
	mailer, err := newMailer(cfg, now)
	if err != nil {
		return nil, nil, err
	}
	notifier := &notify.Notifier{Mailer: mailer, PublicURL: cfg.PublicURL, Now: now}
	return &account.Service{DB: db, Hasher: hasher, Policy: policy, Audit: al, Now: now, Notify: notifier}, al, nil
}

// newTokens is the issuer of one-time links and codes.
func newTokens(cfg config.Config, db *store.DB, mailer *outbox.Mailer, now func() time.Time) *onetime.Issuer {
	ss := cfg.SelfService
	return &onetime.Issuer{DB: db, Mailer: mailer, PublicURL: cfg.PublicURL, Now: now,
		ResendInterval: ss.ResendInterval.D(), MaxCodeTries: ss.CodeMaxTries,
		Validity: map[string]time.Duration{
			store.TokenCode: ss.CodeValidity.D(), store.PurposeLoginLink: ss.LoginLinkValidity.D(),
			store.PurposeActivation: ss.ActivationLinkValidity.D(), store.PurposeResetLink: ss.ResetLinkValidity.D(),
			store.PurposeVerifyEmail: ss.VerifyLinkValidity.D(),
		},
		PerClient: throttle.Backoff{DB: db, Prefix: "send:ip:", Free: ss.SendsPerClient, Max: 10 * time.Minute, Window: ss.SendWindow.D()},
	}
}

func newMailer(cfg config.Config, now func() time.Time) (*outbox.Mailer, error) {
	return outbox.NewMailer(outbox.SiteInfo{Name: "campusid", PublicURL: cfg.PublicURL, SupportEmail: cfg.Support.Email}, now)
}

// newServer builds a node over an open, migrated store.
func newServer(cfg config.Config, db *store.DB, log *slog.Logger, now func() time.Time) (*server, error) {
	accounts, al, err := newAccounts(cfg, db, log, now)
	if err != nil {
		return nil, err
	}
	renderer, err := web.NewRenderer("")
	if err != nil {
		return nil, err
	}
	notifier := accounts.Notify
	mailer := notifier.Mailer
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "campusid_password_hashes_in_flight", Help: "Password hashes being computed now."},
			func() float64 { return float64(accounts.Hasher.InFlight()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "campusid_password_hashes_waiting", Help: "Requests waiting for a password hashing slot."},
			func() float64 { return float64(accounts.Hasher.Waiting()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "campusid_outbox_backlog", Help: "Messages waiting for delivery."},
			func() float64 {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				n, _ := db.MailBacklog(ctx)
				return float64(n)
			}),
	)

	sessions := &session.Manager{DB: db, Secure: cfg.Secure(), IdleTimeout: cfg.Session.IdleTimeout.D(),
		AbsoluteTimeout: cfg.Session.AbsoluteTimeout.D(), RememberFor: cfg.Session.RememberFor.D(), Now: now}
	app := &web.App{R: renderer, Log: log, DefaultLang: cfg.DefaultLanguage, Viewer: session.Viewer,
		Support: web.Support{Email: cfg.Support.Email, URL: cfg.Support.URL}}
	lc := cfg.Login
	window := lc.FailureWindow.D()
	wake := make(chan struct{}, 1)
	worker := &outbox.Worker{DB: db, Log: log, Now: now, Poll: cfg.Mail.PollPeriod.D(), RetryBase: cfg.Mail.RetryBase.D(),
		RetryMax: cfg.Mail.RetryMax.D(), MaxAge: cfg.Mail.MaxAge.D(), Wake: wake}

	ss := cfg.SelfService
	tokens := newTokens(cfg, db, mailer, now)

	mux := http.NewServeMux()
	(&login.Handler{
		App: app, DB: db, Accounts: accounts, Sessions: sessions, Audit: al, RevealUnknown: lc.RevealUnknownAccounts,
		FlowLifetime: lc.FlowLifetime.D(), MinFailureTime: lc.MinFailureTime.D(), Now: now,
		PerAccount: throttle.Backoff{DB: db, Prefix: "login:acct:", Free: lc.AccountFreeFailures, Max: lc.AccountMaxDelay.D(), Window: window},
		PerClient:  throttle.Backoff{DB: db, Prefix: "login:ip:", Free: lc.ClientFreeFailures, Max: lc.ClientMaxDelay.D(), Window: window},
		Lookups:    throttle.Backoff{DB: db, Prefix: "identify:ip:", Free: lc.ClientFreeFailures, Max: time.Minute, Window: window},
		SignIns:    login.NewSignInCounter(reg),
		Destination: func(ctx context.Context, returnTo string) string {
			if name := cas.Destination(ctx, db, returnTo); name != "" {
				return name
			}
			return oidc.Destination(ctx, db, returnTo)
		},
		Notify: notifier, NotifyNewDevice: ss.NotifyNewDevice, Tokens: tokens, LoginCode: ss.LoginCode, LoginLink: ss.LoginLink,
		ActivationQuestion: ss.ActivationSecretQuestion, ActivationPersonalEmail: ss.ActivationPersonalEmail,
	}).Register(mux)
	(&portal.Handler{
		App: app, DB: db, Accounts: accounts, Sessions: sessions, Audit: al, Mailer: mailer, PublicURL: cfg.PublicURL,
		VerifyValidity: ss.VerifyLinkValidity.D(), ResendEvery: ss.ResendInterval.D(), Now: now, Notify: notifier, Tokens: tokens,
		RevealUnknown: ss.RevealUnknownAccounts, QuestionMaxFailures: ss.QuestionMaxFailures, QuestionLock: ss.QuestionLock.D(),
		PasswordTries: throttle.Backoff{DB: db, Prefix: "pwchange:", Free: lc.AccountFreeFailures, Max: lc.AccountMaxDelay.D(), Window: window},
		AnswerTries:   throttle.Backoff{DB: db, Prefix: "answer:ip:", Free: 2 * ss.QuestionMaxFailures, Max: lc.ClientMaxDelay.D(), Window: ss.QuestionLock.D()},

		// Wrong reset codes: per client address as for passwords; per account two
		// codes' worth, then delays up to 15 minutes (about 20 guesses an hour at most).
		CodeGuessesClient:  throttle.Backoff{DB: db, Prefix: "recover:code:ip:", Free: lc.ClientFreeFailures, Max: lc.ClientMaxDelay.D(), Window: window},
		CodeGuessesAccount: throttle.Backoff{DB: db, Prefix: "recover:code:", Free: 2 * ss.CodeMaxTries, Max: 15 * time.Minute, Window: time.Hour},
	}).Register(mux)
	km, err := newKeys(cfg, db, log, now)
	if err != nil {
		return nil, err
	}
	if err := startOIDC(context.Background(), cfg, db, km, log, now); err != nil {
		return nil, err
	}
	oc := cfg.OIDC
	err = (&oidc.Handler{App: app, DB: db, Keys: km, Sessions: sessions, Audit: al, Now: now, Issuer: cfg.PublicURL,
		AccessTokenLifetime: oc.AccessTokenLifetime.D(), IDTokenLifetime: oc.IDTokenLifetime.D(),
		RefreshTokenLifetime: oc.RefreshTokenLifetime.D(), AuthRequestLifetime: oc.AuthRequestLifetime.D(),
		DeviceCodeLifetime: oc.DeviceCodeLifetime.D(), DevicePollInterval: oc.DevicePollInterval.D(),
	}).Register(mux)
	if err != nil {
		return nil, err
	}
	if err := startCAS(context.Background(), cfg, db, now); err != nil {
		return nil, err
	}
	proxyClient, err := cas.NewProxyClient(cfg.CAS.ProxyCAFile)
	if err != nil {
		return nil, err
	}
	(&cas.Handler{App: app, DB: db, Sessions: sessions, Audit: al, Now: now, TicketLifetime: cfg.CAS.TicketLifetime.D(),
		EPPNScope: casScope(cfg), FlowKey: km.Derive("cas renew"), ProxyClient: proxyClient, Secure: cfg.Secure(),
		Metrics: cas.NewMetrics(reg)}).Register(mux)
	dc := cfg.Delivery
	dw := delivery.NewWithSettings(db, log, now, delivery.Settings{Poll: dc.PollPeriod.D(), Timeout: dc.Timeout.D(),
		RetryBase: dc.RetryBase.D(), RetryMax: dc.RetryMax.D(), MaxAge: dc.MaxAge.D()})
	dw.RedirectIsDelivered = map[string]bool{cas.DeliveryKindLogout: true}
	dw.Sources = append(dw.Sources, (&oidc.BackChannel{DB: db, Keys: km, Issuer: cfg.PublicURL, Now: now,
		Also: []func(context.Context, *store.DB, store.Session, time.Time) error{cas.QueueSingleLogout}}).Propagate)
	mux.Handle("GET /static/", web.Static())
	mux.Handle("GET /lang/{lang}", web.LangSwitch(cfg.Secure()))
	mux.Handle("GET /healthz", healthz(db))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /{$}", http.RedirectHandler("/account", http.StatusSeeOther))
	mux.Handle("/", app.Handle(func(http.ResponseWriter, *http.Request) error { return web.NotFound() }))

	switch cfg.Mail.Driver {
	case "dev":
		worker.Sender, worker.KeepBodies = outbox.DevSender{}, true
		(&outbox.DevMailbox{App: app, DB: db}).Register(mux)
	case "smtp":
		pw, err := cfg.Mail.SMTP.SMTPPassword()
		if err != nil {
			return nil, err
		}
		sender, err := outbox.NewSMTPSender(outbox.SMTPConfig{Host: cfg.Mail.SMTP.Host, Port: cfg.Mail.SMTP.Port,
			Security: cfg.Mail.SMTP.Security, Username: cfg.Mail.SMTP.Username, Password: pw, From: cfg.Mail.From,
			HeloName: cfg.Mail.SMTP.HeloName})
		if err != nil {
			return nil, fmt.Errorf("mail: %w", err)
		}
		worker.Sender = sender
	}

	handler := app.Middleware(sessions.Middleware(wakeOnMail(wakeOnSessionEnd(web.Routed(mux), dw), wake)), web.Options{
		PublicURL: cfg.PublicURL, DefaultLang: cfg.DefaultLanguage, TrustedProxies: cfg.TrustedProxies, Metrics: web.NewMetrics(reg),
		CrossOriginBypass: []string{oidc.ProtocolPattern},
	})
	return &server{cfg: cfg, log: log, db: db, accounts: accounts, audit: al, worker: worker, delivery: dw, keys: km, handler: handler, registry: reg, now: now}, nil
}

// startOIDC makes sure a signing key exists and that the applications of
// the configuration file are in the database as written.
func startOIDC(ctx context.Context, cfg config.Config, db *store.DB, km *keys.Manager, log *slog.Logger, now func() time.Time) error {
	if err := km.Ensure(ctx); err != nil {
		return err
	}
	clients, err := configClients(cfg)
	if err != nil {
		return err
	}
	upserted, removed, err := oidc.SyncClients(ctx, db, clients, now())
	if err != nil {
		return fmt.Errorf("applications of the configuration file: %w", err)
	}
	if len(upserted) > 0 || len(removed) > 0 {
		log.Info("applications of the configuration file", "declared", strings.Join(upserted, ","), "removed", strings.Join(removed, ","))
	}
	return nil
}

// wakeOnMail nudges the mail worker after a request that queued a message
// (its transaction has committed by then), so the message leaves at once
// rather than at the next poll.
func wakeOnMail(next http.Handler, wake chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if web.Info(r.Context()).MailQueued {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	})
}

// wakeOnSessionEnd nudges the delivery worker after a request that ended a
// session (its transaction has committed by then), so that back-channel and
// CAS single logout leave at once rather than at the next poll, whatever
// ended it: a form, GET /cas/logout or an OpenID Connect end_session.
func wakeOnSessionEnd(next http.Handler, dw *delivery.Worker) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ended atomic.Bool
		next.ServeHTTP(w, r.WithContext(store.WithSessionEndNotice(r.Context(), func() { ended.Store(true) })))
		if ended.Load() {
			dw.Signal()
		}
	})
}

func healthz(db *store.DB) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := db.Ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "database unavailable")
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

// cleanup removes expired rows once an hour.
func (s *server) cleanup(ctx context.Context) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		cutoff := s.now().Add(-24 * time.Hour)
		s.db.DeleteExpiredSessions(ctx, cutoff)
		s.db.DeleteExpiredLoginFlows(ctx, cutoff)
		s.db.DeleteStaleThrottles(ctx, cutoff)
		s.db.DeleteExpiredOIDC(ctx, cutoff)
		s.db.DeleteExpiredCASTickets(ctx, cutoff)
		s.db.DeleteOldDeliveries(ctx, s.now().Add(-7*24*time.Hour))
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
