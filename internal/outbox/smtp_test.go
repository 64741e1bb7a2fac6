package outbox

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"mime"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"campusid/internal/outbox/smtptest"
)

const testFrom = "campusid <noreply@univ.example>"

// newTestSender makes a sender for s (nil: edit sets the address), over
// plain SMTP unless edit says otherwise.
func newTestSender(t *testing.T, s *smtptest.Server, edit func(*SMTPConfig)) *SMTPSender {
	t.Helper()
	cfg := SMTPConfig{Security: "none", From: testFrom, Timeout: 2 * time.Second}
	if s != nil {
		cfg.Host, cfg.Port = s.Host(), s.Port()
		cfg.TLSConfig = &tls.Config{RootCAs: s.RootCAs()}
	}
	if edit != nil {
		edit(&cfg)
	}
	snd, err := NewSMTPSender(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return snd
}

func TestSMTPSenderSend(t *testing.T) {
	now := time.Date(2026, 3, 14, 9, 26, 53, 0, time.FixedZone("CET", 3600))
	textOnly := Message{ID: "row-1", To: "alice@example.org", Subject: "Your code", Text: "Your code is 123456.\nIt is valid 3 minutes.", Lang: "en"}
	french := Message{
		ID:      "0190f7a2-8c1e-7b2d-9a55-3c4e5f607182",
		To:      "Zoé Lefèvre <zoe.lefevre@etu.univ.example>",
		Subject: "Vérifiez votre adresse — campusid",
		Text: "Bonjour Zoé,\n\nCliquez sur le lien ci-dessous pour vérifier votre adresse électronique ; il reste valable 24 heures et ne sert qu'une fois :\n" +
			"https://id.univ.example/activate?token=" + strings.Repeat("x", 90) + "\n\nÀ bientôt,\nl'équipe numérique",
		HTML: "<p>Bonjour Zoé,</p>\n<p>Cliquez sur <a href=\"https://id.univ.example/activate?token=abc\">ce lien</a> pour vérifier votre adresse.</p>",
		Lang: "fr",
	}

	tests := []struct {
		name     string
		opt      smtptest.Options
		cfg      func(*SMTPConfig)
		msg      Message
		wantTLS  bool
		wantUser string
	}{
		{name: "plain text only", msg: textOnly},
		{name: "multipart with French accents", msg: french},
		{
			name: "starttls with auth",
			opt:  smtptest.Options{TLS: true, Username: "campusid", Password: "relay-pw"},
			cfg: func(c *SMTPConfig) {
				c.Security, c.Username, c.Password = "starttls", "campusid", "relay-pw"
				c.HeloName = "id.univ.example"
			},
			msg: french, wantTLS: true, wantUser: "campusid",
		},
		{
			name: "implicit TLS",
			opt:  smtptest.Options{ImplicitTLS: true, Username: "campusid", Password: "relay-pw"},
			cfg:  func(c *SMTPConfig) { c.Security, c.Username, c.Password = "tls", "campusid", "relay-pw" },
			msg:  textOnly, wantTLS: true, wantUser: "campusid",
		},
		{
			name: "auth LOGIN without TLS to a local relay",
			opt:  smtptest.Options{Username: "campusid", Password: "relay-pw", AuthMechanisms: []string{"LOGIN"}},
			cfg:  func(c *SMTPConfig) { c.Username, c.Password = "campusid", "relay-pw" },
			msg:  textOnly, wantUser: "campusid",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := smtptest.Start(t, tt.opt)
			snd := newTestSender(t, s, tt.cfg)
			snd.now = func() time.Time { return now }
			if err := snd.Send(t.Context(), tt.msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			got := s.WaitFor(t, 1, 2*time.Second)[0]

			to, _ := mail.ParseAddress(tt.msg.To)
			if got.From != "noreply@univ.example" || len(got.To) != 1 || got.To[0] != to.Address {
				t.Errorf("envelope %q -> %q, want noreply@univ.example -> %s", got.From, got.To, to.Address)
			}
			if got.TLS != tt.wantTLS || got.AuthUser != tt.wantUser {
				t.Errorf("TLS %v, AuthUser %q; want %v, %q", got.TLS, got.AuthUser, tt.wantTLS, tt.wantUser)
			}
			if got.Subject != tt.msg.Subject {
				t.Errorf("Subject %q, want %q", got.Subject, tt.msg.Subject)
			}
			if got.Text != tt.msg.Text {
				t.Errorf("Text\n%q\nwant\n%q", got.Text, tt.msg.Text)
			}
			if got.HTML != tt.msg.HTML {
				t.Errorf("HTML\n%q\nwant\n%q", got.HTML, tt.msg.HTML)
			}

			h := got.Header
			wantHeaders := map[string]string{
				"Message-ID":               "<" + tt.msg.ID + "@univ.example>",
				"MIME-Version":             "1.0",
				"Content-Language":         tt.msg.Lang,
				"Auto-Submitted":           "auto-generated",
				"X-Auto-Response-Suppress": "All",
			}
			for k, want := range wantHeaders {
				if h.Get(k) != want {
					t.Errorf("%s: %q, want %q", k, h.Get(k), want)
				}
			}
			if d, err := h.Date(); err != nil || !d.Equal(now) {
				t.Errorf("Date %q (%v), want %v", h.Get("Date"), err, now)
			}
			if from, err := h.AddressList("From"); err != nil || len(from) != 1 || from[0].Name != "campusid" || from[0].Address != "noreply@univ.example" {
				t.Errorf("From %q: %v %v", h.Get("From"), from, err)
			}
			if rcpt, err := h.AddressList("To"); err != nil || len(rcpt) != 1 || *rcpt[0] != *to {
				t.Errorf("To %q: %v %v, want %v", h.Get("To"), rcpt, err, to)
			}
			mt, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
			if wantMT := map[bool]string{true: "text/plain", false: "multipart/alternative"}[tt.msg.HTML == ""]; mt != wantMT {
				t.Errorf("Content-Type %q, want %s", h.Get("Content-Type"), wantMT)
			}
			if strings.Contains(tt.msg.Subject, "é") && !strings.HasPrefix(h.Get("Subject"), "=?utf-8?q?") {
				t.Errorf("raw Subject %q is not Q-encoded", h.Get("Subject"))
			}
			checkWire(t, got.Data)
		})
	}
}

// checkWire checks what must hold for any message on the wire: CRLF line
// endings, 7-bit data, no line over 998 bytes, body lines of at most 76
// (quoted-printable) and header lines folded to 78 where there is a space to
// fold at (an encoded word of the maximum 75 characters after "Subject: "
// cannot be).
func checkWire(t *testing.T, data []byte) {
	t.Helper()
	inBody := false
	for i, line := range bytes.Split(data, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Errorf("line %d has a bare CR or LF: %q", i+1, line)
		}
		for _, c := range line {
			if c >= 0x80 {
				t.Errorf("line %d is not 7-bit: %q", i+1, line)
				break
			}
		}
		switch {
		case len(line) == 0:
			inBody = true
		case len(line) > 998:
			t.Errorf("line %d is %d bytes long", i+1, len(line))
		case inBody && len(line) > 76:
			t.Errorf("body line %d is %d bytes long: %q", i+1, len(line), line)
		case !inBody && len(line) > 78 && bytes.Contains(bytes.TrimSpace(line[bytes.IndexByte(line, ':')+1:]), []byte(" ")):
			t.Errorf("header line %d is %d bytes long and not folded: %q", i+1, len(line), line)
		}
	}
}

func TestSMTPSenderFailures(t *testing.T) {
	msg := Message{ID: "row-7", To: "alice@example.org", Subject: "Code", Text: "123456", Lang: "en"}
	tests := []struct {
		name      string
		opt       smtptest.Options
		cfg       func(*SMTPConfig)
		msg       func(*Message)
		permanent bool
		code      int    // SMTP code carried by the error, 0 = none
		contains  string // in the error text
	}{
		{
			name:     "starttls required but not offered",
			cfg:      func(c *SMTPConfig) { c.Security = "starttls" },
			contains: "STARTTLS",
		},
		{
			name:     "certificate not trusted",
			opt:      smtptest.Options{TLS: true},
			cfg:      func(c *SMTPConfig) { c.Security, c.TLSConfig = "starttls", nil },
			contains: "certificate",
		},
		{
			// Temporary on purpose: the queue keeps the mail until the
			// operator fixes the password.
			name: "wrong password",
			opt:  smtptest.Options{TLS: true, Username: "campusid", Password: "relay-pw"},
			cfg:  func(c *SMTPConfig) { c.Security, c.Username, c.Password = "starttls", "campusid", "wrong" },
			code: 535,
		},
		{
			name: "credentials missing from the configuration",
			opt:  smtptest.Options{Username: "campusid", Password: "relay-pw"},
			code: 530,
		},
		{
			name:     "server offers no AUTH",
			cfg:      func(c *SMTPConfig) { c.Username, c.Password = "campusid", "relay-pw" },
			contains: "neither AUTH PLAIN nor AUTH LOGIN",
		},
		{
			name:      "recipient rejected",
			opt:       smtptest.Options{RejectRcpt: func(a string) bool { return a == "alice@example.org" }},
			permanent: true,
			code:      550,
			contains:  "No such user here",
		},
		{
			name:      "header injection in To",
			msg:       func(m *Message) { m.To = "alice@example.org\r\nBcc: eve@example.org" },
			permanent: true,
			contains:  "line break",
		},
		{
			name:      "header injection in Subject",
			msg:       func(m *Message) { m.Subject = "Code\nBcc: eve@example.org" },
			permanent: true,
			contains:  "line break",
		},
		{
			name:      "invalid address",
			msg:       func(m *Message) { m.To = "alice at example.org" },
			permanent: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := smtptest.Start(t, tt.opt)
			snd := newTestSender(t, s, tt.cfg)
			m := msg
			if tt.msg != nil {
				tt.msg(&m)
			}
			err := snd.Send(t.Context(), m)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			t.Logf("error: %v", err)
			if got := errors.Is(err, ErrPermanent); got != tt.permanent {
				t.Errorf("permanent = %v, want %v", got, tt.permanent)
			}
			var se *smtp.SMTPError
			if tt.code != 0 && (!errors.As(err, &se) || se.Code != tt.code) {
				t.Errorf("want SMTP code %d", tt.code)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error does not contain %q", tt.contains)
			}
			if strings.Contains(err.Error(), "relay-pw") {
				t.Error("error shows the password")
			}
			if n := len(s.Messages()); n != 0 {
				t.Errorf("%d message(s) delivered", n)
			}
		})
	}
}

func TestSMTPSenderServerDown(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	snd := newTestSender(t, s, nil)
	m := Message{ID: "row-9", To: "alice@example.org", Subject: "Code", Text: "123456"}

	s.Down()
	err := snd.Send(t.Context(), m)
	if err == nil {
		t.Fatal("Send succeeded while the server is down")
	}
	if errors.Is(err, ErrPermanent) {
		t.Errorf("server down is permanent: %v", err)
	}

	s.Up()
	if err := snd.Send(t.Context(), m); err != nil {
		t.Fatalf("Send after Up: %v", err)
	}
	if got := s.WaitFor(t, 1, 2*time.Second); got[0].Header.Get("Message-ID") != "<row-9@univ.example>" {
		t.Errorf("Message-ID %q", got[0].Header.Get("Message-ID"))
	}
}

// silentServer accepts connections and never says a word, like a relay that
// hangs.
func silentServer(t *testing.T) (host string, port int) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	a := ln.Addr().(*net.TCPAddr)
	return a.IP.String(), a.Port
}

func TestSMTPSenderContext(t *testing.T) {
	m := Message{ID: "row-3", To: "alice@example.org", Subject: "Code", Text: "123456"}

	t.Run("cancelled before sending", func(t *testing.T) {
		s := smtptest.Start(t, smtptest.Options{})
		snd := newTestSender(t, s, nil)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		err := snd.Send(ctx, m)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrPermanent) {
			t.Errorf("Send: %v, want a temporary context.Canceled", err)
		}
		if n := len(s.Messages()); n != 0 {
			t.Errorf("%d message(s) delivered", n)
		}
	})

	t.Run("cancelled while the server hangs", func(t *testing.T) {
		host, port := silentServer(t)
		snd := newTestSender(t, nil, func(c *SMTPConfig) { c.Host, c.Port, c.Timeout = host, port, 10*time.Second })
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		start := time.Now()
		err := snd.Send(ctx, m)
		if !errors.Is(err, context.Canceled) || errors.Is(err, ErrPermanent) {
			t.Errorf("Send: %v, want a temporary context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Send returned after %v", d)
		}
	})

	t.Run("timeout while the server hangs", func(t *testing.T) {
		host, port := silentServer(t)
		snd := newTestSender(t, nil, func(c *SMTPConfig) { c.Host, c.Port, c.Timeout = host, port, 200*time.Millisecond })
		start := time.Now()
		err := snd.Send(t.Context(), m)
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrPermanent) {
			t.Errorf("Send: %v, want a temporary context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Send returned after %v", d)
		}
	})
}

func TestNewSMTPSender(t *testing.T) {
	tests := []struct {
		name  string
		cfg   SMTPConfig
		want  string // in the error; "" = valid
		check func(t *testing.T, s *SMTPSender)
	}{
		{
			name: "defaults",
			cfg:  SMTPConfig{Host: "smtp.univ.example", From: testFrom},
			check: func(t *testing.T, s *SMTPSender) {
				if s.cfg.Security != "starttls" || s.addr != "smtp.univ.example:587" || s.cfg.HeloName != "localhost" || s.cfg.Timeout != 30*time.Second {
					t.Errorf("defaults: %+v %s", s.cfg, s.addr)
				}
				if s.tls.ServerName != "smtp.univ.example" {
					t.Errorf("TLS ServerName %q", s.tls.ServerName)
				}
			},
		},
		{
			name:  "implicit TLS port",
			cfg:   SMTPConfig{Host: "smtp.univ.example", Security: "tls", From: testFrom},
			check: func(t *testing.T, s *SMTPSender) { checkAddr(t, s, "smtp.univ.example:465") },
		},
		{
			name:  "plain port",
			cfg:   SMTPConfig{Host: "localhost", Security: "none", From: testFrom},
			check: func(t *testing.T, s *SMTPSender) { checkAddr(t, s, "localhost:25") },
		},
		{
			name: "auth refused over plaintext to a remote host",
			cfg:  SMTPConfig{Host: "smtp.univ.example", Security: "none", Username: "u", Password: "p", From: testFrom},
			want: "refusing to authenticate to smtp.univ.example without TLS",
		},
		{name: "auth over plaintext to localhost", cfg: SMTPConfig{Host: "localhost", Security: "none", Username: "u", Password: "p", From: testFrom}},
		{name: "auth over plaintext to 127.0.0.1", cfg: SMTPConfig{Host: "127.0.0.1", Security: "none", Username: "u", Password: "p", From: testFrom}},
		{name: "auth over plaintext to ::1", cfg: SMTPConfig{Host: "::1", Security: "none", Username: "u", Password: "p", From: testFrom},
			check: func(t *testing.T, s *SMTPSender) { checkAddr(t, s, "[::1]:25") }},
		{name: "invalid From", cfg: SMTPConfig{Host: "smtp.univ.example", From: "campusid"}, want: `from "campusid"`},
		{name: "missing From", cfg: SMTPConfig{Host: "smtp.univ.example"}, want: `from ""`},
		{name: "unknown security", cfg: SMTPConfig{Host: "smtp.univ.example", Security: "ssl", From: testFrom}, want: `security "ssl"`},
		{name: "password without username", cfg: SMTPConfig{Host: "smtp.univ.example", Password: "p", From: testFrom}, want: "password set without username"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := NewSMTPSender(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("NewSMTPSender: %v", err)
				}
				if tt.check != nil {
					tt.check(t, s)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewSMTPSender: %v, want an error containing %q", err, tt.want)
			}
		})
	}

	t.Run("every problem listed", func(t *testing.T) {
		_, err := NewSMTPSender(SMTPConfig{Port: 70000, Security: "ssl", From: "x", Timeout: -1})
		for _, want := range []string{"host is empty", `security "ssl"`, "port 70000", `from "x"`, "negative timeout"} {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v does not contain %q", err, want)
			}
		}
	})

	t.Run("password redacted in logs", func(t *testing.T) {
		v := SMTPConfig{Host: "h", Username: "u", Password: "relay-pw"}.LogValue()
		if strings.Contains(v.String(), "relay-pw") {
			t.Errorf("LogValue shows the password: %s", v)
		}
	})
}

func checkAddr(t *testing.T, s *SMTPSender, want string) {
	t.Helper()
	if s.addr != want {
		t.Errorf("addr %q, want %q", s.addr, want)
	}
}

func TestCompose(t *testing.T) {
	from := &mail.Address{Name: "campusid", Address: "noreply@univ.example"}
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := Message{ID: "row-1", To: "alice@example.org", Subject: "Code", Text: "123456", Lang: "fr"}

	t.Run("long subject is folded and decodes back", func(t *testing.T) {
		m := base
		m.Subject = strings.Repeat("Réinitialisation du mot de passe de votre compte universitaire ", 3)
		data, err := Compose(from, m, now)
		if err != nil {
			t.Fatal(err)
		}
		checkWire(t, data)
		msg, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		got, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
		if err != nil || got != m.Subject {
			t.Errorf("Subject decodes to %q (%v), want %q", got, err, m.Subject)
		}
	})

	t.Run("empty ID gets a random Message-ID", func(t *testing.T) {
		m := base
		m.ID = ""
		data, err := Compose(from, m, now)
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`\r\nMessage-ID: <[A-Z2-7]{26}@univ\.example>\r\n`).Match(data) {
			t.Errorf("no random Message-ID in\n%s", data)
		}
	})

	t.Run("no Content-Language without Lang", func(t *testing.T) {
		m := base
		m.Lang = ""
		data, err := Compose(from, m, now)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, []byte("Content-Language")) {
			t.Errorf("Content-Language present:\n%s", data)
		}
	})

	invalid := []struct {
		name string
		edit func(*Message)
	}{
		{"CR in To", func(m *Message) { m.To = "alice@example.org\rBcc: eve@example.org" }},
		{"LF in To display name", func(m *Message) { m.To = "\"Alice\nBcc: eve@example.org\" <alice@example.org>" }},
		{"CRLF in Subject", func(m *Message) { m.Subject = "Hi\r\nBcc: eve@example.org" }},
		{"empty To", func(m *Message) { m.To = "" }},
		{"two recipients", func(m *Message) { m.To = "alice@example.org, eve@example.org" }},
		{"non-ASCII address", func(m *Message) { m.To = "zoé@example.org" }},
		{"ID with a space", func(m *Message) { m.ID = "row 1" }},
		{"ID with angle brackets", func(m *Message) { m.ID = "x>\r\nBcc: eve@example.org" }},
		{"Lang with a line break", func(m *Message) { m.Lang = "fr\r\nBcc: eve@example.org" }},
		{"empty text", func(m *Message) { m.Text = "" }},
		{"invalid UTF-8", func(m *Message) { m.Text = "caf\xe9" }},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			tt.edit(&m)
			data, err := Compose(from, m, now)
			if !errors.Is(err, ErrPermanent) {
				t.Errorf("Compose: %v, want ErrPermanent; message:\n%s", err, data)
			}
		})
	}
}
