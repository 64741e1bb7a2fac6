package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"campusid/internal/account"
	"campusid/internal/config"
	"campusid/internal/outbox"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// The test harness: a real campusid node (the same object graph as
// `campusid serve`) behind httptest, on a fresh SQLite file or PostgreSQL
// schema, with a settable clock and cheap password hashing.

// clock is a settable time source shared by a test's nodes.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// node is one running campusid server.
type node struct {
	t      testing.TB
	srv    *server
	http   *httptest.Server
	URL    string
	clock  *clock
	CAFile string // startTLSNode: the server's certificate, PEM
}

// testConfig is the default configuration of test nodes; tweak it before startNode.
func testConfig(t testing.TB, dbURL string) config.Config {
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database.URL = dbURL
	cfg.DataDir = t.TempDir()
	// Cheap hashing keeps the suite fast; the parameters are still argon2id.
	cfg.Password.Hash.MemoryKiB, cfg.Password.Hash.Iterations = 64, 1
	cfg.Login.MinFailureTime = config.Duration(time.Millisecond)
	cfg.Mail.PollPeriod = config.Duration(20 * time.Millisecond)
	cfg.Mail.RetryBase = config.Duration(50 * time.Millisecond)
	cfg.Mail.RetryMax = config.Duration(200 * time.Millisecond)
	// Nodes sharing a database share the key that encrypts the signing keys.
	cfg.Keys.EncryptionKey = "Y2FtcHVzaWQgdGVzdCBrZXkgLS0gMzIgYnl0ZXMgISE="
	return cfg
}

// startNode starts a node for cfg. PublicURL is set to the test server's
// address unless cfg has an https one (for cookie tests).
func startNode(t testing.TB, cfg config.Config, c *clock) *node {
	t.Helper()
	return startNodeOn(t, cfg, c, false)
}

// startTLSNode starts a node served over HTTPS at https://127.0.0.1:PORT,
// with httptest's certificate; CAFile is a PEM file of it, for clients
// outside the test process (mod_auth_cas, phpCAS), and the browsers of the
// node trust it.
func startTLSNode(t testing.TB, cfg config.Config, c *clock) *node {
	t.Helper()
	return startNodeOn(t, cfg, c, true)
}

func startNodeOn(t testing.TB, cfg config.Config, c *clock, tlsOn bool) *node {
	t.Helper()
	if c == nil {
		c = newClock()
	}
	hs := httptest.NewUnstartedServer(nil)
	scheme := "http://"
	if tlsOn {
		scheme = "https://"
	}
	if cfg.PublicURL == "http://localhost:8080" {
		cfg.PublicURL = scheme + hs.Listener.Addr().String()
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	logw := io.Discard
	if os.Getenv("CAMPUSID_TEST_LOG") != "" {
		logw = os.Stderr
	}
	log := slog.New(slog.NewTextHandler(logw, nil))
	ctx := context.Background()
	db, err := openStore(ctx, cfg, log, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := newServer(cfg, db, log, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.handler
	caFile := ""
	if tlsOn {
		hs.StartTLS()
		caFile = filepath.Join(t.TempDir(), "campusid-ca.pem")
		if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hs.Certificate().Raw}), 0o644); err != nil {
			t.Fatal(err)
		}
	} else {
		hs.Start()
	}
	bg, cancel := context.WithCancel(ctx)
	done, ddone := make(chan struct{}), make(chan struct{})
	go func() { srv.worker.Run(bg); close(done) }()
	srv.delivery.Poll, srv.delivery.Timeout = 20*time.Millisecond, 2*time.Second
	srv.delivery.RetryBase, srv.delivery.RetryMax = 50*time.Millisecond, 200*time.Millisecond
	go func() { srv.delivery.Run(bg); close(ddone) }()
	t.Cleanup(func() { hs.Close(); cancel(); <-done; <-ddone; db.Close() })
	return &node{t: t, srv: srv, http: hs, URL: hs.URL, clock: c, CAFile: caFile}
}

// newNode starts a node with the test configuration on a fresh database of dialect d.
func newNode(t testing.TB, d store.Dialect) *node {
	t.Helper()
	return startNode(t, testConfig(t, storetest.URL(t, d)), nil)
}

// forEachDB runs fn on SQLite and on PostgreSQL (when CAMPUSID_TEST_POSTGRES is set).
func forEachDB(t *testing.T, fn func(t *testing.T, d store.Dialect)) {
	for _, d := range []store.Dialect{store.SQLite, store.Postgres} {
		t.Run(string(d), func(t *testing.T) { fn(t, d) })
	}
}

// user creates an active account with a password through the same service the CLI uses.
func (n *node) user(ident, password string, emails ...string) store.Account {
	n.t.Helper()
	a, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: ident, Emails: emails,
		GivenName: strings.ToUpper(ident[:1]) + ident[1:], FamilyName: "Test", Password: password, Actor: "cli"})
	if err != nil {
		n.t.Fatalf("create %s: %v", ident, err)
	}
	return a
}

// mails returns the development mailbox (newest first), after letting the worker run.
func (n *node) mails() []outbox.DevMail {
	n.t.Helper()
	n.srv.worker.Process(context.Background())
	resp, err := http.Get(n.URL + "/dev/mail.json")
	if err != nil {
		n.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []outbox.DevMail
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		n.t.Fatal(err)
	}
	return out
}

// browser is an HTTP client with its own cookie jar that does not follow
// redirects by itself, so tests see each hop.
type browser struct {
	t      testing.TB
	n      *node
	client *http.Client
	lang   string
	ua     string
}

func (n *node) browser() *browser {
	jar, _ := cookiejar.New(nil)
	var tr http.RoundTripper
	if n.CAFile != "" {
		tr = n.http.Client().Transport // trusts the node's certificate
	}
	return &browser{t: n.t, n: n, lang: "fr-FR", ua: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", client: &http.Client{
		Jar:           jar,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// on returns a browser for another node that shares this one's cookies (two nodes behind one load balancer).
func (b *browser) on(n *node) *browser {
	c := *b
	c.n = n
	return &c
}

// page is a response with its body read.
type page struct {
	Status   int
	Location string
	Body     string
	Header   http.Header
}

func (b *browser) do(method, path string, form url.Values, hdr ...string) page {
	b.t.Helper()
	target := path
	if !strings.HasPrefix(path, "http") {
		target = b.n.URL + path
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("Accept-Language", b.lang)
	req.Header.Set("User-Agent", b.ua)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	io.Copy(&buf, resp.Body)
	return page{Status: resp.StatusCode, Location: resp.Header.Get("Location"), Body: buf.String(), Header: resp.Header}
}

func (b *browser) get(path string) page { b.t.Helper(); return b.do("GET", path, nil) }
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	return b.do("POST", path, form)
}

// follow GETs path and follows redirects on this server, returning the last page.
func (b *browser) follow(p page) page {
	b.t.Helper()
	for i := 0; i < 10 && p.Status >= 300 && p.Status < 400; i++ {
		p = b.get(p.Location)
	}
	return p
}

var reqRe = regexp.MustCompile(`name="req" value="([^"]+)"`)

// signIn runs the two steps of the sign-in and returns the final response
// of the password step (a redirect on success).
func (b *browser) signIn(login, password string, remember bool) page {
	b.t.Helper()
	p := b.post("/login", url.Values{"login": {login}})
	if p.Status != http.StatusSeeOther || !strings.Contains(p.Location, "/login/password?req=") {
		b.t.Fatalf("identify %q: status %d location %q\n%s", login, p.Status, p.Location, p.Body)
	}
	ref := p.Location[strings.Index(p.Location, "req=")+4:]
	f := url.Values{"req": {ref}, "password": {password}}
	if remember {
		f.Set("remember", "on")
	}
	return b.post("/login/password", f)
}

// mustSignIn signs in and fails the test unless it lands on the account page.
func (b *browser) mustSignIn(login, password string) {
	b.t.Helper()
	p := b.signIn(login, password, false)
	if p.Status != http.StatusSeeOther || p.Location != "/account" {
		b.t.Fatalf("sign-in of %q: status %d location %q\n%s", login, p.Status, p.Location, p.Body)
	}
}

// cookie returns the browser's cookie for the node by name.
func (b *browser) cookie(name string) *http.Cookie {
	u, _ := url.Parse(b.n.URL)
	for _, c := range b.client.Jar.Cookies(u) {
		if c.Name == name {
			return c
		}
	}
	return nil
}

const goodPassword = "Vq7!r2#Lp9_x"

// TestHarnessSignIn is the smallest end-to-end check: the harness works on both engines.
func TestHarnessSignIn(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		b := n.browser()
		b.mustSignIn("Jean.Dupont@univ.example", goodPassword)
		if p := b.get("/account"); p.Status != 200 || !strings.Contains(p.Body, "jean.dupont@univ.example") {
			t.Fatalf("account page: %d\n%s", p.Status, p.Body)
		}
	})
}

// TestHarnessTLSNode: a node over HTTPS signs people in (Secure cookies),
// and its certificate file is there for outside clients.
func TestHarnessTLSNode(t *testing.T) {
	n := startTLSNode(t, testConfig(t, storetest.URL(t, store.SQLite)), nil)
	n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	if !strings.HasPrefix(n.URL, "https://127.0.0.1:") || n.srv.cfg.PublicURL != n.URL {
		t.Fatalf("URL %q, public URL %q", n.URL, n.srv.cfg.PublicURL)
	}
	if pemBytes, err := os.ReadFile(n.CAFile); err != nil || !bytes.Contains(pemBytes, []byte("BEGIN CERTIFICATE")) {
		t.Fatalf("CA file: %v", err)
	}
	b := n.browser()
	b.mustSignIn("jdupont", goodPassword)
	if p := b.get("/account"); p.Status != http.StatusOK {
		t.Fatalf("account over https: %d %q", p.Status, p.Location)
	}
}
