package main

// Browser tests: the pages as people use them, in a headless Chromium driven
// through internal/browsertest (one browser per test). Screenshots of every
// step land in $CAMPUSID_TEST_ARTIFACTS/screenshots/<Test>/ (default
// <repo>/artifacts/screenshots/), which CI keeps.
//
// Run: CAMPUSID_TEST_REQUIRE_ALL=1 go test ./cmd/campusid/ -run TestBrowser -v
//
// Without JavaScript: browsertest does not expose the tab's chromedp context,
// so emulation.SetScriptExecutionDisabled cannot be called from here. Instead
// TestBrowserWithoutJavaScript serves the node through a front that rewrites
// the Content-Security-Policy to script-src 'none': the browser then refuses
// every script of our pages (policy.js is the only one, and inline scripts are
// already forbidden), which is what a person with JavaScript turned off gets,
// except that <noscript> content stays hidden (campusid's pages have none).
// The test checks that the refusal really happened (CSP reports in the
// console, no checklist verdicts while typing) and that sign-in, password
// change and sign-out still work with plain form posts.

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"campusid/internal/browsertest"
	"campusid/internal/i18n"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// The account of the browser tests, created with the CLI.
const (
	bIdent    = "alovelace"
	bName     = "Ada Lovelace"
	bPrimary  = "ada.lovelace@univ.example"
	bAlt      = "ada@perso.example" // the alternative address used to sign in
	bPassword = goodPassword
	bNewPass  = "Tz9@mK4!pLq2"
)

// cliUserAdd creates the test account with `campusid user add --password-stdin`
// against dbURL, with cheap hashing, and returns the printed account id.
func cliUserAdd(t *testing.T, dbURL string) string {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin:  strings.NewReader(bPassword + "\n"),
		stdout: &out, stderr: &errb,
		environ: []string{
			"CAMPUSID_DATABASE_URL=" + dbURL,
			"CAMPUSID_DATA_DIR=" + t.TempDir(),
			"CAMPUSID_PASSWORD_HASH_MEMORY_KIB=64",
			"CAMPUSID_PASSWORD_HASH_ITERATIONS=1",
		},
		now: time.Now,
	}
	code := run(context.Background(), e, []string{"user", "add",
		"--email", bPrimary, "--personal-email", bAlt, "--id", bIdent,
		"--name", bName, "--given-name", "Ada", "--family-name", "Lovelace", "--password-stdin"})
	if code != 0 {
		t.Fatalf("campusid user add: exit %d\nstdout: %s\nstderr: %s", code, out.String(), errb.String())
	}
	id := strings.TrimSpace(out.String())
	if id == "" {
		t.Fatalf("campusid user add printed no id (stderr: %s)", errb.String())
	}
	return id
}

// browserNode is a node on a fresh SQLite database that already holds the
// test account, created with the CLI before the server starts.
func browserNode(t *testing.T) *node {
	t.Helper()
	dbURL := storetest.URL(t, store.SQLite)
	cliUserAdd(t, dbURL)
	return startNode(t, testConfig(t, dbURL), nil)
}

// frMsg and enMsg localize expected texts from the catalogs, so the tests do not
// break when a message is reworded.
var (
	frMsg = i18n.Localizer{Lang: "fr"}
	enMsg = i18n.Localizer{Lang: "en"}
)

// ruleStates reads the live checklist: rule code -> data-state ("" when the
// item has no verdict).
func ruleStates(b *browsertest.Browser) map[string]string {
	var m map[string]string
	b.Eval(`Object.fromEntries([...document.querySelectorAll('#policy-rules li[data-rule]')]
		.map(li => [li.dataset.rule, li.getAttribute('data-state') || '']))`, &m)
	return m
}

func wantStates(t *testing.T, step string, got, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: checklist rule %q has data-state %q, want %q (all: %v)", step, k, got[k], v, got)
		}
	}
}

// focusedSoon returns the focused element (as Focused describes it) once it
// is want, or whatever has the focus after a second: autofocus happens a
// moment after the text of a new page shows.
func focusedSoon(b *browsertest.Browser, want string) string {
	deadline := time.Now().Add(time.Second)
	for {
		got := b.Focused()
		if got == want || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cookieNamed returns the browser's cookie name for the current page, or nil.
func cookieNamed(b *browsertest.Browser, name string) *http.Cookie {
	for _, c := range b.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// noConsoleErrors fails when the page reported errors or CSP violations.
// Chromium logs a form page answered with an error status (401 for a wrong
// password, 422 for refused input: the status is part of the contract) as a
// failed load; expected lists those, as "STATUS /path", and scripts refused
// on purpose as "CSP /path".
func noConsoleErrors(t *testing.T, b *browsertest.Browser, where string, expected ...string) {
	t.Helper()
	var bad []string
next:
	for _, e := range b.ConsoleErrors() {
		for _, x := range expected {
			status, path, _ := strings.Cut(x, " ")
			if status == "CSP" && strings.Contains(e, "Content Security Policy") && strings.Contains(e, path) {
				continue next
			}
			if strings.HasPrefix(e, "log (network): Failed to load resource: the server responded with a status of "+status+" ") &&
				strings.Contains(e, path+")") {
				continue next
			}
		}
		bad = append(bad, e)
	}
	if len(bad) > 0 {
		t.Errorf("%s: console errors:\n  %s", where, strings.Join(bad, "\n  "))
	}
}

// a11yJS reviews the current page and returns a list of problems:
//   - <html lang> is the expected language;
//   - every visible form field has a label (or aria-label/labelledby);
//   - every button and link has an accessible name;
//   - aria-describedby/aria-labelledby point at elements that exist;
//   - a field marked aria-invalid is described by a message, and every
//     error message (.error) is announced (role=alert);
//   - one h1, and heading levels never skip (h1 -> h3);
//   - nothing focusable is hidden from assistive technology;
//   - text contrast against its effective background is at least 4.5:1
//     (3:1 for large text), computed from the styles the browser applied.
const a11yJS = `((lang) => {
	const problems = [];
	const desc = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
		(el.getAttribute('name') ? '[name=' + el.getAttribute('name') + ']' : '') +
		(el.className && typeof el.className === 'string' ? '.' + el.className.trim().replace(/\s+/g, '.') : '');
	const shown = (el) => {
		const s = getComputedStyle(el);
		return s.display !== 'none' && s.visibility !== 'hidden' && el.getClientRects().length > 0;
	};
	const hiddenFromAT = (el) => !!el.closest('[aria-hidden="true"]');
	if (document.documentElement.getAttribute('lang') !== lang)
		problems.push('html lang=' + document.documentElement.getAttribute('lang') + ', want ' + lang);
	if (!document.title.trim()) problems.push('no <title>');

	for (const el of document.querySelectorAll('input, select, textarea')) {
		if (el.type === 'hidden' || hiddenFromAT(el)) continue;
		const named = (el.labels && [...el.labels].some(l => l.innerText.trim())) ||
			(el.getAttribute('aria-label') || '').trim() || el.getAttribute('aria-labelledby');
		if (!named) problems.push('field without a label: ' + desc(el));
	}
	const name = (el) => (el.getAttribute('aria-label') || el.textContent || el.value || el.getAttribute('title') || '').trim();
	for (const el of document.querySelectorAll('button, a[href], input[type=submit], [role=button]')) {
		if (hiddenFromAT(el)) continue;
		if (!name(el)) problems.push('control without an accessible name: ' + desc(el));
	}
	for (const attr of ['aria-describedby', 'aria-labelledby', 'aria-controls']) {
		for (const el of document.querySelectorAll('[' + attr + ']')) {
			for (const id of el.getAttribute(attr).split(/\s+/).filter(Boolean)) {
				if (!document.getElementById(id)) problems.push(desc(el) + ' ' + attr + ' -> missing #' + id);
			}
		}
	}
	for (const el of document.querySelectorAll('[aria-invalid="true"]')) {
		const ids = (el.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
		if (!ids.some(id => { const d = document.getElementById(id); return d && d.matches('.error, [role=alert]'); }))
			problems.push('invalid field not described by its error: ' + desc(el));
	}
	for (const el of document.querySelectorAll('.error')) {
		if (el.getAttribute('role') !== 'alert') problems.push('error message not announced (role=alert): ' + desc(el));
	}
	const hs = [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')];
	if (hs.filter(h => h.tagName === 'H1').length !== 1) problems.push('want exactly one h1, got ' + hs.filter(h => h.tagName === 'H1').length);
	let prev = 0;
	for (const h of hs) {
		const lvl = +h.tagName[1];
		if (prev && lvl > prev + 1) problems.push('heading level skips: ' + h.tagName + ' "' + h.textContent.trim() + '" after h' + prev);
		if (!h.textContent.trim()) problems.push('empty heading ' + h.tagName);
		prev = lvl;
	}
	for (const el of document.querySelectorAll('[aria-hidden="true"]')) {
		for (const f of [el, ...el.querySelectorAll('a[href], button, input, select, textarea, [tabindex]')]) {
			if (f.matches('a[href], button, input, select, textarea, [tabindex]') && f.tabIndex >= 0 && !f.disabled)
				problems.push('focusable but aria-hidden: ' + desc(f));
		}
	}

	// Contrast.
	const parse = (c) => {
		const m = c.match(/rgba?\(([^)]+)\)/);
		if (!m) return null;
		const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
		return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
	};
	const lum = (c) => {
		const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
		return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
	};
	const blend = (top, bottom) => ({
		r: top.r * top.a + bottom.r * (1 - top.a), g: top.g * top.a + bottom.g * (1 - top.a),
		b: top.b * top.a + bottom.b * (1 - top.a), a: 1,
	});
	const background = (el) => {
		const layers = [];
		for (let e = el; e; e = e.parentElement) {
			const c = parse(getComputedStyle(e).backgroundColor);
			if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
		}
		let bg = {r: 255, g: 255, b: 255, a: 1};
		for (const c of layers.reverse()) bg = blend(c, bg);
		return bg;
	};
	const ratio = (a, b) => { const x = lum(a), y = lum(b); return (Math.max(x, y) + 0.05) / (Math.min(x, y) + 0.05); };
	const seen = new Set();
	const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	for (let n = walker.nextNode(); n; n = walker.nextNode()) {
		const el = n.parentElement;
		if (!n.textContent.trim() || !el || seen.has(el)) continue;
		seen.add(el);
		if (!shown(el) || el.closest('.sr-only, .sr-state, .skip, [aria-hidden="true"]')) continue;
		const s = getComputedStyle(el);
		let fg = parse(s.color);
		if (!fg) continue;
		const bg = background(el);
		fg = blend(fg, bg);
		const size = parseFloat(s.fontSize), bold = +s.fontWeight >= 700;
		const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
		const r = ratio(fg, bg);
		if (r < need) problems.push('contrast ' + r.toFixed(2) + ':1 < ' + need + ' for "' + n.textContent.trim().slice(0, 40) + '" (' + desc(el) + ', ' + s.color + ' on ' + JSON.stringify(bg) + ')');
	}
	return problems;
})`

// reviewPage runs the accessibility review on the current page.
func reviewPage(t *testing.T, b *browsertest.Browser, lang, where string) {
	t.Helper()
	var problems []string
	b.Eval(a11yJS+`(`+fmt.Sprintf("%q", lang)+`)`, &problems)
	for _, p := range problems {
		t.Errorf("%s: accessibility: %s", where, p)
	}
}

// TestBrowserJourney is issue 2 item 14: an account created with the CLI
// signs in with its alternative address and remember-me, sees its account
// page, changes its password with the live checklist, signs out, signs in
// with the new password (the old one is refused, in French), then switches
// to English. Every page is reviewed for accessibility and screenshot, and
// no page reports a console error or a CSP violation.
func TestBrowserJourney(t *testing.T) {
	t.Parallel()
	n := browserNode(t)
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))

	// Step 1 of the sign-in, in French by Accept-Language.
	b.Go(n.URL + "/login")
	b.WaitText(frMsg.T("login.login_label"))
	if got := b.Text("h1"); got != frMsg.T("login.title") {
		t.Errorf("h1 of /login = %q, want %q", got, frMsg.T("login.title"))
	}
	if got := focusedSoon(b, "input#login[name=login][autocomplete=username]"); got != "input#login[name=login][autocomplete=username]" {
		t.Errorf("focus on /login = %s, want the login field (autofocus)", got)
	}
	reviewPage(t, b, "fr", "/login")
	b.Screenshot("login")

	// The alternative address, then the password step.
	b.Fill(`input[autocomplete="username"]`, bAlt)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(frMsg.T("login.password_label"))
	if !strings.Contains(b.URL(), "/login/password?req=") {
		t.Fatalf("after step 1: URL %s, want the password step", b.URL())
	}
	if who := b.Text(".identity"); !strings.Contains(who, bName) || !strings.Contains(who, bAlt) {
		t.Errorf("password step shows %q, want the name %q and the address typed %q", who, bName, bAlt)
	}
	if got := focusedSoon(b, "input#password[name=password][autocomplete=current-password]"); got != "input#password[name=password][autocomplete=current-password]" {
		t.Errorf("focus on the password step = %s, want the password field", got)
	}
	reviewPage(t, b, "fr", "/login/password")
	b.Screenshot("password-step")

	b.Click(`#remember`)
	var checked bool
	b.Eval(`document.getElementById('remember').checked`, &checked)
	if !checked {
		t.Fatal("remember-me is not ticked after a click")
	}
	b.Fill(`input[autocomplete="current-password"]`, bPassword)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	b.WaitText(frMsg.T("account.title"))
	if u := b.URL(); !strings.HasSuffix(u, "/account") {
		t.Errorf("after sign-in: URL %s, want /account", u)
	}
	for _, s := range []string{bName, bIdent, bPrimary, bAlt, frMsg.T("account.remembered"), frMsg.T("layout.signed_in_as", bName)} {
		if !b.HasText(s) {
			t.Errorf("account page does not show %q", s)
		}
	}
	reviewPage(t, b, "fr", "/account")
	b.Screenshot("account")

	// The session cookie: HttpOnly, SameSite=Lax, persistent for about 30 days.
	sc := cookieNamed(b, "campusid_session")
	switch {
	case sc == nil:
		t.Fatalf("no campusid_session cookie; cookies: %v", b.Cookies())
	case !sc.HttpOnly:
		t.Error("session cookie is not HttpOnly")
	case sc.SameSite != http.SameSiteLaxMode:
		t.Errorf("session cookie SameSite = %v, want Lax", sc.SameSite)
	case sc.Expires.IsZero():
		t.Error("session cookie is a browser-session cookie despite remember-me")
	case sc.Expires.Before(time.Now().Add(29*24*time.Hour)) || sc.Expires.After(time.Now().Add(31*24*time.Hour)):
		t.Errorf("session cookie expires %v, want in about 30 days", sc.Expires)
	}
	var jsSees bool
	b.Eval(`document.cookie.includes('campusid_session')`, &jsSees)
	if jsSees {
		t.Error("document.cookie shows the session cookie")
	}

	// Password change: the checklist follows the typing.
	b.Fill(`#current-password`, bPassword)
	b.Fill(`#new-password`, "abc")
	wantStates(t, `"abc"`, ruleStates(b), map[string]string{
		"length": "ko", "upper": "ko", "lower": "ok", "digit": "ko", "special": "ko", "allowed": "ok", "match": "", "common": "",
	})
	if got := b.Text(`#policy-rules li[data-rule="length"] .sr-state`); got != frMsg.T("policy.ko") {
		t.Errorf("screen-reader state of a failed rule = %q, want %q", got, frMsg.T("policy.ko"))
	}
	b.Fill(`#new-password`, "abc DEF 12!")
	wantStates(t, `"abc DEF 12!"`, ruleStates(b), map[string]string{
		"length": "ok", "upper": "ok", "lower": "ok", "digit": "ok", "special": "ok", "allowed": "ko",
	})
	b.Fill(`#new-password`, bNewPass)
	b.Fill(`#confirm-password`, bNewPass[:len(bNewPass)-1])
	wantStates(t, "good password, confirmation short", ruleStates(b), map[string]string{
		"length": "ok", "upper": "ok", "lower": "ok", "digit": "ok", "special": "ok", "allowed": "ok", "match": "ko",
	})
	b.Fill(`#confirm-password`, bNewPass)
	wantStates(t, "good password confirmed", ruleStates(b), map[string]string{
		"length": "ok", "upper": "ok", "lower": "ok", "digit": "ok", "special": "ok", "allowed": "ok", "match": "ok", "common": "",
	})
	if got := b.Text(`#policy-rules li[data-rule="match"] .sr-state`); got != frMsg.T("policy.ok") {
		t.Errorf("screen-reader state of a met rule = %q, want %q", got, frMsg.T("policy.ok"))
	}
	b.Screenshot("password-checklist")
	b.Click(`form[action^="/account/password"] button[type="submit"]`)
	b.WaitText(frMsg.T("account.done_password"))
	if got := b.Attr(`main .notice`, "role"); got != "status" {
		t.Errorf("the confirmation has role %q, want status", got)
	}
	reviewPage(t, b, "fr", "/account?done=password")
	b.Screenshot("password-changed")

	// Sign out with the button of the header.
	b.Click(`header form[action="/logout"] button[type="submit"]`)
	b.WaitText(frMsg.T("logout.done"))
	if u := b.URL(); !strings.Contains(u, "/login") {
		t.Errorf("after sign-out: URL %s, want the sign-in page", u)
	}
	if c := cookieNamed(b, "campusid_session"); c != nil && c.Value != "" {
		t.Errorf("session cookie still set after sign-out: %+v", c)
	}
	if b.Count(`header form[action="/logout"]`) != 0 {
		t.Error("the header still offers to sign out after sign-out")
	}
	reviewPage(t, b, "fr", "/login?logged_out=1")
	b.Screenshot("signed-out")

	// The old password is refused, in French, on the same page; the new one works.
	b.Fill(`input#login`, bIdent)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(frMsg.T("login.password_label"))
	b.Fill(`input[autocomplete="current-password"]`, bPassword)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	wrong := frMsg.T("login.wrong_password")
	if !n.srv.cfg.Login.RevealUnknownAccounts {
		wrong = frMsg.T("login.wrong_credentials")
	}
	b.WaitText(wrong)
	if got := b.Text(`[role="alert"]`); got != wrong {
		t.Errorf("alert = %q, want %q", got, wrong)
	}
	if b.Attr(`#password`, "aria-invalid") != "true" || !strings.Contains(b.Attr(`#password`, "aria-describedby"), "form-error") {
		t.Errorf("password field after a wrong password: aria-invalid=%q aria-describedby=%q",
			b.Attr(`#password`, "aria-invalid"), b.Attr(`#password`, "aria-describedby"))
	}
	if v := b.Attr(`#password`, "value"); v != "" {
		t.Errorf("the password page re-shows a password: %q", v)
	}
	reviewPage(t, b, "fr", "wrong password")
	b.Screenshot("old-password-refused")
	b.Fill(`input[autocomplete="current-password"]`, bNewPass)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	b.WaitText(frMsg.T("account.title"))
	if sc := cookieNamed(b, "campusid_session"); sc == nil || !sc.Expires.IsZero() {
		t.Errorf("without remember-me the session cookie should end with the browser: %+v", sc)
	}

	// The switcher link: English, and it sticks.
	b.Click(`a[hreflang="en"]`)
	b.WaitText(enMsg.T("account.title"))
	if got := b.Attr("html", "lang"); got != "en" {
		t.Errorf("html lang after switching = %q, want en", got)
	}
	for _, s := range []string{enMsg.T("account.profile"), enMsg.T("account.password"), enMsg.T("layout.logout")} {
		if !b.HasText(s) {
			t.Errorf("English account page lacks %q", s)
		}
	}
	if b.HasText(frMsg.T("account.profile")) {
		t.Error("English account page still shows French headings")
	}
	reviewPage(t, b, "en", "/account in English")
	b.Screenshot("account-en")
	b.Click(`header form[action="/logout"] button[type="submit"]`)
	b.WaitText(enMsg.T("logout.done"))
	if got := b.Attr(`a[hreflang]`, "hreflang"); got != "fr" {
		t.Errorf("the switcher of an English page offers %q, want fr", got)
	}
	reviewPage(t, b, "en", "/login in English")
	b.Screenshot("signed-out-en")

	noConsoleErrors(t, b, "journey", "401 /login/password")
}

// TestBrowserKeyboardOnly signs in with the keyboard alone (Press only): the
// tab order of /login goes skip link, brand, language, field, button; the
// skip link shows when focused and leads to the form; Enter submits (an empty
// field gets an announced error and keeps the focus); the password step
// starts in the password field, Tab reaches remember-me (Space ticks it) and
// then the button. Every focused control shows a visible focus ring.
func TestBrowserKeyboardOnly(t *testing.T) {
	t.Parallel()
	n := browserNode(t)
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	b.Go(n.URL + "/login")
	b.WaitText(frMsg.T("login.login_label"))

	// focus checks the focused element (as Focused describes it) and, when
	// text is not empty, its visible text; then its focus ring.
	focus := func(want, text, step string) {
		t.Helper()
		if got := focusedSoon(b, want); got != want {
			t.Fatalf("%s: focus on %s, want %s", step, got, want)
		}
		if text != "" {
			if got := b.Text(":focus"); got != text {
				t.Fatalf("%s: focus on %s %q, want %q", step, want, got, text)
			}
		}
		if want == "main#main" {
			return // a landmark, not a control: no ring needed
		}
		var ring struct {
			Style string
			Width float64
			Ratio float64
		}
		// The focus ring: drawn, at least 2 px, and 3:1 against the page
		// behind it (WCAG 2.4.7 and 1.4.11).
		b.Eval(`(() => {
			const el = document.activeElement, s = getComputedStyle(el);
			if (!document.hasFocus()) return {style: 'unknown', width: 3, ratio: 3}; // no window focus before the first key
			const parse = (c) => c.match(/[\d.]+/g).map(Number);
			const lum = (c) => { const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
				return 0.2126 * f(c[0]) + 0.7152 * f(c[1]) + 0.0722 * f(c[2]); };
			let bg = [255, 255, 255];
			for (let e = el.parentElement; e; e = e.parentElement) {
				const c = parse(getComputedStyle(e).backgroundColor);
				if (c.length < 4 || c[3] > 0) { bg = c; break; }
			}
			const a = lum(parse(s.outlineColor)), b = lum(bg);
			return {style: s.outlineStyle, width: parseFloat(s.outlineWidth), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)};
		})()`, &ring)
		if ring.Style == "none" || ring.Width < 2 || ring.Ratio < 3 {
			t.Errorf("%s: focus ring of %s: style %s, width %.1fpx, contrast %.2f:1 (want a visible ring, >= 2px, >= 3:1)",
				step, want, ring.Style, ring.Width, ring.Ratio)
		}
	}
	press := func(keys ...string) {
		t.Helper()
		for _, k := range keys {
			b.Press(k)
		}
	}
	typeText := func(s string) {
		t.Helper()
		for _, r := range s {
			b.Press(string(r))
		}
	}

	// Autofocus puts the field first; Shift+Tab walks back to the skip link.
	login := "input#login[name=login][autocomplete=username]"
	focus(login, "", "page load")
	press("Shift+Tab")
	focus("a", "English", "Shift+Tab from the field") // the language switcher
	press("Shift+Tab")
	focus("a", "campusid", "Shift+Tab from the language link") // the brand
	press("Shift+Tab")
	focus("a", frMsg.T("layout.skip"), "Shift+Tab from the brand")
	var skipShown bool
	b.Eval(`(() => { const r = document.activeElement.getBoundingClientRect();
		return r.left >= 0 && r.top >= 0 && r.width > 0 && r.right <= innerWidth; })()`, &skipShown)
	if !skipShown {
		t.Error("the focused skip link is off screen")
	}
	b.Screenshot("skip-link-focused")

	// Forward again: skip -> brand -> language -> field -> button.
	press("Tab")
	focus("a", "campusid", "Tab from the skip link")
	press("Tab")
	focus("a", "English", "Tab from the brand")
	press("Tab")
	focus(login, "", "Tab from the language link")
	press("Tab")
	focus("button", frMsg.T("login.continue"), "Tab from the field")

	// The skip link leads to the main content, where Tab reaches the field.
	press("Shift+Tab", "Shift+Tab", "Shift+Tab", "Shift+Tab")
	focus("a", frMsg.T("layout.skip"), "back to the skip link")
	press("Enter")
	focus("main#main", "", "Enter on the skip link")
	press("Tab")
	focus(login, "", "Tab after skipping")

	// Enter on an empty field: the error is announced and tied to the field.
	press("Enter")
	b.WaitText(frMsg.T("login.login_required"))
	focus(login, "", "after the error")
	if b.Attr("#login", "aria-invalid") != "true" || !strings.Contains(b.Attr("#login", "aria-describedby"), "form-error") {
		t.Errorf("login field after an error: aria-invalid=%q aria-describedby=%q",
			b.Attr("#login", "aria-invalid"), b.Attr("#login", "aria-describedby"))
	}
	if got := b.Attr("#form-error", "role"); got != "alert" {
		t.Errorf("the error has role %q, want alert", got)
	}
	reviewPage(t, b, "fr", "/login with an error")
	b.Screenshot("empty-login-error")

	typeText(bIdent)
	press("Enter")
	b.WaitText(frMsg.T("login.password_label"))
	focus("input#password[name=password][autocomplete=current-password]", "", "password step")
	typeText(bPassword)
	press("Tab")
	focus("input#remember[name=remember]", "", "Tab from the password")
	press("Space")
	var checked bool
	b.Eval(`document.getElementById('remember').checked`, &checked)
	if !checked {
		t.Error("Space did not tick remember-me")
	}
	press("Tab")
	focus("button", frMsg.T("login.sign_in"), "Tab from remember-me")
	b.Screenshot("password-step-keyboard")
	press("Enter")
	b.WaitText(frMsg.T("account.title"))
	if sc := cookieNamed(b, "campusid_session"); sc == nil || sc.Expires.IsZero() {
		t.Errorf("remember-me ticked with Space: want a persistent session cookie, got %+v", sc)
	}

	// On the account page the first Tab stop is the skip link.
	press("Tab")
	focus("a", frMsg.T("layout.skip"), "first Tab on /account")
	noConsoleErrors(t, b, "keyboard", "422 /login")
}

// TestBrowserMobile looks at the pages on a phone (sign-in steps, account
// page, a refused password change, the sign-out confirmation, an error
// page): no horizontal scrolling, fields, buttons and check boxes (with their
// label) at least 44 px tall, the error of a refused form on screen,
// accessibility review, screenshots.
func TestBrowserMobile(t *testing.T) {
	t.Parallel()
	n := browserNode(t)
	b := browsertest.New(t, browsertest.WithLang("fr-FR"), browsertest.WithMobile())

	check := func(where string) {
		t.Helper()
		var m struct {
			ScrollWidth, InnerWidth int
			Small                   []string
		}
		b.Eval(`(() => {
			const small = [];
			const visible = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden' &&
				!el.closest('.sr-only, [aria-hidden="true"]');
			for (const el of document.querySelectorAll('input:not([type=hidden]), button, .button')) {
				if (!visible(el)) continue;
				// A checkbox or radio counts with its label, which is what a finger touches.
				const target = (el.type === 'checkbox' || el.type === 'radio') && el.closest('label') ? el.closest('label') : el;
				const h = target.getBoundingClientRect().height;
				if (h < 44) small.push((el.id || el.name || el.textContent.trim().slice(0, 30) || el.tagName) + ': ' + h.toFixed(1) + 'px');
			}
			// innerWidth is the layout viewport, which a phone widens to fit content
			// that overflows: compare with the screen's width too.
			return {scrollWidth: document.documentElement.scrollWidth, innerWidth: Math.min(innerWidth, screen.width), small};
		})()`, &m)
		if m.ScrollWidth > m.InnerWidth {
			t.Errorf("%s: horizontal scroll: scrollWidth %d > innerWidth %d", where, m.ScrollWidth, m.InnerWidth)
		}
		if m.InnerWidth != 390 {
			t.Errorf("%s: viewport width %d, want the phone's 390", where, m.InnerWidth)
		}
		for _, s := range m.Small {
			t.Errorf("%s: touch target under 44px: %s", where, s)
		}
	}

	b.Go(n.URL + "/login")
	b.WaitText(frMsg.T("login.login_label"))
	check("/login")
	b.Screenshot("login")

	b.Fill(`input[autocomplete="username"]`, bPrimary)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(frMsg.T("login.password_label"))
	check("/login/password")
	b.Screenshot("password-step")

	b.Fill(`input[autocomplete="current-password"]`, bPassword)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	b.WaitText(frMsg.T("account.title"))
	check("/account")
	if !b.HasText(frMsg.T("account.device", "Safari", "iOS")) {
		t.Errorf("account page does not describe this phone's session as %q", frMsg.T("account.device", "Safari", "iOS"))
	}
	reviewPage(t, b, "fr", "/account on a phone")
	b.Screenshot("account")

	// A refused password change keeps the layout within the screen too.
	b.Fill(`#current-password`, "not it")
	b.Click(`form[action^="/account/password"] button[type="submit"]`)
	b.WaitText(frMsg.T("account.current_wrong"))
	check("/account with an error")
	// The answer comes back at the form (its action ends in #password), so
	// the error is on screen, not a long scroll below the top of the page.
	var errTop, viewport float64
	b.Eval(`document.getElementById('password-error').getBoundingClientRect().top`, &errTop)
	b.Eval(`innerHeight`, &viewport)
	if errTop < 0 || errTop > viewport {
		t.Errorf("the password error is off screen after the refusal (top %.0f, viewport %.0f)", errTop, viewport)
	}
	if b.Attr("#current-password", "aria-invalid") != "true" || !strings.Contains(b.Attr("#current-password", "aria-describedby"), "password-error") {
		t.Errorf("current password field after a refusal: aria-invalid=%q aria-describedby=%q",
			b.Attr("#current-password", "aria-invalid"), b.Attr("#current-password", "aria-describedby"))
	}
	reviewPage(t, b, "fr", "/account with an error on a phone")
	b.Screenshot("account-error")

	// The sign-out confirmation (GET /logout) and an error page.
	b.Go(n.URL + "/logout")
	b.WaitText(frMsg.T("logout.confirm"))
	check("/logout")
	reviewPage(t, b, "fr", "/logout on a phone")
	b.Screenshot("logout-confirm")
	b.Go(n.URL + "/no-such-page")
	b.WaitText(frMsg.T("error.not_found"))
	if got := b.Attr(`main a`, "href"); got != "/account" {
		t.Errorf("the error page of a signed-in person links to %q, want /account", got)
	}
	check("404 page")
	reviewPage(t, b, "fr", "404 page on a phone")
	b.Screenshot("not-found")
	noConsoleErrors(t, b, "mobile", "422 /account/password#password", "404 /no-such-page")
}

// noScriptNode is like browserNode, but the browser reaches it through a
// front (on the node's public address) whose answers carry a CSP that
// forbids every script (see the comment at the top of the file).
func noScriptNode(t *testing.T) *node {
	t.Helper()
	dbURL := storetest.URL(t, store.SQLite)
	cliUserAdd(t, dbURL)
	front := httptest.NewUnstartedServer(nil)
	cfg := testConfig(t, dbURL)
	cfg.PublicURL = "http://" + front.Listener.Addr().String()
	n := startNode(t, cfg, nil)
	front.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.srv.handler.ServeHTTP(&noScriptWriter{ResponseWriter: w}, r)
	})
	front.Start()
	t.Cleanup(front.Close)
	n.URL = front.URL
	return n
}

type noScriptWriter struct {
	http.ResponseWriter
	done bool
}

func (w *noScriptWriter) fix() {
	if !w.done {
		w.done = true
		if csp := w.Header().Get("Content-Security-Policy"); csp != "" {
			w.Header().Set("Content-Security-Policy", strings.Replace(csp, "script-src 'self'", "script-src 'none'", 1))
		}
	}
}

func (w *noScriptWriter) WriteHeader(code int) { w.fix(); w.ResponseWriter.WriteHeader(code) }

func (w *noScriptWriter) Write(p []byte) (int, error) { w.fix(); return w.ResponseWriter.Write(p) }

// TestBrowserWithoutJavaScript: with every script refused, the sign-in, the
// password change (the server's checklist verdicts show after a refusal),
// the sign-out and the language switcher work with plain forms and links.
func TestBrowserWithoutJavaScript(t *testing.T) {
	t.Parallel()
	n := noScriptNode(t)
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))

	b.Go(n.URL + "/login")
	b.WaitText(frMsg.T("login.login_label"))
	b.Fill(`input[autocomplete="username"]`, bAlt)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(frMsg.T("login.password_label"))
	b.Click(`#remember`)
	b.Fill(`input[autocomplete="current-password"]`, bPassword)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	b.WaitText(frMsg.T("account.title"))

	// No script: typing gives no verdict.
	b.Fill(`#current-password`, bPassword)
	b.Fill(`#new-password`, "abc")
	if st := ruleStates(b); slices.ContainsFunc(slices.Collect(maps.Values(st)), func(s string) bool { return s != "" }) {
		t.Fatalf("the checklist changed while typing, so a script ran: %v", st)
	}
	// The server refuses a weak password and shows its verdicts.
	b.Fill(`#confirm-password`, "abc")
	b.Click(`form[action^="/account/password"] button[type="submit"]`)
	b.WaitText(frMsg.T("account.password_refused"))
	wantStates(t, "server verdict on \"abc\"", ruleStates(b), map[string]string{
		"length": "ko", "upper": "ko", "lower": "ok", "digit": "ko", "special": "ko", "allowed": "ok", "match": "ok",
	})
	if got := b.Text(`#policy-rules li[data-rule="length"] .sr-state`); got != frMsg.T("policy.ko") {
		t.Errorf("screen-reader state of a refused rule = %q, want %q", got, frMsg.T("policy.ko"))
	}
	reviewPage(t, b, "fr", "refused password without scripts")
	b.Screenshot("password-refused")

	b.Fill(`#current-password`, bPassword)
	b.Fill(`#new-password`, bNewPass)
	b.Fill(`#confirm-password`, bNewPass)
	b.Click(`form[action^="/account/password"] button[type="submit"]`)
	b.WaitText(frMsg.T("account.done_password"))
	b.Screenshot("password-changed")

	b.Click(`header form[action="/logout"] button[type="submit"]`)
	b.WaitText(frMsg.T("logout.done"))
	b.Fill(`input[autocomplete="username"]`, bPrimary)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(frMsg.T("login.password_label"))
	b.Fill(`input[autocomplete="current-password"]`, bNewPass)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	b.WaitText(frMsg.T("account.title"))
	b.Click(`a[hreflang="en"]`)
	b.WaitText(enMsg.T("account.title"))
	b.Screenshot("account-en")

	// The browser did refuse the scripts, and nothing else went wrong.
	refused := 0
	for _, e := range b.ConsoleErrors() {
		if strings.Contains(e, "/static/policy.js") && strings.Contains(e, "Content Security Policy") {
			refused++
		}
	}
	if refused == 0 {
		t.Errorf("no CSP refusal of policy.js reported, so scripts may have run; console: %v", b.ConsoleErrors())
	}
	noConsoleErrors(t, b, "without scripts", "422 /account/password#password", "CSP /static/policy.js")
}
