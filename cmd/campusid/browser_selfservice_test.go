package main

// Browser tests of the self-service journeys of issue 3 (seeds 001, 002 and
// 003): activation with a secret question and a personal address, sign-in
// by code and by link, password reset by link, by code and by secret
// question, who-am-I, and a temporary account that self-service refuses.
// Each journey runs in its own headless Chromium against its own node (a
// fresh SQLite database, accounts created with the CLI), as a parallel
// subtest. Every page is screenshot (artifacts/screenshots/
// TestBrowserSelfService/<journey>/), reviewed for accessibility (reviewPage)
// and checked for desktop layout (ssLayout); no page reports a console error
// other than the failed loads of the 4xx answers a journey expects.
//
// Messages are read in the development mailbox: through /dev/mail.json
// (node.mails) for codes, and by opening /dev/mail in the browser, as a
// person reading their mail would, for the activation link, the reset
// link and the who-am-I message.
//
// Run: CAMPUSID_TEST_REQUIRE_ALL=1 go test ./cmd/campusid/ -run TestBrowserSelfService -v

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"campusid/internal/browsertest"
	"campusid/internal/config"
	"campusid/internal/i18n"
	"campusid/internal/outbox"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
	"campusid/internal/web"
)

// ssUserAdd runs `campusid user add ARGS` against dbURL, with --password-stdin
// when password is not empty (else the account is provisioned), and returns
// the printed account id.
func ssUserAdd(t *testing.T, dbURL, password string, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if password != "" {
		args = append(args, "--password-stdin")
	}
	e := &env{
		stdin:  strings.NewReader(password + "\n"),
		stdout: &out, stderr: &errb,
		environ: []string{
			"CAMPUSID_DATABASE_URL=" + dbURL,
			"CAMPUSID_DATA_DIR=" + t.TempDir(),
			"CAMPUSID_PASSWORD_HASH_MEMORY_KIB=64",
			"CAMPUSID_PASSWORD_HASH_ITERATIONS=1",
		},
		now: time.Now,
	}
	if code := run(context.Background(), e, append([]string{"user", "add"}, args...)); code != 0 {
		t.Fatalf("campusid user add %v: exit %d\nstdout: %s\nstderr: %s", args, code, out.String(), errb.String())
	}
	return strings.TrimSpace(out.String())
}

// ssNode starts a node on a fresh SQLite database, after adding the
// journey's accounts with the CLI (users) and changing the configuration (edit).
func ssNode(t *testing.T, edit func(*config.Config), users func(dbURL string)) *node {
	t.Helper()
	dbURL := storetest.URL(t, store.SQLite)
	if users != nil {
		users(dbURL)
	}
	cfg := testConfig(t, dbURL)
	if edit != nil {
		edit(&cfg)
	}
	return startNode(t, cfg, nil)
}

// ssLayoutJS lists desktop layout problems of the page: horizontal
// scrolling, and boxes inside <main> that stick out of it (a long address,
// a token, a button row too wide).
const ssLayoutJS = `(() => {
	const out = [];
	const de = document.documentElement;
	if (de.scrollWidth > innerWidth) out.push('horizontal scroll: ' + de.scrollWidth + 'px > ' + innerWidth + 'px');
	const main = document.querySelector('main');
	if (!main) return out;
	const m = main.getBoundingClientRect();
	for (const el of main.querySelectorAll('*')) {
		if (el.closest('.sr-only, .sr-state, datalist, script')) continue;
		const r = el.getBoundingClientRect();
		if (r.width === 0 && r.height === 0) continue;
		if (r.right > m.right + 1 || r.left < m.left - 1) {
			out.push('sticks out of main: ' + el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
				' "' + (el.textContent || '').trim().slice(0, 40) + '" [' + Math.round(r.left) + ', ' + Math.round(r.right) +
				'] in [' + Math.round(m.left) + ', ' + Math.round(m.right) + ']');
		}
	}
	return out;
})()`

// ssPages reviews, checks and screenshots the pages of one browser.
type ssPages struct {
	t    *testing.T
	b    *browsertest.Browser
	lang string
}

// look runs the accessibility review and the layout check on the current
// page and takes its screenshot.
func (p ssPages) look(name string) {
	p.t.Helper()
	reviewPage(p.t, p.b, p.lang, name)
	var problems []string
	p.b.Eval(ssLayoutJS, &problems)
	for _, s := range problems {
		p.t.Errorf("%s: layout: %s", name, s)
	}
	p.b.Screenshot(name)
}

// ssMail returns the newest message of purpose sent to addr, from /dev/mail.json.
func ssMail(t *testing.T, n *node, addr, purpose string) outbox.DevMail {
	t.Helper()
	for _, m := range n.mails() {
		if m.To == addr && m.Purpose == purpose {
			return m
		}
	}
	t.Fatalf("no %s message to %s in the development mailbox", purpose, addr)
	return outbox.DevMail{}
}

// ssMails counts the messages of purpose sent to addr.
func ssMails(n *node, addr, purpose string) int {
	c := 0
	for _, m := range n.mails() {
		if m.To == addr && m.Purpose == purpose {
			c++
		}
	}
	return c
}

var ssCodeRe = regexp.MustCompile(`(?m)^\s*(\d{6})\s*$`)

// ssCode returns the code of the newest message of purpose sent to addr.
func ssCode(t *testing.T, n *node, addr, purpose string) string {
	t.Helper()
	m := ssMail(t, n, addr, purpose)
	c := ssCodeRe.FindStringSubmatch(m.Text)
	if c == nil {
		t.Fatalf("no 6-digit code on a line of its own in the %s message:\n%s", purpose, m.Text)
	}
	return c[1]
}

// ssMailbox opens the development mailbox in the browser, as a person
// opens their mail, reviews it, and returns the text of the newest message
// to addr whose subject is subject.
func ssMailbox(p ssPages, n *node, addr, subject, shot string) string {
	p.t.Helper()
	n.srv.worker.Process(context.Background()) // the worker's next poll, now
	p.b.Go(n.URL + "/dev/mail")
	l := i18n.Localizer{Lang: p.lang}
	p.b.WaitText(l.T("devmail.explain"))
	var mails []struct{ To, Subject, Text string }
	p.b.Eval(`[...document.querySelectorAll('article.mail')].map(a => ({
		to: a.querySelector('p.small strong').innerText.trim(),
		subject: a.querySelector('h2').innerText.trim(),
		text: a.querySelector('pre.mailbody').innerText}))`, &mails)
	p.look(shot)
	for _, m := range mails {
		if m.To == addr && m.Subject == subject {
			return m.Text
		}
	}
	p.t.Fatalf("/dev/mail shows no message %q to %s; it shows %+v", subject, addr, mails)
	return ""
}

// ssLinkIn returns the first address of the form base+path?token=... in text.
func ssLinkIn(t *testing.T, text, base, path string) string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(base+path) + `\?token=[A-Za-z0-9_%-]+`)
	link := re.FindString(text)
	if link == "" {
		t.Fatalf("no %s%s?token= link in the message:\n%s", base, path, text)
	}
	return link
}

// ssSignIn signs in through the two steps of /login.
func ssSignIn(t *testing.T, b *browsertest.Browser, l i18n.Localizer, login, password string) {
	t.Helper()
	b.Fill(`#login`, login)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(l.T("login.password_label"))
	b.Fill(`#password`, password)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
}

// ssWrongPassword is the message of a refused password, as configured.
func ssWrongPassword(n *node, l i18n.Localizer) string {
	if n.srv.cfg.Login.RevealUnknownAccounts {
		return l.T("login.wrong_password")
	}
	return l.T("login.wrong_credentials")
}

// ssSignOut presses the header's sign-out button and looks at the page it
// leads to (the sign-in page with a notice).
func ssSignOut(p ssPages, l i18n.Localizer) {
	p.t.Helper()
	p.b.Click(`header form[action="/logout"] button[type="submit"]`)
	p.b.WaitText(l.T("logout.done"))
	p.look("signed-out")
}

// ssAllOK is the checklist of a password that meets every rule, confirmed.
var ssAllOK = map[string]string{"length": "ok", "upper": "ok", "lower": "ok", "digit": "ok", "special": "ok", "allowed": "ok", "match": "ok"}

// TestBrowserSelfService plays the journeys of issue 3 in a browser, each
// in its own subtest (parallel, one node and one browser each; the link
// sign-in uses a second browser). All in French but the reset by link, in
// English.
func TestBrowserSelfService(t *testing.T) {
	journeys := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"Activation", ssActivation},
		{"CodeSignIn", ssCodeSignIn},
		{"LinkSignIn", ssLinkSignIn},
		{"ResetByLinkEnglish", ssResetByLink},
		{"ResetByCode", ssResetByCode},
		{"ResetByQuestion", ssResetByQuestion},
		{"WhoAmI", ssWhoAmI},
		{"TemporaryRefused", ssTemporary},
	}
	for _, j := range journeys {
		t.Run(j.name, func(t *testing.T) {
			t.Parallel()
			j.fn(t)
		})
	}
}

// ssActivation (002 steps 1-11, 003 "activation"): a provisioned account,
// created with the CLI, types its address at /login; it is led to the
// activation, asks for the link, opens it from the mailbox, chooses its
// password (the checklist follows the typing), a secret question, a
// personal address whose code it types, and lands signed in on the
// account page with the notice, its question and new address there.
func ssActivation(t *testing.T) {
	const (
		ident    = "mcurie"
		name     = "Marie Curie"
		addr     = "marie.curie@univ.example"
		personal = "marie.sklodowska@perso.example"
	)
	n := ssNode(t, func(c *config.Config) {
		c.SelfService.ActivationSecretQuestion = true
		c.SelfService.ActivationPersonalEmail = true
	}, func(dbURL string) {
		ssUserAdd(t, dbURL, "", "--email", addr, "--id", ident, "--name", name, "--given-name", "Marie", "--family-name", "Curie")
	})
	l := frMsg
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p := ssPages{t, b, "fr"}

	b.Go(n.URL + "/login")
	b.WaitText(l.T("login.login_label"))
	p.look("login")
	b.Fill(`#login`, addr)
	b.Click(`form[action="/login"] button[type="submit"]`)

	// The proof: a link to the address typed.
	b.WaitText(l.T("activate.email_link_send"))
	if !strings.Contains(b.URL(), "/activate/proof?req=") {
		t.Fatalf("a provisioned account at /login went to %s, want the activation's proof step", b.URL())
	}
	if got := b.Text(`ol.steps [aria-current="step"]`); got != l.T("activate.step_proof") {
		t.Errorf("current step %q, want %q", got, l.T("activate.step_proof"))
	}
	if got := b.Count(`ol.steps li`); got != 4 {
		t.Errorf("the progress list has %d steps, want 4 (proof, password, question, personal address)", got)
	}
	p.look("activation-proof")
	b.Click(`form[action="/activate/proof"] button[type="submit"]`)
	b.WaitText(l.T("activate.sent_title"))
	if got := b.Text(`main .notice`); !strings.Contains(got, "m•••@univ.example") {
		t.Errorf("the proof page says %q, want where the link went (m•••@univ.example)", got)
	}
	if !b.HasText(l.T("activate.email_link_wait")) {
		t.Error("the proof page does not ask to be patient before asking again")
	}
	p.look("activation-link-sent")

	// The mailbox, in the browser; the link, opened there.
	text := ssMailbox(p, n, addr, "Activez votre compte campusid", "mailbox-activation-link")
	if !strings.Contains(text, ident) || !strings.Contains(text, "valable 24 heures") {
		t.Errorf("the activation message lacks the identifier or the validity:\n%s", text)
	}
	b.Go(ssLinkIn(t, text, n.URL, "/activate/link"))
	b.WaitText(l.T("activate.link_button"))
	if !b.HasText(l.T("activate.link_explain", name, ident)) {
		t.Errorf("the link page does not say whose account it activates")
	}
	p.look("activation-link-page")
	b.Click(`form[action="/activate/link"] button[type="submit"]`)

	// The password, with the live checklist.
	b.WaitText(l.T("activate.password_for", name, ident))
	if got := focusedSoon(b, "input#new-password[name=new_password][autocomplete=new-password]"); got != "input#new-password[name=new_password][autocomplete=new-password]" {
		t.Errorf("focus on the password step = %s, want the new password field", got)
	}
	p.look("activation-password")
	b.Fill(`#new-password`, "marie")
	wantStates(t, `"marie"`, ruleStates(b), map[string]string{
		"length": "ko", "upper": "ko", "lower": "ok", "digit": "ko", "special": "ko", "allowed": "ok", "match": "",
	})
	b.Fill(`#new-password`, "Marie 1867!")
	wantStates(t, `"Marie 1867!"`, ruleStates(b), map[string]string{
		"length": "ok", "upper": "ok", "lower": "ok", "digit": "ok", "special": "ok", "allowed": "ko",
	})
	b.Fill(`#new-password`, bNewPass)
	b.Fill(`#confirm-password`, bNewPass[:4])
	wantStates(t, "confirmation unfinished", ruleStates(b), map[string]string{"allowed": "ok", "match": "ko"})
	b.Fill(`#confirm-password`, bNewPass)
	wantStates(t, "good password confirmed", ruleStates(b), ssAllOK)
	p.look("activation-password-checklist")
	b.Click(`form[action="/activate/password"] button[type="submit"]`)

	// The secret question.
	b.WaitText(l.T("activate.question_intro"))
	if got := b.Text(`ol.steps [aria-current="step"]`); got != l.T("activate.step_question") {
		t.Errorf("current step %q, want %q", got, l.T("activate.step_question"))
	}
	p.look("activation-question")
	b.Fill(`#question`, l.T("question.suggest_2"))
	b.Fill(`#answer`, "Rue de l'Église Saint-Jean")
	b.Click(`form[action="/activate/question"] button[type="submit"]`)

	// The personal address and its code.
	b.WaitText(l.T("activate.personal_intro"))
	p.look("activation-personal")
	b.Fill(`#email`, personal)
	b.Click(`form[action="/activate/personal"] button[type="submit"]`)
	b.WaitText(l.T("activate.code_label"))
	if got := b.Text(`#code-sent`); !strings.Contains(got, personal) {
		t.Errorf("the code page says %q, want the address the code went to", got)
	}
	if got := b.Text(`form[action="/activate/code"] button[type="submit"]`); got != l.T("activate.finish") {
		t.Errorf("the last step's button says %q, want %q", got, l.T("activate.finish"))
	}
	p.look("activation-code")
	b.Fill(`#code`, ssCode(t, n, personal, store.PurposeFlowCode))
	b.Click(`form[action="/activate/code"] button[type="submit"]`)

	// Active and signed in.
	b.WaitText(l.T("activate.done"))
	if u := b.URL(); !strings.HasSuffix(u, "/account?done=activated") {
		t.Errorf("after the activation: URL %s, want /account?done=activated", u)
	}
	for _, s := range []string{l.T("layout.signed_in_as", name), personal, addr, l.T("question.suggest_2")} {
		if !b.HasText(s) {
			t.Errorf("the account page after the activation does not show %q", s)
		}
	}
	p.look("activation-account")
	noConsoleErrors(t, b, "activation")
}

// ssCodeSignIn (002 step 3): on the password step, "Recevoir un code par
// email"; the code pasted with a space in it signs in.
func ssCodeSignIn(t *testing.T) {
	const addr = "jean.dupont@univ.example"
	n := ssNode(t, nil, func(dbURL string) {
		ssUserAdd(t, dbURL, goodPassword, "--email", addr, "--id", "jdupont", "--name", "Jean Dupont")
	})
	l := frMsg
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p := ssPages{t, b, "fr"}

	b.Go(n.URL + "/login")
	b.WaitText(l.T("login.login_label"))
	p.look("login")
	b.Fill(`#login`, addr)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(l.T("login.password_label"))
	if got := b.Text(`button[formaction="/login/code/send"]`); got != l.T("login_code.ask") {
		t.Errorf("the code button says %q, want %q", got, l.T("login_code.ask"))
	}
	p.look("password-step")
	b.Click(`button[formaction="/login/code/send"]`)

	b.WaitText(l.T("login_code.label"))
	code := "input#code[name=code][autocomplete=one-time-code]"
	if got := focusedSoon(b, code); got != code {
		t.Errorf("focus on the code page = %s, want the code field", got)
	}
	sent := b.Text(`#code-sent`)
	if !strings.Contains(sent, "j•••@univ.example") || !strings.Contains(sent, "3 minutes") {
		t.Errorf("the code page says %q, want the masked address and the validity (3 minutes)", sent)
	}
	mail := ssMail(t, n, addr, store.PurposeLoginCode)
	if !strings.Contains(mail.Text, "valable 3 minutes") {
		t.Errorf("the code message does not state the same validity as the page:\n%s", mail.Text)
	}
	p.look("code-page")

	// Pasted as "123 456": one insertion, as a paste is, not key by key.
	c := ssCode(t, n, addr, store.PurposeLoginCode)
	pasted := c[:3] + " " + c[3:]
	var value string
	b.Eval(`(() => { const el = document.getElementById('code'); el.focus();
		document.execCommand('insertText', false, `+jsQuote(pasted)+`); return el.value; })()`, &value)
	if value != pasted {
		t.Fatalf("the code field holds %q after pasting %q", value, pasted)
	}
	p.look("code-pasted")
	b.Click(`form[action="/login/code"] button[type="submit"]`)
	b.WaitText(l.T("account.title"))
	if u := b.URL(); !strings.HasSuffix(u, "/account") {
		t.Errorf("after the code: URL %s, want /account", u)
	}
	p.look("account")
	noConsoleErrors(t, b, "code sign-in")
}

// jsQuote quotes s as a JavaScript string literal (ASCII test data only).
func jsQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// ssLinkSignIn (001/002, setting login_link): the link asked for in one
// browser is opened in a second one, which warns that another browser asked
// for it, and signs in there after the confirmation; the first browser stays
// signed out.
func ssLinkSignIn(t *testing.T) {
	const addr = "jean.dupont@univ.example"
	n := ssNode(t, func(c *config.Config) { c.SelfService.LoginLink = true }, func(dbURL string) {
		ssUserAdd(t, dbURL, goodPassword, "--email", addr, "--id", "jdupont", "--name", "Jean Dupont")
	})
	l := frMsg
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p := ssPages{t, b, "fr"}

	b.Go(n.URL + "/login")
	b.WaitText(l.T("login.login_label"))
	p.look("login")
	b.Fill(`#login`, addr)
	b.Click(`form[action="/login"] button[type="submit"]`)
	b.WaitText(l.T("login_link.ask"))
	p.look("password-step-with-link")
	b.Click(`button[formaction="/login/link/send"]`)
	b.WaitText(l.T("login_link.patience"))
	if !b.HasText("j•••@univ.example") || !b.HasText("24 heures") {
		t.Errorf("the sent page does not say where the link went and how long it lives")
	}
	p.look("link-sent")

	link := ssLinkIn(t, ssMail(t, n, addr, store.PurposeLoginLink).Text, n.URL, "/login/link")

	// The second browser (the phone, say) opens it.
	b2 := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p2 := ssPages{t, b2, "fr"}
	b2.Go(link)
	b2.WaitText(l.T("login_link.button"))
	warning := b2.Text(`#other-browser`)
	if prefix, _, _ := strings.Cut(l.T("login_link.other_browser"), "("); !strings.HasPrefix(warning, prefix) {
		t.Errorf("the link opened in another browser says %q, want the warning %q", warning, l.T("login_link.other_browser"))
	}
	if got := b2.Attr(`form[action="/login/link"] button[type="submit"]`, "aria-describedby"); got != "other-browser" {
		t.Errorf("the confirmation button is described by %q, want the warning", got)
	}
	p2.look("second-browser-warning")
	b2.Click(`form[action="/login/link"] button[type="submit"]`)
	b2.WaitText(l.T("account.title"))
	if !b2.HasText(l.T("layout.signed_in_as", "Jean Dupont")) {
		t.Error("the second browser is not signed in after confirming")
	}
	p2.look("second-browser-account")

	// The first browser did not get a session from it.
	b.Go(n.URL + "/account")
	b.WaitText(l.T("login.login_label"))
	p.look("first-browser-still-signed-out")
	noConsoleErrors(t, b, "link sign-in, first browser")
	noConsoleErrors(t, b2, "link sign-in, second browser")
}

// ssResetByLink (001 "J'ai oublié mon mot de passe", 003 procedure 2), in
// English: /login, "Forgot your password?", the address, the link from the
// mailbox, a new password, signed in; the old password is refused after.
func ssResetByLink(t *testing.T) {
	const addr = "ada.lovelace@univ.example"
	n := ssNode(t, nil, func(dbURL string) {
		ssUserAdd(t, dbURL, goodPassword, "--email", addr, "--id", "alovelace", "--name", "Ada Lovelace")
	})
	l := enMsg
	b := browsertest.New(t, browsertest.WithLang("en-US"))
	p := ssPages{t, b, "en"}

	b.Go(n.URL + "/login")
	b.WaitText(l.T("login.login_label"))
	p.look("login")
	b.Click(`main a[href="/recover"]`)
	b.WaitText(l.T("recover.intro"))
	var linkChosen bool
	b.Eval(`document.querySelector('input[name=method][value=link]').checked`, &linkChosen)
	if !linkChosen {
		t.Error("the link is not the method chosen by default")
	}
	p.look("recover")
	b.Fill(`#email`, addr)
	b.Click(`form[action="/recover"] button[type="submit"]`)
	b.WaitText(l.T("recover.spam_hint"))
	if got := b.Text(`#sent`); !strings.Contains(got, addr) || !strings.Contains(got, "1 hour") {
		t.Errorf("the sent page says %q, want the address and the validity (1 hour)", got)
	}
	p.look("recover-sent")

	text := ssMailbox(p, n, addr, "Choose a new password", "mailbox-reset-link")
	b.Go(ssLinkIn(t, text, n.URL, "/recover/link"))
	b.WaitText(l.T("recover.password_intro"))
	p.look("new-password")
	b.Fill(`#new-password`, bNewPass)
	b.Fill(`#confirm-password`, bNewPass)
	wantStates(t, "new password", ruleStates(b), ssAllOK)
	p.look("new-password-checklist")
	b.Click(`form[action="/recover/link"] button[type="submit"]`)
	b.WaitText(l.T("recover.done"))
	if !b.HasText(l.T("layout.signed_in_as", "Ada Lovelace")) {
		t.Error("not signed in after the reset")
	}
	p.look("account-after-reset")

	// The old password no longer opens the account; the new one does.
	ssSignOut(p, l)
	ssSignIn(t, b, l, addr, goodPassword)
	b.WaitText(ssWrongPassword(n, l))
	p.look("old-password-refused")
	b.Fill(`#password`, bNewPass)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	b.WaitText(l.T("account.title"))
	p.look("signed-in-with-new-password")
	noConsoleErrors(t, b, "reset by link", "401 /login/password")
}

// ssResetByCode: the same as ssResetByLink, with "a 6-digit code to type
// here" chosen on /recover.
func ssResetByCode(t *testing.T) {
	const addr = "jean.dupont@univ.example"
	n := ssNode(t, nil, func(dbURL string) {
		ssUserAdd(t, dbURL, goodPassword, "--email", addr, "--id", "jdupont", "--name", "Jean Dupont")
	})
	l := frMsg
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p := ssPages{t, b, "fr"}

	b.Go(n.URL + "/login")
	b.WaitText(l.T("login.login_label"))
	p.look("login")
	b.Click(`main a[href="/recover"]`)
	b.WaitText(l.T("recover.intro"))
	p.look("recover")
	b.Fill(`#email`, addr)
	b.Click(`input[name=method][value=code]`)
	p.look("recover-code-chosen")
	b.Click(`form[action="/recover"] button[type="submit"]`)

	b.WaitText(l.T("recover.code_label"))
	if !strings.Contains(b.URL(), "/recover/code?flow=") {
		t.Fatalf("after asking for a code: URL %s, want /recover/code", b.URL())
	}
	if got := b.Text(`#code-sent`); !strings.Contains(got, addr) || !strings.Contains(got, "3 minutes") {
		t.Errorf("the code page says %q, want the address and the validity", got)
	}
	p.look("recover-code")
	b.Fill(`#code`, ssCode(t, n, addr, store.PurposeResetCode))
	b.Click(`form[action="/recover/code"] button[type="submit"]`)

	b.WaitText(l.T("recover.password_intro"))
	p.look("new-password")
	b.Fill(`#new-password`, bNewPass)
	b.Fill(`#confirm-password`, bNewPass)
	wantStates(t, "new password", ruleStates(b), ssAllOK)
	b.Click(`form[action="/recover/password"] button[type="submit"]`)
	b.WaitText(l.T("recover.done"))
	p.look("account-after-reset")

	ssSignOut(p, l)
	ssSignIn(t, b, l, addr, goodPassword)
	b.WaitText(ssWrongPassword(n, l))
	p.look("old-password-refused")
	b.Fill(`#password`, bNewPass)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	b.WaitText(l.T("account.title"))
	p.look("signed-in-with-new-password")
	noConsoleErrors(t, b, "reset by code", "401 /login/password")
}

// ssResetByQuestion (003 procedure 1): the question is set on the account
// page; later, from /recover, "Répondre à ma question secrète", the
// identifier, an answer written with other capitals, no accents, no hyphen
// and no apostrophe (a wrong one first), a new password, signed in.
func ssResetByQuestion(t *testing.T) {
	const (
		ident = "jdupont"
		addr  = "jean.dupont@univ.example"
	)
	n := ssNode(t, nil, func(dbURL string) {
		ssUserAdd(t, dbURL, goodPassword, "--email", addr, "--id", ident, "--name", "Jean Dupont")
	})
	l := frMsg
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p := ssPages{t, b, "fr"}

	// The question, chosen on the account page (the password confirms it).
	b.Go(n.URL + "/login")
	b.WaitText(l.T("login.login_label"))
	p.look("login")
	ssSignIn(t, b, l, ident, goodPassword)
	b.WaitText(l.T("question.none"))
	p.look("account-no-question")
	question := l.T("question.suggest_2")
	b.Fill(`#question-text`, question)
	b.Fill(`#question-answer`, "Rue de l'Église Saint-Jean")
	b.Fill(`#question-password`, goodPassword)
	b.Click(`form[action="/account/question#question"] button[type="submit"]`)
	b.WaitText(l.T("question.done"))
	if !b.HasText(question) {
		t.Errorf("the account page does not show the question chosen")
	}
	p.look("account-question-set")
	ssSignOut(p, l)

	// Later: forgotten password, by the question.
	b.Click(`main a[href="/recover"]`)
	b.WaitText(l.T("recover.intro"))
	p.look("recover")
	b.Click(`main a[href="/recover/question"]`)
	b.WaitText(l.T("recoverq.intro"))
	p.look("recover-question")
	b.Fill(`#login`, ident)
	b.Click(`form[action="/recover/question"] button[type="submit"]`)
	b.WaitText(l.T("recoverq.answer_label"))
	if got := b.Text(`#question-text`); got != question {
		t.Errorf("the recovery asks %q, want the question chosen %q", got, question)
	}
	p.look("recover-question-answer")

	b.Fill(`#answer`, "rue Saint-Pierre")
	b.Click(`form[action="/recover/question/answer"] button[type="submit"]`)
	wrongPrefix, _, _ := strings.Cut(l.T("recoverq.wrong"), ".")
	b.WaitText(wrongPrefix)
	if b.Attr(`#answer`, "aria-invalid") != "true" {
		t.Error("a wrong answer does not mark the field invalid")
	}
	p.look("recover-question-wrong")

	b.Fill(`#answer`, "RUE DE L EGLISE SAINT JEAN")
	b.Click(`form[action="/recover/question/answer"] button[type="submit"]`)
	b.WaitText(l.T("recoverq.password_intro"))
	p.look("recover-question-password")
	b.Fill(`#new-password`, bNewPass)
	b.Fill(`#confirm-password`, bNewPass)
	wantStates(t, "new password", ruleStates(b), ssAllOK)
	b.Click(`form[action="/recover/question/password"] button[type="submit"]`)
	b.WaitText(l.T("recoverq.done"))
	if u := b.URL(); !strings.HasSuffix(u, "/account?done=question_reset") {
		t.Errorf("after the reset: URL %s, want /account?done=question_reset", u)
	}
	p.look("account-after-reset")

	ssSignOut(p, l)
	ssSignIn(t, b, l, ident, goodPassword)
	b.WaitText(ssWrongPassword(n, l))
	p.look("old-password-refused")
	b.Fill(`#password`, bNewPass)
	b.Click(`form[action="/login/password"] button[type="submit"]`)
	b.WaitText(l.T("account.title"))
	p.look("signed-in-with-new-password")
	noConsoleErrors(t, b, "reset by question", "422 /recover/question/answer", "401 /login/password")
}

// ssWhoAmI (003 "Qui suis-je", 001 "Je ne sais plus quelle adresse email
// j'utilise"): from /login, any address the person reads; the message in the
// mailbox gives the identifier and the account's addresses, masked but the
// one written to.
func ssWhoAmI(t *testing.T) {
	const (
		ident    = "jdupont"
		addr     = "jean.dupont@univ.example"
		personal = "jeannot@perso.example"
	)
	n := ssNode(t, nil, func(dbURL string) {
		ssUserAdd(t, dbURL, goodPassword, "--email", addr, "--personal-email", personal, "--id", ident, "--name", "Jean Dupont")
	})
	l := frMsg
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p := ssPages{t, b, "fr"}

	b.Go(n.URL + "/login")
	b.WaitText(l.T("login.login_label"))
	if got := b.Text(`main a[href="/whoami"]`); got != l.T("whoami.forgot_link") {
		t.Errorf("the who-am-I link says %q, want %q", got, l.T("whoami.forgot_link"))
	}
	p.look("login")
	b.Click(`main a[href="/whoami"]`)
	b.WaitText(l.T("whoami.intro"))
	p.look("whoami")
	b.Fill(`#email`, personal)
	b.Click(`form[action="/whoami"] button[type="submit"]`)
	b.WaitText(l.T("recover.spam_hint"))
	if got := b.Text(`#sent`); !strings.Contains(got, personal) {
		t.Errorf("the sent page says %q, want the address", got)
	}
	p.look("whoami-sent")

	text := ssMailbox(p, n, personal, "Votre identifiant campusid", "mailbox-whoami")
	for _, s := range []string{"Votre identifiant : " + ident, "  - " + personal + " (celle-ci)", "  - j•••@univ.example"} {
		if !strings.Contains(text, s) {
			t.Errorf("the who-am-I message lacks %q:\n%s", s, text)
		}
	}
	if strings.Contains(text, addr) {
		t.Errorf("the who-am-I message shows the other address %s unmasked:\n%s", addr, text)
	}
	noConsoleErrors(t, b, "who am I")
}

// ssTemporary (003 "Attention", issue 3 item 7): a temporary account asks
// for a reset; the page answers exactly as for an address no account uses,
// and the mailbox has the "contact support" message with the configured
// support address, and no reset link. Past its end date the account is
// refused at sign-in, with the date.
func ssTemporary(t *testing.T) {
	const (
		addr    = "invite.temp@univ.example"
		unknown = "personne@univ.example"
		support = "support@univ.example"
	)
	until := time.Now().AddDate(0, 0, 30)
	n := ssNode(t, func(c *config.Config) { c.Support.Email = support }, func(dbURL string) {
		ssUserAdd(t, dbURL, goodPassword, "--email", addr, "--id", "itemp", "--name", "Ines Temp",
			"--temporary-until", until.Format("2006-01-02"))
	})
	l := frMsg
	b := browsertest.New(t, browsertest.WithLang("fr-FR"))
	p := ssPages{t, b, "fr"}

	b.Go(n.URL + "/login")
	b.WaitText(l.T("login.login_label"))
	p.look("login")
	b.Click(`main a[href="/recover"]`)
	b.WaitText(l.T("recover.intro"))
	if !b.HasText(l.T("recover.temporary_note")) || b.Count(`main a[href="mailto:`+support+`"]`) == 0 {
		t.Error("/recover does not say that temporary accounts ask the support, with its address")
	}
	p.look("recover")
	ask := func(address string) string {
		t.Helper()
		b.Fill(`#email`, address)
		b.Click(`form[action="/recover"] button[type="submit"]`)
		b.WaitText(l.T("recover.spam_hint"))
		return strings.ReplaceAll(b.Text(`#sent`), address, "ADDRESS")
	}
	temp := ask(addr)
	p.look("recover-sent-temporary")
	b.Click(`main a[href="/recover"]`) // "Essayer une autre adresse"
	b.WaitText(l.T("recover.intro"))
	if other := ask(unknown); other != temp {
		t.Errorf("the page tells a temporary account from an unknown address:\n temporary: %q\n unknown:   %q", temp, other)
	}
	p.look("recover-sent-unknown")

	m := ssMail(t, n, addr, "reset_unavailable")
	if m.Subject != "Réinitialisation du mot de passe : contactez le support" || !strings.Contains(m.Text, "par email : "+support) {
		t.Errorf("the temporary account's message (%q) does not send it to the support %s:\n%s", m.Subject, support, m.Text)
	}
	if c := ssMails(n, addr, store.PurposeResetLink); c != 0 {
		t.Errorf("a temporary account got %d reset links", c)
	}
	if c := len(n.mails()); c != 1 {
		t.Errorf("the mailbox holds %d messages, want only the temporary account's", c)
	}

	// Past the end date, sign-in is refused with the date.
	a, err := n.srv.db.AccountByLogin(context.Background(), addr)
	if err != nil || a.ExpiresAt == nil {
		t.Fatalf("the temporary account: %+v, %v", a, err)
	}
	n.clock.Advance(a.ExpiresAt.Sub(n.clock.Now()) + time.Hour)
	b.Go(n.URL + "/login")
	b.WaitText(l.T("login.login_label"))
	p.look("login-after-the-end-date")
	b.Fill(`#login`, addr)
	b.Click(`form[action="/login"] button[type="submit"]`)
	want := l.T("login.expired", web.LastDay(*a.ExpiresAt))
	b.WaitText(want)
	if got := b.Text(`[role="alert"]`); got != want {
		t.Errorf("the refusal says %q, want %q", got, want)
	}
	p.look("temporary-ended")
	noConsoleErrors(t, b, "temporary account", "403 /login")
}
