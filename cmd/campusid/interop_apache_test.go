//go:build unix

package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"campusid/internal/account"
	"campusid/internal/cas"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
	"campusid/internal/testenv"
)

// Interoperability with a real Apache httpd and Debian's mod_auth_cas 1.2:
// the module protects locations of a test Apache against a campusid node
// served over HTTPS, configured as docs/cas.md ("Configuring clients" >
// mod_auth_cas) tells universities to, with nothing special. A CGI script
// shows what the module passes to the application: REMOTE_USER and the
// attribute headers of CASAuthNHeader.

// apacheModules is where Debian's apache2-bin and libapache2-mod-auth-cas
// put their modules.
const apacheModules = "/usr/lib/apache2/modules"

// apacheBinary is $CAMPUSID_TEST_APACHE, else Debian's /usr/sbin/apache2;
// the test is skipped (failed under CAMPUSID_TEST_REQUIRE_ALL=1) without it
// or without mod_auth_cas.
func apacheBinary(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("CAMPUSID_TEST_APACHE")
	if bin == "" {
		if _, err := os.Stat("/usr/sbin/apache2"); err == nil {
			bin = "/usr/sbin/apache2"
		}
	}
	const what, how = "Apache httpd with mod_auth_cas", "apt-get install apache2 libapache2-mod-auth-cas, or set CAMPUSID_TEST_APACHE"
	if bin == "" {
		testenv.Missing(t, what, how)
	}
	for _, f := range []string{bin, filepath.Join(apacheModules, "mod_auth_cas.so")} {
		if _, err := os.Stat(f); err != nil {
			testenv.Missing(t, what, how+": "+err.Error())
		}
	}
	return bin
}

// apacheServer is a running Apache httpd with mod_auth_cas.
type apacheServer struct {
	URL       string // http://127.0.0.1:PORT, no trailing slash
	dir       string
	errorLog  string
	accessLog string
	cookies   string // CASCookiePath: mod_auth_cas's session files
}

// apacheLocations are the locations the test Apache protects with
// mod_auth_cas, each showing the CGI script, and their Require lines.
// The attribute values are those of the test account (TestInteropModAuthCAS).
var apacheLocations = []struct{ path, require string }{
	{"/protected/", "valid-user"},
	{"/mail-ok/", "cas-attribute mail:jean.dupont@univ.example"},
	{"/mail-other/", "cas-attribute mail:marie.curie@univ.example"},
	{"/etablissement/", "cas-attribute supannEtablissement:{UAI}0751717J"},
}

// apacheShowScript is the application: it prints what the module gave it,
// one NAME=value line per variable, sorted.
const apacheShowScript = `#!/bin/sh
printf 'Content-Type: text/plain; charset=utf-8\n\n'
env | grep -E '^(REMOTE_USER|HTTP_CAS_[A-Z0-9_]*)=' | sort
`

// apacheConfig is the whole httpd configuration; %[1]s is the server's
// directory, %[2]d its port, %[3]s the campusid URL, %[4]s the CA file,
// %[5]s the User and Group lines (when started as root), %[6]s the
// protected locations.
const apacheConfig = `# Written by TestInteropModAuthCAS (cmd/campusid/interop_apache_test.go).
ServerRoot "%[1]s"
ServerName 127.0.0.1:%[2]d
Listen 127.0.0.1:%[2]d
PidFile "%[1]s/run/httpd.pid"
DefaultRuntimeDir "%[1]s/run"
Mutex file:%[1]s/run default
ErrorLog "%[1]s/logs/error.log"
LogLevel info auth_cas:debug
LogFormat "%%m %%U%%q %%>s" interop
CustomLog "%[1]s/logs/access.log" interop
%[5]s
LoadModule mpm_prefork_module ` + apacheModules + `/mod_mpm_prefork.so
LoadModule authn_core_module ` + apacheModules + `/mod_authn_core.so
LoadModule authz_core_module ` + apacheModules + `/mod_authz_core.so
LoadModule authz_user_module ` + apacheModules + `/mod_authz_user.so
LoadModule alias_module ` + apacheModules + `/mod_alias.so
LoadModule cgi_module ` + apacheModules + `/mod_cgi.so
LoadModule auth_cas_module ` + apacheModules + `/mod_auth_cas.so

DocumentRoot "%[1]s/htdocs"
<Directory />
    AllowOverride None
    Require all granted
</Directory>
ScriptAliasMatch "^/[a-z-]+/$" "%[1]s/cgi-bin/show.cgi"

# mod_auth_cas as docs/cas.md configures it, plus CASDebug for the log.
CASCookiePath       "%[1]s/cas-cookies/"
CASLoginURL         %[3]s/cas/login
CASValidateURL      %[3]s/cas/serviceValidate
CASVersion          2
CASCertificatePath  "%[4]s"
CASSSOEnabled       On
CASDebug            On
%[6]s`

// startApache writes the configuration for n in a temporary directory,
// starts Apache in the foreground and waits until it answers. Apache is
// stopped at the end of the test; its error log (mod_auth_cas's debug
// lines) is copied to $CAMPUSID_TEST_ARTIFACTS/apache/<test>/ and, when
// the test failed, printed.
func startApache(t *testing.T, n *node, bin string) *apacheServer {
	t.Helper()
	dir := t.TempDir()
	a := &apacheServer{dir: dir, errorLog: filepath.Join(dir, "logs", "error.log"),
		accessLog: filepath.Join(dir, "logs", "access.log"), cookies: filepath.Join(dir, "cas-cookies") + "/"}
	for _, d := range []string{"run", "logs", "htdocs", "cgi-bin", "cas-cookies"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "cgi-bin", "show.cgi"), []byte(apacheShowScript), 0o755); err != nil {
		t.Fatal(err)
	}
	// The CA file is copied next to the configuration: the children of
	// Apache read it at each validation, as www-data when started as root.
	ca, err := os.ReadFile(n.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(dir, "campusid-ca.pem")
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}
	users := ""
	if os.Geteuid() == 0 {
		// Apache refuses to serve as root: its children run as www-data,
		// which must reach the script and the CA file and write the
		// session files.
		u, err := user.Lookup("www-data")
		if err != nil {
			t.Fatalf("Apache started as root needs the www-data user: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(a.cookies, uid, gid); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{dir, filepath.Dir(dir)} {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
		users = "User www-data\nGroup www-data"
	}
	var locs strings.Builder
	for _, l := range apacheLocations {
		fmt.Fprintf(&locs, "<Location %s>\n    AuthType CAS\n    CASAuthNHeader CAS-User\n    Require %s\n</Location>\n", l.path, l.require)
	}

	// The port is found free, then given to Apache: another process may
	// take it in between, so a start that cannot bind is tried again.
	for attempt := 1; ; attempt++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		conf := filepath.Join(dir, "httpd.conf")
		if err := os.WriteFile(conf, fmt.Appendf(nil, apacheConfig, dir, port, n.URL, caFile, users, locs.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		a.URL = fmt.Sprintf("http://127.0.0.1:%d", port)
		if a.start(t, bin, conf) {
			return a
		}
		if attempt == 3 {
			t.Fatalf("Apache did not start (3 attempts)")
		}
	}
}

// start runs Apache with conf and waits for it to answer. It returns false
// when Apache exited because its port was taken, and fails the test on any
// other problem.
func (a *apacheServer) start(t *testing.T, bin, conf string) bool {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, "-DFOREGROUND", "-f", conf)
	cmd.Dir = a.dir
	cmd.Stdout, cmd.Stderr = &out, &out
	// Apache stops by signalling its whole process group: its own, not
	// the test's.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Apache is started directly, not by apache2ctl: Debian's envvars are
	// not needed by this configuration.
	cmd.Env = append(os.Environ(), "LANG=C")
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	client := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case err := <-exited:
			logs, _ := os.ReadFile(a.errorLog)
			if strings.Contains(out.String()+string(logs), "Address already in use") {
				t.Logf("Apache could not bind %s, trying another port", a.URL)
				return false
			}
			t.Fatalf("Apache exited (%v):\n%s\n%s", err, out.String(), logs)
		default:
		}
		if resp, err := client.Get(a.URL + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			logs, _ := os.ReadFile(a.errorLog)
			t.Fatalf("Apache did not answer at %s:\n%s\n%s", a.URL, out.String(), logs)
		}
	}
	t.Cleanup(func() {
		// SIGTERM stops the parent and its children at once.
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		a.keepLog(t, out.Bytes())
	})
	return true
}

// keepLog copies the error log to the artifacts (when
// CAMPUSID_TEST_ARTIFACTS is set) and prints it when the test failed.
func (a *apacheServer) keepLog(t *testing.T, stdout []byte) {
	logs, _ := os.ReadFile(a.errorLog)
	access, _ := os.ReadFile(a.accessLog)
	if d := os.Getenv("CAMPUSID_TEST_ARTIFACTS"); d != "" {
		d = filepath.Join(d, "apache", strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.MkdirAll(d, 0o755); err == nil {
			os.WriteFile(filepath.Join(d, "error.log"), logs, 0o644)
			os.WriteFile(filepath.Join(d, "access.log"), access, 0o644)
			if conf, err := os.ReadFile(filepath.Join(a.dir, "httpd.conf")); err == nil {
				os.WriteFile(filepath.Join(d, "httpd.conf"), conf, 0o644)
			}
		}
	}
	if t.Failed() {
		t.Logf("Apache output:\n%s\nApache access log:\n%s\nApache error log:\n%s", stdout, access, logs)
	}
}

// accessLines returns the lines of the access log ("METHOD PATH STATUS").
func (a *apacheServer) accessLines(t *testing.T) []string {
	t.Helper()
	f, err := os.Open(a.accessLog)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	for s := bufio.NewScanner(f); s.Scan(); {
		lines = append(lines, s.Text())
	}
	return lines
}

// apacheShown parses the CGI script's page: the variables it printed.
func apacheShown(t *testing.T, what string, p page) map[string]string {
	t.Helper()
	if p.Status != http.StatusOK || !strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("%s: want the application page, got %d %q\n%s", what, p.Status, p.Location, p.Body)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(p.Body), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = v
		}
	}
	return vars
}

// apacheToCAS checks that visited went from the Apache page u to
// campusid's /cas/login for the service u, and returns the rest of visited.
func apacheToCAS(t *testing.T, what string, n *node, u string, visited []string) []string {
	t.Helper()
	if len(visited) < 2 || visited[0] != u || !strings.HasPrefix(visited[1], n.URL+"/cas/login?") {
		t.Fatalf("%s: want %s then campusid's /cas/login; visited %q", what, u, visited)
	}
	pu, _ := url.Parse(visited[1])
	if s := pu.Query().Get("service"); s != u {
		t.Fatalf("%s: /cas/login for service %q, want %q", what, s, u)
	}
	return visited[2:]
}

// apacheBackWithTicket checks that rest, the URLs after /cas/login, are
// u?ticket=ST-... (mod_auth_cas validates it) and then u again (the module
// removes the ticket from the URL once it has set its cookie). It returns
// the ticket.
func apacheBackWithTicket(t *testing.T, what, u string, rest []string) string {
	t.Helper()
	if len(rest) != 2 || !strings.HasPrefix(rest[0], u+"?ticket=ST-") || rest[1] != u {
		t.Fatalf("%s: want %s?ticket=ST-..., then %s; visited %q", what, u, u, rest)
	}
	return strings.TrimPrefix(rest[0], u+"?ticket=")
}

// TestInteropModAuthCAS: Apache httpd with mod_auth_cas 1.2, configured as
// docs/cas.md says, signs people in with campusid. A protected page sends
// the browser to campusid's sign-in page; after it the module validates
// its ticket at /cas/serviceValidate over HTTPS and shows the page with
// REMOTE_USER the campusid identifier and the registered attributes (CAS
// 2.0 answers carry them); Require cas-attribute lets in or refuses on
// those attributes; and signing out of campusid ends the module's sessions
// through the logoutRequests of single logout, after which the protected
// page goes back to campusid.
func TestInteropModAuthCAS(t *testing.T) {
	bin := apacheBinary(t)
	n := startTLSNode(t, testConfig(t, storetest.URL(t, store.SQLite)), nil)
	acct, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: "jdupont",
		Emails: []string{"jean.dupont@univ.example"}, GivenName: "Jérôme", FamilyName: "Dupont",
		Establishment: "{UAI}0751717J", Password: goodPassword, Actor: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	ap := startApache(t, n, bin)
	if _, err := n.cli("cas-service", "add", "--id", "wiki", "--name", "Wiki", "--url", ap.URL+"/", "--match", "prefix",
		"--attributes", "uid,mail,displayName,supannEtablissement", "--logout-url", ap.URL+"/protected/"); err != nil {
		t.Fatal(err)
	}
	b := n.browser()
	protected := ap.URL + "/protected/"

	// 1. No session: mod_auth_cas sends the browser to campusid's
	// /cas/login for the page, which sends it to the sign-in page.
	p, visited := casNavigate(b, protected)
	if rest := apacheToCAS(t, "protected page without a session", n, protected, visited); len(rest) != 1 ||
		!strings.HasPrefix(rest[0], n.URL+"/login?") {
		t.Fatalf("protected page without a session: want campusid's sign-in page after /cas/login; visited %q", visited)
	}

	// 2. Signing in lands back on Apache with a ticket, which the module
	// validates at /cas/serviceValidate (HTTPS, with the CA file): the page
	// shows the campusid identifier and the registered attributes.
	p, visited = casSignInPage(t, b, visited, p, "jdupont", goodPassword)
	i := slices.IndexFunc(visited, func(u string) bool { return strings.HasPrefix(u, protected+"?") })
	if i < 1 || !strings.HasPrefix(visited[i-1], n.URL+"/cas/login?") {
		t.Fatalf("the sign-in did not go back to Apache through /cas/login: %q", visited)
	}
	tickets := []string{apacheBackWithTicket(t, "after the sign-in", protected, visited[i:])}
	shown := apacheShown(t, "after the sign-in", p)
	want := map[string]string{
		"REMOTE_USER":                  "jdupont",
		"HTTP_CAS_USER":                "jdupont", // CASAuthNHeader
		"HTTP_CAS_UID":                 "jdupont",
		"HTTP_CAS_MAIL":                "jean.dupont@univ.example",
		"HTTP_CAS_DISPLAYNAME":         acct.DisplayName,
		"HTTP_CAS_SUPANNETABLISSEMENT": "{UAI}0751717J",
		"HTTP_CAS_ISFROMNEWLOGIN":      "true",
		"HTTP_CAS_LONGTERMAUTHENTICATIONREQUESTTOKENUSED": "false",
	}
	at, err := time.Parse(time.RFC3339, shown["HTTP_CAS_AUTHENTICATIONDATE"])
	if err != nil || at.After(n.clock.Now()) || n.clock.Now().Sub(at) > time.Hour {
		t.Fatalf("authenticationDate %q, want the sign-in time (%v): %v", shown["HTTP_CAS_AUTHENTICATIONDATE"], n.clock.Now(), err)
	}
	delete(shown, "HTTP_CAS_AUTHENTICATIONDATE")
	if fmt.Sprint(shown) != fmt.Sprint(want) {
		t.Fatalf("Apache passed the application\n%v\nwant\n%v", shown, want)
	}

	// The module's own session: the page again without a trip to campusid.
	p, visited = casNavigate(b, protected)
	if len(visited) != 1 || apacheShown(t, "protected page again", p)["REMOTE_USER"] != "jdupont" {
		t.Fatalf("protected page again: visited %q", visited)
	}

	// 3. Require cas-attribute on the released attributes: each location
	// gets its own ticket at once (campusid's session), then the module
	// lets the person in or refuses. Apache 2.4 refuses an authenticated
	// user whom authorization turns down with 401 (403 only with
	// AuthzSendForbiddenOnFailure On, which docs/cas.md does not set).
	for _, c := range []struct {
		path   string
		status int
	}{{"/mail-ok/", http.StatusOK}, {"/mail-other/", http.StatusUnauthorized}, {"/etablissement/", http.StatusOK}} {
		u := ap.URL + c.path
		p, visited = casNavigate(b, u)
		tickets = append(tickets, apacheBackWithTicket(t, c.path, u, apacheToCAS(t, c.path, n, u, visited)))
		if p.Status != c.status {
			t.Fatalf("%s: status %d, want %d\n%s", c.path, p.Status, c.status, p.Body)
		}
		if c.status == http.StatusOK {
			if v := apacheShown(t, c.path, p); v["REMOTE_USER"] != "jdupont" || v["HTTP_CAS_ISFROMNEWLOGIN"] != "false" {
				t.Fatalf("%s shows %v, want jdupont with a ticket from single sign-on", c.path, v)
			}
		}
	}
	if ds, err := n.srv.db.ListDeliveries(context.Background(), cas.DeliveryKindLogout); err != nil || len(ds) != 0 {
		t.Fatalf("logout deliveries before any logout: %v %+v", err, ds)
	}

	// 4. Single logout: signing out of campusid queues one logoutRequest
	// per ticket to the registered logout URL; mod_auth_cas reads each,
	// ends the session of its ticket and answers with a redirect to
	// campusid (it treats the POST as any unauthenticated request), which
	// the delivery counts as delivered (delivery.Worker.RedirectIsDelivered).
	expectRedirect(t, "logout", b.post("/logout", url.Values{}), "/login?logged_out=1")
	var ds []store.Delivery
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		n.srv.delivery.Signal()
		if ds, err = n.srv.db.ListDeliveries(context.Background(), cas.DeliveryKindLogout); err != nil {
			t.Fatal(err)
		}
		done := len(ds) == len(tickets)
		for _, d := range ds {
			done = done && d.State != store.DeliveryPending
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logoutRequests not all attempted: %+v", ds)
		}
	}
	var sent []string
	for _, d := range ds {
		if d.URL != protected || d.Attempts != 1 || d.State != store.DeliveryDelivered {
			t.Fatalf("delivery %+v: want one POST to %s, delivered", d, protected)
		}
		att, err := n.srv.db.DeliveryAttempts(context.Background(), d.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(att) != 1 || att[0].Status != http.StatusFound {
			t.Fatalf("delivery %+v: attempts %+v, want mod_auth_cas's 302", d, att)
		}
		form, err := url.ParseQuery(d.Body)
		if err != nil {
			t.Fatal(err)
		}
		for _, tk := range tickets {
			if strings.Contains(form.Get("logoutRequest"), "<samlp:SessionIndex>"+tk+"</samlp:SessionIndex>") {
				sent = append(sent, tk)
			}
		}
	}
	if slices.Sort(sent); !slices.Equal(sent, slices.Sorted(slices.Values(tickets))) {
		t.Fatalf("logoutRequests named %q, want the tickets %q", sent, tickets)
	}
	var posts []string
	for _, l := range ap.accessLines(t) {
		if strings.HasPrefix(l, "POST ") {
			posts = append(posts, l)
		}
	}
	if len(posts) != len(tickets) {
		t.Fatalf("Apache received %q, want %d logoutRequests", posts, len(tickets))
	}

	// Every location has forgotten the person: back to campusid, whose
	// session has ended too, so its sign-in page shows.
	for _, l := range apacheLocations {
		u := ap.URL + l.path
		_, visited = casNavigate(b, u)
		if rest := apacheToCAS(t, l.path+" after the single logout", n, u, visited); len(rest) != 1 ||
			!strings.HasPrefix(rest[0], n.URL+"/login?") {
			t.Fatalf("%s after the single logout: want campusid's sign-in page; visited %q", l.path, visited)
		}
	}
}
