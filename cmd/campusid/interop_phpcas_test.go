package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"campusid/internal/cas"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
	"campusid/internal/testenv"
)

// Interoperability with a real phpCAS (Debian's php-cas, phpCAS 1.6): a PHP
// application served by PHP's built-in server and configured as
// docs/cas.md, "Configuring clients", says (the pages are in
// testdata/phpcas) signs people in through campusid's /cas/ over HTTPS,
// gets the registered attributes with CAS 3.0 and CAS 2.0, follows the
// gateway, and ends its sessions when campusid's single logout calls it.

// phpCASApp is the PHP application: PHP's built-in server on
// 127.0.0.1:PORT serving a copy of testdata/phpcas.
type phpCASApp struct {
	base    string      // http://127.0.0.1:PORT, phpCAS's service base URL
	URL     string      // base + "/", the registered service URL
	sessDir string      // session.save_path
	logFile string      // phpCAS's debug log
	out     *syncBuffer // the PHP server's output, for failure messages
}

// phpBinary returns the PHP interpreter for the test: CAMPUSID_TEST_PHP, or
// /usr/bin/php when Debian's php-cas is installed next to it.
func phpBinary(t *testing.T) string {
	t.Helper()
	const how = "apt-get install php-cli php-cas php-curl php-xml, or set CAMPUSID_TEST_PHP"
	php := os.Getenv("CAMPUSID_TEST_PHP")
	if php == "" {
		if _, err := os.Stat("/usr/share/php/CAS.php"); err == nil {
			if _, err := os.Stat("/usr/bin/php"); err == nil {
				php = "/usr/bin/php"
			}
		}
	}
	if php == "" {
		testenv.Missing(t, "PHP with phpCAS", how)
	}
	// phpCAS needs the curl and DOM (php-xml) extensions.
	out, err := exec.Command(php, "-d", "error_reporting=E_ALL & ~E_DEPRECATED & ~E_USER_DEPRECATED", "-r",
		`require "CAS.php"; foreach (["curl", "dom"] as $e) { if (!extension_loaded($e)) { echo "no $e extension\n"; exit(1); } } echo PHPCAS_VERSION;`).CombinedOutput()
	if err != nil {
		testenv.Missing(t, "PHP with phpCAS", fmt.Sprintf("%s cannot load phpCAS (%v) %s; %s", php, err, bytes.TrimSpace(out), how))
	}
	t.Logf("%s with phpCAS %s", php, bytes.TrimSpace(out))
	return php
}

// phpString writes s as a PHP single-quoted string literal.
func phpString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

var phpServerStartedRe = regexp.MustCompile(`Development Server \(http://127\.0\.0\.1:(\d+)\) started`)

// startPhpCASApp starts the PHP application with the interpreter php (see
// phpBinary) for node n, and registers it in n as the prefix service
// "gestion" with its index.php as logout URL. The server is killed at the
// end of the test; when the test fails, its output and phpCAS's debug log
// are printed.
func startPhpCASApp(t *testing.T, n *node, php string) *phpCASApp {
	t.Helper()
	nodeURL, err := url.Parse(n.URL)
	if err != nil {
		t.Fatal(err)
	}
	casPort, err := strconv.Atoi(nodeURL.Port())
	if err != nil || nodeURL.Hostname() != "127.0.0.1" || n.CAFile == "" {
		t.Fatalf("phpCAS needs a TLS node on 127.0.0.1, have %s (CA file %q)", n.URL, n.CAFile)
	}

	tmp := t.TempDir()
	docRoot, sessDir := filepath.Join(tmp, "www"), filepath.Join(tmp, "sessions")
	for _, d := range []string{docRoot, sessDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sources, err := filepath.Glob(filepath.Join("testdata", "phpcas", "*.php"))
	if err != nil || len(sources) == 0 {
		t.Fatalf("testdata/phpcas: %v", err)
	}
	for _, src := range sources {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(docRoot, filepath.Base(src)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	a := &phpCASApp{sessDir: sessDir, logFile: filepath.Join(tmp, "phpCAS.log"), out: &syncBuffer{}}
	cmd := exec.Command(php,
		"-d", "session.save_path="+sessDir,
		"-d", "session.gc_probability=0",
		// Including CAS.php (Debian's way) prints deprecation notices.
		"-d", "error_reporting=E_ALL & ~E_DEPRECATED & ~E_USER_DEPRECATED",
		"-d", "display_errors=stderr",
		"-S", "127.0.0.1:0", "-t", docRoot)
	cmd.Dir = docRoot
	cmd.Stdout, cmd.Stderr = a.out, a.out
	// One process: no PHP_CLI_SERVER_WORKERS children that Kill would miss.
	cmd.Env = slices.DeleteFunc(os.Environ(), func(e string) bool { return strings.HasPrefix(e, "PHP_CLI_SERVER_WORKERS=") })
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", php, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("PHP server output:\n%s", a.out.String())
			log, _ := os.ReadFile(a.logFile)
			if len(log) > 64<<10 {
				log = append([]byte("...\n"), log[len(log)-64<<10:]...)
			}
			t.Logf("phpCAS debug log (%s):\n%s", a.logFile, log)
		}
	})

	// The server picks its port and says which.
	port := ""
	for deadline := time.Now().Add(15 * time.Second); port == ""; time.Sleep(10 * time.Millisecond) {
		if m := phpServerStartedRe.FindStringSubmatch(a.out.String()); m != nil {
			port = m[1]
			break
		}
		select {
		case <-exited:
			t.Fatalf("the PHP server exited: %v\n%s", cmd.ProcessState, a.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the PHP server did not start:\n%s", a.out.String())
		}
	}
	a.base = "http://" + net.JoinHostPort("127.0.0.1", port)
	a.URL = a.base + "/"
	config := fmt.Sprintf("<?php\nreturn [\n\t'cas_host' => '127.0.0.1',\n\t'cas_port' => %d,\n\t'base_url' => %s,\n\t'ca_file' => %s,\n\t'log' => %s,\n];\n",
		casPort, phpString(a.base), phpString(n.CAFile), phpString(a.logFile))
	if err := os.WriteFile(filepath.Join(docRoot, "config.php"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}

	// It answers once it serves app.php (which loads phpCAS and defines
	// the application, printing nothing).
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(a.base + "/app.php")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || len(bytes.TrimSpace(body)) != 0 {
				t.Fatalf("GET /app.php: %d\n%s", resp.StatusCode, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the PHP server at %s does not answer: %v", a.base, err)
		}
	}

	if _, err := n.cli("cas-service", "add", "--id", "gestion", "--name", "Gestion", "--url", a.URL, "--match", "prefix",
		"--attributes", "uid,mail,displayName,givenName,sn", "--logout-url", a.base+"/index.php"); err != nil {
		t.Fatal(err)
	}
	return a
}

// sessionFile is the PHP session file of the session phpCAS names after
// ticket (its default: the SHA-256 of the ticket, no salt).
func (a *phpCASApp) sessionFile(ticket string) string {
	return filepath.Join(a.sessDir, "sess_"+phpCASSessionID(ticket))
}

func phpCASSessionID(ticket string) string {
	sum := sha256.Sum256([]byte(ticket))
	return hex.EncodeToString(sum[:])
}

// phpCASView is what a page of the PHP application prints.
type phpCASView struct {
	Page          string         `json:"page"`
	Authenticated bool           `json:"authenticated"`
	SessionID     string         `json:"session_id"`
	User          string         `json:"user"`
	Attributes    map[string]any `json:"attributes"`
	Ticket        string         `json:"ticket"`       // the ticket phpCAS validated for this session
	ValidateURL   string         `json:"validate_url"` // where, without the query
}

// phpCASPage reads a page of the PHP application, failing unless p is one.
func phpCASPage(t *testing.T, what string, p page) phpCASView {
	t.Helper()
	var v phpCASView
	if p.Status != http.StatusOK || !strings.HasPrefix(p.Header.Get("Content-Type"), "application/json") {
		t.Fatalf("%s: want the application's JSON page, got %d %q\n%s", what, p.Status, p.Location, p.Body)
	}
	dec := json.NewDecoder(strings.NewReader(p.Body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, p.Body)
	}
	return v
}

// stringAttributes returns the attributes as name → value, failing on a
// value that is not a single string.
func (v phpCASView) stringAttributes(t *testing.T, what string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, x := range v.Attributes {
		s, ok := x.(string)
		if !ok {
			t.Fatalf("%s: attribute %s is %#v, want one string", what, k, x)
		}
		out[k] = s
	}
	return out
}

// wantPhpToCAS checks that visited went from target to campusid's
// /cas/login for service target (with gateway=true when gateway is set).
func wantPhpToCAS(t *testing.T, what string, n *node, target string, gateway bool, visited []string) {
	t.Helper()
	if len(visited) < 2 || visited[0] != target || !strings.HasPrefix(visited[1], n.URL+"/cas/login?") {
		t.Fatalf("%s: want %s then campusid's /cas/login; visited %q", what, target, visited)
	}
	q, _ := url.ParseQuery(strings.SplitN(visited[1], "?", 2)[1])
	if q.Get("service") != target || (q.Get("gateway") == "true") != gateway {
		t.Fatalf("%s: /cas/login with %v, want service %q and gateway %v", what, q, target, gateway)
	}
}

// wantPhpTicketRoundTrip checks that visited ends with target?ticket=ST-...
// then target again (phpCAS removes the ticket from the URL after
// validating it), and returns the ticket.
func wantPhpTicketRoundTrip(t *testing.T, what, target string, visited []string) string {
	t.Helper()
	if len(visited) < 2 || visited[len(visited)-1] != target {
		t.Fatalf("%s: want to end on %s; visited %q", what, target, visited)
	}
	landing := visited[len(visited)-2]
	tk := ""
	if u, err := url.Parse(landing); err == nil {
		tk = u.Query().Get("ticket")
	}
	if !strings.HasPrefix(landing, target+"?ticket=ST-") || !strings.HasPrefix(tk, "ST-") {
		t.Fatalf("%s: want %s?ticket=ST-... before the page; visited %q", what, target, visited)
	}
	return tk
}

// TestInteropPhpCAS: a PHP application protected by a real phpCAS, set up as
// docs/cas.md says. Without a session phpCAS sends the browser to
// campusid's /cas/login and on to the sign-in page; after it, phpCAS
// validates the ticket at /cas/p3/serviceValidate over HTTPS (trusting the
// node's certificate only) and shows the campusid identifier with exactly
// the registered attributes; a CAS 2.0 page gets them from
// /cas/serviceValidate; the gateway returns to the application anonymous
// without a campusid session and signed in with one. Signing out of campusid
// makes the delivery worker post a logoutRequest per ticket to the logout
// URL, where phpCAS destroys the sessions named after the tickets: the
// pages go back to campusid.
func TestInteropPhpCAS(t *testing.T) {
	php := phpBinary(t)
	n := startTLSNode(t, testConfig(t, storetest.URL(t, store.SQLite)), nil)
	acct := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	app := startPhpCASApp(t, n, php)
	index, cas2, gateway := app.URL, app.base+"/cas2.php", app.base+"/gateway.php"
	b := n.browser()

	// The registered attributes, and the three campusid always adds.
	wantAttrs := map[string]string{"uid": "jdupont", "mail": "jean.dupont@univ.example", "displayName": acct.DisplayName,
		"givenName": acct.GivenName, "sn": acct.FamilyName}
	if slices.Contains(slices.Collect(maps.Values(wantAttrs)), "") {
		t.Fatalf("the test account lacks an attribute: %v", wantAttrs)
	}
	checkSignedIn := func(what string, v phpCASView, ticket, endpoint, fromNewLogin string, signedInAt time.Time) {
		t.Helper()
		if !v.Authenticated || v.User != "jdupont" || v.Ticket != ticket || v.ValidateURL != n.URL+endpoint {
			t.Fatalf("%s: authenticated %v as %q with ticket %q validated at %q; want jdupont, %s, %s%s",
				what, v.Authenticated, v.User, v.Ticket, v.ValidateURL, ticket, n.URL, endpoint)
		}
		got := v.stringAttributes(t, what)
		want := maps.Clone(wantAttrs)
		want["isFromNewLogin"], want["longTermAuthenticationRequestTokenUsed"] = fromNewLogin, "false"
		authDate, err := time.Parse(time.RFC3339, got["authenticationDate"])
		if err != nil || authDate.Before(signedInAt.Add(-time.Second)) || authDate.After(n.clock.Now()) {
			t.Fatalf("%s: authenticationDate %q, want the sign-in time %v: %v", what, got["authenticationDate"], signedInAt, err)
		}
		want["authenticationDate"] = got["authenticationDate"]
		if !maps.Equal(got, want) {
			t.Fatalf("%s: attributes\n%v\nwant\n%v", what, got, want)
		}
		// phpCAS keeps the person in a PHP session named after the ticket,
		// the one a logoutRequest for that ticket ends.
		if v.SessionID != phpCASSessionID(ticket) {
			t.Fatalf("%s: PHP session %q, want %q (named after %s)", what, v.SessionID, phpCASSessionID(ticket), ticket)
		}
		if _, err := os.Stat(app.sessionFile(ticket)); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}

	// Gateway without a campusid session: to /cas/login?gateway=true and
	// straight back, anonymous, without the sign-in page.
	p, visited := casNavigate(b, gateway)
	wantPhpToCAS(t, "gateway without a session", n, gateway, true, visited)
	if len(visited) != 3 || visited[2] != gateway {
		t.Fatalf("gateway without a session: want %s, /cas/login and back without a ticket; visited %q", gateway, visited)
	}
	if v := phpCASPage(t, "gateway without a session", p); v.Page != "gateway" || v.Authenticated || v.User != "" {
		t.Fatalf("gateway without a session: %+v, want anonymous", v)
	}

	// No session: phpCAS sends the browser to campusid, which shows its sign-in page.
	p, visited = casNavigate(b, index)
	wantPhpToCAS(t, "CAS 3.0 page without a session", n, index, false, visited)
	if len(visited) != 3 || !strings.HasPrefix(visited[2], n.URL+"/login?") {
		t.Fatalf("CAS 3.0 page without a session: want campusid's sign-in page after /cas/login; visited %q", visited)
	}

	// Signing in lands back with a ticket; phpCAS validates it at
	// /cas/p3/serviceValidate and shows the person without the ticket in the URL.
	signedInAt := n.clock.Now()
	p, visited = casSignInPage(t, b, visited, p, "jdupont", goodPassword)
	tk3 := wantPhpTicketRoundTrip(t, "CAS 3.0 page after the sign-in", index, visited)
	v := phpCASPage(t, "CAS 3.0 page after the sign-in", p)
	if v.Page != "index" {
		t.Fatalf("CAS 3.0 page after the sign-in: page %q", v.Page)
	}
	checkSignedIn("CAS 3.0 page after the sign-in", v, tk3, "/cas/p3/serviceValidate", "true", signedInAt)

	// Again: phpCAS's own session, no trip to campusid.
	p, visited = casNavigate(b, index)
	if len(visited) != 1 {
		t.Fatalf("CAS 3.0 page again: visited %q", visited)
	}
	checkSignedIn("CAS 3.0 page again", phpCASPage(t, "CAS 3.0 page again", p), tk3, "/cas/p3/serviceValidate", "true", signedInAt)

	// Another page with its own PHP session gets a ticket at once from
	// campusid's session (no sign-in page), validated at endpoint.
	silentSignIn := func(what, page, pageName, endpoint string) string {
		t.Helper()
		p, visited := casNavigate(b, page)
		wantPhpToCAS(t, what, n, page, pageName == "gateway", visited)
		if len(visited) != 4 {
			t.Fatalf("%s: want the page, /cas/login, the page with a ticket and without; visited %q", what, visited)
		}
		tk := wantPhpTicketRoundTrip(t, what, page, visited)
		v := phpCASPage(t, what, p)
		if v.Page != pageName {
			t.Fatalf("%s: page %q", what, v.Page)
		}
		checkSignedIn(what, v, tk, endpoint, "false", signedInAt)
		return tk
	}
	// CAS 2.0: validated at /cas/serviceValidate, with the same attributes.
	tk2 := silentSignIn("CAS 2.0 page", cas2, "cas2", "/cas/serviceValidate")
	// The gateway with a campusid session: signed in without a sign-in page.
	tkGW := silentSignIn("gateway with a session", gateway, "gateway", "/cas/p3/serviceValidate")
	if ds, err := n.srv.db.ListDeliveries(context.Background(), cas.DeliveryKindLogout); err != nil || len(ds) != 0 {
		t.Fatalf("CAS logout deliveries before any logout: %v %+v", err, ds)
	}

	// Single logout: signing out of campusid queues a logoutRequest per
	// ticket for the logout URL; phpCAS accepts them (they come from
	// 127.0.0.1) and destroys the sessions named after the tickets.
	expectRedirect(t, "logout", b.post("/logout", url.Values{}), "/login?logged_out=1")
	var ds []store.Delivery
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var err error
		if ds, err = n.srv.db.ListDeliveries(context.Background(), cas.DeliveryKindLogout); err != nil {
			t.Fatal(err)
		}
		if len(ds) == 3 && !slices.ContainsFunc(ds, func(d store.Delivery) bool { return d.State == store.DeliveryPending }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CAS logout deliveries not done: %+v", ds)
		}
		n.srv.delivery.Signal()
	}
	var indexes []string
	for _, d := range ds {
		form, err := url.ParseQuery(d.Body)
		var lr struct {
			SessionIndex string `xml:"SessionIndex"`
		}
		if err == nil {
			err = xml.Unmarshal([]byte(form.Get("logoutRequest")), &lr)
		}
		if err != nil || d.URL != app.base+"/index.php" || d.Subject != "gestion" || d.State != store.DeliveryDelivered {
			t.Fatalf("CAS logout delivery %+v: %v; want delivered to %s/index.php", d, err, app.base)
		}
		att, err := n.srv.db.DeliveryAttempts(context.Background(), d.ID)
		if err != nil || len(att) == 0 || att[len(att)-1].Status != http.StatusOK {
			t.Fatalf("logoutRequest for %s: attempts %+v %v, want the last answered 200", lr.SessionIndex, att, err)
		}
		indexes = append(indexes, lr.SessionIndex)
	}
	if want := []string{tk2, tk3, tkGW}; !slices.Equal(slices.Sorted(slices.Values(indexes)), slices.Sorted(slices.Values(want))) {
		t.Fatalf("logoutRequests for %q, want %q", indexes, want)
	}
	for _, tk := range []string{tk3, tk2, tkGW} {
		if _, err := os.Stat(app.sessionFile(tk)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("the PHP session of %s outlived its logoutRequest: %v", tk, err)
		}
	}

	// The pages have forgotten the person: back to campusid, whose session
	// is over too, so its sign-in page shows (the gateway comes back anonymous).
	for _, target := range []string{index, cas2} {
		_, visited = casNavigate(b, target)
		wantPhpToCAS(t, target+" after the single logout", n, target, false, visited)
		if len(visited) != 3 || !strings.HasPrefix(visited[2], n.URL+"/login?") {
			t.Fatalf("%s after the single logout: want campusid's sign-in page; visited %q", target, visited)
		}
	}
	p, visited = casNavigate(b, gateway)
	wantPhpToCAS(t, "gateway after the single logout", n, gateway, true, visited)
	if v := phpCASPage(t, "gateway after the single logout", p); len(visited) != 3 || v.Authenticated {
		t.Fatalf("gateway after the single logout: %+v, visited %q; want anonymous", v, visited)
	}
}
