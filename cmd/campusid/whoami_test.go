package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"campusid/internal/config"
	"campusid/internal/store"
)

// Who am I (/whoami): the identifier and the account's addresses, masked
// but for the one written to, sent to any verified address; the same page
// whether or not the address is an account's.

func whoamiAsk(b *browser, addr string) page {
	b.t.Helper()
	return b.post("/whoami", url.Values{"email": {addr}})
}

func TestWhoamiSendsIdentifier(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		a := recAccount(t, n)
		if err := n.srv.db.AddEmail(context.Background(), &store.Email{AccountID: a.ID, Address: "pending@perso.example",
			Kind: store.EmailPersonal, CreatedAt: n.clock.Now()}); err != nil {
			t.Fatal(err)
		}
		b := n.browser()
		expectPage(t, "whoami form", b.get("/whoami"), http.StatusOK, `autocomplete="email"`)
		now := n.clock.Now()
		p := whoamiAsk(b, recPersonal)
		expectPage(t, "whoami sent", p, http.StatusOK, "Si un compte utilise l'adresse "+recPersonal+", un message vient d'y être envoyé à "+clockTime(now),
			"à partir de "+clockTimeUp(now.Add(time.Minute)))
		m := recMailsOf(n, recPersonal, "whoami")
		if len(m) != 1 {
			t.Fatalf("%d whoami messages, want 1", len(m))
		}
		text := m[0].Text
		for _, want := range []string{"Votre identifiant : jdupont", "j•••@univ.example", recPersonal + " (celle-ci)", n.URL + "/login", n.URL + "/recover"} {
			if !strings.Contains(text, want) {
				t.Fatalf("whoami mail lacks %q:\n%s", want, text)
			}
		}
		for _, not := range []string{recAddr, "pending@perso.example", "p•••@perso.example"} {
			if strings.Contains(text, not) || strings.Contains(m[0].HTML, not) {
				t.Fatalf("whoami mail shows %q:\n%s", not, text)
			}
		}
		if len(recMails(n, recAddr)) != 0 {
			t.Fatal("the other addresses got a message")
		}
		if ev := portalAudit(t, n, a.ID, "whoami.sent"); len(ev) != 1 || strings.Contains(ev[0].Details["to"], "jd@") {
			t.Fatalf("audit whoami.sent: %+v", ev)
		}

		// Again within the minute: refused, saying when; the account's other address too.
		p = whoamiAsk(b, recPersonal)
		expectPage(t, "whoami too soon", p, http.StatusTooManyRequests, "Un message a déjà été demandé pour cette adresse à "+clockTime(now),
			"à partir de "+clockTimeUp(now.Add(time.Minute)))
		if p.Header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
		expectPage(t, "whoami other address too soon", whoamiAsk(b, recAddr), http.StatusTooManyRequests, "à partir de")
		n.clock.Advance(61 * time.Second)
		expectPage(t, "whoami after a minute", whoamiAsk(b, recAddr), http.StatusOK, "un message vient d'y être envoyé")
		m = recMailsOf(n, recAddr, "whoami")
		if len(m) != 1 || !strings.Contains(m[0].Text, recAddr+" (celle-ci)") || !strings.Contains(m[0].Text, "j•••@perso.example") {
			t.Fatalf("second whoami mail: %+v", m)
		}

		// An unverified address gets nothing, on the same page.
		expectPage(t, "whoami unverified", whoamiAsk(b, "pending@perso.example"), http.StatusOK, "Si un compte utilise l'adresse pending@perso.example")
		if len(recMails(n, "pending@perso.example")) != 0 {
			t.Fatal("an unverified address got the identifier")
		}
	})
}

func TestWhoamiUnknownLooksTheSame(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := recNode(t, d, nil)
		recAccount(t, n)
		norm := func(p page, addr string) page {
			p.Body, p.Header = strings.ReplaceAll(p.Body, addr, "ADDR"), nil
			return p
		}
		b := n.browser()
		known := []page{norm(whoamiAsk(b, recAddr), recAddr), norm(whoamiAsk(b, recAddr), recAddr)}
		unknown := []page{norm(whoamiAsk(b, "nobody@univ.example"), "nobody@univ.example"), norm(whoamiAsk(b, "nobody@univ.example"), "nobody@univ.example")}
		for i := range known {
			if known[i].Status != unknown[i].Status || known[i].Body != unknown[i].Body {
				t.Fatalf("response %d differs: %d / %d\n--- known:\n%s\n--- unknown:\n%s", i, known[i].Status, unknown[i].Status, known[i].Body, unknown[i].Body)
			}
		}
		if known[0].Status != http.StatusOK || known[1].Status != http.StatusTooManyRequests {
			t.Fatalf("statuses %d %d", known[0].Status, known[1].Status)
		}
		if len(recMails(n, "nobody@univ.example")) != 0 {
			t.Fatal("mail to an unknown address")
		}
		expectPage(t, "invalid address", whoamiAsk(b, "not an address"), http.StatusUnprocessableEntity, "n'est pas valide")
	})
}

func TestWhoamiRevealUnknownAndEnglish(t *testing.T) {
	n := recNode(t, store.SQLite, func(c *config.Config) { c.SelfService.RevealUnknownAccounts = true })
	recAccount(t, n)
	b := n.browser()
	b.lang = "en"
	expectPage(t, "form", b.get("/whoami"), http.StatusOK, "Find my identifier")
	expectPage(t, "unknown, revealed", whoamiAsk(b, "nobody@univ.example"), http.StatusUnprocessableEntity, "No account uses this address")
	expectPage(t, "known", whoamiAsk(b, recAddr), http.StatusOK, "If an account uses the address "+recAddr)
	m := recMailsOf(n, recAddr, "whoami")
	if len(m) != 1 || m[0].Subject != "Your campusid identifier" || !strings.Contains(m[0].Text, "Your identifier: jdupont") ||
		!strings.Contains(m[0].Text, recAddr+" (this one)") || !strings.Contains(m[0].Text, "j•••@perso.example") {
		t.Fatalf("English whoami mail: %+v", m)
	}
	expectPage(t, "sign-in page links", b.get("/login"), http.StatusOK, `href="/recover"`, `href="/whoami"`, "Forgot your password?")
}
