package browsertest

import (
	"bytes"
	"fmt"
	"html"
	"image/png"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// newSite serves the small pages that the tests drive.
func newSite(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	page := func(w http.ResponseWriter, title, body string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>%s</title></head><body>%s</body></html>`, title, body)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Sign in", `<h1>Sign in</h1>
<form method="post" action="/echo">
  <label for="user">Email or identifier</label>
  <input id="user" name="user" autocomplete="username" value="prefilled">
  <label for="pw">Password</label>
  <input id="pw" name="pw" type="password" autocomplete="current-password">
  <button id="go" type="submit">Continue</button>
</form>
<button id="local" type="button" onclick="document.getElementById('out').textContent = 'clicked ' + Date.now()">Local</button>
<p id="out"></p>`)
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "s3cr3t", Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
		http.SetCookie(w, &http.Cookie{Name: "pref", Value: "dark", Path: "/", SameSite: http.SameSiteStrictMode, MaxAge: 3600})
		page(w, "Echo", `<p id="echo">Hello, `+html.EscapeString(r.PostFormValue("user"))+`</p>`)
	})
	mux.HandleFunc("GET /lang", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Lang", `<p id="lang">`+html.EscapeString(r.Header.Get("Accept-Language"))+`</p>`)
	})
	mux.HandleFunc("GET /throw", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Throw", `<p>throwing</p><script>throw new Error("boom from the page")</script>`)
	})
	mux.HandleFunc("GET /csp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "script-src 'self'")
		page(w, "CSP", `<p>strict</p><script>document.title = "inline ran"</script>`)
	})
	mux.HandleFunc("GET /tall", func(w http.ResponseWriter, r *http.Request) {
		page(w, "Tall", `<div style="height:2400px;background:linear-gradient(#fff,#08f)">tall</div><p>bottom</p>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestFormFlow drives one browser through the form: fill, keyboard order,
// click, submit, text, cookies, screenshots.
func TestFormFlow(t *testing.T) {
	artifacts := t.TempDir()
	t.Setenv(EnvArtifacts, artifacts)
	srv := newSite(t)
	b := New(t)

	b.Go(srv.URL + "/")
	if got := b.URL(); got != srv.URL+"/" {
		t.Errorf("URL() = %q, want %q", got, srv.URL+"/")
	}
	if got := b.Text("h1"); got != "Sign in" {
		t.Errorf("Text(h1) = %q", got)
	}
	if got := b.Count("input"); got != 2 {
		t.Errorf("Count(input) = %d, want 2", got)
	}
	if got := b.Attr("#pw", "autocomplete"); got != "current-password" {
		t.Errorf("Attr(#pw, autocomplete) = %q", got)
	}
	if got := b.Attr("#pw", "no-such-attribute"); got != "" {
		t.Errorf("Attr of a missing attribute = %q, want empty", got)
	}

	// A click that does not navigate returns quickly and keeps the page.
	began := time.Now()
	b.Click("#local")
	if d := time.Since(began); d > 2*time.Second {
		t.Errorf("Click without navigation took %v", d)
	}
	if !b.HasText("clicked ") {
		t.Errorf("the local button did not run its handler")
	}

	// Fill replaces the prefilled value.
	b.Fill(`input[autocomplete="username"]`, "ada@example.org")
	var v string
	b.Eval(`document.getElementById("user").value`, &v)
	if v != "ada@example.org" {
		t.Errorf("value after Fill = %q", v)
	}

	// Keyboard order, from the field that Fill focused.
	if got, want := b.Focused(), "input#user[name=user][autocomplete=username]"; got != want {
		t.Errorf("Focused() after Fill = %q, want %q", got, want)
	}
	b.Press("Tab")
	if got, want := b.Focused(), "input#pw[name=pw][autocomplete=current-password]"; got != want {
		t.Errorf("Focused() after Tab = %q, want %q", got, want)
	}
	b.Press("x")
	b.Press("Tab")
	if got, want := b.Focused(), "button#go"; got != want {
		t.Errorf("Focused() after 2 Tabs = %q, want %q", got, want)
	}
	b.Press("Shift+Tab")
	if got, want := b.Focused(), "input#pw[name=pw][autocomplete=current-password]"; got != want {
		t.Errorf("Focused() after Shift+Tab = %q, want %q", got, want)
	}
	b.Eval(`document.getElementById("pw").value`, &v)
	if v != "x" {
		t.Errorf("Press(x) typed %q into the password field", v)
	}

	b.Screenshot("filled form")

	// Enter on the submit button navigates, and Press waits for the page.
	b.Press("Tab")
	if got := b.Focused(); got != "button#go" {
		t.Fatalf("Focused() = %q, want the submit button", got)
	}
	b.Press("Enter")
	if got := b.URL(); got != srv.URL+"/echo" {
		t.Fatalf("URL after Enter = %q, want the echo page", got)
	}
	if got := b.Text("#echo"); got != "Hello, ada@example.org" {
		t.Errorf("echo after Enter = %q", got)
	}
	b.WaitText("Hello, ada")
	if b.HasText("Sign in") {
		t.Errorf("HasText finds text of the previous page")
	}

	// The cookies that the echo page set, with their flags.
	byName := map[string]*http.Cookie{}
	for _, c := range b.Cookies() {
		byName[c.Name] = c
	}
	if c := byName["sid"]; c == nil || !c.HttpOnly || c.SameSite != http.SameSiteLaxMode || c.Value != "s3cr3t" || !c.Expires.IsZero() {
		t.Errorf("sid cookie = %+v, want HttpOnly, SameSite=Lax, session", c)
	}
	if c := byName["pref"]; c == nil || c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Expires.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("pref cookie = %+v, want SameSite=Strict, not HttpOnly, 1 hour", c)
	}
	var docCookie string
	b.Eval(`document.cookie`, &docCookie)
	if strings.Contains(docCookie, "sid=") || !strings.Contains(docCookie, "pref=dark") {
		t.Errorf("document.cookie = %q: the page must see pref and not the HttpOnly sid", docCookie)
	}

	// Click on a submit button, and Submit, both wait for the new page.
	b.Go(srv.URL + "/")
	b.Fill("#user", "clicked@example.org")
	b.Click("#go")
	if got := b.Text("#echo"); got != "Hello, clicked@example.org" {
		t.Errorf("echo after Click = %q", got)
	}
	b.Go(srv.URL + "/")
	b.Fill("#user", "submitted <b>@example.org")
	b.Submit("#user")
	if got := b.URL(); got != srv.URL+"/echo" {
		t.Errorf("URL after Submit = %q", got)
	}
	if got := b.Text("#echo"); got != "Hello, submitted <b>@example.org" {
		t.Errorf("echo after Submit = %q", got)
	}

	// Full-page screenshots, numbered in order.
	b.Go(srv.URL + "/tall")
	b.Screenshot("tall/page")
	dir := filepath.Join(artifacts, "screenshots", "TestFormFlow")
	first := checkPNG(t, filepath.Join(dir, "01-filled_form.png"))
	if first.Dx() != 1280 || first.Dy() != 900 {
		t.Errorf("screenshot of the form is %dx%d, want 1280x900", first.Dx(), first.Dy())
	}
	tall := checkPNG(t, filepath.Join(dir, "02-tall_page.png"))
	// The page is as wide as the viewport without its scrollbar.
	if tall.Dx() < 1250 || tall.Dx() > 1280 || tall.Dy() < 2400 {
		t.Errorf("screenshot of the tall page is %dx%d, want the whole page (about 1280 wide, at least 2400 high)", tall.Dx(), tall.Dy())
	}

	if errs := b.ConsoleErrors(); len(errs) != 0 {
		t.Errorf("ConsoleErrors() on clean pages = %q", errs)
	}
}

type bounds struct{ w, h int }

func (b bounds) Dx() int { return b.w }
func (b bounds) Dy() int { return b.h }

// checkPNG fails the test unless path is a PNG file, and returns its size.
func checkPNG(t *testing.T, path string) bounds {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		entries, _ := os.ReadDir(filepath.Dir(path))
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("screenshot: %v (folder holds %q)", err, names)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("%s is not a PNG: %v", path, err)
	}
	return bounds{cfg.Width, cfg.Height}
}

func TestConsoleErrors(t *testing.T) {
	srv := newSite(t)
	b := New(t)

	b.Go(srv.URL + "/throw")
	errs := b.ConsoleErrors()
	if len(errs) != 1 || !strings.Contains(errs[0], "boom from the page") || !strings.HasPrefix(errs[0], "exception: ") {
		t.Fatalf("ConsoleErrors() after an uncaught error = %q, want one exception with its message", errs)
	}

	b.Eval(`console.error("logged", "twice"); undefined`, nil)
	b.Go(srv.URL + "/csp")
	errs = b.ConsoleErrors()
	if len(errs) != 3 {
		t.Fatalf("ConsoleErrors() = %q, want the exception, the console.error and the CSP violation", errs)
	}
	if errs[1] != "console.error: logged twice" {
		t.Errorf("console.error entry = %q", errs[1])
	}
	if !strings.Contains(errs[2], "Content Security Policy") {
		t.Errorf("CSP entry = %q, want a Content Security Policy violation", errs[2])
	}
	var title string
	b.Eval(`document.title`, &title)
	if title == "inline ran" {
		t.Errorf("the inline script ran despite the CSP")
	}
}

func TestLanguageAndViewport(t *testing.T) {
	srv := newSite(t)

	t.Run("fr-FR", func(t *testing.T) {
		b := New(t, WithLang("fr-FR"))
		b.Go(srv.URL + "/lang")
		if got := b.Text("#lang"); !strings.HasPrefix(got, "fr-FR") {
			t.Errorf("Accept-Language = %q, want fr-FR first", got)
		}
		var nav string
		b.Eval(`navigator.language`, &nav)
		if nav != "fr-FR" {
			t.Errorf("navigator.language = %q", nav)
		}
		var size [2]int
		b.Eval(`[innerWidth, innerHeight]`, &size)
		if size != [2]int{1280, 900} {
			t.Errorf("desktop viewport = %v, want 1280x900", size)
		}
	})

	t.Run("mobile default language", func(t *testing.T) {
		b := New(t, WithMobile())
		b.Go(srv.URL + "/lang")
		if got := b.Text("#lang"); !strings.HasPrefix(got, "en-US") {
			t.Errorf("default Accept-Language = %q, want en-US first", got)
		}
		var got struct {
			W, H  int
			Touch bool
			UA    string
		}
		b.Eval(`({W: innerWidth, H: innerHeight, Touch: navigator.maxTouchPoints > 0, UA: navigator.userAgent})`, &got)
		if got.W != 390 || got.H != 844 || !got.Touch || !strings.Contains(got.UA, "Mobile") {
			t.Errorf("mobile emulation = %+v, want 390x844, touch, a mobile user agent", got)
		}
	})
}

// recorder is a testing.TB that records Skipf and Fatalf instead of ending
// the test, so that the failure paths can be checked. Everything else goes
// to the real test.
type recorder struct {
	testing.TB
	mu      sync.Mutex
	skips   []string
	fatals  []string
	loggedf []string
}

func (r *recorder) Helper() {}

// Skipf and Fatalf end the goroutine, as the real ones do: call them
// through run.
func (r *recorder) Skipf(format string, args ...any) {
	r.mu.Lock()
	r.skips = append(r.skips, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	runtime.Goexit()
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.fatals = append(r.fatals, fmt.Sprintf(format, args...))
	r.mu.Unlock()
	runtime.Goexit()
}

// run calls f in its own goroutine, which Skipf and Fatalf can end, and
// reports whether f returned normally.
func (r *recorder) run(f func()) (returned bool) {
	done := make(chan bool)
	go func() {
		ok := false
		defer func() { done <- ok }()
		f()
		ok = true
	}()
	return <-done
}
func (r *recorder) Logf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.loggedf = append(r.loggedf, fmt.Sprintf(format, args...))
}

func TestMissingChromium(t *testing.T) {
	for _, requireAll := range []string{"", "1"} {
		t.Run("REQUIRE_ALL="+requireAll, func(t *testing.T) {
			t.Setenv(EnvChromium, filepath.Join(t.TempDir(), "no-chromium-here"))
			t.Setenv("CAMPUSID_TEST_REQUIRE_ALL", requireAll)
			r := &recorder{TB: t}
			if r.run(func() { New(r) }) {
				t.Fatalf("New returned without Chromium")
			}
			got := r.skips
			if requireAll == "1" {
				got = r.fatals
				if len(r.skips) != 0 {
					t.Errorf("skipped under REQUIRE_ALL: %q", r.skips)
				}
			} else if len(r.fatals) != 0 {
				t.Errorf("failed without REQUIRE_ALL: %q", r.fatals)
			}
			if len(got) != 1 || !strings.Contains(got[0], "Chromium") ||
				!strings.Contains(got[0], "no-chromium-here") || !strings.Contains(got[0], "apt-get install chromium") {
				t.Errorf("testenv.Missing said %q; want one message naming Chromium, the bad path and how to install it", got)
			}
		})
	}
}

func TestFindChromium(t *testing.T) {
	lookIn := func(existing ...string) func(string) (string, error) {
		return func(name string) (string, error) {
			for _, e := range existing {
				if name == e || filepath.Base(e) == name && !strings.Contains(name, "/") {
					return e, nil
				}
			}
			return "", fs.ErrNotExist
		}
	}
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvChromium {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name     string
		env      string
		existing []string
		want     string // "" means an error
	}{
		{"env wins", "/opt/chrome/chrome", []string{"/opt/chrome/chrome", "/usr/bin/chromium"}, "/opt/chrome/chrome"},
		{"bad env does not fall back", "/nope", []string{"/usr/bin/chromium"}, ""},
		{"debian path", "", []string{"/usr/bin/chromium", "/usr/local/bin/chromium"}, "/usr/bin/chromium"},
		{"PATH", "", []string{"/usr/local/bin/chromium"}, "/usr/local/bin/chromium"},
		{"none", "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := findChromium(env(tt.env), lookIn(tt.existing...))
			if got != tt.want || (err != nil) != (tt.want == "") {
				t.Errorf("findChromium = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestFailure checks what a helper does when the page is not as expected:
// a "failure" screenshot, then Fatalf with the URL and the page text.
func TestFailure(t *testing.T) {
	artifacts := t.TempDir()
	t.Setenv(EnvArtifacts, artifacts)
	srv := newSite(t)
	r := &recorder{TB: t}
	var b *Browser
	if !r.run(func() { b = New(r, WithTimeout(500*time.Millisecond)) }) {
		t.Fatalf("no browser: %q %q", r.skips, r.fatals)
	}
	b.Go(srv.URL + "/")
	if r.run(func() { b.Text("#no-such-element") }) {
		t.Fatalf("Text of a missing element returned")
	}
	if len(r.fatals) != 1 {
		t.Fatalf("Fatalf calls = %q, want 1", r.fatals)
	}
	msg := r.fatals[0]
	for _, want := range []string{"#no-such-element", "URL: " + srv.URL + "/", "Email or identifier"} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure message lacks %q:\n%s", want, msg)
		}
	}
	checkPNG(t, filepath.Join(artifacts, "screenshots", "TestFailure", "01-failure.png"))
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		in   string
		keys string
		mods int
		err  bool
	}{
		{"Tab", "\t", 0, false},
		{"Enter", "\r", 0, false},
		{"Shift+Tab", "\t", 1, false},
		{"Space", " ", 0, false},
		{"a", "a", 0, false},
		{"+", "+", 0, false},
		{"Ctrl+Shift+ArrowDown", "\u0301", 2, false},
		{"Hyper+Tab", "", 0, true},
		{"NoSuchKey", "", 0, true},
	}
	for _, tt := range tests {
		keys, mods, err := parseKey(tt.in)
		if (err != nil) != tt.err || keys != tt.keys || len(mods) != tt.mods {
			t.Errorf("parseKey(%q) = %q, %v, %v", tt.in, keys, mods, err)
		}
	}
}

func TestArtifactsDir(t *testing.T) {
	t.Setenv(EnvArtifacts, "")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(wd)) // internal/browsertest -> module root
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("test layout: %v", err)
	}
	if got, want := artifactsDir(), filepath.Join(root, "artifacts"); got != want {
		t.Errorf("artifactsDir() = %q, want %q", got, want)
	}
	t.Setenv(EnvArtifacts, "/some/where")
	if got := artifactsDir(); got != "/some/where" {
		t.Errorf("artifactsDir() with %s = %q", EnvArtifacts, got)
	}
	if got, want := testDir("TestX/sub case/ä:b"), filepath.Join("TestX", "sub_case", "_b"); got != want {
		t.Errorf("testDir = %q, want %q", got, want)
	}
}

// TestBrokenChromium checks that a browser that dies at start fails the test
// at once, showing what it printed.
func TestBrokenChromium(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "chromium")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'cannot open display: broken on purpose' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvChromium, fake)
	r := &recorder{TB: t}
	began := time.Now()
	if r.run(func() { New(r) }) {
		t.Fatalf("New returned with a broken browser")
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Errorf("failing took %v", d)
	}
	if len(r.fatals) != 1 || !strings.Contains(r.fatals[0], "broken on purpose") || !strings.Contains(r.fatals[0], fake) {
		t.Errorf("Fatalf calls = %q, want one that names the binary and shows its output", r.fatals)
	}
}
