package main

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"campusid/internal/account"
	"campusid/internal/config"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
	"campusid/internal/web"
)

// Sign-in tests (issue 2, item 6): identifier-first steps, messages,
// flow references, throttling and its audit trail. The helpers at the top
// are shared with session_test.go, security_test.go and twonodes_test.go.

// identifyStep posts step 1 (with return_to when not empty) and returns the
// response and, when it leads to the password step, the flow reference.
func identifyStep(b *browser, login, returnTo string, hdr ...string) (page, string) {
	b.t.Helper()
	f := url.Values{"login": {login}}
	if returnTo != "" {
		f.Set("return_to", returnTo)
	}
	p := b.do("POST", "/login", f, hdr...)
	if ref, ok := strings.CutPrefix(p.Location, "/login/password?req="); ok && p.Status == http.StatusSeeOther {
		return p, ref
	}
	return p, ""
}

// mustIdentify runs step 1 and fails the test unless it leads to the password step.
func mustIdentify(b *browser, login, returnTo string, hdr ...string) string {
	b.t.Helper()
	p, ref := identifyStep(b, login, returnTo, hdr...)
	if ref == "" {
		b.t.Fatalf("identify %q: status %d location %q\n%s", login, p.Status, p.Location, p.Body)
	}
	return ref
}

// passwordStep posts step 2 for the flow reference.
func passwordStep(b *browser, ref, password string, remember bool, hdr ...string) page {
	b.t.Helper()
	f := url.Values{"req": {ref}, "password": {password}}
	if remember {
		f.Set("remember", "on")
	}
	return b.do("POST", "/login/password", f, hdr...)
}

// fromIP makes a request come from ip through a trusted proxy (the node
// must list the loopback address in TrustedProxies).
func fromIP(ip string) []string { return []string{"X-Forwarded-For", ip} }

// pageText is the body with HTML entities decoded, for message checks.
func pageText(p page) string { return html.UnescapeString(p.Body) }

// expectPage fails the test unless p has the status and contains every text.
func expectPage(t testing.TB, what string, p page, status int, texts ...string) {
	t.Helper()
	if p.Status != status {
		t.Fatalf("%s: status %d, want %d (location %q)\n%s", what, p.Status, status, p.Location, p.Body)
	}
	body := pageText(p)
	for _, s := range texts {
		if !strings.Contains(body, s) {
			t.Fatalf("%s: page lacks %q\n%s", what, s, p.Body)
		}
	}
}

// expectRedirect fails the test unless p is a 303 to location.
func expectRedirect(t testing.TB, what string, p page, location string) {
	t.Helper()
	if p.Status != http.StatusSeeOther || p.Location != location {
		t.Fatalf("%s: status %d location %q, want 303 to %q\n%s", what, p.Status, p.Location, location, p.Body)
	}
}

// setCookie returns the cookie named name set by the response, or nil.
func setCookie(p page, name string) *http.Cookie {
	for _, c := range (&http.Response{Header: p.Header}).Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// retryAfter returns the Retry-After header in seconds.
func retryAfter(t testing.TB, p page) int {
	t.Helper()
	s, err := strconv.Atoi(p.Header.Get("Retry-After"))
	if err != nil || s <= 0 {
		t.Fatalf("Retry-After %q on a %d response", p.Header.Get("Retry-After"), p.Status)
	}
	return s
}

// auditOf returns the account's audit events of a type or prefix ("login."), oldest first.
func auditOf(t testing.TB, n *node, accountID, typ string) []store.AuditEvent {
	t.Helper()
	ev, err := n.srv.db.ListAudit(context.Background(), store.AuditFilter{AccountID: accountID, Type: typ, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	slices.Reverse(ev)
	return ev
}

func auditTypes(ev []store.AuditEvent) []string {
	out := make([]string, len(ev))
	for i, e := range ev {
		out[i] = e.Type
	}
	return out
}

var anchorRe = regexp.MustCompile(`<a href="([^"]*)"[^>]*>([^<]*)</a>`)

// linkTo returns the decoded href of the page's link whose text is text.
func linkTo(t testing.TB, p page, text string) string {
	t.Helper()
	for _, m := range anchorRe.FindAllStringSubmatch(p.Body, -1) {
		if strings.TrimSpace(html.UnescapeString(m[2])) == text {
			return html.UnescapeString(m[1])
		}
	}
	t.Fatalf("no link %q on the page\n%s", text, p.Body)
	return ""
}

const wrongPassword = "Wr0ng!guess#9"

func TestIdentifierFirstSignIn(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example", "jdupont@perso.example")
		for _, tc := range []struct{ name, login string }{
			{"identifier", "jdupont"},
			{"identifier in capitals with spaces", "  JDupont \t"},
			{"primary address", "jean.dupont@univ.example"},
			{"other registered address", "jdupont@perso.example"},
			{"address in mixed case with spaces", "  Jean.DUPONT@Univ.Example  "},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := n.browser()
				ref := mustIdentify(b, tc.login, "")
				p := b.get("/login/password?req=" + ref)
				// The password step says who is signing in and offers a way back.
				expectPage(t, "password step", p, http.StatusOK,
					"Connexion en tant que", "Jdupont Test", "Ce n'est pas vous ?", `autocomplete="current-password"`)
				expectRedirect(t, "password", passwordStep(b, ref, goodPassword, false), "/account")
				expectPage(t, "account", b.get("/account"), http.StatusOK, "jean.dupont@univ.example")
			})
		}

		t.Run("not you goes back to step 1", func(t *testing.T) {
			n.user("mmartin", goodPassword, "marie.martin@univ.example")
			b := n.browser()
			ref := mustIdentify(b, "jdupont", "/account/x")
			back := linkTo(t, b.get("/login/password?req="+ref), "Ce n'est pas vous ?")
			u, err := url.Parse(back)
			if err != nil || u.Path != "/login" || u.Query().Get("return_to") != "/account/x" || u.Query().Get("login") != "" {
				t.Fatalf("not-you link %q: want step 1, empty login, same return_to", back)
			}
			p := b.get(back)
			expectPage(t, "step 1 again", p, http.StatusOK, `autocomplete="username"`, `value="/account/x"`)
			if !regexp.MustCompile(`name="login"[^>]*\svalue=""`).MatchString(p.Body) {
				t.Fatalf("step 1 after 'not you' still shows the previous identifier\n%s", p.Body)
			}
			// The other person signs in from there and lands where the first step was going.
			ref = mustIdentify(b, "marie.martin@univ.example", "/account/x")
			expectRedirect(t, "other person", passwordStep(b, ref, goodPassword, false), "/account/x")
		})
	})
}

func TestSignInMessages(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		ctx := context.Background()
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		if _, err := n.srv.accounts.Create(ctx, account.NewAccount{Identifier: "pnouveau",
			Emails: []string{"paul.nouveau@univ.example"}, GivenName: "Paul", Actor: "cli"}); err != nil {
			t.Fatal(err)
		}
		off := n.user("dferme", goodPassword, "dora.ferme@univ.example")
		if err := n.srv.accounts.SetState(ctx, off.ID, store.StateDisabled, "cli"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name, lang, login string
			password          string // "": refused at step 1
			status            int
			want              string
		}{
			{"wrong password", "fr-FR,fr;q=0.9", "jdupont", wrongPassword, http.StatusUnauthorized, "Mot de passe incorrect"},
			{"wrong password in English", "en-GB,en;q=0.9", "jdupont", wrongPassword, http.StatusUnauthorized, "Wrong password"},
			{"wrong password, no Accept-Language", "", "jdupont", wrongPassword, http.StatusUnauthorized, "Mot de passe incorrect"},
			{"unknown account", "fr", "personne@univ.example", "", http.StatusUnprocessableEntity, "Aucun compte ne correspond"},
			{"unknown account in English", "en", "personne@univ.example", "", http.StatusUnprocessableEntity, "No account matches"},
			{"empty", "fr", "   ", "", http.StatusUnprocessableEntity, "Saisissez votre adresse email ou votre identifiant"},
			// A provisioned account goes on to its activation: TestActivationEntry (activate_test.go).
			{"disabled", "fr", "dora.ferme@univ.example", "", http.StatusForbidden, "Ce compte est désactivé"},
			{"disabled in English", "en", "dferme", "", http.StatusForbidden, "This account is disabled"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				b := n.browser()
				b.lang = tc.lang
				if tc.password == "" {
					p, ref := identifyStep(b, tc.login, "")
					if ref != "" {
						t.Fatalf("step 1 of %q went on to the password step", tc.login)
					}
					expectPage(t, "step 1", p, tc.status, tc.want)
					if login := strings.TrimSpace(tc.login); login != "" && !strings.Contains(p.Body, `value="`+login+`"`) {
						t.Fatalf("step 1 does not keep what was typed (%q)\n%s", login, p.Body)
					}
					return
				}
				ref := mustIdentify(b, tc.login, "")
				p := passwordStep(b, ref, tc.password, false)
				expectPage(t, "step 2", p, tc.status, tc.want)
				if strings.Contains(p.Body, tc.password) {
					t.Fatal("the refused password is echoed in the page")
				}
				if setCookie(p, "campusid_session") != nil {
					t.Fatal("a failed sign-in set a session cookie")
				}
			})
		}
	})
}

// TestSignInUnknownAccountsHidden: with login.reveal_unknown_accounts false,
// an unknown identifier goes through the same steps, statuses and pages as
// a known one with a wrong password, including the delays.
func TestSignInUnknownAccountsHidden(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		cfg := testConfig(t, storetest.URL(t, d))
		cfg.Login.RevealUnknownAccounts = false
		cfg.Login.AccountFreeFailures = 2
		n := startNode(t, cfg, nil)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")

		// run does step 1 and tries (the right) password tries+1 times;
		// it returns each response with the flow reference and the typed
		// login replaced, so the two runs can be compared.
		run := func(login, password string, tries int) []page {
			b := n.browser()
			p, ref := identifyStep(b, login, "")
			if ref == "" {
				t.Fatalf("step 1 of %q: status %d, want the password step anyway\n%s", login, p.Status, p.Body)
			}
			norm := func(p page) page {
				p.Body = strings.ReplaceAll(strings.ReplaceAll(p.Body, ref, "REF"), login, "LOGIN")
				p.Header = nil
				return p
			}
			out := []page{norm(b.get("/login/password?req=" + ref))}
			for range tries {
				out = append(out, norm(passwordStep(b, ref, password, false)))
			}
			return out
		}
		known := run("jdupont", wrongPassword, 3)
		unknown := run("nobody", wrongPassword, 3)
		want := []int{http.StatusOK, http.StatusUnauthorized, http.StatusUnauthorized, http.StatusTooManyRequests}
		for i := range known {
			if known[i].Status != want[i] || unknown[i].Status != want[i] {
				t.Fatalf("response %d: known %d, unknown %d, want %d", i, known[i].Status, unknown[i].Status, want[i])
			}
			if known[i].Body != unknown[i].Body {
				t.Fatalf("response %d differs between a known and an unknown account:\nknown:\n%s\nunknown:\n%s", i, known[i].Body, unknown[i].Body)
			}
		}
		if !strings.Contains(pageText(known[1]), "Identifiant ou mot de passe incorrect") {
			t.Fatalf("wrong password with hidden accounts: want the generic message\n%s", known[1].Body)
		}
		if strings.Contains(known[1].Body, "Jdupont Test") {
			t.Fatal("the password step shows the account's name to whoever types its identifier")
		}
	})
}

func TestTemporaryAccountEndDate(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		end := n.clock.Now().Add(48 * time.Hour)
		if _, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: "invite",
			Emails: []string{"invite@univ.example"}, GivenName: "Ivo", TemporaryUntil: &end, Password: goodPassword, Actor: "cli"}); err != nil {
			t.Fatal(err)
		}
		b := n.browser()
		ref := mustIdentify(b, "invite", "")
		expectRedirect(t, "before the end date", passwordStep(b, ref, goodPassword, true), "/account")

		n.clock.Advance(47 * time.Hour)
		expectPage(t, "remembered session before the end", b.get("/account"), http.StatusOK)
		n.clock.Advance(2 * time.Hour)
		expectRedirect(t, "remembered session after the end", b.get("/account"), "/login?return_to=%2Faccount")

		p, ref := identifyStep(n.browser(), "invite@univ.example", "")
		if ref != "" {
			t.Fatal("a temporary account past its end date went on to the password step")
		}
		expectPage(t, "after the end date", p, http.StatusForbidden, "Ce compte temporaire était valable jusqu")
		if !strings.Contains(p.Body, web.LastDay(end)) {
			t.Fatalf("the message does not give the end date %s\n%s", end.Format("02/01/2006"), p.Body)
		}
	})
}

func TestSignInFlowSingleUse(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")

		t.Run("replay after success", func(t *testing.T) {
			b := n.browser()
			ref := mustIdentify(b, "jdupont", "")
			expectRedirect(t, "first use", passwordStep(b, ref, goodPassword, false), "/account")
			// Someone who captured the form submission replays it.
			thief := n.browser()
			p := passwordStep(thief, ref, goodPassword, false)
			expectRedirect(t, "replayed password step", p, "/login?expired=1")
			if setCookie(p, "campusid_session") != nil {
				t.Fatal("the replay got a session cookie")
			}
			expectPage(t, "step 1 after the replay", thief.follow(p), http.StatusOK, "Cette page de connexion a expiré")
			expectRedirect(t, "password page of a used flow", thief.get("/login/password?req="+ref), "/login?expired=1")
		})

		t.Run("parallel submissions", func(t *testing.T) {
			before := len(auditOf(t, n, a.ID, "login.success"))
			ref := mustIdentify(n.browser(), "jdupont", "")
			const parallel = 8
			results := make([]page, parallel)
			var wg sync.WaitGroup
			for i := range parallel {
				wg.Go(func() { results[i] = passwordStep(n.browser(), ref, goodPassword, false) })
			}
			wg.Wait()
			won := 0
			for _, p := range results {
				switch {
				case p.Status == http.StatusSeeOther && p.Location == "/account":
					won++
				case p.Status == http.StatusSeeOther && p.Location == "/login?expired=1":
				default:
					t.Errorf("parallel submission: status %d location %q\n%s", p.Status, p.Location, p.Body)
				}
			}
			if won != 1 {
				t.Fatalf("%d of %d parallel submissions of one flow signed in, want exactly 1", won, parallel)
			}
			if got := len(auditOf(t, n, a.ID, "login.success")) - before; got != 1 {
				t.Fatalf("%d login.success events, want 1", got)
			}
		})
	})
}

func TestSignInFlowExpires(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		cfg := testConfig(t, storetest.URL(t, d))
		cfg.Login.FlowLifetime = config.Duration(10 * time.Minute)
		n := startNode(t, cfg, nil)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		early, late := n.browser(), n.browser()
		refEarly := mustIdentify(early, "jdupont", "")
		refLate := mustIdentify(late, "jdupont", "")

		n.clock.Advance(10*time.Minute - time.Second)
		expectRedirect(t, "just before the flow lifetime", passwordStep(early, refEarly, goodPassword, false), "/account")

		n.clock.Advance(2 * time.Second)
		expectRedirect(t, "password page after the flow lifetime", late.get("/login/password?req="+refLate), "/login?expired=1")
		p := passwordStep(late, refLate, goodPassword, false)
		expectRedirect(t, "password after the flow lifetime", p, "/login?expired=1")
		if setCookie(p, "campusid_session") != nil {
			t.Fatal("an expired flow got a session cookie")
		}
		expectPage(t, "expired notice", late.follow(p), http.StatusOK, "Cette page de connexion a expiré")
	})
}

// throttleNode is a node with small, quick account limits and the loopback
// address trusted as a proxy, so tests can choose client addresses.
func throttleNode(t *testing.T, d store.Dialect, edit func(*config.Config)) *node {
	cfg := testConfig(t, storetest.URL(t, d))
	cfg.TrustedProxies = []string{"127.0.0.1", "::1"}
	cfg.Login.AccountFreeFailures = 3
	cfg.Login.AccountMaxDelay = config.Duration(8 * time.Second)
	if edit != nil {
		edit(&cfg)
	}
	return startNode(t, cfg, nil)
}

func TestAccountThrottle(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := throttleNode(t, d, nil)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		b := n.browser()
		ref := mustIdentify(b, "jdupont", "")
		for i := range 3 { // login.account_free_failures
			expectPage(t, fmt.Sprintf("failure %d", i+1), passwordStep(b, ref, wrongPassword, false), http.StatusUnauthorized)
		}
		// Now even the right password waits, in French and in English.
		p := passwordStep(b, ref, goodPassword, false)
		expectPage(t, "right password while throttled", p, http.StatusTooManyRequests, "Patientez 1 seconde")
		if retryAfter(t, p) != 1 {
			t.Fatalf("Retry-After %s, want 1", p.Header.Get("Retry-After"))
		}
		if setCookie(p, "campusid_session") != nil {
			t.Fatal("a throttled attempt got a session cookie")
		}
		b.lang = "en"
		expectPage(t, "throttled, in English", passwordStep(b, ref, goodPassword, false), http.StatusTooManyRequests, "Wait 1 second")
		// From another address too: the limit is the account's.
		other := n.browser()
		oref := mustIdentify(other, "jean.dupont@univ.example", "", fromIP("198.51.100.50")...)
		expectPage(t, "throttled account from another address", passwordStep(other, oref, goodPassword, false, fromIP("198.51.100.50")...),
			http.StatusTooManyRequests)

		n.clock.Advance(500 * time.Millisecond)
		expectPage(t, "before the delay has passed", passwordStep(b, ref, goodPassword, false), http.StatusTooManyRequests)
		n.clock.Advance(500 * time.Millisecond)
		expectRedirect(t, "after the delay", passwordStep(b, ref, goodPassword, false), "/account")

		// A success forgets the failures: two new mistakes are free again.
		c := n.browser()
		cref := mustIdentify(c, "jdupont", "")
		for i := range 2 {
			expectPage(t, fmt.Sprintf("mistake %d after a success", i+1), passwordStep(c, cref, wrongPassword, false), http.StatusUnauthorized)
		}
		if got := auditTypes(auditOf(t, n, a.ID, "login.throttled")); len(got) != 4 {
			t.Fatalf("login.throttled events: %v, want 4", got)
		}
	})
}

// TestAccountThrottleIsCapped is the "no lockout usable against a victim"
// property: however many wrong passwords an attacker sends (from many
// addresses, each time the delay allows), the account's owner never has to
// wait longer than login.account_max_delay to get in.
func TestAccountThrottleIsCapped(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := throttleNode(t, d, nil) // 3 free failures, then 1s, 2s, 4s... capped at 8s
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		attacker := n.browser()
		ref := mustIdentify(attacker, "jdupont", "")
		var waits []int
		for i := range 12 {
			ip := fromIP(fmt.Sprintf("203.0.113.%d", i+1))
			p := passwordStep(attacker, ref, wrongPassword, false, ip...)
			if p.Status == http.StatusTooManyRequests {
				w := retryAfter(t, p)
				waits = append(waits, w)
				n.clock.Advance(time.Duration(w) * time.Second)
				p = passwordStep(attacker, ref, wrongPassword, false, ip...)
			}
			expectPage(t, fmt.Sprintf("attack %d", i+1), p, http.StatusUnauthorized)
		}
		if want := []int{1, 2, 4, 8, 8, 8, 8, 8, 8}; !slices.Equal(waits, want) {
			t.Fatalf("delays imposed during the attack: %v, want %v (doubling, capped at login.account_max_delay)", waits, want)
		}

		victim := n.browser()
		vip := fromIP("198.51.100.20")
		vref := mustIdentify(victim, "jean.dupont@univ.example", "", vip...)
		p := passwordStep(victim, vref, goodPassword, false, vip...)
		expectPage(t, "victim right after the attack", p, http.StatusTooManyRequests)
		w := retryAfter(t, p)
		if w > 8 {
			t.Fatalf("the victim must wait %ds, more than login.account_max_delay (8s)", w)
		}
		n.clock.Advance(time.Duration(w) * time.Second)
		expectRedirect(t, "victim after the capped wait", passwordStep(victim, vref, goodPassword, false, vip...), "/account")
	})
}

// TestClientAddressThrottle: one address failing on many accounts is slowed
// down on every account, while the same accounts stay open to other addresses.
func TestClientAddressThrottle(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := throttleNode(t, d, func(c *config.Config) {
			c.Login.AccountFreeFailures = 50
			c.Login.ClientFreeFailures = 3
			c.Login.ClientMaxDelay = config.Duration(time.Minute)
		})
		for i := range 5 {
			n.user(fmt.Sprintf("user%d", i), goodPassword, fmt.Sprintf("user%d@univ.example", i))
		}
		sprayer := fromIP("198.51.100.7")
		for i := range 3 { // one wrong password on each of three accounts
			b := n.browser()
			ref := mustIdentify(b, fmt.Sprintf("user%d", i), "", sprayer...)
			expectPage(t, "spray", passwordStep(b, ref, wrongPassword, false, sprayer...), http.StatusUnauthorized)
		}
		b := n.browser()
		ref := mustIdentify(b, "user3", "", sprayer...)
		p := passwordStep(b, ref, goodPassword, false, sprayer...)
		expectPage(t, "fresh account from the spraying address", p, http.StatusTooManyRequests, "Patientez")
		if retryAfter(t, p) != 1 {
			t.Fatalf("Retry-After %s, want 1", p.Header.Get("Retry-After"))
		}

		other := n.browser()
		oref := mustIdentify(other, "user3", "", fromIP("198.51.100.8")...)
		expectRedirect(t, "same account from another address", passwordStep(other, oref, goodPassword, false, fromIP("198.51.100.8")...), "/account")

		n.clock.Advance(time.Second)
		b = n.browser()
		ref = mustIdentify(b, "user4", "", sprayer...)
		expectRedirect(t, "spraying address after the delay", passwordStep(b, ref, goodPassword, false, sprayer...), "/account")
	})
}

func TestSignInAuditTrail(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := throttleNode(t, d, func(c *config.Config) { c.Login.AccountFreeFailures = 1 })
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		b := n.browser()
		ip := fromIP("192.0.2.33")
		ref := mustIdentify(b, "jdupont", "", ip...)
		expectPage(t, "wrong", passwordStep(b, ref, wrongPassword, false, ip...), http.StatusUnauthorized)
		expectPage(t, "throttled", passwordStep(b, ref, goodPassword, false, ip...), http.StatusTooManyRequests)
		n.clock.Advance(time.Second)
		expectRedirect(t, "right", passwordStep(b, ref, goodPassword, true, ip...), "/account")

		ev := auditOf(t, n, a.ID, "login.")
		if got, want := auditTypes(ev), []string{"login.failure", "login.throttled", "login.success"}; !slices.Equal(got, want) {
			t.Fatalf("audit: %v, want %v", got, want)
		}
		for _, e := range ev {
			if e.IP != "192.0.2.33" || e.RequestID == "" || !strings.Contains(e.UserAgent, "Firefox") {
				t.Errorf("%s: ip %q request id %q user agent %q", e.Type, e.IP, e.RequestID, e.UserAgent)
			}
			for k, v := range e.Details {
				if strings.Contains(v, goodPassword) || strings.Contains(v, wrongPassword) {
					t.Errorf("%s: detail %s holds a password", e.Type, k)
				}
			}
		}
		sessions, err := n.srv.db.ListSessions(context.Background(), a.ID, n.clock.Now())
		if err != nil || len(sessions) != 1 || ev[2].Details["session_id"] != sessions[0].ID {
			t.Fatalf("login.success session_id %q, sessions %v (%v)", ev[2].Details["session_id"], sessions, err)
		}

		p, _ := identifyStep(n.browser(), "personne@univ.example", "", ip...)
		expectPage(t, "unknown", p, http.StatusUnprocessableEntity)
		unknown := auditOf(t, n, "", "login.unknown")
		if len(unknown) != 1 || unknown[0].Details["login"] != "personne@univ.example" || unknown[0].IP != "192.0.2.33" {
			t.Fatalf("login.unknown events: %+v", unknown)
		}
	})
}

// TestIdentifyProbingThrottled: an address that looks up many unknown
// identifiers is slowed down at step 1, so nobody can list which addresses
// exist quickly; known accounts from other addresses are not affected.
func TestIdentifyProbingThrottled(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := throttleNode(t, d, func(c *config.Config) { c.Login.ClientFreeFailures = 3 })
		n.user("known", goodPassword, "known@univ.example")
		prober := fromIP("198.51.100.9")
		b := n.browser()
		for i := range 3 {
			p, _ := identifyStep(b, fmt.Sprintf("guess%d@univ.example", i), "", prober...)
			expectPage(t, "unknown lookup", p, http.StatusUnprocessableEntity)
		}
		p, _ := identifyStep(b, "known@univ.example", "", prober...)
		expectPage(t, "lookup after too many unknown ones", p, http.StatusTooManyRequests, "Patientez 1 seconde avant")
		if retryAfter(t, p) != 1 {
			t.Fatalf("Retry-After %s, want 1", p.Header.Get("Retry-After"))
		}
		mustIdentify(n.browser(), "known@univ.example", "", fromIP("198.51.100.10")...)
		n.clock.Advance(time.Second)
		mustIdentify(b, "known@univ.example", "", prober...)
	})
}

// TestDisabledBetweenSteps: an account disabled after step 1 is told why
// when the right password is given, not "wrong password".
func TestDisabledBetweenSteps(t *testing.T) {
	n := newNode(t, store.SQLite)
	a := n.user("later", goodPassword, "later@univ.example")
	b := n.browser()
	ref := mustIdentify(b, "later", "")
	if err := n.srv.accounts.SetState(context.Background(), a.ID, store.StateDisabled, "cli"); err != nil {
		t.Fatal(err)
	}
	expectPage(t, "disabled between the steps", passwordStep(b, ref, goodPassword, false), http.StatusForbidden, "désactivé")
	expectPage(t, "wrong password still wrong", passwordStep(b, ref, wrongPassword, false), http.StatusUnauthorized)
}
