// Package smtptest runs a real SMTP server inside the test process, built on
// github.com/emersion/go-smtp, and decodes what it receives so tests can
// assert on the text a person would read.
package smtptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options shapes the server.
type Options struct {
	TLS         bool // offer STARTTLS with a self-signed certificate for 127.0.0.1 and localhost
	ImplicitTLS bool // listen with TLS from the first byte

	// Username and Password, when set, are required (AUTH) before MAIL FROM.
	// Without TLS the server still accepts AUTH, as a local relay would.
	Username, Password string
	// AuthMechanisms offered when Username is set: "PLAIN" (the default)
	// and/or "LOGIN".
	AuthMechanisms []string

	RejectRcpt func(addr string) bool // answer 550 for these recipients
}

// Received is one message the server accepted.
type Received struct {
	From     string   // envelope sender (MAIL FROM)
	To       []string // envelope recipients (RCPT TO)
	Data     []byte   // raw message as received
	Header   mail.Header
	Subject  string // decoded (RFC 2047)
	Text     string // decoded text/plain part, line endings as \n (see parsePart for the final one)
	HTML     string // decoded text/html part, line endings as \n
	TLS      bool   // the message came over TLS (STARTTLS or implicit)
	AuthUser string // user that authenticated, "" if none
}

// Server is a running SMTP server on 127.0.0.1.
type Server struct {
	t     testing.TB
	opt   Options
	srv   *smtp.Server
	addr  string
	port  int
	roots *x509.CertPool
	wg    sync.WaitGroup

	mu      sync.Mutex
	ln      net.Listener // nil while Down
	closed  bool
	msgs    []Received
	changed chan struct{} // closed and replaced when a message arrives
}

// Start starts a server on 127.0.0.1 with a free port; it stops at
// t.Cleanup.
func Start(t testing.TB, opt Options) *Server {
	t.Helper()
	s := &Server{t: t, opt: opt, changed: make(chan struct{})}
	if opt.Username != "" && len(opt.AuthMechanisms) == 0 {
		s.opt.AuthMechanisms = []string{sasl.Plain}
	}

	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 10 * time.Second
	srv.WriteTimeout = 10 * time.Second
	srv.MaxMessageBytes = 10 << 20
	srv.ErrorLog = log.New(io.Discard, "", 0)
	// A server that offers STARTTLS takes AUTH only after it, like real
	// submission servers; a plain one takes it anyway, like a local relay.
	srv.AllowInsecureAuth = !opt.TLS
	if opt.TLS || opt.ImplicitTLS {
		cert, roots, err := selfSigned()
		if err != nil {
			t.Fatalf("smtptest: certificate: %v", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		s.roots = roots
	}
	s.srv = srv

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("smtptest: listen: %v", err)
	}
	s.addr = ln.Addr().String()
	s.port = ln.Addr().(*net.TCPAddr).Port
	s.serve(ln)

	t.Cleanup(func() {
		s.mu.Lock()
		s.closed = true
		if s.ln != nil {
			// Serve may not have registered it with srv yet.
			s.ln.Close()
			s.ln = nil
		}
		s.mu.Unlock()
		srv.Close()
		s.wg.Wait()
	})
	return s
}

func (s *Server) serve(ln net.Listener) {
	if s.opt.ImplicitTLS {
		ln = tls.NewListener(ln, s.srv.TLSConfig)
	}
	s.ln = ln
	s.wg.Go(func() { s.srv.Serve(ln) })
}

// Host is "127.0.0.1".
func (s *Server) Host() string { return "127.0.0.1" }

// Port is the port the server listens on; it stays the same across Down and Up.
func (s *Server) Port() int { return s.port }

// Addr is "127.0.0.1:port".
func (s *Server) Addr() string { return s.addr }

// RootCAs holds the server's certificate, for the client's tls.Config; nil
// without TLS.
func (s *Server) RootCAs() *x509.CertPool { return s.roots }

// Messages returns the messages received so far, oldest first.
func (s *Server) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.msgs)
}

// WaitFor waits until at least n messages have arrived and returns them all;
// it fails the test after timeout.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			msgs := slices.Clone(s.msgs)
			s.mu.Unlock()
			return msgs
		}
		got, changed := len(s.msgs), s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("smtptest: %d message(s) received after %v, want at least %d", got, timeout, n)
			return nil
		}
	}
}

// Down closes the listener, so new connections are refused, as when the
// server is down. Conversations already under way go on.
func (s *Server) Down() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
}

// Up listens again on the same port after Down. It fails the test if the
// port has been taken meanwhile; call it from the test's goroutine.
func (s *Server) Up() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil || s.closed {
		return
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("smtptest: listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

func (s *Server) add(r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, r)
	close(s.changed)
	s.changed = make(chan struct{})
}

// session is one SMTP conversation (go-smtp makes a new one after STARTTLS).
type session struct {
	s        *Server
	conn     *smtp.Conn
	authUser string
	from     string
	to       []string
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) AuthMechanisms() []string {
	if ss.s.opt.Username == "" {
		return nil
	}
	return ss.s.opt.AuthMechanisms
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if ss.s.opt.Username == "" || !slices.Contains(ss.s.opt.AuthMechanisms, mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	check := func(username, password string) error {
		if username != ss.s.opt.Username || password != ss.s.opt.Password {
			return smtp.ErrAuthFailed
		}
		ss.authUser = username
		return nil
	}
	if mech == sasl.Login {
		return &loginServer{check: check}, nil
	}
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return smtp.ErrAuthFailed
		}
		return check(username, password)
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.s.opt.Username != "" && ss.authUser == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	ss.from = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.opt.RejectRcpt != nil && ss.s.opt.RejectRcpt(to) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user here"}
	}
	ss.to = append(ss.to, to)
	return nil
}

// Data refuses (554) a message it cannot decode, so a broken message shows
// up as an error at the client.
func (ss *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	rec, err := parse(data)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "smtptest: " + err.Error()}
	}
	rec.From = ss.from
	rec.To = slices.Clone(ss.to)
	_, rec.TLS = ss.conn.TLSConnectionState()
	rec.AuthUser = ss.authUser
	ss.s.add(rec)
	return nil
}

func (ss *session) Reset() {
	ss.from = ""
	ss.to = nil
}

func (ss *session) Logout() error { return nil }

// loginServer is the server side of the obsolete but common LOGIN
// mechanism, which go-sasl does not provide.
type loginServer struct {
	check    func(username, password string) error
	step     int
	username string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if response == nil { // no initial response: ask for the user name
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 1:
		l.username = string(response)
		l.step = 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.username, string(response))
	}
	return nil, false, errors.New("unexpected response")
}

// parse decodes a message: headers, subject, and the text and HTML parts
// of a single-part or multipart body (nested multiparts included).
func parse(data []byte) (Received, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		return Received{}, fmt.Errorf("read message: %w", err)
	}
	rec := Received{Data: data, Header: msg.Header}
	dec := new(mime.WordDecoder)
	if rec.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return Received{}, fmt.Errorf("subject: %w", err)
	}
	if err := parsePart(&rec, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, true); err != nil {
		return Received{}, err
	}
	return rec, nil
}

// top is set for the message body itself (not a part of a multipart).
func parsePart(rec *Received, contentType, encoding string, body io.Reader, top bool) error {
	if contentType == "" {
		contentType = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			// NextRawPart leaves the transfer encoding to us, so a wrong
			// encoding is caught here.
			p, err := mr.NextRawPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("%s: %w", mediaType, err)
			}
			if err := parsePart(rec, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, false); err != nil {
				return err
			}
		}
	}
	if cs := strings.ToLower(params["charset"]); cs != "" && cs != "utf-8" && cs != "us-ascii" {
		return fmt.Errorf("%s: unsupported charset %q", mediaType, cs)
	}
	lines := true // a line-oriented encoding
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, &newlineSkipper{r: body})
		lines = false
	case "", "7bit", "8bit", "binary":
	default:
		return fmt.Errorf("%s: unknown transfer encoding %q", mediaType, encoding)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("%s: decode: %w", mediaType, err)
	}
	text := strings.ReplaceAll(string(b), "\r\n", "\n")
	if top && lines {
		// SMTP makes every message end with CRLF, so that final line
		// break is not part of the text (in a multipart, the boundary
		// owns it).
		text = strings.TrimSuffix(text, "\n")
	}
	switch mediaType {
	case "text/plain":
		rec.Text = text
	case "text/html":
		rec.HTML = text
	}
	return nil
}

// newlineSkipper drops CR and LF, which base64 bodies carry every 76
// characters.
type newlineSkipper struct{ r io.Reader }

func (n *newlineSkipper) Read(p []byte) (int, error) {
	for {
		k, err := n.r.Read(p)
		j := 0
		for _, c := range p[:k] {
			if c != '\r' && c != '\n' {
				p[j] = c
				j++
			}
		}
		if j > 0 || err != nil {
			return j, err
		}
	}
}

// selfSigned makes a certificate for 127.0.0.1, ::1 and localhost, and a
// pool that trusts it.
func selfSigned() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, roots, nil
}
