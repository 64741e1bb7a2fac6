package smtptest_test

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"campusid/internal/outbox/smtptest"
)

// A multipart message written by hand, with a base64 part and a
// quoted-printable part, as another mailer would send it.
const handWritten = "From: a@example.org\r\n" +
	"To: b@example.org\r\n" +
	"Subject: =?utf-8?q?=C3=89t=C3=A9?=\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=XX\r\n" +
	"\r\n" +
	"--XX\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"w4l0w6kK\r\n" + // "Été\n"
	"--XX\r\n" +
	"Content-Type: text/html; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"<p>=C3=89t=C3=A9</p>\r\n" +
	"--XX--\r\n"

func TestServer(t *testing.T) {
	tests := []struct {
		name     string
		opt      smtptest.Options
		dial     func(s *smtptest.Server) (*smtp.Client, error)
		auth     sasl.Client
		wantTLS  bool
		wantUser string
	}{
		{
			name: "plain",
			dial: func(s *smtptest.Server) (*smtp.Client, error) { return smtp.Dial(s.Addr()) },
		},
		{
			name: "starttls with AUTH LOGIN",
			opt:  smtptest.Options{TLS: true, Username: "relay", Password: "s3cret", AuthMechanisms: []string{"LOGIN"}},
			dial: func(s *smtptest.Server) (*smtp.Client, error) {
				return smtp.DialStartTLS(s.Addr(), &tls.Config{RootCAs: s.RootCAs(), ServerName: s.Host()})
			},
			auth:     sasl.NewLoginClient("relay", "s3cret"),
			wantTLS:  true,
			wantUser: "relay",
		},
		{
			name: "implicit TLS with AUTH PLAIN",
			opt:  smtptest.Options{ImplicitTLS: true, Username: "relay", Password: "s3cret"},
			dial: func(s *smtptest.Server) (*smtp.Client, error) {
				return smtp.DialTLS(s.Addr(), &tls.Config{RootCAs: s.RootCAs(), ServerName: "localhost"})
			},
			auth:     sasl.NewPlainClient("", "relay", "s3cret"),
			wantTLS:  true,
			wantUser: "relay",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := smtptest.Start(t, tt.opt)
			c, err := tt.dial(s)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.auth != nil {
				if err := c.Auth(tt.auth); err != nil {
					t.Fatal(err)
				}
			}
			if err := c.SendMail("a@example.org", []string{"b@example.org"}, strings.NewReader(handWritten)); err != nil {
				t.Fatal(err)
			}
			got := s.WaitFor(t, 1, 2*time.Second)[0]
			if got.From != "a@example.org" || len(got.To) != 1 || got.To[0] != "b@example.org" {
				t.Errorf("envelope = %q -> %q", got.From, got.To)
			}
			if got.Subject != "Été" || got.Text != "Été\n" || got.HTML != "<p>Été</p>" {
				t.Errorf("decoded subject %q, text %q, html %q", got.Subject, got.Text, got.HTML)
			}
			if got.TLS != tt.wantTLS || got.AuthUser != tt.wantUser {
				t.Errorf("TLS %v, AuthUser %q; want %v, %q", got.TLS, got.AuthUser, tt.wantTLS, tt.wantUser)
			}
		})
	}
}

func TestServerRefusals(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{
		Username:   "relay",
		Password:   "s3cret",
		RejectRcpt: func(addr string) bool { return addr == "nobody@example.org" },
	})
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var se *smtp.SMTPError
	if err := c.Mail("a@example.org", nil); !errors.As(err, &se) || se.Code != 530 {
		t.Errorf("MAIL before AUTH: %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "relay", "wrong")); !errors.As(err, &se) || se.Code != 535 {
		t.Errorf("AUTH with a wrong password: %v, want 535", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "relay", "s3cret")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("nobody@example.org", nil); !errors.As(err, &se) || se.Code != 550 {
		t.Errorf("RCPT nobody: %v, want 550", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages received", n)
	}
}

func TestServerDownUp(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	s.Down()
	if conn, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		conn.Close()
		t.Fatal("connection accepted while down")
	}
	s.Up()
	c, err := smtp.Dial(s.Addr())
	if err != nil {
		t.Fatalf("after Up: %v", err)
	}
	defer c.Close()
	if err := c.Noop(); err != nil {
		t.Fatal(err)
	}
}
