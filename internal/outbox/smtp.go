package outbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Values of SMTPConfig.Security.
const (
	securitySTARTTLS = "starttls"
	securityTLS      = "tls"
	securityNone     = "none"
)

// SMTPConfig says how to reach the SMTP relay.
type SMTPConfig struct {
	Host string
	Port int // 0 = 587 for starttls, 465 for tls, 25 for none

	// Security is "starttls" (the default; refuse to send if the server does
	// not offer STARTTLS), "tls" (implicit TLS, port 465) or "none" (plain,
	// only for local relays).
	Security string

	// Username and Password are used with AUTH PLAIN (or LOGIN if the server
	// only offers it) when Username != "". They are never sent over a
	// connection without TLS, unless Host is a loopback address.
	Username, Password string

	From     string        // "campusid <noreply@univ.example>", parsed with net/mail
	HeloName string        // default "localhost"
	Timeout  time.Duration // dial + whole conversation, default 30s

	// TLSConfig is nil for the system roots; ServerName defaults to Host.
	TLSConfig *tls.Config
}

// LogValue keeps the password out of logs.
func (c SMTPConfig) LogValue() slog.Value {
	pw := ""
	if c.Password != "" {
		pw = "REDACTED"
	}
	return slog.GroupValue(
		slog.String("host", c.Host),
		slog.Int("port", c.Port),
		slog.String("security", c.Security),
		slog.String("username", c.Username),
		slog.String("password", pw),
		slog.String("from", c.From),
	)
}

// SMTPSender sends messages to one SMTP relay, one connection per message.
type SMTPSender struct {
	cfg  SMTPConfig // with defaults applied
	addr string     // host:port
	from *mail.Address
	tls  *tls.Config
	now  func() time.Time
}

var _ Sender = (*SMTPSender)(nil)

// NewSMTPSender checks cfg, applies its defaults and reports every problem
// at once.
func NewSMTPSender(cfg SMTPConfig) (*SMTPSender, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("outbox: smtp config: "+format, args...))
	}

	if cfg.Host == "" {
		bad("host is empty")
	} else if strings.ContainsAny(cfg.Host, " \t\r\n/@") {
		bad("host %q is not a host name", cfg.Host)
	}
	switch cfg.Security {
	case "":
		cfg.Security = securitySTARTTLS
	case securitySTARTTLS, securityTLS, securityNone:
	default:
		bad("security %q: want starttls, tls or none", cfg.Security)
	}
	switch {
	case cfg.Port < 0 || cfg.Port > 65535:
		bad("port %d out of range", cfg.Port)
	case cfg.Port == 0 && cfg.Security == securityTLS:
		cfg.Port = 465
	case cfg.Port == 0 && cfg.Security == securityNone:
		cfg.Port = 25
	case cfg.Port == 0:
		cfg.Port = 587
	}
	from, err := mail.ParseAddress(cfg.From)
	switch {
	case err != nil:
		bad("from %q: %w", cfg.From, err)
	case !isASCII(from.Address):
		bad("from %q: non-ASCII addresses are not supported", cfg.From)
	}
	if cfg.HeloName == "" {
		cfg.HeloName = "localhost"
	} else if strings.ContainsAny(cfg.HeloName, " \t\r\n") {
		bad("helo name %q contains spaces", cfg.HeloName)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	} else if cfg.Timeout < 0 {
		bad("negative timeout %v", cfg.Timeout)
	}
	if cfg.Username == "" && cfg.Password != "" {
		bad("password set without username")
	}
	if cfg.Username != "" && cfg.Security == securityNone && cfg.Host != "" && !isLoopback(cfg.Host) {
		bad("refusing to authenticate to %s without TLS: use security starttls or tls", cfg.Host)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	tc := cfg.TLSConfig.Clone()
	if tc == nil {
		tc = &tls.Config{}
	}
	if tc.ServerName == "" {
		tc.ServerName = cfg.Host
	}
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	return &SMTPSender{
		cfg:  cfg,
		addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		from: from,
		tls:  tc,
		now:  time.Now,
	}, nil
}

// isLoopback reports whether host names this machine, where a password in
// clear text does not cross the network.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send delivers m over one SMTP conversation, bounded by ctx and by
// SMTPConfig.Timeout. Errors that wrap ErrPermanent will fail again;
// the others are worth retrying later. A cancelled or expired ctx gives an
// error that wraps ctx.Err().
func (s *SMTPSender) Send(ctx context.Context, m Message) error {
	rcpt, data, err := compose(s.from, m, s.now())
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("outbox: smtp send to %s: %w", s.addr, err)
	}

	var conn net.Conn
	if s.cfg.Security == securityTLS {
		d := &tls.Dialer{Config: s.tls}
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", s.addr)
	}
	if err != nil {
		return s.fail(ctx, "connect", err, false)
	}
	// go-smtp sets and clears a deadline around each command (its own
	// generous timeouts), so the whole conversation is bounded by closing the
	// connection when ctx ends; the error then says ctx.Err().
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	var c *smtp.Client
	if s.cfg.Security == securitySTARTTLS {
		// NewClientStartTLS greets with EHLO localhost before STARTTLS (go-smtp
		// offers no other way); HeloName is used once TLS is up.
		c, err = smtp.NewClientStartTLS(conn, s.tls)
		if err != nil {
			conn.Close()
			return s.fail(ctx, "starttls", err, false)
		}
	} else {
		c = smtp.NewClient(conn)
	}
	defer c.Close()

	if err := c.Hello(s.cfg.HeloName); err != nil {
		return s.fail(ctx, "hello", err, false)
	}
	if s.cfg.Username != "" {
		if err := s.auth(c); err != nil {
			return s.fail(ctx, "auth", err, false)
		}
	}
	if err := c.Mail(s.from.Address, nil); err != nil {
		return s.fail(ctx, "MAIL FROM", err, true)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return s.fail(ctx, "RCPT TO <"+rcpt+">", err, true)
	}
	w, err := c.Data()
	if err != nil {
		return s.fail(ctx, "DATA", err, true)
	}
	if _, err := w.Write(data); err != nil {
		return s.fail(ctx, "DATA", err, true)
	}
	if err := w.Close(); err != nil {
		return s.fail(ctx, "DATA", err, true)
	}
	// The server has taken the message: a failed QUIT changes nothing.
	_ = c.Quit()
	return nil
}

// auth logs in with PLAIN, or LOGIN when the server offers only that.
func (s *SMTPSender) auth(c *smtp.Client) error {
	if _, isTLS := c.TLSConnectionState(); !isTLS && !isLoopback(s.cfg.Host) {
		// NewSMTPSender already refuses this configuration.
		return errors.New("refusing to send a password without TLS")
	}
	var a sasl.Client
	switch {
	case c.SupportsAuth(sasl.Plain):
		a = sasl.NewPlainClient("", s.cfg.Username, s.cfg.Password)
	case c.SupportsAuth(sasl.Login):
		a = sasl.NewLoginClient(s.cfg.Username, s.cfg.Password)
	default:
		return errors.New("server offers neither AUTH PLAIN nor AUTH LOGIN")
	}
	return c.Auth(a)
}

// fail wraps err, the failure of step op, and classifies it.
//
// Only a 5xx answer to MAIL, RCPT or DATA is permanent: it is about this
// message (unknown recipient, message refused). Everything before that is
// about the relay or our configuration, so it is temporary even with a 5xx
// code: the queue keeps the message and retries once the operator has fixed
// things. In particular a wrong password (535) must not drop mail, and
// neither must 530 "authentication required" on MAIL FROM, which means
// credentials are missing from the configuration.
func (s *SMTPSender) fail(ctx context.Context, op string, err error, messageStep bool) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		if messageStep && se.Code >= 500 && se.Code <= 599 && se.Code != 530 {
			return fmt.Errorf("%w: smtp %s %s: %w", ErrPermanent, s.addr, op, err)
		}
		return fmt.Errorf("outbox: smtp %s %s: %w", s.addr, op, err)
	}
	if ctxErr := ctx.Err(); ctxErr != nil {
		// The connection was closed under the client: say why.
		return fmt.Errorf("outbox: smtp %s %s: %w (%v)", s.addr, op, ctxErr, err)
	}
	return fmt.Errorf("outbox: smtp %s %s: %w", s.addr, op, err)
}
