package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"campusid/internal/account"
	"campusid/internal/config"
	"campusid/internal/outbox"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// Password reset by email (/recover), by link and by code, through HTTP as
// a browser does it, with the messages read from the development mailbox.

const (
	recAddr     = "jean.dupont@univ.example"
	recPersonal = "jd@perso.example"
	recNew      = "N0uveau!Secret#42"
)

// recNode starts a node with a support contact; change lets a test adjust
// the configuration first.
func recNode(t *testing.T, d store.Dialect, change func(*config.Config)) *node {
	t.Helper()
	cfg := testConfig(t, storetest.URL(t, d))
	cfg.Support.Email, cfg.Support.URL = "support@univ.example", "https://help.univ.example"
	if change != nil {
		change(&cfg)
	}
	return startNode(t, cfg, nil)
}

// recAccount creates jdupont, active, with an institutional and a personal address.
func recAccount(t *testing.T, n *node) store.Account {
	t.Helper()
	a, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: "jdupont", Emails: []string{recAddr},
		PersonalEmails: []string{recPersonal}, DisplayName: "Jean Dupont", Password: goodPassword, Actor: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// recTemporary creates a temporary account ending in 30 days.
func recTemporary(t *testing.T, n *node, ident, addr string) store.Account {
	t.Helper()
	until := n.clock.Now().Add(30 * 24 * time.Hour)
	a, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: ident, Emails: []string{addr},
		DisplayName: "Tom Temp", Password: goodPassword, TemporaryUntil: &until, Actor: "cli"})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func recAsk(b *browser, addr, method string) page {
	b.t.Helper()
	return b.post("/recover", url.Values{"email": {addr}, "method": {method}})
}

// recMails returns the messages to addr, newest first.
func recMails(n *node, addr string) []outbox.DevMail {
	var out []outbox.DevMail
	for _, m := range n.mails() {
		if m.To == addr {
			out = append(out, m)
		}
	}
	return out
}

// recMailsOf returns the messages to addr of one purpose (mail kind), newest first.
func recMailsOf(n *node, addr, purpose string) []outbox.DevMail {
	var out []outbox.DevMail
	for _, m := range recMails(n, addr) {
		if m.Purpose == purpose {
			out = append(out, m)
		}
	}
	return out
}

var recLinkRe = regexp.MustCompile(`http://\S+/recover/link\?token=[A-Za-z0-9_%-]+`)

// recLink returns the path of the reset link of the newest reset_link mail to addr.
func recLink(t *testing.T, n *node, addr string) string {
	t.Helper()
	list := recMailsOf(n, addr, store.PurposeResetLink)
	if len(list) == 0 {
		t.Fatalf("no reset link was sent to %s", addr)
	}
	link := recLinkRe.FindString(list[0].Text)
	if !strings.HasPrefix(link, n.URL+"/recover/link?token=") {
		t.Fatalf("no reset link on this node in:\n%s", list[0].Text)
	}
	return strings.TrimPrefix(link, n.URL)
}

var (
	recCodeRe = regexp.MustCompile(`\b(\d{6})\b`)
	recTimeRe = regexp.MustCompile(`\b\d\d:\d\d\b`)
)

// recCode returns the code of the newest reset_code mail to addr.
func recCode(t *testing.T, n *node, addr string) string {
	t.Helper()
	list := recMailsOf(n, addr, store.PurposeResetCode)
	if len(list) == 0 {
		t.Fatalf("no reset code was sent to %s", addr)
	}
	m := recCodeRe.FindStringSubmatch(list[0].Subject)
	if m == nil {
		t.Fatalf("no code in the subject %q", list[0].Subject)
	}
	if !strings.Contains(list[0].Text, m[1]) {
		t.Fatalf("the text does not carry the code of the subject:\n%s", list[0].Text)
	}
	return m[1]
}

// recOther returns a 6-digit code that is not code.
func recOther(code string) string {
	c, _ := strconv.Atoi(code)
	return fmt.Sprintf("%06d", (c+1)%1_000_000)
}

// recFlow asks for a code and returns the flow reference of the code page.
func recFlow(t *testing.T, b *browser, addr string) string {
	t.Helper()
	p := recAsk(b, addr, "code")
	ref, ok := strings.CutPrefix(p.Location, "/recover/code?flow=")
	if p.Status != http.StatusSeeOther || !ok {
		t.Fatalf("ask a code for %s: status %d location %q\n%s", addr, p.Status, p.Location, p.Body)
	}
	return ref
}

func recSetPassword(b *browser, path string, form url.Values, password string) page {
	b.t.Helper()
	form.Set("new_password", password)
	form.Set("confirm_password", password)
	return b.post(path, form)
}

func recLinkToken(link string) string {
	u, _ := url.Parse(link)
	return u.Query().Get("token")
}

// recTokenLive reports whether the link is still unused and unexpired.
func recTokenLive(t *testing.T, n *node, link string) bool {
	t.Helper()
	tok, err := n.srv.db.TokenByHash(context.Background(), session.HashToken(recLinkToken(link)))
	if err != nil {
		t.Fatal(err)
	}
	return tok.UsedAt == nil && n.clock.Now().Before(tok.ExpiresAt)
}

// recCanSignIn reports whether login/password opens the account page in a fresh browser.
func recCanSignIn(n *node, login, password string) bool {
	p := n.browser().signIn(login, password, false)
	return p.Status == http.StatusSeeOther && p.Location == "/account"
}

func recWantSignedIn(t *testing.T, b *browser, p page, notice string) {
	t.Helper()
	portalWantRedirect(t, p, "/account?done=reset")
	expectPage(t, "account page after the reset", b.get(p.Location), http.StatusOK, notice)
}

func TestRecoverByLink(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		a := recAccount(t, n)
		other := n.browser()
		other.mustSignIn(recAddr, goodPassword) // a session elsewhere, to be ended
		now := n.clock.Now()

		b := n.browser()
		expectPage(t, "recover form", b.get("/recover"), http.StatusOK, `autocomplete="username"`, `value="link" checked`,
			`value="code"`, `href="/recover/question"`, `href="/whoami"`)
		p := recAsk(b, " Jean.Dupont@Univ.example ", "link")
		expectPage(t, "sent page", p, http.StatusOK, "Si un compte utilise l'adresse "+recAddr+", un message vient d'y être envoyé à "+clockTime(now),
			"Le lien est valable 1 heure", "à partir de "+clockTimeUp(now.Add(time.Minute)))
		mails := recMailsOf(n, recAddr, store.PurposeResetLink)
		if len(mails) != 1 || mails[0].Subject != "Choisir un nouveau mot de passe" || !strings.Contains(mails[0].Text, "valable 1 heure") ||
			!strings.Contains(mails[0].Text, "jdupont") {
			t.Fatalf("want one French reset mail stating 1 heure, got %+v", mails)
		}
		if len(recMails(n, recPersonal)) != 0 {
			t.Fatal("the reset went to another address than the one typed")
		}
		link := recLink(t, n, recAddr)

		// Opening the link (twice, as a mail scanner would) uses nothing.
		for range 2 {
			p = b.get(link)
			expectPage(t, "new-password form", p, http.StatusOK, `autocomplete="new-password"`, `id="policy-rules"`, `name="token"`)
			if p.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Fatalf("the link page leaks its URL in Referer: %q", p.Header.Get("Referrer-Policy"))
			}
		}
		if !recTokenLive(t, n, link) {
			t.Fatal("GET used the link up")
		}
		// A password the policy refuses: the checklist says why, the link lives on.
		p = recSetPassword(b, "/recover/link", url.Values{"token": {recLinkToken(link)}}, "short")
		expectPage(t, "refused password", p, http.StatusUnprocessableEntity, "ne respecte pas toutes les règles")
		if portalRules(p.Body)["length"] != "ko" || !recTokenLive(t, n, link) {
			t.Fatalf("refused password: rules %v, link live %v", portalRules(p.Body), recTokenLive(t, n, link))
		}
		p = b.post("/recover/link", url.Values{"token": {recLinkToken(link)}, "new_password": {recNew}, "confirm_password": {recNew + "x"}})
		if p.Status != http.StatusUnprocessableEntity || portalRules(p.Body)["match"] != "ko" {
			t.Fatalf("different confirmation: %d %v", p.Status, portalRules(p.Body))
		}

		p = recSetPassword(b, "/recover/link", url.Values{"token": {recLinkToken(link)}}, recNew)
		recWantSignedIn(t, b, p, "Votre mot de passe a été réinitialisé")

		if portalLive(other) {
			t.Fatal("the other session survived the reset")
		}
		if recCanSignIn(n, recAddr, goodPassword) {
			t.Fatal("the old password still works")
		}
		if !recCanSignIn(n, recAddr, recNew) {
			t.Fatal("the new password does not work")
		}
		for _, addr := range []string{recAddr, recPersonal} {
			if len(recMailsOf(n, addr, "notify_password_changed")) != 1 {
				t.Fatalf("no password-changed notification to %s", addr)
			}
		}
		ev := portalAudit(t, n, a.ID, "password.reset")
		if len(ev) != 1 || ev[0].Details["method"] != "link" || ev[0].Details["sessions_ended"] != "1" {
			t.Fatalf("audit password.reset: %+v", ev)
		}
		if len(portalAudit(t, n, a.ID, "recover.link_sent")) != 1 || len(portalAudit(t, n, a.ID, "recover.requested")) != 1 {
			t.Fatal("the request and the sending are not audited")
		}
		for _, e := range portalAudit(t, n, a.ID, "") {
			for _, v := range e.Details {
				if strings.Contains(v, recLinkToken(link)) || strings.Contains(v, recNew) {
					t.Fatalf("audit event %s carries a secret: %v", e.Type, e.Details)
				}
			}
		}

		// Used: refused, on GET and POST alike.
		expectPage(t, "used link", b.get(link), http.StatusGone, "Ce lien n'est plus valable")
		p = recSetPassword(b, "/recover/link", url.Values{"token": {recLinkToken(link)}}, "Autre!Secret#43")
		expectPage(t, "used link, POST", p, http.StatusGone, "Ce lien n'est plus valable")
		if !recCanSignIn(n, recAddr, recNew) {
			t.Fatal("a used link changed the password again")
		}
	})
}

func TestRecoverLinkLifetime(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		recAccount(t, n)
		b := n.browser()

		recAsk(b, recAddr, "link")
		link := recLink(t, n, recAddr)
		n.clock.Advance(59 * time.Minute)
		expectPage(t, "link at 59m", b.get(link), http.StatusOK, `autocomplete="new-password"`)
		recWantSignedIn(t, b, recSetPassword(b, "/recover/link", url.Values{"token": {recLinkToken(link)}}, recNew), "réinitialisé")

		recAsk(b, recPersonal, "link")
		link = recLink(t, n, recPersonal)
		n.clock.Advance(61 * time.Minute)
		expectPage(t, "link at 1h01", b.get(link), http.StatusGone, "Ce lien n'est plus valable")
		p := recSetPassword(b, "/recover/link", url.Values{"token": {recLinkToken(link)}}, "Autre!Secret#43")
		expectPage(t, "link at 1h01, POST", p, http.StatusGone)
		if !recCanSignIn(n, recAddr, recNew) {
			t.Fatal("an expired link changed the password")
		}
	})
}

// TestRecoverResendAndTwoLinks: a second request within the interval is
// refused with when the last left and when to ask again, and breaks nothing;
// a later one sends a second link; using it ends the first.
func TestRecoverResendAndTwoLinks(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		a := recAccount(t, n)
		b := n.browser()
		first := n.clock.Now()
		recAsk(b, recAddr, "link")
		link1 := recLink(t, n, recAddr)

		n.clock.Advance(20 * time.Second)
		p := recAsk(b, recAddr, "link")
		expectPage(t, "resend too soon", p, http.StatusTooManyRequests, "Un message a déjà été demandé pour cette adresse à "+clockTime(first),
			"à partir de "+clockTimeUp(first.Add(time.Minute)), "celui-là reste valable")
		if ra, _ := strconv.Atoi(p.Header.Get("Retry-After")); ra != 40 {
			t.Fatalf("Retry-After %q, want 40", p.Header.Get("Retry-After"))
		}
		// An unknown address is held back the same way.
		now := n.clock.Now()
		expectPage(t, "unknown, first", recAsk(b, "nobody@univ.example", "link"), http.StatusOK, "un message vient d'y être envoyé")
		expectPage(t, "unknown, too soon", recAsk(b, "nobody@univ.example", "link"), http.StatusTooManyRequests,
			"Un message a déjà été demandé pour cette adresse à "+clockTime(now), "à partir de "+clockTimeUp(now.Add(time.Minute)))
		// Another address of the same account: the account's interval holds too.
		p = recAsk(b, recPersonal, "link")
		expectPage(t, "other address of the account, too soon", p, http.StatusTooManyRequests, "à partir de")
		if got := len(recMailsOf(n, recAddr, store.PurposeResetLink)) + len(recMails(n, recPersonal)); got != 1 {
			t.Fatalf("%d reset messages, want 1", got)
		}
		if !recTokenLive(t, n, link1) {
			t.Fatal("a refused request broke the link in the inbox")
		}

		n.clock.Advance(time.Minute)
		expectPage(t, "resend after a minute", recAsk(b, recAddr, "link"), http.StatusOK, "un message vient d'y être envoyé")
		link2 := recLink(t, n, recAddr)
		if link2 == link1 {
			t.Fatal("no new link")
		}
		if !recTokenLive(t, n, link1) {
			t.Fatal("a new link broke the one already in the inbox")
		}
		recWantSignedIn(t, b, recSetPassword(b, "/recover/link", url.Values{"token": {recLinkToken(link2)}}, recNew), "réinitialisé")
		expectPage(t, "first link after the second was used", b.get(link1), http.StatusGone, "un autre lien de réinitialisation a servi")
		if n := len(portalAudit(t, n, a.ID, "recover.link_sent")); n != 2 {
			t.Fatalf("%d recover.link_sent events, want 2", n)
		}
	})
}

func TestRecoverByCode(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		a := recAccount(t, n)
		other := n.browser()
		other.mustSignIn(recAddr, goodPassword)
		b := n.browser()

		ref := recFlow(t, b, recAddr)
		p := b.get("/recover/code?flow=" + ref)
		expectPage(t, "code page", p, http.StatusOK, `autocomplete="one-time-code"`, "un code à 6 chiffres y a été envoyé à "+clockTime(n.clock.Now()),
			"Le code est valable 3 minutes")
		code := recCode(t, n, recAddr)
		if m := recMailsOf(n, recAddr, store.PurposeResetCode)[0]; !strings.Contains(m.Text, "valable 3 minutes") {
			t.Fatalf("the mail does not state the page's validity:\n%s", m.Text)
		}
		// The flow belongs to the browser that asked.
		expectPage(t, "code page in another browser", n.browser().get("/recover/code?flow="+ref), http.StatusForbidden, "autre navigateur")

		expectPage(t, "not 6 digits", b.post("/recover/code", url.Values{"flow": {ref}, "code": {"12"}}), http.StatusUnprocessableEntity, "les 6 chiffres")
		expectPage(t, "wrong code", b.post("/recover/code", url.Values{"flow": {ref}, "code": {recOther(code)}}),
			http.StatusUnprocessableEntity, "Ce code n'est pas le bon")
		p = b.post("/recover/code", url.Values{"flow": {ref}, "code": {code[:3] + " " + code[3:]}}) // pasted with a space
		portalWantRedirect(t, p, "/recover/password?flow="+ref)
		expectPage(t, "code page after use", b.get("/recover/code?flow="+ref), http.StatusSeeOther)
		expectPage(t, "new-password page", b.get(p.Location), http.StatusOK, `autocomplete="new-password"`, `id="policy-rules"`)
		p = recSetPassword(b, "/recover/password", url.Values{"flow": {ref}}, recNew)
		recWantSignedIn(t, b, p, "Votre mot de passe a été réinitialisé")
		if portalLive(other) || recCanSignIn(n, recAddr, goodPassword) || !recCanSignIn(n, recAddr, recNew) {
			t.Fatal("after a reset by code: other session, old or new password wrong")
		}
		if ev := portalAudit(t, n, a.ID, "password.reset"); len(ev) != 1 || ev[0].Details["method"] != "code" {
			t.Fatalf("audit: %+v", ev)
		}
		// The flow is done: its pages send back to the start.
		portalWantRedirect(t, recSetPassword(b, "/recover/password", url.Values{"flow": {ref}}, "Autre!Secret#43"), "/recover?expired=1")
	})
}

func TestRecoverCodeDiesAfterFiveTries(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		recAccount(t, n)
		b := n.browser()
		ref := recFlow(t, b, recAddr)
		code := recCode(t, n, recAddr)
		for i := 1; i <= 5; i++ {
			want := "Ce code n'est pas le bon"
			if i == 5 {
				want = "Ce code n'est plus valable"
			}
			expectPage(t, fmt.Sprintf("wrong code %d", i), b.post("/recover/code", url.Values{"flow": {ref}, "code": {recOther(code)}}),
				http.StatusUnprocessableEntity, want)
		}
		expectPage(t, "right code after 5 wrong ones", b.post("/recover/code", url.Values{"flow": {ref}, "code": {code}}),
			http.StatusUnprocessableEntity, "Ce code n'est plus valable")

		// A new code in the same flow works; the page said when it could be asked.
		expectPage(t, "resend too soon", b.post("/recover/code/resend", url.Values{"flow": {ref}}), http.StatusTooManyRequests, "à partir de")
		n.clock.Advance(61 * time.Second)
		p := b.post("/recover/code/resend", url.Values{"flow": {ref}})
		portalWantRedirect(t, p, "/recover/code?flow="+ref+"&resent=1")
		expectPage(t, "code page after resend", b.get(p.Location), http.StatusOK, "Un nouveau code vient d'être envoyé")
		code2 := recCode(t, n, recAddr)
		portalWantRedirect(t, b.post("/recover/code", url.Values{"flow": {ref}, "code": {code2}}), "/recover/password?flow="+ref)
	})
}

func TestRecoverCodeExpiry(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		recAccount(t, n)
		b := n.browser()
		ref := recFlow(t, b, recAddr)
		code := recCode(t, n, recAddr)
		n.clock.Advance(3*time.Minute + time.Second)
		expectPage(t, "code at 3m01", b.post("/recover/code", url.Values{"flow": {ref}, "code": {code}}),
			http.StatusUnprocessableEntity, "Ce code n'est plus valable")

		ref = recFlow(t, b, recAddr)
		code = recCode(t, n, recAddr)
		n.clock.Advance(2*time.Minute + 59*time.Second)
		portalWantRedirect(t, b.post("/recover/code", url.Values{"flow": {ref}, "code": {code}}), "/recover/password?flow="+ref)
	})
}

// TestRecoverUnknownAddressLooksTheSame: an unknown address, an unverified
// one and a temporary account's get the very pages a real account gets,
// by link and by code (every code fails like a wrong one, then dies after
// as many tries), and no reset message.
func TestRecoverUnknownAddressLooksTheSame(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, func(c *config.Config) { c.Login.ClientFreeFailures = 100 })
		a := recAccount(t, n)
		ctx := context.Background()
		if err := n.srv.db.AddEmail(ctx, &store.Email{AccountID: a.ID, Address: "pending@perso.example", Kind: store.EmailPersonal,
			CreatedAt: n.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		recTemporary(t, n, "ttemp", "tom.temp@univ.example")

		// run plays a request by link and one by code for addr and returns
		// every response with the address and the flow reference replaced.
		run := func(addr string) []page {
			b := n.browser()
			norm := func(p page, ref string) page {
				p.Body = strings.ReplaceAll(p.Body, addr, "ADDR")
				if ref != "" {
					p.Body = strings.ReplaceAll(p.Body, ref, "REF")
					p.Location = strings.ReplaceAll(p.Location, ref, "REF")
				}
				p.Body = recTimeRe.ReplaceAllString(p.Body, "HH:MM") // each run comes later
				p.Header = nil
				return p
			}
			out := []page{norm(recAsk(b, addr, "link"), "")}
			n.clock.Advance(61 * time.Second)
			p := recAsk(b, addr, "code")
			ref := strings.TrimPrefix(p.Location, "/recover/code?flow=")
			out = append(out, norm(p, ref), norm(b.get("/recover/code?flow="+ref), ref))
			for range 5 {
				out = append(out, norm(b.post("/recover/code", url.Values{"flow": {ref}, "code": {"000000"}}), ref))
			}
			n.clock.Advance(61 * time.Second)
			return out
		}
		known := run(recAddr)
		for _, addr := range []string{"nobody@univ.example", "pending@perso.example", "tom.temp@univ.example"} {
			got := run(addr)
			for i := range known {
				if got[i].Status != known[i].Status || got[i].Location != known[i].Location || got[i].Body != known[i].Body {
					t.Fatalf("%s, response %d differs from a real account's: %d %q / %d %q\n--- real:\n%s\n--- %s:\n%s", addr, i,
						known[i].Status, known[i].Location, got[i].Status, got[i].Location, known[i].Body, addr, got[i].Body)
				}
			}
		}
		if known[0].Status != http.StatusOK || !strings.Contains(pageText(known[0]), "Si un compte utilise l'adresse ADDR") ||
			known[1].Status != http.StatusSeeOther || !strings.Contains(pageText(known[3]), "Ce code n'est pas le bon") ||
			!strings.Contains(pageText(known[7]), "Ce code n'est plus valable") {
			t.Fatalf("unexpected pages: %d %d\n%s\n%s", known[0].Status, known[1].Status, known[3].Body, known[7].Body)
		}
		for _, addr := range []string{"nobody@univ.example", "pending@perso.example"} {
			if m := recMails(n, addr); len(m) != 0 {
				t.Fatalf("%d messages to %s", len(m), addr)
			}
		}
		if m := recMails(n, "tom.temp@univ.example"); len(m) != 2 || m[0].Purpose != "reset_unavailable" || m[1].Purpose != "reset_unavailable" {
			t.Fatalf("the temporary account should get only the contact-support message: %+v", m)
		}
		ev, _ := n.srv.db.ListAudit(ctx, store.AuditFilter{Type: "recover.requested", Limit: 100})
		results := map[string]int{}
		for _, e := range ev {
			results[e.Details["result"]]++
		}
		if results["unknown"] != 4 || results["temporary"] != 2 || results["sent"] != 2 {
			t.Fatalf("audit results %v", results)
		}
	})
}

func TestRecoverRevealUnknown(t *testing.T) {
	n := recNode(t, store.SQLite, func(c *config.Config) { c.SelfService.RevealUnknownAccounts = true })
	recAccount(t, n)
	b := n.browser()
	expectPage(t, "unknown, revealed", recAsk(b, "nobody@univ.example", "link"), http.StatusUnprocessableEntity, "Aucun compte n'utilise cette adresse")
	expectPage(t, "known", recAsk(b, recAddr, "link"), http.StatusOK, "un message vient d'y être envoyé")
}

// TestRecoverTemporaryAccount: no self-service reset; the page (when
// revealing) and always a message say to contact support, in the person's language.
func TestRecoverTemporaryAccount(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		for _, reveal := range []bool{false, true} {
			n := recNode(t, d, func(c *config.Config) { c.SelfService.RevealUnknownAccounts = reveal })
			a := recTemporary(t, n, "ttemp", "tom.temp@univ.example")
			fr, en := n.browser(), n.browser()
			en.lang = "en-GB,en;q=0.9"

			p := recAsk(fr, "tom.temp@univ.example", "link")
			if reveal {
				expectPage(t, "temporary, revealed", p, http.StatusForbidden, "Les comptes temporaires ne peuvent pas réinitialiser",
					"support@univ.example", "https://help.univ.example")
			} else {
				expectPage(t, "temporary, hidden", p, http.StatusOK, "Si un compte utilise l'adresse tom.temp@univ.example")
			}
			m := recMails(n, "tom.temp@univ.example")
			if len(m) != 1 || m[0].Purpose != "reset_unavailable" || !strings.Contains(m[0].Text, "compte temporaire") ||
				!strings.Contains(m[0].Text, "support@univ.example") || !strings.Contains(m[0].Text, "https://help.univ.example") ||
				strings.Contains(m[0].Text, "/recover/link") {
				t.Fatalf("reveal=%v: want the French contact-support message, got %+v", reveal, m)
			}
			n.clock.Advance(61 * time.Second)
			p = recAsk(en, "tom.temp@univ.example", "code")
			if reveal {
				expectPage(t, "temporary, revealed, English", p, http.StatusForbidden, "Temporary accounts cannot reset", "support@univ.example")
			} else if p.Status != http.StatusSeeOther {
				t.Fatalf("temporary by code: %d", p.Status)
			}
			m = recMails(n, "tom.temp@univ.example")
			if len(m) != 2 || m[0].Purpose != "reset_unavailable" || !strings.Contains(m[0].Text, "temporary account") ||
				!strings.Contains(m[0].Text, "support@univ.example") {
				t.Fatalf("reveal=%v: want the English contact-support message, got %+v", reveal, m)
			}
			if ev := portalAudit(t, n, a.ID, "recover.unavailable_sent"); len(ev) != 2 || ev[0].Details["reason"] != "temporary" {
				t.Fatalf("audit: %+v", ev)
			}
			if ev := portalAudit(t, n, a.ID, "recover.link_sent"); len(ev) != 0 {
				t.Fatal("a temporary account got a reset link")
			}
		}
	})
}

// TestRecoverProvisionedAccount: an account not yet activated is pointed to activation.
func TestRecoverProvisionedAccount(t *testing.T) {
	n := recNode(t, store.SQLite, func(c *config.Config) { c.SelfService.RevealUnknownAccounts = true })
	if _, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: "pprov", Emails: []string{"p.prov@univ.example"}, Actor: "cli"}); err != nil {
		t.Fatal(err)
	}
	expectPage(t, "provisioned", recAsk(n.browser(), "p.prov@univ.example", "link"), http.StatusForbidden, "pas encore activé")
	m := recMails(n, "p.prov@univ.example")
	if len(m) != 1 || m[0].Purpose != "reset_unavailable" || !strings.Contains(m[0].Text, n.URL+"/login") {
		t.Fatalf("want the activation pointer by mail: %+v", m)
	}
}

func TestRecoverEnglish(t *testing.T) {
	n := recNode(t, store.SQLite, nil)
	recAccount(t, n)
	b := n.browser()
	b.lang = "en-US,en;q=0.8"
	expectPage(t, "form", b.get("/recover"), http.StatusOK, "Forgotten password", "a link to open", "a 6-digit code")
	expectPage(t, "sent", recAsk(b, recAddr, "link"), http.StatusOK, "If an account uses the address "+recAddr,
		"The link is valid for 1 hour")
	m := recMailsOf(n, recAddr, store.PurposeResetLink)
	if len(m) != 1 || m[0].Subject != "Choose a new password" || !strings.Contains(m[0].Text, "valid for 1 hour") {
		t.Fatalf("English mail: %+v", m)
	}
	link := recLink(t, n, recAddr)
	expectPage(t, "form", b.get(link), http.StatusOK, "Choose a new password", "Every open session")
	recWantSignedIn(t, b, recSetPassword(b, "/recover/link", url.Values{"token": {recLinkToken(link)}}, recNew), "Your password has been reset")
	if m := recMailsOf(n, recAddr, "notify_password_changed"); len(m) != 1 || m[0].Subject != "Your password was changed" {
		t.Fatalf("English notification: %+v", m)
	}

	n.clock.Advance(61 * time.Second)
	ref := recFlow(t, b, recAddr)
	expectPage(t, "code page", b.get("/recover/code?flow="+ref), http.StatusOK, "a 6-digit code was sent there", "valid for 3 minutes")
	code := recCode(t, n, recAddr)
	if m := recMailsOf(n, recAddr, store.PurposeResetCode); !strings.Contains(m[0].Subject, "Your code") || !strings.Contains(m[0].Text, "valid for 3 minutes") {
		t.Fatalf("English code mail: %+v", m[0])
	}
	expectPage(t, "wrong code", b.post("/recover/code", url.Values{"flow": {ref}, "code": {recOther(code)}}), http.StatusUnprocessableEntity, "not the right code")
}

// TestRecoverAbuseLimits: messages per client address, and wrong codes per
// client address, are limited with a page saying when to try again.
func TestRecoverAbuseLimits(t *testing.T) {
	n := recNode(t, store.SQLite, func(c *config.Config) {
		c.SelfService.SendsPerClient = 3
		c.Login.ClientFreeFailures = 3
	})
	recAccount(t, n)
	b := n.browser()
	for i := range 3 {
		expectPage(t, "request", recAsk(b, fmt.Sprintf("someone%d@univ.example", i), "link"), http.StatusOK)
	}
	p := recAsk(b, "someone9@univ.example", "link")
	expectPage(t, "4th request from one client", p, http.StatusTooManyRequests, "Trop de demandes depuis votre connexion", "à partir de")
	if p.Header.Get("Retry-After") == "" {
		t.Fatal("no Retry-After")
	}
	expectPage(t, "whoami counts too", b.post("/whoami", url.Values{"email": {recAddr}}), http.StatusTooManyRequests, "Trop de demandes")

	// Another client: codes. Three wrong ones are free; the fourth waits.
	c := n.browser()
	n.srv.db.ResetThrottle(context.Background(), "send:ip:127.0.0.1")
	ref := recFlow(t, c, recAddr)
	code := recCode(t, n, recAddr)
	for range 3 {
		expectPage(t, "wrong code", c.post("/recover/code", url.Values{"flow": {ref}, "code": {recOther(code)}}), http.StatusUnprocessableEntity)
	}
	p = c.post("/recover/code", url.Values{"flow": {ref}, "code": {code}})
	expectPage(t, "4th try from one client", p, http.StatusTooManyRequests, "Trop d'essais infructueux")
	if ev, _ := n.srv.db.ListAudit(context.Background(), store.AuditFilter{Type: "recover.throttled", Limit: 10}); len(ev) < 2 {
		t.Fatalf("throttling not audited: %+v", ev)
	}
}

// TestCLISendReset: an administrator sends a reset link (or a code) to any
// account, temporary ones included; a provisioned account is refused.
func TestCLISendReset(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		a := recTemporary(t, n, "ttemp", "tom.temp@univ.example")
		cli := func(args ...string) cliResult {
			var out, errb strings.Builder
			e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, now: n.clock.Now, environ: []string{
				"CAMPUSID_DATABASE_URL=" + n.srv.cfg.Database.URL, "CAMPUSID_DATA_DIR=" + n.srv.cfg.DataDir,
				"CAMPUSID_PUBLIC_URL=" + n.URL, "CAMPUSID_DEFAULT_LANGUAGE=en",
				"CAMPUSID_PASSWORD_HASH_MEMORY_KIB=64", "CAMPUSID_PASSWORD_HASH_ITERATIONS=1"}}
			code := run(context.Background(), e, append([]string{"user"}, args...))
			return cliResult{code: code, stdout: out.String(), stderr: errb.String()}
		}
		r := cli("send-reset", "ttemp")
		if r.code != 0 || !strings.Contains(r.stdout, "reset link for ttemp sent to tom.temp@univ.example (valid 1h)") {
			t.Fatalf("send-reset: %v", r)
		}
		m := recMailsOf(n, "tom.temp@univ.example", store.PurposeResetLink)
		if len(m) != 1 || !strings.Contains(m[0].Text, "Support asked") {
			t.Fatalf("want one English reset link written for an administrator's request: %+v", m)
		}
		link := recLink(t, n, "tom.temp@univ.example")
		b := n.browser()
		expectPage(t, "link", b.get(link), http.StatusOK, `autocomplete="new-password"`)
		recWantSignedIn(t, b, recSetPassword(b, "/recover/link", url.Values{"token": {recLinkToken(link)}}, recNew), "réinitialisé")
		if !recCanSignIn(n, "tom.temp@univ.example", recNew) {
			t.Fatal("the new password of the temporary account does not work")
		}
		if ev := portalAudit(t, n, a.ID, "recover.link_sent"); len(ev) != 1 || ev[0].Actor != "cli" {
			t.Fatalf("audit: %+v", ev)
		}

		// Too soon for another; then a code, typed in any browser at the printed page.
		if r := cli("send-reset", "tom.temp@univ.example"); r.code == 0 {
			t.Fatalf("a second link within the minute: %v", r)
		}
		n.clock.Advance(61 * time.Second)
		r = cli("send-reset", a.ID, "--code")
		_, page, ok := strings.Cut(r.stdout, "the person types it at: ")
		if r.code != 0 || !ok || !strings.Contains(r.stdout, "(valid 3m)") {
			t.Fatalf("send-reset --code: %v", r)
		}
		page = strings.TrimPrefix(strings.TrimSpace(page), n.URL)
		ref := strings.TrimPrefix(page, "/recover/code?flow=")
		code := recCode(t, n, "tom.temp@univ.example")
		c := n.browser()
		expectPage(t, "code page from the CLI", c.get(page), http.StatusOK, `autocomplete="one-time-code"`)
		portalWantRedirect(t, c.post("/recover/code", url.Values{"flow": {ref}, "code": {code}}), "/recover/password?flow="+ref)

		if _, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: "pprov", Emails: []string{"p.prov@univ.example"}, Actor: "cli"}); err != nil {
			t.Fatal(err)
		}
		if r := cli("send-reset", "pprov"); r.code != 1 || !strings.Contains(r.stderr, "not activated") {
			t.Fatalf("send-reset to a provisioned account: %v", r)
		}
		if r := cli("send-reset"); r.code != 2 {
			t.Fatalf("send-reset without an account: %v", r)
		}
	})
}

// clockTime and clockTimeUp as the pages say them.
func clockTime(t time.Time) string { return t.Local().Format("15:04") }

func clockTimeUp(t time.Time) string {
	if r := t.Truncate(time.Minute); !r.Equal(t) {
		t = r.Add(time.Minute)
	}
	return clockTime(t)
}

// TestRecoverLinkSingleUseUnderConcurrency: of many simultaneous
// submissions of one link, exactly one sets the password.
func TestRecoverLinkSingleUseUnderConcurrency(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		a := recAccount(t, n)
		recAsk(n.browser(), recAddr, "link")
		tok := recLinkToken(recLink(t, n, recAddr))
		const parallel = 20
		statuses := make(chan int, parallel)
		var wg sync.WaitGroup
		for i := range parallel {
			b := n.browser()
			wg.Go(func() {
				p := recSetPassword(b, "/recover/link", url.Values{"token": {tok}}, fmt.Sprintf("Para!llel#%02d", i))
				statuses <- p.Status
			})
		}
		wg.Wait()
		close(statuses)
		count := map[int]int{}
		for s := range statuses {
			count[s]++
		}
		if count[http.StatusSeeOther] != 1 || count[http.StatusGone] != parallel-1 {
			t.Fatalf("statuses %v: want one 303 and %d 410", count, parallel-1)
		}
		if ev := portalAudit(t, n, a.ID, "password.reset"); len(ev) != 1 {
			t.Fatalf("%d password.reset events", len(ev))
		}
	})
}
