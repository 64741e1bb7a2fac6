package main

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"campusid/internal/account"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// Activation of provisioned accounts (issue 3, item 1) through HTTP: the
// proof by email link, the password, the secret question and the personal
// address, written in one transaction at the end.

const (
	actAddr     = "jean.dupont@univ.example"
	actPassword = "Kq4!vRz8#wLm"
	actPersonal = "jean.perso@mail.example"
	actQuestion = "Dans quelle rue habitais-je à dix ans ?"
	actAnswer   = "Rue Saint-Jean"
)

// actNode starts a node with the activation steps question and personal
// address turned on or off.
func actNode(t *testing.T, d store.Dialect, question, personal bool) *node {
	t.Helper()
	cfg := testConfig(t, storetest.URL(t, d))
	cfg.SelfService.ActivationSecretQuestion = question
	cfg.SelfService.ActivationPersonalEmail = personal
	return startNode(t, cfg, nil)
}

// actProvisioned creates an account to be activated (no password).
func actProvisioned(t *testing.T, n *node, ident string, emails ...string) store.Account {
	t.Helper()
	a, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: ident, Emails: emails,
		GivenName: "Jean", FamilyName: "Dupont", Actor: "cli"})
	if err != nil {
		t.Fatalf("create %s: %v", ident, err)
	}
	return a
}

func actAccount(t *testing.T, n *node, id string) store.Account {
	t.Helper()
	a, err := n.srv.db.AccountByID(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// actRef returns the flow reference of a redirect to path.
func actRef(t testing.TB, p page, path string) string {
	t.Helper()
	ref, ok := strings.CutPrefix(p.Location, path+"?req=")
	if p.Status != http.StatusSeeOther || !ok {
		t.Fatalf("want 303 to %s?req=..., got %d to %q\n%s", path, p.Status, p.Location, p.Body)
	}
	if i := strings.IndexByte(ref, '&'); i >= 0 {
		ref = ref[:i]
	}
	r, err := url.QueryUnescape(ref)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// actStart types login at step 1 of /login and returns the reference of
// the activation flow it leads to.
func actStart(b *browser, login, returnTo string) string {
	b.t.Helper()
	f := url.Values{"login": {login}}
	if returnTo != "" {
		f.Set("return_to", returnTo)
	}
	return actRef(b.t, b.post("/login", f), "/activate/proof")
}

// actSend asks for the activation link and returns the response.
func actSend(b *browser, ref string) page {
	b.t.Helper()
	return b.post("/activate/proof", url.Values{"req": {ref}, "method": {"email_link"}})
}

var actLinkRe = regexp.MustCompile(`(http://\S+/activate/link\?token=(\S+))`)

// actLinks returns the activation links mailed to addr, newest first.
func actLinks(t testing.TB, n *node, addr string) []string {
	t.Helper()
	var out []string
	for _, m := range n.mails() {
		if m.To != addr || m.Purpose != store.PurposeActivation {
			continue
		}
		lm := actLinkRe.FindStringSubmatch(m.Text)
		if lm == nil || !strings.HasPrefix(lm[1], n.URL+"/activate/link?token=") {
			t.Fatalf("no activation link on this node in:\n%s", m.Text)
		}
		out = append(out, lm[1])
	}
	return out
}

func actToken(t testing.TB, link string) string {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query().Get("token")
}

var actCodeRe = regexp.MustCompile(`(?m)^(\d{6})$`)

// actCode returns the newest code mailed to addr.
func actCode(t testing.TB, n *node, addr string) string {
	t.Helper()
	for _, m := range n.mails() {
		if m.To == addr && m.Purpose == store.PurposeFlowCode {
			c := actCodeRe.FindStringSubmatch(m.Text)
			if c == nil {
				t.Fatalf("no code in:\n%s", m.Text)
			}
			return c[1]
		}
	}
	t.Fatalf("no code mailed to %s", addr)
	return ""
}

// actRedeem opens the link (GET shows a button) and presses it (POST); it
// returns the reference of the password step in this browser.
func actRedeem(b *browser, link string) string {
	b.t.Helper()
	expectPage(b.t, "link page", b.get(link), http.StatusOK, `action="/activate/link"`, `name="token"`)
	return actRef(b.t, b.post("/activate/link", url.Values{"token": {actToken(b.t, link)}}), "/activate/password")
}

// actProve runs the proof from step 1 of /login and returns the
// reference of the password step.
func actProve(b *browser, n *node, login, returnTo, to string) string {
	b.t.Helper()
	ref := actStart(b, login, returnTo)
	expectRedirect(b.t, "send", actSend(b, ref), "/activate/proof?req="+url.QueryEscape(ref))
	links := actLinks(b.t, n, to)
	if len(links) == 0 {
		b.t.Fatalf("no activation link mailed to %s", to)
	}
	return actRedeem(b, links[0])
}

func actPasswordStep(b *browser, ref, pw, confirm string) page {
	b.t.Helper()
	return b.post("/activate/password", url.Values{"req": {ref}, "new_password": {pw}, "confirm_password": {confirm}})
}

// actWait fails unless p is a 429 with Retry-After and the message.
func actWait(t testing.TB, what string, p page, texts ...string) {
	t.Helper()
	expectPage(t, what, p, http.StatusTooManyRequests, texts...)
	retryAfter(t, p)
}

// TestActivationJourney plays the whole activation with every step on,
// then with the password only, and checks what it leaves: an active
// account that signs in with the new password, with its question and its
// verified personal address, and the audit trail.
func TestActivationJourney(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		t.Run("every step", func(t *testing.T) {
			n := actNode(t, d, true, true)
			a := actProvisioned(t, n, "jdupont", actAddr, "j.dupont@etu.univ.example")
			b := n.browser()

			// Step 1 of the sign-in page leads to the activation.
			ref := actStart(b, "j.dupont@etu.univ.example", "")
			p := b.get("/activate/proof?req=" + ref)
			expectPage(t, "proof page", p, http.StatusOK, "Vérifions que ce compte est le vôtre", "j•••@etu.univ.example",
				"24 heures", `aria-current="step"`, "Choisir une question secrète", "Ajouter une adresse personnelle")
			p = b.follow(actSend(b, ref))
			expectPage(t, "sent page", p, http.StatusOK, "Consultez votre messagerie", "Un lien d'activation est parti à",
				"j•••@etu.univ.example", "ne refaites pas de nouvelle demande", "à partir de "+n.clock.Now().Add(time.Minute).Local().Format("15:04"))

			// The link went to the address typed (a verified one of the account), valid 24 hours.
			mails := n.mails()
			if len(mails) != 1 || mails[0].To != "j.dupont@etu.univ.example" || !strings.Contains(mails[0].Text, "24 heures") ||
				!strings.Contains(mails[0].Text, "jdupont") || !strings.Contains(mails[0].HTML, "24 heures") {
				t.Fatalf("activation mail: %+v", mails)
			}
			ref = actRedeem(b, actLinks(t, n, "j.dupont@etu.univ.example")[0])

			// Password: refused when it breaks the policy or is built from the name, then chosen.
			p = actPasswordStep(b, ref, "court", "court")
			expectPage(t, "short password", p, http.StatusUnprocessableEntity, "ne respecte pas toutes les règles", `aria-invalid="true"`)
			if r := portalRules(p.Body); r["length"] != "ko" || r["upper"] != "ko" || r["match"] != "ok" {
				t.Fatalf("checklist after a short password: %v", r)
			}
			p = actPasswordStep(b, ref, "Jdupont#2024x", "Jdupont#2024x")
			expectPage(t, "password from the identifier", p, http.StatusUnprocessableEntity, "ne respecte pas toutes les règles")
			if r := portalRules(p.Body); r["common"] != "ko" || r["length"] != "ok" {
				t.Fatalf("checklist after a personal password: %v", r)
			}
			p = actPasswordStep(b, ref, actPassword, actPassword+"x")
			expectPage(t, "mismatch", p, http.StatusUnprocessableEntity, "Les deux saisies ne sont pas identiques")
			if strings.Contains(p.Body, actPassword) {
				t.Fatal("the password is echoed in the page")
			}
			expectRedirect(t, "password", actPasswordStep(b, ref, actPassword, actPassword), "/activate/question?req="+url.QueryEscape(ref))

			// Secret question: suggestions, folding explained, answer checked.
			p = b.get("/activate/question?req=" + ref)
			expectPage(t, "question page", p, http.StatusOK, "<datalist", "Quel est le nom de votre premier animal",
				"sans tenir compte des majuscules, des accents, des espaces ni de la ponctuation")
			p = b.post("/activate/question", url.Values{"req": {ref}, "question": {actQuestion}, "answer": {"a"}})
			expectPage(t, "short answer", p, http.StatusUnprocessableEntity, "au moins 3 lettres", `id="answer-error"`, `value="`+actQuestion+`"`)
			expectRedirect(t, "question", b.post("/activate/question", url.Values{"req": {ref}, "question": {actQuestion}, "answer": {actAnswer}}),
				"/activate/personal?req="+url.QueryEscape(ref))

			// Personal address, verified by a code.
			expectPage(t, "personal page", b.get("/activate/personal?req="+ref), http.StatusOK, `autocomplete="email"`)
			expectRedirect(t, "personal", b.post("/activate/personal", url.Values{"req": {ref}, "email": {actPersonal}}),
				"/activate/code?req="+url.QueryEscape(ref))
			p = b.get("/activate/code?req=" + ref)
			expectPage(t, "code page", p, http.StatusOK, `autocomplete="one-time-code"`, actPersonal, "3 minutes")
			code := actCode(t, n, actPersonal)
			p = b.post("/activate/code", url.Values{"req": {ref}, "code": {code[:3] + " " + code[3:]}})
			expectRedirect(t, "code", p, "/account?done=activated")
			if setCookie(p, "campusid_session") == nil {
				t.Fatal("the activation did not sign in")
			}
			expectPage(t, "account page", b.get("/account?done=activated"), http.StatusOK, "Votre compte est activé", actPersonal)

			// What it wrote.
			if got := actAccount(t, n, a.ID); got.State != store.StateActive || got.PasswordHash == "" || got.PasswordChangedAt == nil {
				t.Fatalf("account after activation: %+v", got)
			}
			e := portalEmail(t, n, a.ID, actPersonal)
			if e.VerifiedAt == nil || e.Kind != store.EmailPersonal || e.Primary {
				t.Fatalf("personal address: %+v", e)
			}
			q, err := n.srv.db.SecretQuestionOf(context.Background(), a.ID)
			if err != nil || q.Question != actQuestion {
				t.Fatalf("question: %+v %v", q, err)
			}
			if ok, err := n.srv.accounts.CheckSecret(context.Background(), q, "rue saint jean"); !ok || err != nil {
				t.Fatalf("the folded answer does not match: %v %v", ok, err)
			}
			ev := auditOf(t, n, a.ID, "")
			types := strings.Join(auditTypes(ev), " ")
			for _, want := range []string{"activation.start", "activation.link_sent", "activation.proved", "activation.password_chosen",
				"activation.question_chosen", "activation.code_sent", "activation.personal_verified", "password.change",
				"question.change", "email.add", "account.activate", "login.success"} {
				if !strings.Contains(types, want) {
					t.Errorf("no audit event %s in %s", want, types)
				}
			}
			for _, e := range ev {
				if e.Type == "account.activate" && (e.Details["method"] != "email_link" || e.Details["personal_email"] != "true") {
					t.Errorf("account.activate details: %v", e.Details)
				}
				for k, v := range e.Details {
					if strings.Contains(v, actPassword) || strings.Contains(v, "$argon2") || strings.Contains(strings.ToLower(v), "saint") {
						t.Errorf("audit %s.%s holds a secret: %q", e.Type, k, v)
					}
				}
			}
			// The new password signs in, with the personal address too.
			n.browser().mustSignIn(actAddr, actPassword)
			n.browser().mustSignIn(actPersonal, actPassword)
			// The flow is spent.
			expectRedirect(t, "spent flow", b.get("/activate/code?req="+ref), "/activate?expired=1")
		})

		t.Run("password only, in English, back to return_to", func(t *testing.T) {
			n := actNode(t, d, false, false)
			a := actProvisioned(t, n, "jdupont", actAddr)
			b := n.browser()
			b.lang = "en"
			ref := actStart(b, "jdupont", "/account/x")
			expectPage(t, "proof page", b.get("/activate/proof?req="+ref), http.StatusOK, "Let's check that this account is yours",
				"j•••@univ.example", "24 hours")
			ref = actProve(b, n, "jdupont", "/account/x", actAddr)
			if m := n.mails()[0]; m.Subject != "Activate your campusid account" || !strings.Contains(m.Text, "valid for 24 hours") {
				t.Fatalf("English mail: %s\n%s", m.Subject, m.Text)
			}
			p := b.get("/activate/password?req=" + ref)
			expectPage(t, "password page", p, http.StatusOK, "Choose your password", "Activate my account", `autocomplete="new-password"`,
				`data-policy-input`, `id="policy-rules"`, "jdupont")
			if strings.Contains(p.Body, "secret question") {
				t.Fatal("the question step is shown while turned off")
			}
			expectRedirect(t, "password", actPasswordStep(b, ref, actPassword, actPassword), "/account/x")
			if got := actAccount(t, n, a.ID); got.State != store.StateActive {
				t.Fatalf("state %s", got.State)
			}
			if _, err := n.srv.db.SecretQuestionOf(context.Background(), a.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("a question was set: %v", err)
			}
			if len(portalEmails(t, n, a.ID)) != 1 {
				t.Fatal("an address was added")
			}
			if ev := auditOf(t, n, a.ID, "login.success"); len(ev) != 1 || ev[0].Details["method"] != "link" {
				t.Fatalf("login.success: %+v", ev)
			}
			n.browser().mustSignIn("jdupont", actPassword)
		})
	})
}

// TestActivationLinkOtherBrowser: the link opened in another browser
// continues there; the first browser's page says so and cannot use the
// second one's flow; GET never uses the link; a used link gets a clear page.
func TestActivationLinkOtherBrowser(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := actNode(t, d, false, false)
		a := actProvisioned(t, n, "jdupont", actAddr)
		desk, phone, other := n.browser(), n.browser(), n.browser()
		ref := actStart(desk, actAddr, "/account/from-desk")
		actSend(desk, ref)
		link := actLinks(t, n, actAddr)[0]

		// A mail scanner fetching the link uses nothing.
		for i := 0; i < 3; i++ {
			expectPage(t, "GET link", other.get(link), http.StatusOK, "Continuer l'activation", "Jean Dupont", "jdupont")
		}
		phoneRef := actRedeem(phone, link)

		// The desk's page now says the activation goes on elsewhere.
		expectPage(t, "desk after the link", desk.get("/activate/proof?req="+ref), http.StatusOK, "continue dans le navigateur où vous l'avez ouvert")
		// The phone's reference opens nothing in another browser.
		expectRedirect(t, "phone ref on the desk", desk.get("/activate/password?req="+phoneRef), "/activate?expired=1")
		expectRedirect(t, "phone ref posted on the desk", actPasswordStep(desk, phoneRef, actPassword, actPassword), "/activate?expired=1")

		// The link is used: a clear page, nothing changes.
		p := other.post("/activate/link", url.Values{"token": {actToken(t, link)}})
		expectPage(t, "used link", p, http.StatusGone, "a déjà servi", "Demander un nouveau lien")
		expectPage(t, "used link GET", other.get(link), http.StatusGone, "a déjà servi")
		expectPage(t, "unknown link", other.get("/activate/link?token=nope"), http.StatusNotFound, "n'est pas valable")

		// The phone finishes, and goes where the desk was going.
		expectRedirect(t, "phone password", actPasswordStep(phone, phoneRef, actPassword, actPassword), "/account/from-desk")
		if got := actAccount(t, n, a.ID); got.State != store.StateActive {
			t.Fatalf("state %s", got.State)
		}
		expectPage(t, "link after activation", other.get(link), http.StatusGone, "déjà activé")
		expectPage(t, "desk after activation", desk.get("/activate/proof?req="+ref), http.StatusOK, "continue dans le navigateur")
	})
}

// TestActivationLinkExpiry: the link works at 23h59 and not at 24h01.
func TestActivationLinkExpiry(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := actNode(t, d, false, false)
		actProvisioned(t, n, "early", "early@univ.example")
		actProvisioned(t, n, "late", "late@univ.example")
		for _, who := range []string{"early", "late"} {
			b := n.browser()
			actSend(b, actStart(b, who+"@univ.example", ""))
		}
		early, late := actLinks(t, n, "early@univ.example")[0], actLinks(t, n, "late@univ.example")[0]
		n.clock.Advance(23*time.Hour + 59*time.Minute)
		ref := actRedeem(n.browser(), early)
		if ref == "" {
			t.Fatal("no flow at 23h59")
		}
		n.clock.Advance(2 * time.Minute)
		b := n.browser()
		expectPage(t, "GET at 24h01", b.get(late), http.StatusGone, "a expiré", "24 heures")
		expectPage(t, "POST at 24h01", b.post("/activate/link", url.Values{"token": {actToken(t, late)}}), http.StatusGone, "a expiré")
	})
}

// TestActivationStoppedMidway: every step done but the last leaves the
// account as it was: provisioned, no password, no question, no new address.
func TestActivationStoppedMidway(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := actNode(t, d, true, true)
		a := actProvisioned(t, n, "jdupont", actAddr)
		b := n.browser()
		ref := actProve(b, n, actAddr, "", actAddr)
		actPasswordStep(b, ref, actPassword, actPassword)
		b.post("/activate/question", url.Values{"req": {ref}, "question": {actQuestion}, "answer": {actAnswer}})
		expectRedirect(t, "personal", b.post("/activate/personal", url.Values{"req": {ref}, "email": {actPersonal}}),
			"/activate/code?req="+url.QueryEscape(ref))
		code := actCode(t, n, actPersonal)

		check := func(when string) {
			t.Helper()
			got := actAccount(t, n, a.ID)
			if got.State != store.StateProvisioned || got.PasswordHash != "" || got.PasswordChangedAt != nil {
				t.Fatalf("%s: account %+v", when, got)
			}
			if _, err := n.srv.db.SecretQuestionOf(context.Background(), a.ID); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s: a question was written (%v)", when, err)
			}
			if e := portalEmails(t, n, a.ID); len(e) != 1 || e[0].Address != actAddr {
				t.Fatalf("%s: addresses %+v", when, e)
			}
			if ev := auditOf(t, n, a.ID, "account.activate"); len(ev) != 0 {
				t.Fatalf("%s: account.activate recorded", when)
			}
		}
		check("before the code")
		// The flow ends on its own; even the right code opens nothing then.
		n.clock.Advance(31 * time.Minute)
		expectRedirect(t, "late code", b.post("/activate/code", url.Values{"req": {ref}, "code": {code}}), "/activate?expired=1")
		expectPage(t, "expired notice", b.get("/activate?expired=1"), http.StatusOK, "Cette page d'activation a expiré")
		check("after the flow expired")
		// The person can start again from the sign-in page.
		actStart(n.browser(), actAddr, "")
	})
}

// TestActivationResend: a new link is refused within the resend interval,
// saying when; after it, a second link leaves; the first one still works,
// and using it ends the second.
func TestActivationResend(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := actNode(t, d, false, false)
		actProvisioned(t, n, "jdupont", actAddr)
		b := n.browser()
		ref := actStart(b, actAddr, "")
		first := n.clock.Now()
		actSend(b, ref)
		n.clock.Advance(20 * time.Second)
		p := actSend(b, ref)
		actWait(t, "resend at 20 s", p, "Un lien est déjà parti à "+first.Local().Format("15:04"),
			"à partir de "+first.Add(time.Minute).Local().Format("15:04"), "dans 40 secondes")
		if got := p.Header.Get("Retry-After"); got != "40" {
			t.Fatalf("Retry-After %q, want 40", got)
		}
		// Another flow of the same account is held to the same interval.
		b2 := n.browser()
		actWait(t, "resend from another browser", actSend(b2, actStart(b2, "jdupont", "")), "Un lien est déjà parti")
		if l := actLinks(t, n, actAddr); len(l) != 1 {
			t.Fatalf("%d links sent", len(l))
		}

		n.clock.Advance(41 * time.Second)
		expectRedirect(t, "resend after the interval", actSend(b, ref), "/activate/proof?req="+url.QueryEscape(ref))
		links := actLinks(t, n, actAddr)
		if len(links) != 2 {
			t.Fatalf("%d links sent", len(links))
		}
		// The first link (the older one) still works; the newer one is then dead.
		actRedeem(n.browser(), links[1])
		expectPage(t, "second link after the first was used", n.browser().get(links[0]), http.StatusGone, "a déjà servi")
	})
}

// TestActivationPersonalAddress: the personal address must be new and
// outside the establishment's domain; wrong codes are refused, 5 tries
// kill a code, and a new code then works.
func TestActivationPersonalAddress(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := actNode(t, d, false, true)
		a := actProvisioned(t, n, "jdupont", actAddr, "j.dupont@etu.univ.example")
		n.user("mmartin", goodPassword, "marie.martin@mail.example")
		b := n.browser()
		ref := actProve(b, n, actAddr, "", actAddr)
		expectRedirect(t, "password", actPasswordStep(b, ref, actPassword, actPassword), "/activate/personal?req="+url.QueryEscape(ref))

		personal := func(addr string) page {
			return b.post("/activate/personal", url.Values{"req": {ref}, "email": {addr}})
		}
		for _, tc := range []struct {
			name, addr string
			status     int
			want       string
		}{
			{"one of the account's", "J.Dupont@etu.univ.example", http.StatusUnprocessableEntity, "déjà enregistrée sur votre compte"},
			{"the establishment's domain", "jean@univ.example", http.StatusUnprocessableEntity, "le domaine de votre établissement"},
			{"another account's", "marie.martin@mail.example", http.StatusConflict, "déjà enregistrée sur un autre compte"},
			{"not an address", "jean.perso@", http.StatusUnprocessableEntity, "n'est pas valide"},
		} {
			p := personal(tc.addr)
			expectPage(t, tc.name, p, tc.status, tc.want, `id="email-error"`, `aria-describedby="email-hint email-error"`, `value="`+tc.addr+`"`)
		}
		if len(n.mails()) != 1 {
			t.Fatal("a code was sent to a refused address")
		}

		expectRedirect(t, "personal", personal(actPersonal), "/activate/code?req="+url.QueryEscape(ref))
		code := actCode(t, n, actPersonal)
		wrong := "000000"
		if code == wrong {
			wrong = "111111"
		}
		try := func(c string) page { return b.post("/activate/code", url.Values{"req": {ref}, "code": {c}}) }
		for i := 1; i <= 4; i++ {
			expectPage(t, "wrong code", try(wrong), http.StatusUnprocessableEntity, "n'est pas le bon", `id="code-error"`, `aria-invalid="true"`)
		}
		expectPage(t, "5th wrong code", try(wrong), http.StatusUnprocessableEntity, "n'est plus valable")
		// Past the free failures, each try waits (per account and address).
		actWait(t, "6th try at once", try(code), "Patientez")
		n.clock.Advance(2 * time.Second)
		expectPage(t, "right code after 5 wrong", try(code), http.StatusUnprocessableEntity, "n'est plus valable")

		// A new code only after the resend interval, saying when.
		actWait(t, "resend at once", b.post("/activate/code/resend", url.Values{"req": {ref}}), "Un code est déjà parti", "à partir de")
		n.clock.Advance(time.Minute)
		expectRedirect(t, "resend", b.post("/activate/code/resend", url.Values{"req": {ref}}), "/activate/code?req="+url.QueryEscape(ref)+"&resent=1")
		n.clock.Advance(5 * time.Second) // past the delay of the last wrong try
		expectRedirect(t, "new code", try(actCode(t, n, actPersonal)), "/account?done=activated")
		if e := portalEmail(t, n, a.ID, actPersonal); e.VerifiedAt == nil {
			t.Fatal("personal address not verified")
		}
		if ev := auditOf(t, n, a.ID, "activation.code_failure"); len(ev) != 6 {
			t.Fatalf("%d activation.code_failure events, want 6", len(ev))
		}
	})
}

// TestActivationChangeAddress: a code sent to a first address does not
// verify the address typed after it.
func TestActivationChangeAddress(t *testing.T) {
	n := actNode(t, store.SQLite, false, true)
	a := actProvisioned(t, n, "jdupont", actAddr)
	b := n.browser()
	ref := actProve(b, n, actAddr, "", actAddr)
	actPasswordStep(b, ref, actPassword, actPassword)
	b.post("/activate/personal", url.Values{"req": {ref}, "email": {"typo@mail.example"}})
	typoCode := actCode(t, n, "typo@mail.example")
	expectRedirect(t, "change", b.post("/activate/code/change", url.Values{"req": {ref}}), "/activate/personal?req="+url.QueryEscape(ref))
	expectPage(t, "personal again", b.get("/activate/personal?req="+ref), http.StatusOK, `value="typo@mail.example"`)
	actWait(t, "second address at once", b.post("/activate/personal", url.Values{"req": {ref}, "email": {actPersonal}}), "Un code est déjà parti")
	n.clock.Advance(time.Minute)
	expectRedirect(t, "second address", b.post("/activate/personal", url.Values{"req": {ref}, "email": {actPersonal}}),
		"/activate/code?req="+url.QueryEscape(ref))
	expectPage(t, "old code", b.post("/activate/code", url.Values{"req": {ref}, "code": {typoCode}}), http.StatusUnprocessableEntity, "n'est pas le bon")
	expectRedirect(t, "right code", b.post("/activate/code", url.Values{"req": {ref}, "code": {actCode(t, n, actPersonal)}}), "/account?done=activated")
	for _, e := range portalEmails(t, n, a.ID) {
		if e.Address == "typo@mail.example" {
			t.Fatal("the first address was added")
		}
	}
}

// TestActivationEntry: which accounts step 1 of /login and /activate lead
// to the activation, and the entry page itself.
func TestActivationEntry(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := actNode(t, d, false, false)
		ctx := context.Background()
		actProvisioned(t, n, "pnouveau", "paul.nouveau@univ.example")
		n.user("jactif", goodPassword, "jean.actif@univ.example")
		off := actProvisioned(t, n, "dferme", "dora.ferme@univ.example")
		if err := n.srv.accounts.SetState(ctx, off.ID, store.StateDisabled, "cli"); err != nil {
			t.Fatal(err)
		}
		end := n.clock.Now().Add(24 * time.Hour)
		if _, err := n.srv.accounts.Create(ctx, account.NewAccount{Identifier: "tfini", Emails: []string{"t.fini@univ.example"},
			TemporaryUntil: &end, Actor: "cli"}); err != nil {
			t.Fatal(err)
		}
		n.clock.Advance(25 * time.Hour)

		// The sign-in page links to the activation, keeping return_to.
		p := n.browser().get("/login?return_to=%2Faccount%2Fx")
		if href := linkTo(t, p, "Première connexion ? Activez votre compte"); href != "/activate?return_to=%2faccount%2fx" && href != "/activate?return_to=/account/x" {
			t.Fatalf("activation link %q", href)
		}
		expectPage(t, "entry page", n.browser().get("/activate?return_to=/account/x"), http.StatusOK,
			`autocomplete="username"`, `name="return_to" value="/account/x"`, "Activer mon compte")

		for _, path := range []string{"/login", "/activate"} {
			b := n.browser()
			post := func(login string) page { return b.post(path, url.Values{"login": {login}}) }
			actRef(t, post("Paul.Nouveau@univ.example"), "/activate/proof")
			expectPage(t, path+" disabled", post("dferme"), http.StatusForbidden, "Ce compte est désactivé")
			expectPage(t, path+" ended temporary", post("t.fini@univ.example"), http.StatusForbidden, "était valable jusqu")
			expectPage(t, path+" unknown", post("personne@univ.example"), http.StatusUnprocessableEntity, "Aucun compte")
			p := post("jean.actif@univ.example")
			if path == "/login" {
				if !strings.HasPrefix(p.Location, "/login/password?req=") {
					t.Fatalf("active account at /login: %d %q", p.Status, p.Location)
				}
			} else {
				expectPage(t, "active account at /activate", p, http.StatusConflict, "déjà activé", `value="jean.actif@univ.example"`)
			}
		}
		if ev := auditOf(t, n, off.ID, "login.refused"); len(ev) != 2 {
			t.Fatalf("%d login.refused for the disabled account", len(ev))
		}
	})
}

// TestActivationDisabledMidway: an account disabled during its activation
// is activated neither by a link sent before nor by the last step.
func TestActivationDisabledMidway(t *testing.T) {
	n := actNode(t, store.SQLite, false, false)
	a := actProvisioned(t, n, "jdupont", actAddr)
	b := n.browser()
	ref := actProve(b, n, actAddr, "", actAddr)
	n.clock.Advance(time.Minute)
	b2 := n.browser()
	actSend(b2, actStart(b2, actAddr, ""))
	link := actLinks(t, n, actAddr)[0]
	if err := n.srv.accounts.SetState(context.Background(), a.ID, store.StateDisabled, "cli"); err != nil {
		t.Fatal(err)
	}
	expectPage(t, "last step", actPasswordStep(b, ref, actPassword, actPassword), http.StatusForbidden, "Ce compte est désactivé")
	expectPage(t, "link page", b2.get(link), http.StatusForbidden, "Ce compte est désactivé")
	expectPage(t, "link posted", b2.post("/activate/link", url.Values{"token": {actToken(t, link)}}), http.StatusForbidden, "Ce compte est désactivé")
	if got := actAccount(t, n, a.ID); got.State != store.StateDisabled || got.PasswordHash != "" {
		t.Fatalf("account %+v", got)
	}
}

// TestActivationEntryHidden: with unknown accounts hidden, /activate tells
// an unknown identifier from an active account no better than /login does:
// both go on to the password step.
func TestActivationEntryHidden(t *testing.T) {
	cfg := testConfig(t, storetest.URL(t, store.SQLite))
	cfg.Login.RevealUnknownAccounts = false
	n := startNode(t, cfg, nil)
	actProvisioned(t, n, "pnouveau", "paul.nouveau@univ.example")
	n.user("jactif", goodPassword, "jean.actif@univ.example")
	b := n.browser()
	for _, login := range []string{"personne@univ.example", "jean.actif@univ.example"} {
		if p := b.post("/activate", url.Values{"login": {login}}); p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login/password?req=") {
			t.Fatalf("%s at /activate: %d %q", login, p.Status, p.Location)
		}
	}
	actRef(t, b.post("/activate", url.Values{"login": {"paul.nouveau@univ.example"}}), "/activate/proof")
}

// TestActivationLinkRace: of many browsers pressing the same link at once,
// exactly one goes on.
func TestActivationLinkRace(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := actNode(t, d, false, false)
		actProvisioned(t, n, "jdupont", actAddr)
		b := n.browser()
		actSend(b, actStart(b, actAddr, ""))
		tok := actToken(t, actLinks(t, n, actAddr)[0])
		const racers = 20
		statuses := make(chan int, racers)
		var wg sync.WaitGroup
		for i := 0; i < racers; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				statuses <- n.browser().post("/activate/link", url.Values{"token": {tok}}).Status
			}()
		}
		wg.Wait()
		close(statuses)
		won := 0
		for s := range statuses {
			switch s {
			case http.StatusSeeOther:
				won++
			case http.StatusGone:
			default:
				t.Errorf("status %d", s)
			}
		}
		if won != 1 {
			t.Fatalf("%d browsers went on with one link, want 1", won)
		}
	})
}
