package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"campusid/internal/config"
	"campusid/internal/outbox"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
	"campusid/internal/throttle"
)

// Sign-in by a one-time code and by a link (issue 3, items 2, 3, and for
// them 8 and 10): HTTP journeys through the harness on SQLite and
// PostgreSQL, with the injected clock (no sleeps, no timing asserts).

// lcNode is a node with both ways in by email and the loopback address
// trusted as a proxy, so tests can choose client addresses.
func lcNode(t *testing.T, d store.Dialect, edit func(*config.Config)) *node {
	t.Helper()
	cfg := testConfig(t, storetest.URL(t, d))
	cfg.TrustedProxies = []string{"127.0.0.1", "::1"}
	cfg.SelfService.LoginLink = true
	if edit != nil {
		edit(&cfg)
	}
	// A fixed time of day, so pages can be checked for "à 14:03".
	return startNode(t, cfg, &clock{t: time.Date(2031, 3, 4, 14, 3, 0, 0, time.Local)})
}

// lcMails returns the messages of purpose sent to addr, newest first.
func lcMails(n *node, addr, purpose string) []outbox.DevMail {
	n.t.Helper()
	var out []outbox.DevMail
	for _, m := range n.mails() {
		if m.To == addr && m.Purpose == purpose {
			out = append(out, m)
		}
	}
	return out
}

var (
	lcCodeRe = regexp.MustCompile(`(?m)^\s+(\d{6})\s*$`)
	lcLinkRe = regexp.MustCompile(`https?://\S+/login/link\?token=[A-Za-z0-9_-]+`)
)

// lcLastCode returns the code of the newest login code message to addr.
func lcLastCode(t testing.TB, n *node, addr string) string {
	t.Helper()
	mails := lcMails(n, addr, store.PurposeLoginCode)
	if len(mails) == 0 {
		t.Fatalf("no login code sent to %s", addr)
	}
	m := lcCodeRe.FindStringSubmatch(mails[0].Text)
	if m == nil {
		t.Fatalf("no code in the message:\n%s", mails[0].Text)
	}
	return m[1]
}

// lcLastLink returns the link of the newest login link message to addr.
func lcLastLink(t testing.TB, n *node, addr string) string {
	t.Helper()
	mails := lcMails(n, addr, store.PurposeLoginLink)
	if len(mails) == 0 {
		t.Fatalf("no login link sent to %s", addr)
	}
	l := lcLinkRe.FindString(mails[0].Text)
	if l == "" {
		t.Fatalf("no link in the message:\n%s", mails[0].Text)
	}
	return l
}

// lcAsk posts "email me a code" (what = "code") or "a link" (what = "link") for the flow.
func lcAsk(b *browser, what, ref string, hdr ...string) page {
	b.t.Helper()
	return b.do("POST", "/login/"+what+"/send", url.Values{"req": {ref}}, hdr...)
}

// lcEnter posts a code for the flow.
func lcEnter(b *browser, ref, code string, hdr ...string) page {
	b.t.Helper()
	return b.do("POST", "/login/code", url.Values{"req": {ref}, "code": {code}}, hdr...)
}

// lcMustAsk asks for a code or link and fails unless it lands on the page that says it left.
func lcMustAsk(t testing.TB, b *browser, what, ref string, hdr ...string) {
	t.Helper()
	want := map[string]string{"code": "/login/code?req=", "link": "/login/link/sent?req="}[what] + ref
	expectRedirect(t, "ask for a "+what, lcAsk(b, what, ref, hdr...), want)
}

func hhmm(t time.Time) string { return t.Local().Format("15:04") }

// upToMinute rounds t up to the next whole minute (what the pages show).
func upToMinute(t time.Time) time.Time {
	if t.Truncate(time.Minute).Equal(t) {
		return t
	}
	return t.Truncate(time.Minute).Add(time.Minute)
}

// lcWrong is a code that is not c.
func lcWrong(c string) string {
	v, _ := strconv.Atoi(c)
	return fmt.Sprintf("%06d", (v+1)%1_000_000)
}

var tagRe = regexp.MustCompile(`<[^>]*>`)

// lcHTMLText is the text of an HTML message, tags removed and entities decoded.
func lcHTMLText(h string) string { return pageText(page{Body: tagRe.ReplaceAllString(h, "")}) }

var resendDisabledRe = regexp.MustCompile(`<button[^>]*disabled[^>]*>(Renvoyer un code|Renvoyer un lien|Send a new code|Send a new link)</button>`)

// lcTokenStats reads, straight from the database, how many login codes the
// account got and how many comparisons they had in all and at most.
func lcTokenStats(t testing.TB, n *node, accountID string) (codes, sumTries, maxTries int) {
	t.Helper()
	u := n.srv.cfg.Database.URL
	driver, dsn := "pgx", u
	if p, ok := strings.CutPrefix(u, "sqlite:"); ok {
		driver, dsn = "sqlite", "file:"+p+"?_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	q := fmt.Sprintf(`SELECT COUNT(*), COALESCE(SUM(tries), 0), COALESCE(MAX(tries), 0) FROM email_tokens
		WHERE account_id = '%s' AND purpose = 'login_code'`, accountID) // ids are base32
	if err := db.QueryRow(q).Scan(&codes, &sumTries, &maxTries); err != nil {
		t.Fatal(err)
	}
	return
}

func TestLoginCodeJourney(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := lcNode(t, d, nil)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example", "jdupont@perso.example")

		t.Run("french, to the address typed", func(t *testing.T) {
			b := n.browser()
			ref := mustIdentify(b, "JDupont@Perso.example", "/account/x")
			pw := b.get("/login/password?req=" + ref)
			expectPage(t, "password step", pw, http.StatusOK, "Recevoir un code par email", `formaction="/login/code/send"`,
				"Recevoir un lien de connexion par email")
			if got := linkTo(t, pw, "Mot de passe oublié ?"); got != "/recover" {
				t.Fatalf("forgotten password link %q, want /recover", got)
			}
			lcMustAsk(t, b, "code", ref)
			p := b.get("/login/code?req=" + ref)
			expectPage(t, "code page", p, http.StatusOK,
				"Un code à 6 chiffres a été envoyé à j•••@perso.example à 14:03. Il est valable 3 minutes.",
				`<label for="code">`, `name="code"`, `inputmode="numeric"`, `autocomplete="one-time-code"`, `maxlength="20"`,
				"Vous pourrez demander un nouveau code à 14:04", "Revenir au mot de passe")
			// The button stays usable: someone waiting on the page presses it
			// later; within the minute the server explains when (429).
			if resendDisabledRe.MatchString(p.Body) {
				t.Fatalf("the resend button is disabled: it would stay dead until a reload\n%s", p.Body)
			}
			if got := linkTo(t, p, "Revenir au mot de passe"); got != "/login/password?req="+ref {
				t.Fatalf("back to the password: %q", got)
			}
			mails := lcMails(n, "jdupont@perso.example", store.PurposeLoginCode)
			if len(mails) != 1 || len(lcMails(n, "jean.dupont@univ.example", store.PurposeLoginCode)) != 0 {
				t.Fatalf("want one code, to the address typed; got %d", len(mails))
			}
			m := mails[0]
			code := lcLastCode(t, n, "jdupont@perso.example")
			for _, s := range []string{"Bonjour Jdupont Test", "valable 3 minutes", "Firefox sur Linux", code} {
				if !strings.Contains(m.Text, s) || !strings.Contains(lcHTMLText(m.HTML), s) {
					t.Fatalf("message lacks %q\nsubject %s\n%s\n%s", s, m.Subject, m.Text, m.HTML)
				}
			}
			if m.Subject != "Votre code de connexion campusid" {
				t.Fatalf("subject %q", m.Subject)
			}

			n.clock.Advance(30 * time.Second)
			expectRedirect(t, "code pasted with a space", lcEnter(b, ref, " "+code[:3]+" "+code[3:]+" "), "/account/x")
			expectPage(t, "signed in", b.get("/account"), http.StatusOK, "jean.dupont@univ.example")
			// The flow is done: the same code again leads back to step 1.
			expectRedirect(t, "code again", lcEnter(b, ref, code), "/login?expired=1")
			ev := auditOf(t, n, a.ID, "login.")
			if types := strings.Join(auditTypes(ev), " "); types != "login.code_sent login.success" {
				t.Fatalf("audit: %s", types)
			}
			if ev[1].Details["method"] != "otp" || ev[0].Details["to"] != "jdupont@perso.example" {
				t.Fatalf("audit details: %v / %v", ev[0].Details, ev[1].Details)
			}
		})

		t.Run("english, to the primary address", func(t *testing.T) {
			n.clock.Advance(time.Minute) // one message a minute per purpose and account
			b := n.browser()
			b.lang = "en-GB,en;q=0.9"
			ref := mustIdentify(b, "jdupont", "")
			expectPage(t, "password step", b.get("/login/password?req="+ref), http.StatusOK, "Email me a code", "Forgot your password?")
			sent := n.clock.Now()
			lcMustAsk(t, b, "code", ref)
			p := b.get("/login/code?req=" + ref)
			expectPage(t, "code page", p, http.StatusOK,
				"A 6-digit code was sent to j•••@univ.example at "+hhmm(sent)+". It is valid for 3 minutes.",
				"You can ask for a new code at "+hhmm(upToMinute(sent.Add(time.Minute))))
			m := lcMails(n, "jean.dupont@univ.example", store.PurposeLoginCode)
			if len(m) != 1 || m[0].Subject != "Your campusid sign-in code" || !strings.Contains(m[0].Text, "valid for 3 minutes") {
				t.Fatalf("english message: %+v", m)
			}
			code := lcLastCode(t, n, "jean.dupont@univ.example")
			p = lcEnter(b, ref, lcWrong(code))
			expectPage(t, "wrong code", p, http.StatusUnauthorized, "Wrong code. You have 4 tries left.", `aria-invalid="true"`)
			expectRedirect(t, "code pasted with a dash", lcEnter(b, ref, code[:3]+"-"+code[3:]), "/account")
		})

		t.Run("empty code costs no try", func(t *testing.T) {
			n.clock.Advance(time.Minute)
			b := n.browser()
			ref := mustIdentify(b, "jdupont", "")
			lcMustAsk(t, b, "code", ref)
			expectPage(t, "empty", lcEnter(b, ref, "  "), http.StatusUnprocessableEntity, "Saisissez le code à 6 chiffres")
			expectPage(t, "wrong", lcEnter(b, ref, "000000x"), http.StatusUnauthorized, "Il vous reste 4 essais")
		})
	})
}

// TestLoginCodeValidityFromSetting: the page and the message state the
// validity of the one setting, and the code lives that long.
func TestLoginCodeValidityFromSetting(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := lcNode(t, d, func(c *config.Config) { c.SelfService.CodeValidity = config.Duration(10 * time.Minute) })
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		for _, lang := range []struct{ accept, page, mail string }{
			{"fr-FR", "Il est valable 10 minutes.", "Ce code est valable 10 minutes"},
			{"en", "It is valid for 10 minutes.", "This code is valid for 10 minutes"},
		} {
			b := n.browser()
			b.lang = lang.accept
			ref := mustIdentify(b, "jdupont", "")
			lcMustAsk(t, b, "code", ref)
			expectPage(t, "code page", b.get("/login/code?req="+ref), http.StatusOK, lang.page)
			m := lcMails(n, "jean.dupont@univ.example", store.PurposeLoginCode)[0]
			if !strings.Contains(m.Text, lang.mail) || !strings.Contains(lcHTMLText(m.HTML), lang.mail) {
				t.Fatalf("%s message does not say 10 minutes:\n%s", lang.accept, m.Text)
			}
			n.clock.Advance(10*time.Minute - time.Second)
			expectRedirect(t, "code at 9m59", lcEnter(b, ref, lcLastCode(t, n, "jean.dupont@univ.example")), "/account")
		}
	})
}

// TestLoginCodeAndLinkExpiry: a code at 2m59 works, at 3m01 it does not; a
// link at 23h59 works, at 24h01 it does not.
func TestLoginCodeAndLinkExpiry(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := lcNode(t, d, nil)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		addr := "jean.dupont@univ.example"

		b := n.browser()
		ref := mustIdentify(b, addr, "")
		lcMustAsk(t, b, "code", ref)
		n.clock.Advance(2*time.Minute + 59*time.Second)
		expectRedirect(t, "code at 2m59", lcEnter(b, ref, lcLastCode(t, n, addr)), "/account")

		b = n.browser()
		ref = mustIdentify(b, addr, "")
		lcMustAsk(t, b, "code", ref)
		n.clock.Advance(3*time.Minute + time.Second)
		p := lcEnter(b, ref, lcLastCode(t, n, addr))
		expectPage(t, "code at 3m01", p, http.StatusUnauthorized, "Ce code n'est plus valable", "Demandez un nouveau code")
		if setCookie(p, "campusid_session") != nil {
			t.Fatal("an expired code got a session")
		}

		b = n.browser()
		ref = mustIdentify(b, addr, "/account/after-link")
		lcMustAsk(t, b, "link", ref)
		link := lcLastLink(t, n, addr)
		n.clock.Advance(23*time.Hour + 59*time.Minute)
		expectPage(t, "link at 23h59", b.get(link), http.StatusOK, "Me connecter")
		token := strings.SplitN(link, "token=", 2)[1]
		// The flow it was asked from ended long ago; its return_to still holds.
		expectRedirect(t, "link at 23h59", b.post("/login/link", url.Values{"token": {token}}), "/account/after-link")

		b = n.browser()
		ref = mustIdentify(b, addr, "")
		lcMustAsk(t, b, "link", ref)
		link = lcLastLink(t, n, addr)
		n.clock.Advance(24*time.Hour + time.Minute)
		expectPage(t, "link at 24h01", b.get(link), http.StatusGone, "Ce lien de connexion n'est plus valable")
		p = b.post("/login/link", url.Values{"token": {strings.SplitN(link, "token=", 2)[1]}})
		expectPage(t, "link at 24h01", p, http.StatusGone, "Ce lien de connexion n'est plus valable")
		if setCookie(p, "campusid_session") != nil {
			t.Fatal("an expired link got a session")
		}
	})
}

// TestLoginCodeFiveWrongTries: the message counts the tries down, the fifth
// wrong try kills the code, and then even the right code fails.
func TestLoginCodeFiveWrongTries(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := lcNode(t, d, nil)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		b := n.browser()
		ref := mustIdentify(b, "jdupont", "")
		lcMustAsk(t, b, "code", ref)
		code := lcLastCode(t, n, "jean.dupont@univ.example")
		for i, want := range []string{"Il vous reste 4 essais.", "Il vous reste 3 essais.", "Il vous reste 2 essais.", "Il vous reste 1 essai."} {
			p := lcEnter(b, ref, lcWrong(code))
			expectPage(t, fmt.Sprintf("wrong try %d", i+1), p, http.StatusUnauthorized, "Code incorrect. "+want)
			if !strings.Contains(p.Body, `value="`+lcWrong(code)+`"`) {
				t.Fatalf("wrong try %d: what was typed is not kept", i+1)
			}
		}
		expectPage(t, "fifth wrong try", lcEnter(b, ref, lcWrong(code)), http.StatusUnauthorized,
			"Ce code n'est plus valable : il a expiré, il a déjà servi ou il a reçu trop d'essais incorrects. Demandez un nouveau code.")
		// Five failures on the account: the next try waits (shared with passwords).
		p := lcEnter(b, ref, code)
		expectPage(t, "right code at once", p, http.StatusTooManyRequests, "Patientez 1 seconde")
		n.clock.Advance(time.Duration(retryAfter(t, p)) * time.Second)
		p = lcEnter(b, ref, code)
		expectPage(t, "sixth try, with the right code", p, http.StatusUnauthorized, "Ce code n'est plus valable")
		if setCookie(p, "campusid_session") != nil {
			t.Fatal("a dead code got a session")
		}
		if codes, sum, most := lcTokenStats(t, n, a.ID); codes != 1 || sum != 5 || most != 5 {
			t.Fatalf("codes %d, comparisons %d, most on one code %d; want 1, 5, 5", codes, sum, most)
		}
		var reasons []string
		for _, e := range auditOf(t, n, a.ID, "login.code_failure") {
			reasons = append(reasons, e.Details["reason"]+":"+e.Details["tries_left"])
		}
		if got := strings.Join(reasons, " "); got != "wrong:4 wrong:3 wrong:2 wrong:1 dead:0 dead:0" {
			t.Fatalf("code failures: %s", got)
		}
		// A new code (after the minute) works.
		n.clock.Advance(time.Minute)
		lcMustAsk(t, b, "code", ref)
		expectRedirect(t, "new code", lcEnter(b, ref, lcLastCode(t, n, "jean.dupont@univ.example")), "/account")
	})
}

// TestLoginCodeConcurrency: 50 parallel posts of the right code create
// exactly one session; 50 parallel posts of a link sign in exactly once.
func TestLoginCodeConcurrency(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := lcNode(t, d, nil)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		ctx := context.Background()
		race := func(fn func(i int) page) (ok int) {
			results := make([]page, 50)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range results {
				wg.Go(func() { <-start; results[i] = fn(i) })
			}
			close(start)
			wg.Wait()
			for _, p := range results {
				if p.Status == http.StatusSeeOther && p.Location == "/account" {
					ok++
				}
			}
			return ok
		}

		b := n.browser()
		ref := mustIdentify(b, "jdupont", "")
		lcMustAsk(t, b, "code", ref)
		code := lcLastCode(t, n, "jean.dupont@univ.example")
		if ok := race(func(i int) page { return lcEnter(n.browser(), ref, code) }); ok != 1 {
			t.Fatalf("50 racing right codes signed in %d times, want 1", ok)
		}
		if s, err := n.srv.db.ListSessions(ctx, a.ID, n.clock.Now()); err != nil || len(s) != 1 {
			t.Fatalf("sessions after the code race: %d (%v), want 1", len(s), err)
		}
		if _, _, most := lcTokenStats(t, n, a.ID); most > 5 {
			t.Fatalf("a code was compared %d times", most)
		}

		n.clock.Advance(time.Hour) // past the failures the losers left
		b = n.browser()
		ref = mustIdentify(b, "jdupont", "")
		lcMustAsk(t, b, "link", ref)
		token := strings.SplitN(lcLastLink(t, n, "jean.dupont@univ.example"), "token=", 2)[1]
		if ok := race(func(i int) page {
			return n.browser().post("/login/link", url.Values{"token": {token}})
		}); ok != 1 {
			t.Fatalf("50 racing link posts signed in %d times, want 1", ok)
		}
		if s, err := n.srv.db.ListSessions(ctx, a.ID, n.clock.Now()); err != nil || len(s) != 2 {
			t.Fatalf("sessions after the link race: %d (%v), want 2 (one per race)", len(s), err)
		}
		var methods []string
		for _, e := range auditOf(t, n, a.ID, "login.success") {
			methods = append(methods, e.Details["method"])
		}
		if got := strings.Join(methods, " "); got != "otp link" {
			t.Fatalf("sign-ins: %s", got)
		}
	})
}

// TestLoginCodeGuessing: an attacker who sends wrong codes as fast as the
// server lets it, to one flow and to new flows, asking for new codes each
// time the resend limit allows and waiting exactly as long as each
// Retry-After says (the clock is advanced, never slept).
//
// What holds, with the default settings:
//   - no code is ever compared more than 5 times (self_service.code_max_tries);
//   - wrong codes share the password step's per-account budget
//     (login.account_free_failures 5, then 1s, 2s, 4s... capped at
//     login.account_max_delay 30s, counted over login.failure_window 15m),
//     whatever the client address: about 38 comparisons per 15 minutes, so
//     G ≈ 150 comparisons an hour per account, wherever they come from;
//     codes obtainable (one a minute, 60 an hour × 5 tries = 300) are not
//     the binding limit;
//   - from one client address the per-address budgets hold as well
//     (login.client_free_failures 20 for guesses, self_service.sends_per_client
//     20 an hour for messages), whatever the accounts.
//
// So one code falls to a given guess with probability 10^-6, to its 5 tries
// with at most 5×10^-6, and an account to a sustained attack with at most
// G/10^6 ≈ 1.5×10^-4 per hour (≈ 3.6×10^-3 per day). The test measures G
// and logs the figure.
func TestLoginCodeGuessing(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := lcNode(t, d, nil)
		cfg := n.srv.cfg
		victim := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		addr := "jean.dupont@univ.example"

		t.Run("one account, every request from a new address", func(t *testing.T) {
			att := n.browser()
			ipN := 0
			nextIP := func() []string {
				ipN++
				return fromIP(fmt.Sprintf("10.%d.%d.%d", ipN>>16&255, ipN>>8&255, ipN&255))
			}
			wait := func(p page) { n.clock.Advance(time.Duration(retryAfter(t, p)) * time.Second) }
			start := n.clock.Now()
			var ref, code string
			flows, sends, guesses, throttled := 0, 0, 0, 0
			for n.clock.Now().Before(start.Add(time.Hour)) {
				if ref == "" {
					ref, code = mustIdentify(att, addr, "", nextIP()...), ""
					flows++
				}
				if code == "" {
					p := lcAsk(att, "code", ref, nextIP()...)
					switch {
					case p.Status == http.StatusSeeOther && strings.HasPrefix(p.Location, "/login/code?"):
						code = lcLastCode(t, n, addr)
						sends++
					case p.Status == http.StatusTooManyRequests:
						wait(p)
					case p.Status == http.StatusSeeOther: // the flow ended (30 minutes): a new one
						ref = ""
					default:
						t.Fatalf("ask for a code: %d %s\n%s", p.Status, p.Location, p.Body)
					}
					continue
				}
				p := lcEnter(att, ref, lcWrong(code), nextIP()...)
				switch {
				case p.Status == http.StatusUnauthorized:
					guesses++
					if strings.Contains(pageText(p), "n'est plus valable") {
						code = ""
					}
				case p.Status == http.StatusTooManyRequests:
					throttled++
					wait(p)
				case p.Status == http.StatusSeeOther && strings.HasPrefix(p.Location, "/login?expired"):
					ref = ""
				default:
					t.Fatalf("guess: %d %s\n%s", p.Status, p.Location, p.Body)
				}
			}
			codes, comparisons, most := lcTokenStats(t, n, victim.ID)
			if most > cfg.SelfService.CodeMaxTries {
				t.Fatalf("a code was compared %d times (max %d)", most, cfg.SelfService.CodeMaxTries)
			}
			bound := lcBudget(cfg.Login.AccountFreeFailures, cfg.Login.AccountMaxDelay.D(), cfg.Login.FailureWindow.D(), time.Hour)
			if comparisons > bound || comparisons < bound/2 {
				t.Fatalf("%d comparisons in an hour; the per-account budget is %d", comparisons, bound)
			}
			if sessions, _ := n.srv.db.ListSessions(context.Background(), victim.ID, n.clock.Now()); len(sessions) != 0 {
				t.Fatal("the attacker got a session")
			}
			t.Logf("one simulated hour against one account from %d addresses: %d flows, %d codes asked (%d in the database), "+
				"%d wrong codes answered, %d throttled; %d comparisons, at most %d per code (budget %d an hour)",
				ipN, flows, sends, codes, guesses, throttled, comparisons, most, bound)
			t.Logf("chance of guessing: %d tries per code / 10^6 = %.0e per code; %d comparisons an hour / 10^6 = %.1e per hour, %.1e per day",
				most, float64(most)/1e6, comparisons, float64(comparisons)/1e6, 24*float64(comparisons)/1e6)
		})

		t.Run("one client address, many accounts", func(t *testing.T) {
			n.clock.Advance(2 * time.Hour) // a fresh window for every counter
			ip := fromIP("203.0.113.66")
			att := n.browser()
			// 5 accounts × 4 wrong codes: each account stays under its 5 free failures,
			// the address spends its 20.
			for i := range 5 {
				who := fmt.Sprintf("user%d@univ.example", i)
				n.user(fmt.Sprintf("user%d", i), goodPassword, who)
				ref := mustIdentify(att, who, "", ip...)
				lcMustAsk(t, att, "code", ref, ip...)
				code := lcLastCode(t, n, who)
				for range 4 {
					expectPage(t, who, lcEnter(att, ref, lcWrong(code), ip...), http.StatusUnauthorized, "Code incorrect")
				}
			}
			n.user("user5", goodPassword, "user5@univ.example")
			ref := mustIdentify(att, "user5@univ.example", "", ip...)
			lcMustAsk(t, att, "code", ref, ip...)
			code := lcLastCode(t, n, "user5@univ.example")
			p := lcEnter(att, ref, lcWrong(code), ip...)
			expectPage(t, "21st guess from one address, fresh account", p, http.StatusTooManyRequests, "Trop d'essais infructueux")
			retryAfter(t, p)
			// Not the account's limit: from elsewhere the same account is answered.
			expectPage(t, "same account from another address", lcEnter(att, ref, lcWrong(code), fromIP("198.51.100.9")...),
				http.StatusUnauthorized, "Il vous reste 4 essais")
		})
	})
}

// lcBudget is how many failures the per-account backoff lets through in d
// to an attacker who tries each time it is allowed to: free ones at once,
// then after 1s, 2s, 4s... capped at maxDelay; the counter starts over when
// its window has passed.
func lcBudget(free int, maxDelay, window, d time.Duration) int {
	b := throttle.Backoff{Free: free, Max: maxDelay}
	tries, count := 0, 0
	var at, windowStart time.Duration
	for at < d {
		if count == 0 || windowStart < at-window {
			count, windowStart = 0, at
		}
		tries++
		count++
		at += b.Delay(count)
	}
	return tries
}

// TestLoginSendLimits: at most one message a minute per purpose and account,
// said clearly with when; and at most sends_per_client an hour from one
// client address, whatever the accounts.
func TestLoginSendLimits(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := lcNode(t, d, nil)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		addr := "jean.dupont@univ.example"

		t.Run("code resend", func(t *testing.T) {
			b := n.browser()
			ref := mustIdentify(b, addr, "")
			sent := n.clock.Now()
			lcMustAsk(t, b, "code", ref)
			first := lcLastCode(t, n, addr)
			n.clock.Advance(20 * time.Second)
			p := lcAsk(b, "code", ref)
			expectPage(t, "second code within the minute", p, http.StatusTooManyRequests,
				"Un code vient de partir (à "+hhmm(sent)+"). Vous pourrez en demander un nouveau dans 40 secondes.",
				"Un code à 6 chiffres a été envoyé à j•••@univ.example à "+hhmm(sent))
			if retryAfter(t, p) != 40 || len(lcMails(n, addr, store.PurposeLoginCode)) != 1 {
				t.Fatalf("Retry-After %s, %d messages", p.Header.Get("Retry-After"), len(lcMails(n, addr, store.PurposeLoginCode)))
			}
			n.clock.Advance(40 * time.Second)
			p = b.get("/login/code?req=" + ref)
			if resendDisabledRe.MatchString(p.Body) || !strings.Contains(pageText(p), "puis demandez un nouveau code") {
				t.Fatalf("after the minute the resend button is still disabled\n%s", p.Body)
			}
			lcMustAsk(t, b, "code", ref)
			if len(lcMails(n, addr, store.PurposeLoginCode)) != 2 {
				t.Fatal("no second code")
			}
			expectPage(t, "page after resend", b.get("/login/code?req="+ref), http.StatusOK, "envoyé à j•••@univ.example à "+hhmm(n.clock.Now()))
			expectRedirect(t, "the first code after a resend", lcEnter(b, ref, first), "/account")
		})

		t.Run("link resend, the first still works and ends the others", func(t *testing.T) {
			n.clock.Advance(time.Hour)
			b := n.browser()
			ref := mustIdentify(b, addr, "")
			sent := n.clock.Now()
			lcMustAsk(t, b, "link", ref)
			p := b.get("/login/link/sent?req=" + ref)
			expectPage(t, "link sent", p, http.StatusOK,
				"Un lien de connexion a été envoyé à j•••@univ.example à "+hhmm(sent)+". Il est valable 24 heures et ne peut servir qu'une fois.",
				"peut mettre quelques minutes à arriver : inutile de refaire une demande",
				"Vous pourrez demander un nouveau lien à "+hhmm(upToMinute(sent.Add(time.Minute))),
				"Un nouveau lien n'annule pas le précédent")
			if resendDisabledRe.MatchString(p.Body) {
				t.Fatal("the resend button is disabled: it would stay dead until a reload")
			}
			first := lcLastLink(t, n, addr)
			if m := lcMails(n, addr, store.PurposeLoginLink)[0]; !strings.Contains(m.Text, "valable 24 heures") || !strings.Contains(lcHTMLText(m.HTML), "valable 24 heures") {
				t.Fatalf("link message:\n%s", m.Text)
			}
			n.clock.Advance(59 * time.Second)
			expectPage(t, "second link within the minute", lcAsk(b, "link", ref), http.StatusTooManyRequests,
				"Un lien vient de partir (à "+hhmm(sent)+")", "Vous pourrez en demander un nouveau dans 1 seconde.")
			n.clock.Advance(time.Second)
			lcMustAsk(t, b, "link", ref)
			second := lcLastLink(t, n, addr)
			if first == second {
				t.Fatal("the same link twice")
			}
			// Both work until one is used; using one ends the other.
			expectPage(t, "second link", b.get(second), http.StatusOK, "Me connecter")
			expectPage(t, "first link", b.get(first), http.StatusOK, "Me connecter")
			expectRedirect(t, "first link used", b.post("/login/link", url.Values{"token": {strings.SplitN(first, "token=", 2)[1]}}), "/account")
			expectPage(t, "second link after the first was used", b.get(second), http.StatusGone, "un autre lien envoyé pour ce compte a été utilisé")
		})

		t.Run("per client address", func(t *testing.T) {
			n.clock.Advance(2 * time.Hour)
			ip := fromIP("203.0.113.20")
			b := n.browser()
			// self_service.sends_per_client messages at once from one address, to as many accounts...
			for i := range 20 {
				who := fmt.Sprintf("many%d@univ.example", i)
				n.user(fmt.Sprintf("many%d", i), goodPassword, who)
				lcMustAsk(t, b, "code", mustIdentify(b, who, "", ip...), ip...)
			}
			// ...then the next one waits, whatever the account.
			ref := mustIdentify(b, addr, "", ip...)
			p := lcAsk(b, "code", ref, ip...)
			expectPage(t, "21st message from one address", p, http.StatusTooManyRequests,
				"Trop de messages ont été demandés depuis votre connexion. Vous pourrez en demander un nouveau dans 1 seconde.")
			if retryAfter(t, p) != 1 {
				t.Fatalf("Retry-After %s, want 1", p.Header.Get("Retry-After"))
			}
			// The wait doubles with each further message (1s, 2s, 4s... up to 10 minutes).
			n.clock.Advance(time.Second)
			lcMustAsk(t, b, "code", ref, ip...)
			p = lcAsk(b, "link", ref, ip...)
			expectPage(t, "22nd message", p, http.StatusTooManyRequests, "dans 2 secondes")
			// Another address is not concerned.
			lcMustAsk(t, b, "link", ref, fromIP("198.51.100.20")...)
		})
	})
}

// TestLoginLinkOtherBrowser: the link's GET uses nothing (a mail scanner may
// fetch it), warns when another browser asked for it, and the POST signs in
// the browser that clicked, back to the flow's return_to.
func TestLoginLinkOtherBrowser(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := lcNode(t, d, nil)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		asker := n.browser()
		ref := mustIdentify(asker, "jdupont", "/account/sessions")
		lcMustAsk(t, asker, "link", ref)
		link := lcLastLink(t, n, "jean.dupont@univ.example")
		n.clock.Advance(5 * time.Minute)

		// The browser that asked: no warning.
		p := asker.get(link)
		expectPage(t, "same browser", p, http.StatusOK, "Vous allez vous connecter avec le lien envoyé à jean.dupont@univ.example.", "Me connecter")
		if strings.Contains(p.Body, "autre navigateur") || p.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("same browser: warning or referrer\n%s", p.Body)
		}
		// A scanner and another browser: the warning, and nothing used.
		scanner := n.browser()
		scanner.ua = "Mozilla/5.0 (compatible; MailScanner/2.0)"
		for range 3 {
			expectPage(t, "scanner", scanner.get(link), http.StatusOK, "Ce lien a été demandé depuis un autre navigateur")
		}
		phone := n.browser()
		phone.ua = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
		want := "Ce lien a été demandé depuis un autre navigateur (Firefox sur Linux, 14:03). Continuez seulement si c'est vous."
		expectPage(t, "other browser", phone.get(link), http.StatusOK, want)
		phone.lang = "en"
		expectPage(t, "other browser, english", phone.get(link), http.StatusOK,
			"This link was asked for from another browser (Firefox on Linux, 14:03). Continue only if it was you.")
		if len(auditOf(t, n, a.ID, "login.success")) != 0 {
			t.Fatal("a GET signed in")
		}
		// The POST signs in the browser that clicked, where the flow was going.
		p = phone.post("/login/link", url.Values{"token": {strings.SplitN(link, "token=", 2)[1]}, "remember": {"on"}})
		expectRedirect(t, "other browser signs in", p, "/account/sessions")
		if c := setCookie(p, "campusid_session"); c == nil || c.MaxAge <= 0 {
			t.Fatalf("remember me not honoured: %v", c)
		}
		expectPage(t, "phone signed in", phone.get("/account"), http.StatusOK, "jean.dupont@univ.example")
		if p := asker.get("/account"); p.Status == http.StatusOK {
			t.Fatal("the browser that asked got signed in too")
		}
		expectPage(t, "link used", asker.get(link), http.StatusGone, "Ce lien de connexion n'est plus valable")
		ev := auditOf(t, n, a.ID, "login.")
		if got := strings.Join(auditTypes(ev), " "); got != "login.link_sent login.success" || ev[1].Details["method"] != "link" {
			t.Fatalf("audit: %s %v", got, ev[len(ev)-1].Details)
		}
	})
}

// TestLoginLinkSetting: without self_service.login_link, no button and no routes.
func TestLoginLinkSetting(t *testing.T) {
	t.Parallel()
	n := lcNode(t, store.SQLite, func(c *config.Config) { c.SelfService.LoginLink = false; c.SelfService.LoginCode = false })
	n.user("jdupont", goodPassword, "jean.dupont@univ.example")
	b := n.browser()
	ref := mustIdentify(b, "jdupont", "")
	p := b.get("/login/password?req=" + ref)
	if strings.Contains(p.Body, "/login/link/send") || strings.Contains(p.Body, "/login/code/send") {
		t.Fatal("buttons shown with the settings off")
	}
	for _, what := range []string{"code", "link"} {
		if p := lcAsk(b, what, ref); p.Status != http.StatusNotFound {
			t.Fatalf("POST /login/%s/send with the setting off: %d", what, p.Status)
		}
	}
}

// TestLoginCodeUnknownAccountLooksTheSame: with unknown accounts hidden, a
// flow for an address without an account shows the same pages and answers
// (codes, tries, resend, links) as one with an account, and sends nothing.
func TestLoginCodeUnknownAccountLooksTheSame(t *testing.T) {
	t.Parallel()
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := lcNode(t, d, func(c *config.Config) { c.Login.RevealUnknownAccounts = false })
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		known, unknown := n.browser(), n.browser()
		kref := mustIdentify(known, "jean.dupont@univ.example", "")
		uref := mustIdentify(unknown, "jean.dupond@univ.example", "") // masks to j•••@univ.example too
		same := func(what string, k, u page) {
			t.Helper()
			kb, ub := strings.ReplaceAll(k.Body, kref, "REF"), strings.ReplaceAll(u.Body, uref, "REF")
			kb = strings.ReplaceAll(kb, "jean.dupont@", "X@")
			ub = strings.ReplaceAll(ub, "jean.dupond@", "X@")
			kl, ul := strings.ReplaceAll(k.Location, kref, "REF"), strings.ReplaceAll(u.Location, uref, "REF")
			if k.Status != u.Status || kl != ul || kb != ub {
				t.Fatalf("%s: known %d %q, unknown %d %q\n--- known\n%s\n--- unknown\n%s", what, k.Status, kl, u.Status, ul, kb, ub)
			}
		}
		same("ask a code", lcAsk(known, "code", kref), lcAsk(unknown, "code", uref))
		same("code page", known.get("/login/code?req="+kref), unknown.get("/login/code?req="+uref))
		code := lcLastCode(t, n, "jean.dupont@univ.example")
		for i := range 5 {
			same(fmt.Sprintf("wrong code %d", i+1), lcEnter(known, kref, lcWrong(code)), lcEnter(unknown, uref, lcWrong(code)))
		}
		n.clock.Advance(20 * time.Second)
		same("resend too soon", lcAsk(known, "code", kref), lcAsk(unknown, "code", uref))
		same("ask a link", lcAsk(known, "link", kref), lcAsk(unknown, "link", uref))
		same("link sent page", known.get("/login/link/sent?req="+kref), unknown.get("/login/link/sent?req="+uref))
		for _, m := range n.mails() {
			if m.To != "jean.dupont@univ.example" {
				t.Fatalf("a message went to %s", m.To)
			}
		}
		var notSent int
		for _, e := range auditOf(t, n, "", "login.") {
			if e.Details["sent"] == "false" && e.Details["reason"] == "unknown_account" {
				notSent++
			}
		}
		if notSent != 2 || len(auditOf(t, n, a.ID, "login.code_sent")) != 1 {
			t.Fatalf("audit of sends without an account: %d", notSent)
		}
	})
}
