package main

import (
	"context"
	"database/sql"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/session"
	"campusid/internal/store"
)

// The account page (/account) through HTTP, as a browser uses it: profile,
// addresses and their verification, password change, sessions.

var (
	frL = i18n.Localizer{Lang: "fr"}
	enL = i18n.Localizer{Lang: "en"}
)

// portalAccount creates an active account with names and one verified
// primary address.
func portalAccount(t *testing.T, n *node, ident, addr string) store.Account {
	t.Helper()
	a, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: ident, Emails: []string{addr},
		DisplayName: "Jean Dupont", GivenName: "Jean", FamilyName: "Dupont-Lefèvre", Establishment: "Université de Test",
		Password: goodPassword, Actor: "cli"})
	if err != nil {
		t.Fatalf("create %s: %v", ident, err)
	}
	return a
}

// portalSignedIn returns a new browser signed in as login.
func portalSignedIn(n *node, login, password string) *browser {
	b := n.browser()
	b.mustSignIn(login, password)
	return b
}

func portalEmails(t *testing.T, n *node, accountID string) []store.Email {
	t.Helper()
	list, err := n.srv.db.EmailsOf(context.Background(), accountID)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// portalEmail returns the account's address addr (fails if absent).
func portalEmail(t *testing.T, n *node, accountID, addr string) store.Email {
	t.Helper()
	for _, e := range portalEmails(t, n, accountID) {
		if e.Address == addr {
			return e
		}
	}
	t.Fatalf("account %s has no address %s", accountID, addr)
	return store.Email{}
}

func portalOutbox(t *testing.T, n *node) []store.OutboxMessage {
	t.Helper()
	list, err := n.srv.db.ListMail(context.Background(), "", 10000)
	if err != nil {
		t.Fatal(err)
	}
	return list
}

func portalAudit(t *testing.T, n *node, accountID, typ string) []store.AuditEvent {
	t.Helper()
	list, err := n.srv.db.ListAudit(context.Background(), store.AuditFilter{AccountID: accountID, Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return list
}

var portalLinkRe = regexp.MustCompile(`(http://\S+/verify\?token=(\S+))`)

// portalLink returns the verification link of a mail, checking it points at this node.
func portalLink(t *testing.T, n *node, text string) string {
	t.Helper()
	m := portalLinkRe.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no /verify?token= link in:\n%s", text)
	}
	if !strings.HasPrefix(m[1], n.URL+"/verify?token=") {
		t.Fatalf("link %s is not on %s", m[1], n.URL)
	}
	return m[1]
}

// portalMailsTo returns the development mailbox's messages to addr, newest first.
func portalMailsTo(n *node, addr string) []string {
	var out []string
	for _, m := range n.mails() {
		if m.To == addr {
			out = append(out, m.Text)
		}
	}
	return out
}

// token returns the token of a verification link.
func portalToken(t *testing.T, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

// has reports whether an HTML body shows text (escaped the way html/template does).
func portalHas(body, text string) bool { return strings.Contains(body, html.EscapeString(text)) }

var portalEmailErrRe = regexp.MustCompile(`(?s)<p class="error" role="alert" id="email-error">(.*?)</p>`)

// emailError returns the text of the address form's error message ("" if none).
func portalEmailError(body string) string {
	m := portalEmailErrRe.FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

var (
	portalRuleRe  = regexp.MustCompile(`<li data-rule="([a-z]+)"[^>]*>`)
	portalStateRe = regexp.MustCompile(`data-state="([a-z]+)"`)
)

// portalRules returns the password checklist's rules and their data-state.
func portalRules(body string) map[string]string {
	out := map[string]string{}
	for _, m := range portalRuleRe.FindAllStringSubmatch(body, -1) {
		st := ""
		if s := portalStateRe.FindStringSubmatch(m[0]); s != nil {
			st = s[1]
		}
		out[m[1]] = st
	}
	return out
}

// portalSessionID returns the id of the browser's session.
func portalSessionID(t *testing.T, b *browser) string {
	t.Helper()
	c := b.cookie((&session.Manager{}).CookieName())
	if c == nil {
		t.Fatal("browser has no session cookie")
	}
	s, _, err := b.n.srv.db.SessionAndAccount(context.Background(), session.HashToken(c.Value))
	if err != nil {
		t.Fatal(err)
	}
	return s.ID
}

// signedIn reports whether the browser's session still opens the account page.
func portalLive(b *browser) bool {
	b.t.Helper()
	p := b.get("/account")
	return p.Status == http.StatusOK
}

func portalWantRedirect(t *testing.T, p page, location string) {
	t.Helper()
	if p.Status != http.StatusSeeOther || p.Location != location {
		t.Fatalf("want 303 to %s, got %d to %q\n%s", location, p.Status, p.Location, p.Body)
	}
}

// ---------------------------------------------------------------- A. account page

func TestAccountPageNeedsSignIn(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
		tests := []struct {
			name     string
			method   string
			path     string
			returnTo string
		}{
			{"account page", "GET", "/account", "/account"},
			{"account page with a query", "GET", "/account?done=password", "/account?done=password"},
			{"root", "GET", "/", "/account"},
			{"form post goes back to the page", "POST", "/account/emails", "/account"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				b := n.browser()
				var p page
				if tc.method == "POST" {
					p = b.post(tc.path, url.Values{"email": {"new@perso.example"}})
				} else {
					p = b.get(tc.path)
					if tc.path == "/" {
						portalWantRedirect(t, p, "/account")
						p = b.get(p.Location)
					}
				}
				portalWantRedirect(t, p, "/login?return_to="+url.QueryEscape(tc.returnTo))
				login := b.get(p.Location)
				if login.Status != http.StatusOK || !strings.Contains(login.Body, `name="return_to" value="`+html.EscapeString(tc.returnTo)+`"`) {
					t.Fatalf("sign-in page does not carry return_to %q: %d\n%s", tc.returnTo, login.Status, login.Body)
				}
				p = b.post("/login", url.Values{"login": {"jdupont"}, "return_to": {tc.returnTo}})
				if p.Status != http.StatusSeeOther || !strings.Contains(p.Location, "/login/password?req=") {
					t.Fatalf("identify: %d %q", p.Status, p.Location)
				}
				ref := p.Location[strings.Index(p.Location, "req=")+4:]
				p = b.post("/login/password", url.Values{"req": {ref}, "password": {goodPassword}})
				portalWantRedirect(t, p, tc.returnTo)
				if p := b.get(tc.returnTo); p.Status != http.StatusOK {
					t.Fatalf("after sign-in %s: %d", tc.returnTo, p.Status)
				}
			})
		}
		if got := portalEmails(t, n, a.ID); len(got) != 1 {
			t.Errorf("a post without a session added an address: %+v", got)
		}
	})
}

func TestAccountProfile(t *testing.T) {
	n := newNode(t, store.SQLite)
	portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
	for _, tc := range []struct {
		lang string
		l    i18n.Localizer
	}{{"fr-FR", frL}, {"en-GB,en;q=0.9", enL}} {
		t.Run(tc.l.Lang, func(t *testing.T) {
			b := portalSignedIn(n, "jdupont", goodPassword)
			b.lang = tc.lang
			p := b.get("/account")
			if p.Status != http.StatusOK {
				t.Fatalf("status %d", p.Status)
			}
			for label, value := range map[string]string{
				"account.name": "Jean Dupont", "account.given_name": "Jean", "account.family_name": "Dupont-Lefèvre",
				"account.identifier": "jdupont", "account.establishment": "Université de Test",
			} {
				want := "<dt>" + html.EscapeString(tc.l.T(label)) + "</dt><dd>" + html.EscapeString(value) + "</dd>"
				if !strings.Contains(p.Body, want) {
					t.Errorf("profile lacks %s", want)
				}
			}
			for _, key := range []string{"account.profile", "account.emails", "account.password", "account.sessions", "account.primary", "account.verified"} {
				if !portalHas(p.Body, tc.l.T(key)) {
					t.Errorf("page lacks %q", tc.l.T(key))
				}
			}
			if !strings.Contains(p.Body, "jean.dupont@univ.example") {
				t.Error("page lacks the address")
			}
		})
	}
}

func TestAccountAddAndVerifyEmail(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		tests := []struct {
			name, lang string
			l          i18n.Localizer
			subject    string
			kind       string
		}{
			{"french", "fr-FR,fr;q=0.9", frL, "Vérifiez votre adresse email", store.EmailPersonal},
			{"english", "en-US,en;q=0.8", enL, "Verify your email address", store.EmailInstitutional},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ident := fmt.Sprintf("user%d", i)
				a := portalAccount(t, n, ident, ident+"@univ.example")
				b := portalSignedIn(n, ident, goodPassword)
				b.lang = tc.lang
				newAddr := ident + ".perso@example.org"

				p := b.post("/account/emails", url.Values{"email": {"  " + strings.ToUpper(newAddr[:1]) + newAddr[1:] + " "}, "kind": {tc.kind}})
				portalWantRedirect(t, p, "/account?done=email_added#emails")
				p = b.get(p.Location)
				if !portalHas(p.Body, tc.l.T("account.done_email_added")) || !strings.Contains(p.Body, newAddr) || !portalHas(p.Body, tc.l.T("account.unverified")) {
					t.Fatalf("page after adding:\n%s", p.Body)
				}
				e := portalEmail(t, n, a.ID, newAddr)
				if e.VerifiedAt != nil || e.Primary || e.Kind != tc.kind {
					t.Fatalf("new address %+v", e)
				}

				var mail *struct{ to, subject, text string }
				for _, m := range n.mails() {
					if m.To == newAddr {
						if mail != nil {
							t.Fatal("two messages for one added address")
						}
						mail = &struct{ to, subject, text string }{m.To, m.Subject, m.Text}
					}
				}
				if mail == nil {
					t.Fatal("no verification mail in the development mailbox")
				}
				if mail.subject != tc.subject {
					t.Errorf("subject %q, want %q (the page's language)", mail.subject, tc.subject)
				}
				link := portalLink(t, n, mail.text)
				if !strings.Contains(mail.text, tc.l.T("duration.hours", 24)) {
					t.Errorf("mail does not state the 24 h validity:\n%s", mail.text)
				}

				// A link scanner (or the person's mail client preview) fetches the link: nothing happens.
				scanner := n.browser()
				scanner.lang = tc.lang
				p = scanner.get(link)
				if p.Status != http.StatusOK || !portalHas(p.Body, tc.l.T("verify.button")) ||
					!strings.Contains(p.Body, `<form method="post" action="/verify">`) ||
					!strings.Contains(p.Body, `name="token" value="`+html.EscapeString(portalToken(t, link))+`"`) {
					t.Fatalf("GET /verify: %d\n%s", p.Status, p.Body)
				}
				if rp := p.Header.Get("Referrer-Policy"); rp != "no-referrer" {
					t.Errorf("Referrer-Policy %q on a token page", rp)
				}
				scanner.get(link)
				if portalEmail(t, n, a.ID, newAddr).VerifiedAt != nil {
					t.Fatal("GET /verify verified the address")
				}

				// The person presses the button, on any device, signed in or not.
				p = scanner.post("/verify", url.Values{"token": {portalToken(t, link)}})
				if p.Status != http.StatusOK || !portalHas(p.Body, tc.l.T("verify.done")) {
					t.Fatalf("POST /verify: %d\n%s", p.Status, p.Body)
				}
				if portalEmail(t, n, a.ID, newAddr).VerifiedAt == nil {
					t.Fatal("POST /verify did not verify the address")
				}
				if ev := portalAudit(t, n, a.ID, "email.verified"); len(ev) != 1 {
					t.Errorf("%d email.verified events", len(ev))
				}

				// The same link again: gone, with words that say why.
				p = scanner.post("/verify", url.Values{"token": {portalToken(t, link)}})
				if p.Status != http.StatusGone || !portalHas(p.Body, tc.l.T("verify.invalid")) {
					t.Fatalf("second POST /verify: %d\n%s", p.Status, p.Body)
				}

				// The verified address signs in.
				other := n.browser()
				other.mustSignIn(strings.ToUpper(newAddr), goodPassword)
				if p := b.get("/account"); !portalHas(p.Body, tc.l.T("account.verified")) || strings.Contains(p.Body, html.EscapeString(tc.l.T("account.unverified"))) {
					t.Errorf("page does not show the address verified:\n%s", p.Body)
				}
				if ev := portalAudit(t, n, a.ID, "email.add"); len(ev) != 1 || ev[0].Details["kind"] != tc.kind {
					t.Errorf("email.add events %+v", ev)
				}
			})
		}
	})
}

func TestVerifyLinkLifetime(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
		tests := []struct {
			name      string
			after     time.Duration
			token     func(real string) string
			wantCode  int
			wantVerif bool
		}{
			{"fresh", 0, nil, http.StatusOK, true},
			{"almost a day later", 23*time.Hour + 59*time.Minute, nil, http.StatusOK, true},
			{"expired after a day", 25 * time.Hour, nil, http.StatusGone, false},
			{"unknown token", 0, func(string) string { return "x" + strings.Repeat("A", 40) }, http.StatusGone, false},
			{"token of another purpose-free length", 0, func(string) string { return strings.Repeat("A", 101) }, http.StatusBadRequest, false},
			{"empty token", 0, func(string) string { return "" }, http.StatusBadRequest, false},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				addr := fmt.Sprintf("alt%d@perso.example", i)
				b := portalSignedIn(n, "jdupont", goodPassword)
				portalWantRedirect(t, b.post("/account/emails", url.Values{"email": {addr}}), "/account?done=email_added#emails")
				mails := portalMailsTo(n, addr)
				if len(mails) != 1 {
					t.Fatalf("%d mails to %s", len(mails), addr)
				}
				tok := portalToken(t, portalLink(t, n, mails[0]))
				if tc.token != nil {
					tok = tc.token(tok)
				}
				n.clock.Advance(tc.after)
				p := n.browser().post("/verify", url.Values{"token": {tok}})
				if p.Status != tc.wantCode {
					t.Fatalf("POST /verify: %d, want %d\n%s", p.Status, tc.wantCode, p.Body)
				}
				if tc.wantCode == http.StatusGone && !portalHas(p.Body, frL.T("verify.invalid")) {
					t.Errorf("410 page lacks the explanation:\n%s", p.Body)
				}
				if got := portalEmail(t, n, a.ID, addr).VerifiedAt != nil; got != tc.wantVerif {
					t.Errorf("verified = %v, want %v", got, tc.wantVerif)
				}
			})
		}
	})
}

func TestAddEmailRefused(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		me := portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
		other := n.user("mdurand", goodPassword, "marie.durand@univ.example")
		b := portalSignedIn(n, "jdupont", goodPassword)
		portalWantRedirect(t, b.post("/account/emails", url.Values{"email": {"pending@perso.example"}}), "/account?done=email_added#emails")

		snapshot := func() string {
			mails := portalOutbox(t, n)
			return fmt.Sprintf("me %d emails, other %d emails, %d mails, %d email.add events",
				len(portalEmails(t, n, me.ID)), len(portalEmails(t, n, other.ID)), len(mails), len(portalAudit(t, n, "", "email.add")))
		}
		before := snapshot()

		taken := frL.T("account.email_taken")
		invalid := frL.T("account.email_invalid")
		tests := []struct {
			name    string
			typed   string
			wantMsg string
		}{
			{"another account's address", "marie.durand@univ.example", taken},
			{"another account's address in capitals", "Marie.Durand@UNIV.example", taken},
			{"my own verified address", "jean.dupont@univ.example", taken},
			{"my own pending address", "pending@perso.example", taken},
			{"no at sign", "jean.dupont.univ.example", invalid},
			{"no dot in the domain", "jean@localhost", invalid},
			{"two at signs", "jean@dupont@univ.example", invalid},
			{"a name and an address", "Jean <jean@perso.example>", invalid},
			{"markup", `"><script>alert(1)</script>@x.org`, invalid},
			{"empty", "", invalid},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				p := b.post("/account/emails", url.Values{"email": {tc.typed}})
				if p.Status != http.StatusUnprocessableEntity {
					t.Fatalf("status %d, want 422\n%s", p.Status, p.Body)
				}
				if got := portalEmailError(p.Body); got != tc.wantMsg {
					t.Errorf("message %q, want %q", got, tc.wantMsg)
				}
				if !strings.Contains(p.Body, `value="`+html.EscapeString(tc.typed)+`"`) {
					t.Errorf("the field does not keep %q", tc.typed)
				}
				if strings.Contains(p.Body, "<script>alert(1)") {
					t.Error("typed markup is not escaped")
				}
				if !strings.Contains(p.Body, `aria-invalid="true" aria-describedby="email-error"`) {
					t.Error("field not marked invalid for assistive technology")
				}
				if after := snapshot(); after != before {
					t.Errorf("a refused add wrote something: %s -> %s", before, after)
				}
			})
		}
	})
}

func TestResendVerification(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
		other := n.user("mdurand", goodPassword, "marie.durand@univ.example")
		b := portalSignedIn(n, "jdupont", goodPassword)
		const addr = "jean@perso.example"
		portalWantRedirect(t, b.post("/account/emails", url.Values{"email": {addr}}), "/account?done=email_added#emails")
		e := portalEmail(t, n, a.ID, addr)
		resend := "/account/emails/" + e.ID + "/resend"

		steps := []struct {
			name      string
			advance   time.Duration
			wantCode  int
			wantWait  string // in the message of a 429
			wantMails int    // to addr after the step
		}{
			{"at once", 0, http.StatusTooManyRequests, "60 secondes", 1},
			{"half a minute later", 30 * time.Second, http.StatusTooManyRequests, "30 secondes", 1},
			{"a minute after the first", 31 * time.Second, http.StatusSeeOther, "", 2},
			{"again at once", 0, http.StatusTooManyRequests, "60 secondes", 2},
		}
		for _, s := range steps {
			t.Run(s.name, func(t *testing.T) {
				n.clock.Advance(s.advance)
				p := b.post(resend, nil)
				if p.Status != s.wantCode {
					t.Fatalf("status %d, want %d\n%s", p.Status, s.wantCode, p.Body)
				}
				if s.wantCode == http.StatusTooManyRequests {
					want := frL.T("account.resend_wait", s.wantWait)
					if got := portalEmailError(p.Body); got != want {
						t.Errorf("message %q, want %q", got, want)
					}
				} else {
					portalWantRedirect(t, p, "/account?done=resent#emails")
					if !portalHas(b.get(p.Location).Body, frL.T("account.done_resent")) {
						t.Error("no confirmation after resending")
					}
				}
				if got := len(portalMailsTo(n, addr)); got != s.wantMails {
					t.Errorf("%d mails to %s, want %d", got, addr, s.wantMails)
				}
			})
		}
		t.Run("the first link still works after a resend", func(t *testing.T) {
			mails := portalMailsTo(n, addr)
			first, second := portalLink(t, n, mails[1]), portalLink(t, n, mails[0])
			if first == second {
				t.Fatal("the resent link is the same as the first")
			}
			if p := n.browser().post("/verify", url.Values{"token": {portalToken(t, first)}}); p.Status != http.StatusOK {
				t.Fatalf("first link after a resend: %d\n%s", p.Status, p.Body)
			}
			if portalEmail(t, n, a.ID, addr).VerifiedAt == nil {
				t.Fatal("not verified")
			}
		})
		t.Run("nothing sent for a verified address", func(t *testing.T) {
			n.clock.Advance(2 * time.Minute)
			portalWantRedirect(t, b.post(resend, nil), "/account?done=resent#emails")
			if got := len(portalMailsTo(n, addr)); got != 2 {
				t.Errorf("%d mails after resending for a verified address", got)
			}
		})
		t.Run("another account's address", func(t *testing.T) {
			n.clock.Advance(2 * time.Minute)
			theirs := portalEmails(t, n, other.ID)[0]
			if p := b.post("/account/emails/"+theirs.ID+"/resend", nil); p.Status != http.StatusNotFound {
				t.Fatalf("status %d, want 404", p.Status)
			}
			if got := len(portalMailsTo(n, theirs.Address)); got != 0 {
				t.Errorf("%d mails sent to another account's address", got)
			}
		})
	})
}

func TestRemoveAndChoosePrimaryEmail(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
		other := n.user("mdurand", goodPassword, "marie.durand@univ.example")
		b := portalSignedIn(n, "jdupont", goodPassword)
		const (
			first   = "jean.dupont@univ.example"
			pending = "pending@perso.example"
			second  = "jean@perso.example"
		)
		add := func(t *testing.T, addr string, verify bool) store.Email {
			t.Helper()
			n.clock.Advance(time.Minute) // keep clear of the resend limit
			portalWantRedirect(t, b.post("/account/emails", url.Values{"email": {addr}}), "/account?done=email_added#emails")
			if verify {
				mails := portalMailsTo(n, addr)
				if p := n.browser().post("/verify", url.Values{"token": {portalToken(t, portalLink(t, n, mails[0]))}}); p.Status != http.StatusOK {
					t.Fatalf("verify %s: %d", addr, p.Status)
				}
			}
			return portalEmail(t, n, a.ID, addr)
		}
		primary := func() string {
			var ps []string
			for _, e := range portalEmails(t, n, a.ID) {
				if e.Primary {
					ps = append(ps, e.Address)
				}
			}
			return strings.Join(ps, ",")
		}
		deleteForm := func(id string) string { return `action="/account/emails/` + id + `/delete"` }

		t.Run("the only verified address cannot be removed", func(t *testing.T) {
			e := portalEmail(t, n, a.ID, first)
			add(t, pending, false)
			if strings.Contains(b.get("/account").Body, deleteForm(e.ID)) {
				t.Error("the page offers to remove the last verified address")
			}
			p := b.post("/account/emails/"+e.ID+"/delete", nil)
			if p.Status != http.StatusConflict || portalEmailError(p.Body) != frL.T("account.email_last") {
				t.Fatalf("status %d message %q\n%s", p.Status, portalEmailError(p.Body), p.Body)
			}
			if portalEmail(t, n, a.ID, first).Address != first || primary() != first {
				t.Fatal("address or primary changed")
			}
		})
		t.Run("an unverified address can be made primary no sooner than verified", func(t *testing.T) {
			e := portalEmail(t, n, a.ID, pending)
			p := b.post("/account/emails/"+e.ID+"/primary", nil)
			if p.Status != http.StatusConflict || portalEmailError(p.Body) != frL.T("account.primary_unverified") {
				t.Fatalf("status %d message %q", p.Status, portalEmailError(p.Body))
			}
			if primary() != first {
				t.Fatalf("primary is %s", primary())
			}
		})
		t.Run("an unverified address can be removed", func(t *testing.T) {
			e := portalEmail(t, n, a.ID, pending)
			portalWantRedirect(t, b.post("/account/emails/"+e.ID+"/delete", nil), "/account?done=email_removed#emails")
			if len(portalEmails(t, n, a.ID)) != 1 {
				t.Fatal("not removed")
			}
			if p := n.browser().post("/login", url.Values{"login": {pending}}); p.Status == http.StatusSeeOther {
				t.Error("a removed address still starts a sign-in")
			}
		})
		t.Run("a verified address can be made primary", func(t *testing.T) {
			e := add(t, second, true)
			portalWantRedirect(t, b.post("/account/emails/"+e.ID+"/primary", nil), "/account?done=primary#emails")
			if primary() != second {
				t.Fatalf("primary is %q", primary())
			}
			portalWantRedirect(t, b.post("/account/emails/"+portalEmail(t, n, a.ID, first).ID+"/primary", nil), "/account?done=primary#emails")
			if primary() != first {
				t.Fatalf("primary is %q", primary())
			}
		})
		t.Run("removing the primary makes another verified address primary", func(t *testing.T) {
			add(t, pending, false) // unverified: must not become primary
			e := portalEmail(t, n, a.ID, first)
			portalWantRedirect(t, b.post("/account/emails/"+e.ID+"/delete", nil), "/account?done=email_removed#emails")
			if primary() != second {
				t.Fatalf("primary is %q, want %s", primary(), second)
			}
			p := b.follow(b.get("/account?done=email_removed"))
			if !portalHas(p.Body, frL.T("account.done_email_removed")) || strings.Contains(p.Body, first) {
				t.Error("page after removal")
			}
		})
		t.Run("another account's address", func(t *testing.T) {
			theirs := portalEmails(t, n, other.ID)[0]
			for _, action := range []string{"delete", "primary"} {
				if p := b.post("/account/emails/"+theirs.ID+"/"+action, nil); p.Status != http.StatusNotFound {
					t.Errorf("%s: status %d, want 404", action, p.Status)
				}
			}
			if got := portalEmails(t, n, other.ID); len(got) != 1 || !got[0].Primary {
				t.Errorf("other account's addresses changed: %+v", got)
			}
			if p := b.post("/account/emails/nonexistent/delete", nil); p.Status != http.StatusNotFound {
				t.Errorf("unknown id: %d", p.Status)
			}
		})
	})
}

// ---------------------------------------------------------------- B. password

func TestChangePasswordWrongCurrent(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
		b := portalSignedIn(n, "jdupont", goodPassword)
		const next = "Tz9@mK4!pLq2"
		form := func(current string) url.Values {
			return url.Values{"current_password": {current}, "new_password": {next}, "confirm_password": {next}, "signout_others": {"on"}}
		}
		free := n.srv.cfg.Login.AccountFreeFailures
		for i := 1; i <= free; i++ {
			p := b.post("/account/password", form(fmt.Sprintf("Wrong#%d", i)))
			if p.Status != http.StatusUnprocessableEntity || !portalHas(p.Body, frL.T("account.current_wrong")) {
				t.Fatalf("try %d: %d\n%s", i, p.Status, p.Body)
			}
			if strings.Contains(p.Body, next) || strings.Contains(p.Body, fmt.Sprintf("Wrong#%d", i)) {
				t.Fatalf("try %d: the page shows a typed password", i)
			}
		}
		// Now even the right password must wait.
		p := b.post("/account/password", form(goodPassword))
		want := frL.T("account.password_wait", "1 seconde")
		if p.Status != http.StatusTooManyRequests || !portalHas(p.Body, want) {
			t.Fatalf("after %d failures: %d, want 429 with %q\n%s", free, p.Status, want, p.Body)
		}
		if ok, _ := n.srv.accounts.CheckPassword(context.Background(), a, goodPassword); !ok {
			t.Fatal("password changed while throttled")
		}
		if ev := portalAudit(t, n, a.ID, "password.change_failure"); len(ev) != free {
			t.Errorf("%d password.change_failure events, want %d", len(ev), free)
		}
		n.clock.Advance(2 * time.Second)
		portalWantRedirect(t, b.post("/account/password", form(goodPassword)), "/account?done=password#password")
	})
}

func TestChangePasswordPolicy(t *testing.T) {
	n := newNode(t, store.SQLite)
	a := portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
	b := portalSignedIn(n, "jdupont", goodPassword)
	rules := []string{"length", "upper", "lower", "digit", "special", "allowed", "match", "common"}
	t.Run("before any submission no rule has a state", func(t *testing.T) {
		p := b.get("/account")
		got := portalRules(p.Body)
		for _, r := range rules {
			if st, ok := got[r]; !ok || st != "" {
				t.Errorf("rule %s: present %v state %q", r, ok, st)
			}
		}
		if !strings.Contains(p.Body, `name="signout_others" checked`) {
			t.Error(`"sign out other sessions" is not checked by default`)
		}
	})
	tests := []struct {
		name        string
		next, again string
		ko          []string
	}{
		{"short, lower-case only", "abc", "abc", []string{"length", "upper", "digit", "special", "common"}},
		{"a space", "Vq7!r2 Lp9_x", "Vq7!r2 Lp9_x", []string{"allowed"}},
		{"an accent", "Vq7!r2éLp9_x", "Vq7!r2éLp9_x", []string{"allowed"}},
		{"too long", strings.Repeat("Aa1!", 13), strings.Repeat("Aa1!", 13), []string{"length"}},
		{"confirmation differs", "Tz9@mK4!pLq2", "Tz9@mK4!pLq3", []string{"match"}},
		{"common", "Password1!", "Password1!", []string{"common"}},
		{"built from the family name", "Dupont#Lefevre7", "Dupont#Lefevre7", []string{"common"}},
		{"built from the identifier", "Jdupont!2025", "Jdupont!2025", []string{"common"}},
		{"built from the given name", "Jean_Qx7#wz9", "Jean_Qx7#wz9", []string{"common"}},
		{"built from the accented family name", "Lefevre#2025xq", "Lefevre#2025xq", []string{"common"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := b.post("/account/password", url.Values{"current_password": {goodPassword}, "new_password": {tc.next},
				"confirm_password": {tc.again}, "signout_others": {"on"}})
			if p.Status != http.StatusUnprocessableEntity || !portalHas(p.Body, frL.T("account.password_refused")) {
				t.Fatalf("status %d\n%s", p.Status, p.Body)
			}
			want := map[string]string{}
			for _, r := range rules {
				want[r] = "ok"
			}
			for _, r := range tc.ko {
				want[r] = "ko"
			}
			got := portalRules(p.Body)
			for _, r := range rules {
				if got[r] != want[r] {
					t.Errorf("rule %s: data-state %q, want %q", r, got[r], want[r])
				}
			}
			for _, secret := range []string{goodPassword, html.EscapeString(goodPassword), tc.next, html.EscapeString(tc.next), tc.again, html.EscapeString(tc.again)} {
				if strings.Contains(p.Body, secret) {
					t.Errorf("the page shows a typed password %q", secret)
				}
			}
			if regexp.MustCompile(`type="password"[^>]*value=`).MatchString(p.Body) {
				t.Error("a password field has a value")
			}
			if ok, _ := n.srv.accounts.CheckPassword(context.Background(), a, goodPassword); !ok {
				t.Fatal("the password changed")
			}
		})
	}
	t.Run("the checkbox keeps what was chosen", func(t *testing.T) {
		p := b.post("/account/password", url.Values{"current_password": {goodPassword}, "new_password": {"abc"}, "confirm_password": {"abc"}})
		if strings.Contains(p.Body, `name="signout_others" checked`) {
			t.Error("unchecked box comes back checked")
		}
	})
}

func TestChangePasswordSuccess(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		tests := []struct {
			name       string
			signOut    bool
			othersLive bool
		}{
			{"signing out the other sessions", true, false},
			{"keeping the other sessions", false, true},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				ident := fmt.Sprintf("user%d", i)
				a := portalAccount(t, n, ident, ident+"@univ.example")
				b := portalSignedIn(n, ident, goodPassword)
				phone := portalSignedIn(n, ident+"@univ.example", goodPassword)
				const next = "Tz9@mK4!pLq2"
				f := url.Values{"current_password": {goodPassword}, "new_password": {next}, "confirm_password": {next}}
				if tc.signOut {
					f.Set("signout_others", "on")
				}
				p := b.post("/account/password", f)
				portalWantRedirect(t, p, "/account?done=password#password")
				p = b.get(p.Location)
				if p.Status != http.StatusOK || !portalHas(p.Body, frL.T("account.done_password")) {
					t.Fatalf("the current session did not survive, or no notice: %d", p.Status)
				}
				if got := portalLive(phone); got != tc.othersLive {
					t.Errorf("other session live = %v, want %v", got, tc.othersLive)
				}
				if p := n.browser().signIn(ident, goodPassword, false); p.Status == http.StatusSeeOther {
					t.Error("the old password still signs in")
				}
				n.browser().mustSignIn(ident, next)
				ev := portalAudit(t, n, a.ID, "password.change")
				if len(ev) != 1 || ev[0].Actor != "self" || ev[0].IP == "" {
					t.Fatalf("password.change events %+v", ev)
				}
				wantEnded := map[bool]string{true: "1", false: "0"}[tc.signOut]
				if ev[0].Details["sessions_ended"] != wantEnded {
					t.Errorf("sessions_ended %q, want %s", ev[0].Details["sessions_ended"], wantEnded)
				}
			})
		}
	})
}

// ---------------------------------------------------------------- C. sessions

const portalChromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

func TestSessionsList(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
		n.user("mdurand", goodPassword, "marie.durand@univ.example")
		laptop := portalSignedIn(n, "jdupont", goodPassword)
		office := n.browser()
		office.ua = portalChromeUA
		office.mustSignIn("jean.dupont@univ.example", goodPassword)
		stranger := portalSignedIn(n, "mdurand", goodPassword)

		t.Run("both sessions listed with their device", func(t *testing.T) {
			p := laptop.get("/account")
			for _, want := range []string{frL.T("account.device", "Firefox", "Linux"), frL.T("account.device", "Chrome", "Windows"),
				frL.T("account.signout_all_others", 1), frL.T("account.this_session")} {
				if !portalHas(p.Body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			if c := strings.Count(p.Body, `<span class="badge ok">`+html.EscapeString(frL.T("account.this_session"))); c != 1 {
				t.Errorf("%d sessions marked as this one", c)
			}
			if !strings.Contains(p.Body, `action="/account/sessions/`+portalSessionID(t, office)+`/revoke"`) {
				t.Error("no sign-out button for the other session")
			}
			if strings.Contains(p.Body, portalSessionID(t, stranger)) {
				t.Error("another account's session is listed")
			}
		})
		t.Run("another account's session cannot be ended", func(t *testing.T) {
			p := laptop.post("/account/sessions/"+portalSessionID(t, stranger)+"/revoke", nil)
			if p.Status != http.StatusNotFound {
				t.Fatalf("status %d, want 404", p.Status)
			}
			if !portalLive(stranger) {
				t.Fatal("another account's session was ended")
			}
		})
		t.Run("sign out this session", func(t *testing.T) {
			p := laptop.post("/account/sessions/"+portalSessionID(t, office)+"/revoke", nil)
			portalWantRedirect(t, p, "/account?done=session_ended#sessions")
			if portalLive(office) {
				t.Fatal("the other session still works")
			}
			p = laptop.get(p.Location)
			if p.Status != http.StatusOK || !portalHas(p.Body, frL.T("account.done_session_ended")) || portalHas(p.Body, frL.T("account.device", "Chrome", "Windows")) {
				t.Fatalf("page after ending a session: %d", p.Status)
			}
			if portalHas(p.Body, frL.T("account.signout_all_others", 1)) {
				t.Error("still offers to sign out others when there are none")
			}
		})
		t.Run("sign out all others", func(t *testing.T) {
			others := []*browser{portalSignedIn(n, "jdupont", goodPassword), portalSignedIn(n, "jdupont", goodPassword)}
			if !portalHas(laptop.get("/account").Body, frL.T("account.signout_all_others", 2)) {
				t.Error("the button does not count the 2 others")
			}
			portalWantRedirect(t, laptop.post("/account/sessions/revoke-others", nil), "/account?done=others_ended#sessions")
			for i, o := range others {
				if portalLive(o) {
					t.Errorf("other session %d still works", i)
				}
			}
			if !portalLive(laptop) || !portalLive(stranger) {
				t.Fatal("the current session or another account's ended")
			}
			if ev := portalAudit(t, n, a.ID, "session.revoke_others"); len(ev) != 1 || ev[0].Details["count"] != "2" {
				t.Errorf("audit %+v", ev)
			}
		})
		t.Run("sign out the current session", func(t *testing.T) {
			p := laptop.post("/account/sessions/"+portalSessionID(t, laptop)+"/revoke", nil)
			portalWantRedirect(t, p, "/login?logged_out=1")
			if portalLive(laptop) {
				t.Fatal("still signed in")
			}
		})
	})
}

// ---------------------------------------------------------------- D. outbox

// portalRawDB opens the node's database directly, for fault injection.
func portalRawDB(t *testing.T, n *node) (*sql.DB, store.Dialect) {
	t.Helper()
	u := n.srv.cfg.Database.URL
	var (
		db  *sql.DB
		err error
		d   = store.Postgres
	)
	if path, ok := strings.CutPrefix(u, "sqlite:"); ok {
		d = store.SQLite
		db, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)")
	} else {
		db, err = sql.Open("pgx", u)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, d
}

// TestAddEmailOutboxIsTransactional: when the verification mail cannot be
// queued, the address is not added either; and every address added through
// the page has exactly one verification mail.
func TestAddEmailOutboxIsTransactional(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := portalAccount(t, n, "jdupont", "jean.dupont@univ.example")
		n.user("mdurand", goodPassword, "marie.durand@univ.example")
		b := portalSignedIn(n, "jdupont", goodPassword)
		raw, dialect := portalRawDB(t, n)
		ctx := context.Background()
		count := func(table string) int {
			var c int
			if err := raw.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+table).Scan(&c); err != nil {
				t.Fatal(err)
			}
			return c
		}

		t.Run("outbox refusing the message leaves no address", func(t *testing.T) {
			// The database refuses outbox inserts, as a full disk or a
			// broken constraint would.
			var ddl []string
			if dialect == store.SQLite {
				ddl = []string{`CREATE TRIGGER outbox_down BEFORE INSERT ON outbox BEGIN SELECT RAISE(ABORT, 'outbox down'); END`}
			} else {
				ddl = []string{
					`CREATE FUNCTION outbox_down() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'outbox down'; END $$`,
					`CREATE TRIGGER outbox_down BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_down()`,
				}
			}
			for _, q := range ddl {
				if _, err := raw.ExecContext(ctx, q); err != nil {
					t.Fatal(err)
				}
			}
			emails, tokens, mails := count("emails"), count("email_tokens"), count("outbox")
			p := b.post("/account/emails", url.Values{"email": {"jean@perso.example"}})
			if p.Status != http.StatusInternalServerError {
				t.Fatalf("status %d, want 500", p.Status)
			}
			if strings.Contains(p.Body, "outbox down") {
				t.Error("the error page shows the database error")
			}
			if count("emails") != emails || count("email_tokens") != tokens || count("outbox") != mails {
				t.Fatalf("half-written: emails %d->%d tokens %d->%d outbox %d->%d",
					emails, count("emails"), tokens, count("email_tokens"), mails, count("outbox"))
			}
			if ev := portalAudit(t, n, a.ID, "email.add"); len(ev) != 0 {
				t.Errorf("email.add recorded for an address that was not added")
			}
			if _, err := raw.ExecContext(ctx, `DROP TRIGGER outbox_down`+map[store.Dialect]string{store.Postgres: " ON outbox"}[dialect]); err != nil {
				t.Fatal(err)
			}
			// Nothing reserves the address: adding it again works.
			portalWantRedirect(t, b.post("/account/emails", url.Values{"email": {"jean@perso.example"}}), "/account?done=email_added#emails")
		})

		t.Run("one mail per added address, none for refused ones", func(t *testing.T) {
			for _, addr := range []string{"second@perso.example", "marie.durand@univ.example", "third@perso.example", "bad@", "second@perso.example"} {
				b.post("/account/emails", url.Values{"email": {addr}})
			}
			per := map[string]int{}
			for _, m := range portalOutbox(t, n) {
				if m.Purpose == store.PurposeVerifyEmail {
					per[m.To]++
				}
			}
			var added []string
			for _, e := range portalEmails(t, n, a.ID) {
				if e.VerifiedAt == nil {
					added = append(added, e.Address)
					if per[e.Address] != 1 {
						t.Errorf("%s: %d verification mails, want 1", e.Address, per[e.Address])
					}
					delete(per, e.Address)
				}
			}
			if len(added) != 3 {
				t.Errorf("added %v, want 3 addresses", added)
			}
			if len(per) != 0 {
				t.Errorf("verification mails for addresses that were not added: %v", per)
			}
			if tokens := count("email_tokens"); tokens != 3 {
				t.Errorf("%d tokens, want 3", tokens)
			}
		})
	})
}
