package main

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"campusid/internal/account"
	"campusid/internal/config"
	"campusid/internal/i18n"
	"campusid/internal/store"
	"campusid/internal/store/storetest"
)

// The secret question through HTTP: its section of the account page, and
// password reset by secret question at /recover/question.

const (
	qQuestion    = "Dans quelle rue habitiez-vous à 10 ans ?"
	qAnswerRight = "Rue Saint-Jean"
	qNewPassword = "Nv8#kT2!qZ5m"

	qSubjectChanged  = "Votre question secrète a été changée"
	qSubjectLocked   = "Réinitialisation par question secrète bloquée"
	qSubjectLockedEN = "Reset by secret question locked"
)

// qNode is a test node behind a trusted proxy (so tests choose the client
// address with X-Forwarded-For) with a support address.
func qNode(t *testing.T, d store.Dialect) *node {
	cfg := testConfig(t, storetest.URL(t, d))
	cfg.TrustedProxies = []string{"127.0.0.1", "::1"}
	cfg.Support = config.Support{Email: "support@univ.example"}
	return startNode(t, cfg, nil)
}

// qSet gives the account a secret question, as activation or the account page would.
func qSet(t *testing.T, n *node, accountID, question, answer string) {
	t.Helper()
	ctx := context.Background()
	sq, err := n.srv.accounts.HashSecret(ctx, question, answer)
	if err != nil {
		t.Fatal(err)
	}
	sq.AccountID = accountID
	if err := n.srv.db.SetSecretQuestion(ctx, sq); err != nil {
		t.Fatal(err)
	}
}

// qStored returns the account's stored question (ok false when none).
func qStored(t *testing.T, n *node, accountID string) (store.SecretQuestion, bool) {
	t.Helper()
	q, err := n.srv.db.SecretQuestionOf(context.Background(), accountID)
	if errors.Is(err, store.ErrNotFound) {
		return q, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return q, true
}

func qMatches(t *testing.T, n *node, q store.SecretQuestion, answer string) bool {
	t.Helper()
	ok, err := n.srv.accounts.CheckSecret(context.Background(), q, answer)
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// qStart names login on the first step, checks it always leads to the
// question, and returns the question page.
func qStart(t *testing.T, b *browser, login string, hdr ...string) page {
	t.Helper()
	p := b.do("POST", "/recover/question", url.Values{"login": {login}}, hdr...)
	expectRedirect(t, "identifier "+login, p, "/recover/question/answer")
	return b.do("GET", p.Location, nil, hdr...)
}

func qAnswer(b *browser, answer string, hdr ...string) page {
	b.t.Helper()
	return b.do("POST", "/recover/question/answer", url.Values{"answer": {answer}}, hdr...)
}

var qQuestionRe = regexp.MustCompile(`<strong id="question-text">(.*?)</strong>`)

// qShown returns the question a page asks ("" if none).
func qShown(p page) string {
	m := qQuestionRe.FindStringSubmatch(p.Body)
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

// qMask replaces what legitimately differs between two identifiers (what
// was typed and the question) so pages can be compared byte for byte.
func qMask(p page, login, question string) string {
	s := strings.ReplaceAll(p.Body, html.EscapeString(question), "QUESTION")
	return strings.ReplaceAll(s, html.EscapeString(login), "LOGIN")
}

func qSuggestions(lang string) []string {
	l := i18n.Localizer{Lang: lang}
	var out []string
	for i := 1; i <= 4; i++ {
		out = append(out, l.T(fmt.Sprintf("question.suggest_%d", i)))
	}
	return out
}

func qWhen(lang string, t time.Time) string {
	if lang == "en" {
		return t.Local().Format("2 January 2006 at 15:04")
	}
	return t.Local().Format("02/01/2006 à 15:04")
}

func qSignInStatus(n *node, login, password string) int {
	return n.browser().signIn(login, password, false).Status
}

func TestQuestionAccountPage(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := qNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example", "j.dupont@univ.example")
		b := portalSignedIn(n, "jdupont", goodPassword)
		expectPage(t, "account page without a question", b.get("/account"), http.StatusOK,
			"Question secrète", "Vous n'avez pas encore de question secrète.", "« Rue Saint-Jean » et « rue saint jean » sont la même réponse",
			`<datalist id="question-suggestions">`, qSuggestions("fr")[0], "Enregistrer la question")
		// An unverified address is not told about the change.
		expectRedirect(t, "add an address", b.post("/account/emails", url.Values{"email": {"perso@mail.example"}, "kind": {"personal"}}),
			"/account?done=email_added#emails")

		form := func(q, answer, pw string) url.Values {
			return url.Values{"question": {q}, "answer": {answer}, "current_password": {pw}}
		}
		const answer = "Rue des Lilas"
		p := b.post("/account/question", form(qQuestion, answer, "not my password"))
		expectPage(t, "wrong current password", p, http.StatusUnprocessableEntity, "Le mot de passe actuel est incorrect.",
			`value="`+html.EscapeString(qQuestion)+`"`)
		if !regexp.MustCompile(`id="question-password"[^>]*aria-describedby="question-password-hint question-error" aria-invalid="true"`).MatchString(p.Body) {
			t.Fatalf("the error is not tied to the password field:\n%s", p.Body)
		}
		if strings.Contains(p.Body, "Lilas") || strings.Contains(p.Body, "not my password") {
			t.Fatal("the refused form shows the answer or the password")
		}
		if _, ok := qStored(t, n, a.ID); ok {
			t.Fatal("a question was stored with a wrong password")
		}
		p = b.post("/account/question", form("Ma rue, Saint-Jean ?", "saint jean", goodPassword))
		expectPage(t, "answer in the question", p, http.StatusUnprocessableEntity, "La réponse ne doit pas figurer dans la question.")
		if !regexp.MustCompile(`id="question-answer"[^>]*aria-describedby="answer-hint question-error" aria-invalid="true"`).MatchString(p.Body) {
			t.Fatalf("the error is not tied to the answer field:\n%s", p.Body)
		}
		expectPage(t, "no question", b.post("/account/question", form("  ", "Jules Ferry", goodPassword)),
			http.StatusUnprocessableEntity, "Écrivez une question de 1 à 200 caractères.")
		if got := mailsOf(n, qSubjectChanged); len(got) != 0 {
			t.Fatalf("refused changes were notified: %v", recipients(got))
		}

		p = b.post("/account/question", form(qQuestion, answer, goodPassword))
		expectRedirect(t, "set the question", p, "/account?done=question_set#question")
		expectPage(t, "after setting", b.get("/account?done=question_set"), http.StatusOK,
			"Votre question secrète est enregistrée.", qQuestion, "Changer la question")
		q, ok := qStored(t, n, a.ID)
		if !ok || q.Question != qQuestion || !qMatches(t, n, q, "RUE DES LILAS") || strings.Contains(q.AnswerHash, "Lilas") {
			t.Fatalf("stored question %+v", q)
		}
		got := mailsOf(n, qSubjectChanged)
		if want := []string{"j.dupont@univ.example", "jean.dupont@univ.example"}; !slices.Equal(recipients(got), want) {
			t.Fatalf("change told to %v, want %v", recipients(got), want)
		}
		if strings.Contains(got[0].Text, "Lilas") {
			t.Fatal("the notification shows the answer")
		}

		const q2 = "Quel est le nom de votre école primaire ?"
		expectRedirect(t, "change the question", b.post("/account/question", form(q2, "Jules Ferry", goodPassword)),
			"/account?done=question_set#question")
		q, _ = qStored(t, n, a.ID)
		if q.Question != q2 || !qMatches(t, n, q, "jules-ferry") || qMatches(t, n, q, answer) {
			t.Fatalf("changed question %+v", q)
		}
		if got := mailsOf(n, qSubjectChanged); len(got) != 4 {
			t.Fatalf("%d change notifications, want 4 (2 changes, 2 addresses)", len(got))
		}
		if ev := portalAudit(t, n, a.ID, "question.change"); len(ev) != 2 {
			t.Fatalf("%d question.change events, want 2", len(ev))
		}
		if ev := portalAudit(t, n, a.ID, "question.change_failure"); len(ev) != 1 {
			t.Fatalf("%d question.change_failure events, want 1", len(ev))
		}
	})
}

func TestQuestionRecovery(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := qNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		qSet(t, n, a.ID, qQuestion, qAnswerRight)
		other := portalSignedIn(n, "jdupont", goodPassword) // a session elsewhere
		ctx := context.Background()
		link := store.EmailToken{TokenHash: strings.Repeat("ab", 32), Purpose: store.PurposeResetLink, Kind: store.TokenLink,
			AccountID: a.ID, CreatedAt: n.clock.Now(), ExpiresAt: n.clock.Now().Add(time.Hour)}
		if err := n.srv.db.CreateEmailToken(ctx, &link); err != nil {
			t.Fatal(err)
		}

		expectPage(t, "first step", n.browser().get("/recover/question"), http.StatusOK,
			"Identifiant ou adresse email", `autocomplete="username"`, `href="/whoami"`, `href="/recover"`,
			"Les comptes temporaires ne peuvent pas réinitialiser leur mot de passe eux-mêmes", "support@univ.example")
		b := n.browser()
		p := qStart(t, b, "jdupont")
		expectPage(t, "question", p, http.StatusOK, "jdupont")
		if qShown(p) != qQuestion {
			t.Fatalf("question shown %q, want %q", qShown(p), qQuestion)
		}
		p = qAnswer(b, "Rue Saint-Jacques")
		expectPage(t, "another street", p, http.StatusUnprocessableEntity,
			"Cette réponse ne correspond pas. Encore 4 essais, puis cette méthode sera bloquée pendant 1 heure.")
		if strings.Contains(p.Body, "Jacques") {
			t.Fatal("the refused answer is shown again")
		}
		if !strings.Contains(p.Body, `aria-describedby="question-text answer-hint answer-error" aria-invalid="true"`) {
			t.Fatalf("the error is not tied to the answer field:\n%s", p.Body)
		}

		// Capitals and doubled spaces, in a flow started from the address.
		b2 := n.browser()
		qStart(t, b2, "Jean.Dupont@univ.example")
		expectRedirect(t, "RUE  SAINT JEAN", qAnswer(b2, "RUE  SAINT JEAN"), "/recover/question/password")
		// The flow belongs to the browser that started it.
		expectRedirect(t, "another browser", n.browser().get("/recover/question/password"), "/recover/question?expired=1")

		expectRedirect(t, "rue saint jean", qAnswer(b, "rue saint jean"), "/recover/question/password")
		p = b.get("/recover/question/password")
		expectPage(t, "new password", p, http.StatusOK, `autocomplete="new-password"`, `data-rule="upper"`, "toutes vos sessions ouvertes seront fermées")
		if p.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Errorf("Referrer-Policy %q on the new password page", p.Header.Get("Referrer-Policy"))
		}
		p = b.post("/recover/question/password", url.Values{"new_password": {"motdepasse"}, "confirm_password": {"motdepasse"}})
		expectPage(t, "weak password", p, http.StatusUnprocessableEntity, "Le nouveau mot de passe ne respecte pas toutes les règles ci-dessous.",
			`data-rule="upper" data-state="ko"`)
		if strings.Contains(p.Body, "motdepasse") {
			t.Fatal("the refused password is shown again")
		}
		p = b.post("/recover/question/password", url.Values{"new_password": {qNewPassword}, "confirm_password": {qNewPassword + "x"}})
		expectPage(t, "confirmation differs", p, http.StatusUnprocessableEntity, `data-rule="match" data-state="ko"`)

		n.clock.Advance(time.Minute)
		p = b.post("/recover/question/password", url.Values{"new_password": {qNewPassword}, "confirm_password": {qNewPassword}})
		expectRedirect(t, "new password", p, "/account?done=question_reset")
		expectPage(t, "signed in", b.get(p.Location), http.StatusOK,
			"Votre mot de passe a été changé et vous êtes connecté·e.", "jean.dupont@univ.example")
		expectRedirect(t, "the other session", other.get("/account"), "/login?return_to=%2Faccount")
		if s := qSignInStatus(n, "jdupont", goodPassword); s != http.StatusUnauthorized {
			t.Fatalf("old password: status %d, want 401", s)
		}
		n.browser().mustSignIn("jdupont", qNewPassword)
		if used, err := n.srv.db.TokenByHash(ctx, link.TokenHash); err != nil || used.UsedAt == nil {
			t.Fatalf("a pending reset link survived the reset: %+v %v", used, err)
		}
		// Done once: neither this flow nor the other one pending can set a password again.
		expectRedirect(t, "replay", b.post("/recover/question/password", url.Values{"new_password": {"Zz9#" + qNewPassword}, "confirm_password": {"Zz9#" + qNewPassword}}),
			"/recover/question?expired=1")
		expectRedirect(t, "the other pending flow", b2.post("/recover/question/password", url.Values{"new_password": {"Zz9#" + qNewPassword}, "confirm_password": {"Zz9#" + qNewPassword}}),
			"/recover/question?expired=1")
		n.browser().mustSignIn("jdupont", qNewPassword)

		ev := portalAudit(t, n, a.ID, "password.reset")
		if len(ev) != 1 || ev[0].Details["method"] != "question" {
			t.Fatalf("password.reset events %+v", ev)
		}
		sessions, err := n.srv.db.ListSessions(ctx, a.ID, n.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		methods := 0
		for _, s := range sessions {
			if s.AuthMethods == "question" && s.RevokedAt == nil {
				methods++
			}
		}
		if methods != 1 {
			t.Fatalf("%d live sessions opened by the question, want 1", methods)
		}
	})
}

func TestQuestionLock(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := qNode(t, d)
		a := n.user("jdupont", goodPassword, "jean.dupont@univ.example", "jd@univ.example")
		qSet(t, n, a.ID, qQuestion, qAnswerRight)
		b := n.browser()
		qStart(t, b, "jdupont")
		for i := 1; i <= 4; i++ {
			want := fmt.Sprintf("Encore %d essais", 5-i)
			if i == 4 {
				want = "Dernier essai : après, cette méthode sera bloquée pendant 1 heure."
			}
			expectPage(t, fmt.Sprintf("wrong answer %d", i), qAnswer(b, fmt.Sprintf("mauvaise réponse %d", i)), http.StatusUnprocessableEntity, want)
		}
		until := qWhen("fr", n.clock.Now().Add(time.Hour))
		p := qAnswer(b, "mauvaise réponse 5")
		expectPage(t, "fifth wrong answer", p, http.StatusTooManyRequests,
			"la réinitialisation par question secrète est bloquée jusqu'au "+until, `href="/recover"`)
		if s := retryAfter(t, p); s != 3600 {
			t.Fatalf("Retry-After %d, want 3600", s)
		}
		expectPage(t, "right answer during the lock", qAnswer(b, qAnswerRight), http.StatusTooManyRequests, until)
		expectPage(t, "a new flow during the lock", qStart(t, n.browser(), "jean.dupont@univ.example"), http.StatusTooManyRequests, until)

		mails := mailsOf(n, qSubjectLocked)
		if want := []string{"jd@univ.example", "jean.dupont@univ.example"}; !slices.Equal(recipients(mails), want) {
			t.Fatalf("lock told to %v, want %v", recipients(mails), want)
		}
		if !strings.Contains(mails[0].Text, "bloquée jusqu'à "+until) {
			t.Fatalf("the message does not give the end of the lock %q:\n%s", until, mails[0].Text)
		}

		n.clock.Advance(59 * time.Minute) // the flow has expired meanwhile: a new one
		b = n.browser()
		expectPage(t, "59 minutes later", qStart(t, b, "jdupont"), http.StatusTooManyRequests, until)
		expectPage(t, "59 minutes later, answering", qAnswer(b, qAnswerRight), http.StatusTooManyRequests, until)
		n.clock.Advance(time.Minute)
		expectPage(t, "the hour passed", b.get("/recover/question/answer"), http.StatusOK)
		expectRedirect(t, "right answer after the lock", qAnswer(b, qAnswerRight), "/recover/question/password")
		if got := mailsOf(n, qSubjectLocked); len(got) != 2 {
			t.Fatalf("%d lock messages, want 2 (once per address)", len(got))
		}
		if q, _ := qStored(t, n, a.ID); q.Failures != 0 || q.LockedUntil != nil {
			t.Fatalf("a right answer did not forget the failures: %+v", q)
		}
		if ev := portalAudit(t, n, a.ID, "question.failure"); len(ev) != 5 {
			t.Fatalf("%d question.failure events, want 5", len(ev))
		}
		if ev := portalAudit(t, n, a.ID, "question.locked"); len(ev) != 1 {
			t.Fatalf("%d question.locked events, want 1", len(ev))
		}
	})
}

func TestQuestionNoEnumeration(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := qNode(t, d)
		known := n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		qSet(t, n, known.ID, qQuestion, qAnswerRight)
		n.user("mmartin", goodPassword, "marie.martin@univ.example") // no question
		cases := []struct{ name, login string }{
			{"real", "jdupont"}, {"no question", "mmartin"}, {"unknown", "inconnu"}, {"unknown address", "personne@univ.example"},
		}
		answers := []string{"Rue Saint-Jacques", "Rue Saint-Paul", "Rue Saint-Pierre", "Rue Saint-Denis", "Rue Saint-Martin"}
		type run struct {
			question string
			pages    []page
		}
		runs := map[string]run{}
		for i, c := range cases {
			ip := fromIP(fmt.Sprintf("198.51.100.%d", i+1))
			b := n.browser()
			p := qStart(t, b, c.login, ip...)
			expectPage(t, c.name+": question", p, http.StatusOK)
			r := run{question: qShown(p), pages: []page{p}}
			if r.question == "" {
				t.Fatalf("%s: no question shown\n%s", c.name, p.Body)
			}
			for _, ans := range answers {
				r.pages = append(r.pages, qAnswer(b, ans, ip...))
			}
			r.pages = append(r.pages, qAnswer(b, qAnswerRight, ip...))        // locked now, whatever the answer
			r.pages = append(r.pages, qStart(t, n.browser(), c.login, ip...)) // and for a new flow too
			runs[c.name] = r
		}
		for _, c := range cases[1:] {
			if !slices.Contains(qSuggestions("fr"), runs[c.name].question) {
				t.Errorf("%s: question %q is not a common one", c.name, runs[c.name].question)
			}
		}
		ref := runs["real"]
		for _, c := range cases[1:] {
			r := runs[c.name]
			for i := range ref.pages {
				want, got := ref.pages[i], r.pages[i]
				if got.Status != want.Status || got.Header.Get("Retry-After") != want.Header.Get("Retry-After") ||
					qMask(got, c.login, r.question) != qMask(want, "jdupont", ref.question) {
					t.Fatalf("%s, page %d differs from a real account's: status %d/%d\n--- real\n%s\n--- %s\n%s",
						c.name, i, want.Status, got.Status, want.Body, c.name, got.Body)
				}
			}
		}
		if st := []int{ref.pages[1].Status, ref.pages[5].Status, ref.pages[6].Status}; !slices.Equal(st, []int{422, 429, 429}) {
			t.Fatalf("statuses %v, want a wrong answer then the lock", st)
		}

		// The question of an identifier without one stays the same, from
		// the identifier or the address, in either language.
		n.clock.Advance(2 * time.Hour)
		en := n.browser()
		en.lang = "en"
		for _, login := range []string{"mmartin", "Marie.Martin@univ.example"} {
			if q := qShown(qStart(t, en, login, fromIP("198.51.100.9")...)); q != runs["no question"].question {
				t.Fatalf("%s: question %q, then %q", login, runs["no question"].question, q)
			}
		}
		if q := qShown(qStart(t, en, "INCONNU", fromIP("198.51.100.9")...)); q != runs["unknown"].question {
			t.Fatalf("unknown identifier: question %q, then %q", runs["unknown"].question, q)
		}
		for _, m := range n.mails() {
			if m.To == "marie.martin@univ.example" {
				t.Fatalf("an account without a question got %q", m.Subject)
			}
		}
	})
}

func TestQuestionPerClientLimit(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := qNode(t, d)
		var ids []string
		for i := range 4 {
			a := n.user(fmt.Sprintf("user%d", i), goodPassword, fmt.Sprintf("user%d@univ.example", i))
			qSet(t, n, a.ID, qQuestion, qAnswerRight)
			ids = append(ids, a.ID)
		}
		sprayer := fromIP("198.51.100.7")
		// Ten wrong answers over three identifiers, none of them locked.
		for _, s := range []struct {
			login string
			tries int
		}{{"user0", 4}, {"user1", 4}, {"inconnu", 2}} {
			b := n.browser()
			qStart(t, b, s.login, sprayer...)
			for i := range s.tries {
				expectPage(t, s.login, qAnswer(b, fmt.Sprintf("essai %d", i), sprayer...), http.StatusUnprocessableEntity)
			}
		}
		b := n.browser()
		qStart(t, b, "user2", sprayer...)
		p := qAnswer(b, qAnswerRight, sprayer...)
		expectPage(t, "eleventh answer from the address", p, http.StatusTooManyRequests,
			"Trop de réponses envoyées depuis votre réseau. Patientez 1 seconde avant de réessayer.")
		if s := retryAfter(t, p); s != 1 {
			t.Fatalf("Retry-After %d, want 1", s)
		}
		if q, _ := qStored(t, n, ids[2]); q.Failures != 0 {
			t.Fatalf("a throttled answer counted against the account: %+v", q)
		}
		if strings.Contains(p.Body, "Saint") {
			t.Fatal("the throttled page shows the answer")
		}
		other := n.browser()
		qStart(t, other, "user3", fromIP("198.51.100.8")...)
		expectRedirect(t, "another address", qAnswer(other, qAnswerRight, fromIP("198.51.100.8")...), "/recover/question/password")

		n.clock.Advance(time.Second)
		expectRedirect(t, "after the delay", qAnswer(b, qAnswerRight, sprayer...), "/recover/question/password")
	})
}

func TestQuestionTemporaryAccount(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := qNode(t, d)
		end := n.clock.Now().Add(30 * 24 * time.Hour)
		a, err := n.srv.accounts.Create(context.Background(), account.NewAccount{Identifier: "invite",
			Emails: []string{"invite@univ.example"}, GivenName: "Ivo", TemporaryUntil: &end, Password: goodPassword, Actor: "cli"})
		if err != nil {
			t.Fatal(err)
		}
		qSet(t, n, a.ID, qQuestion, qAnswerRight)
		b := n.browser()
		// The steps before the answer are those of any account: nothing says "temporary".
		p := qStart(t, b, "invite")
		expectPage(t, "question", p, http.StatusOK)
		if qShown(p) != qQuestion || strings.Contains(p.Body, "temporaire") != strings.Contains(qStart(t, n.browser(), "inconnu").Body, "temporaire") {
			t.Fatalf("the question page differs for a temporary account:\n%s", p.Body)
		}
		expectPage(t, "wrong answer", qAnswer(b, "Rue Saint-Jacques"), http.StatusUnprocessableEntity, "Encore 4 essais")
		p = qAnswer(b, "rue saint-jean")
		expectPage(t, "right answer", p, http.StatusForbidden,
			"un compte temporaire ne peut pas réinitialiser son mot de passe lui-même", `href="mailto:support@univ.example"`)
		expectPage(t, "password step", b.get("/recover/question/password"), http.StatusForbidden, "support@univ.example")
		expectPage(t, "password post", b.post("/recover/question/password", url.Values{"new_password": {qNewPassword}, "confirm_password": {qNewPassword}}),
			http.StatusForbidden, "un compte temporaire")
		n.browser().mustSignIn("invite", goodPassword)
		if s := qSignInStatus(n, "invite", qNewPassword); s != http.StatusUnauthorized {
			t.Fatalf("the temporary account's password changed (status %d)", s)
		}
		if ev := portalAudit(t, n, a.ID, "password.reset_refused"); len(ev) == 0 || ev[0].Details["reason"] != "temporary" {
			t.Fatalf("password.reset_refused events %+v", ev)
		}

		en := n.browser()
		en.lang = "en"
		qStart(t, en, "invite@univ.example")
		expectPage(t, "in English", qAnswer(en, qAnswerRight), http.StatusForbidden,
			"a temporary account cannot reset its password itself", "Contact support")
	})
}

func TestQuestionEnglish(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := qNode(t, d)
		a := n.user("jsmith", goodPassword, "john.smith@univ.example")
		b := n.browser()
		b.lang = "en-GB,en;q=0.9"
		b.mustSignIn("jsmith", goodPassword)
		expectPage(t, "account page", b.get("/account"), http.StatusOK, "Secret question", "You have no secret question yet.",
			"Capitals, accents, spaces, hyphens and punctuation do not count", qSuggestions("en")[1], "Save the question")
		p := b.post("/account/question", url.Values{"question": {"What was the name of your first pet?"}, "answer": {"ab"}, "current_password": {goodPassword}})
		expectPage(t, "short answer", p, http.StatusUnprocessableEntity, "The answer must have at least 3 letters or digits")
		expectRedirect(t, "set", b.post("/account/question", url.Values{"question": {"What was the name of your first pet?"},
			"answer": {"Mr. Whiskers"}, "current_password": {goodPassword}}), "/account?done=question_set#question")
		expectPage(t, "saved", b.get("/account?done=question_set"), http.StatusOK, "Your secret question is saved.")
		if got := mailsOf(n, "Your secret question was changed"); len(got) != 1 {
			t.Fatalf("%d English change notifications, want 1", len(got))
		}

		r := n.browser()
		r.lang = "en"
		expectPage(t, "first step", r.get("/recover/question"), http.StatusOK, "Forgotten password: secret question",
			"Identifier or email address", "Temporary accounts cannot reset their password themselves")
		expectPage(t, "empty identifier", r.post("/recover/question", url.Values{"login": {" "}}), http.StatusUnprocessableEntity,
			"Type your identifier or your email address.")
		p = qStart(t, r, "jsmith")
		expectPage(t, "question", p, http.StatusOK, "Your secret question", "What was the name of your first pet?", "Check my answer")
		expectPage(t, "empty answer", qAnswer(r, "  "), http.StatusUnprocessableEntity, "Type your answer.")
		expectPage(t, "wrong", qAnswer(r, "Felix"), http.StatusUnprocessableEntity,
			"This answer does not match. 4 more tries, then this method will be locked for 1 hour.")
		// The switcher keeps the step: the same question, in French around it.
		expectRedirect(t, "switch", r.get("/lang/fr?return_to=/recover/question/answer"), "/recover/question/answer")
		expectPage(t, "in French", r.get("/recover/question/answer"), http.StatusOK, "Votre question secrète", "What was the name of your first pet?")
		r.get("/lang/en?return_to=/recover/question/answer")
		for i := range 3 {
			qAnswer(r, fmt.Sprintf("wrong %d", i))
		}
		until := qWhen("en", n.clock.Now().Add(time.Hour))
		expectPage(t, "locked", qAnswer(r, "still wrong"), http.StatusTooManyRequests,
			"reset by secret question is locked until "+until, "You can reset your password by email right now")
		mails := mailsOf(n, qSubjectLockedEN)
		if len(mails) != 1 || !strings.Contains(mails[0].Text, "locked until "+until) {
			t.Fatalf("English lock message with %q: %+v", until, mails)
		}

		n.clock.Advance(time.Hour)
		qStart(t, r, "john.smith@univ.example")
		expectRedirect(t, "right", qAnswer(r, "mr whiskers"), "/recover/question/password")
		expectPage(t, "new password", r.get("/recover/question/password"), http.StatusOK, "New password", "Save and sign in")
		expectPage(t, "weak", r.post("/recover/question/password", url.Values{"new_password": {"short"}, "confirm_password": {"short"}}),
			http.StatusUnprocessableEntity, "The new password does not meet every rule below.")
		n.clock.Advance(time.Minute)
		p = r.post("/recover/question/password", url.Values{"new_password": {qNewPassword}, "confirm_password": {qNewPassword}})
		expectRedirect(t, "reset", p, "/account?done=question_reset")
		expectPage(t, "signed in", r.get(p.Location), http.StatusOK, "Your password was changed and you are signed in.")
		_ = a
	})
}
