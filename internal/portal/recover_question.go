package portal

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/notify"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// Password reset by secret question (/recover/question), a stored flow
// (purpose "recover") whose reference lives only in a cookie of the
// browser that started it:
//
//	GET /recover/question ── POST {login} ─────────────────────────────▶ flow "answer"
//	     (any identifier: unknown ones and accounts without a question
//	      get a plausible question whose every answer fails)
//	     ▼
//	GET /recover/question/answer ── POST {answer}
//	     │ locked (5 wrong answers: 1 hour) ─────────────▶ lock page (429), offers /recover
//	     │ too many answers from this address ───────────▶ same page, wait (429)
//	     │ wrong ────────────────────────────────────────▶ same page, tries left (422)
//	     │ right, but temporary, disabled or provisioned ─▶ "refused" (403): contact support
//	     ▼ right
//	GET /recover/question/password ── POST {new_password, confirm_password}
//	     │ policy ─────────────────────────────────────────▶ same page, checklist (422)
//	     ▼ "saving" (claimed once) → password set, every session and pending
//	       reset or sign-in link or code ended → "done", signed in ──▶ /account
//
// No enumeration: what the pages say and answer (statuses, question, tries
// left, lock) is the same for an unknown identifier, an account without a
// question and an account whose answer is simply not known. Temporary
// accounts go through the same steps and are refused only after a right
// answer, when the person has proven who they are: refusing them at the
// identifier would tell anyone that the account exists and is temporary.
const (
	rqAnswer   = "question_answer"
	rqPassword = "question_password"
	rqSaving   = "question_saving"
	rqRefused  = "question_refused"
	rqDone     = "question_done"
)

const (
	rqCookie       = "campusid_recover_question"
	rqPath         = "/recover/question"
	rqFlowLifetime = 30 * time.Minute
	// Failures of the decoy question of an identifier without one are kept
	// this long (the throttle table's cleanup forgets them after a day idle).
	rqDecoyWindow = 30 * 24 * time.Hour
)

// rqData is the flow's own data.
type rqData struct {
	// Decoy is set when the identifier has no question (unknown, or an
	// account without one): the key choosing the question shown and
	// counting its failures. Every answer fails.
	Decoy string `json:"decoy,omitempty"`
}

type rqIdentifyData struct {
	Login string
}

type rqAnswerData struct {
	Login    string
	Question string
	Error    string // tied to the answer field
}

type rqLockedData struct {
	Until string
}

type rqPasswordData struct {
	Login  string
	Policy web.PolicyView
	Error  string
}

type rqRefusedData struct {
	Reason string // message key
	Login  bool   // offer the sign-in page (activation) rather than support
}

// showQuestionRecover is GET /recover/question: the identifier.
func (h *Handler) showQuestionRecover(w http.ResponseWriter, r *http.Request) error {
	p := web.Page{Title: "recoverq.title", Data: rqIdentifyData{Login: r.URL.Query().Get("login")}}
	if r.URL.Query().Has("expired") {
		p.Notice = "recoverq.expired"
	}
	return h.App.Render(w, r, http.StatusOK, "recover_question", p)
}

// submitQuestionRecover is POST /recover/question {login}: starts a flow.
func (h *Handler) submitQuestionRecover(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	l := loc(r)
	login := strings.TrimSpace(r.PostFormValue("login"))
	if login == "" || len(login) > 320 {
		return h.App.Render(w, r, http.StatusUnprocessableEntity, "recover_question", web.Page{Title: "recoverq.title",
			Error: l.T("recoverq.login_required"), Data: rqIdentifyData{Login: login}})
	}
	var data rqData
	a, err := h.DB.AccountByLogin(ctx, login)
	switch {
	case errors.Is(err, store.ErrNotFound):
		data.Decoy = decoyKey("login:" + strings.ToLower(login))
	case err != nil:
		return err
	default:
		if _, err := h.DB.SecretQuestionOf(ctx, a.ID); errors.Is(err, store.ErrNotFound) {
			// Keyed by the account, so its identifier and its addresses
			// show the same question, as a real one would.
			data.Decoy = decoyKey("account:" + a.ID)
		} else if err != nil {
			return err
		}
	}
	raw, _ := json.Marshal(data)
	ref := session.NewToken()
	now := h.Now()
	f := store.LoginFlow{ID: session.HashToken(ref), AccountID: a.ID, Identifier: login, State: rqAnswer, Purpose: "recover",
		BrowserHash: session.HashToken(ref), Data: string(raw), CreatedAt: now, ExpiresAt: now.Add(rqFlowLifetime)}
	if err := h.DB.CreateLoginFlow(ctx, &f); err != nil {
		return err
	}
	details := map[string]string{"method": "question"}
	if a.ID == "" {
		details["login"] = trimForAudit(login)
	}
	if data.Decoy != "" {
		details["question"] = "none"
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "recover.start", AccountID: a.ID, Details: details})
	http.SetCookie(w, &http.Cookie{Name: rqCookie, Value: ref, Path: rqPath, HttpOnly: true, Secure: h.Sessions.Secure,
		SameSite: http.SameSiteLaxMode})
	return web.Redirect(w, r, rqPath+"/answer")
}

// rqFlow returns the browser's live recovery flow; ok is false (and the
// browser was sent back to the start) when there is none.
func (h *Handler) rqFlow(w http.ResponseWriter, r *http.Request) (f store.LoginFlow, data rqData, ok bool, err error) {
	c, cerr := r.Cookie(rqCookie)
	if cerr == nil && c.Value != "" && len(c.Value) <= 100 {
		f, err = h.DB.LoginFlowByID(r.Context(), session.HashToken(c.Value))
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return f, data, false, err
		case f.Purpose == "recover" && f.BrowserHash == session.HashToken(c.Value) && h.Now().Before(f.ExpiresAt) && f.State != rqDone:
			if err := json.Unmarshal([]byte(f.Data), &data); err != nil {
				return f, data, false, fmt.Errorf("recover question: flow data: %w", err)
			}
			return f, data, true, nil
		}
	}
	rqClear(w, h.Sessions.Secure)
	return f, data, false, web.Redirect(w, r, rqPath+"?expired=1")
}

func rqClear(w http.ResponseWriter, secure bool) {
	http.SetCookie(w, &http.Cookie{Name: rqCookie, Value: "", Path: rqPath, MaxAge: -1, HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteLaxMode})
}

// rqGoTo sends the browser to the page of the flow's state.
func (h *Handler) rqGoTo(w http.ResponseWriter, r *http.Request, f store.LoginFlow) error {
	switch f.State {
	case rqAnswer:
		return web.Redirect(w, r, rqPath+"/answer")
	case rqPassword:
		return web.Redirect(w, r, rqPath+"/password")
	case rqRefused:
		return h.rqRefuse(w, r, f)
	}
	rqClear(w, h.Sessions.Secure)
	return web.Redirect(w, r, rqPath+"?expired=1")
}

// rqQuestion is what the flow asks: the account's question, or the decoy.
// It reports the lock end when answers are locked now.
func (h *Handler) rqQuestion(ctx context.Context, f store.LoginFlow, data rqData) (q store.SecretQuestion, locked *time.Time, err error) {
	now := h.Now()
	if data.Decoy != "" {
		q.Question = h.decoyQuestion(data.Decoy)
		t, err := h.DB.GetThrottle(ctx, "answer:decoy:"+data.Decoy, now, rqDecoyWindow)
		if err != nil {
			return q, nil, err
		}
		if t.Count > 0 && t.Count%h.QuestionMaxFailures == 0 {
			if until := t.LastAt.Add(h.QuestionLock); now.Before(until) {
				return q, &until, nil
			}
		}
		return q, nil, nil
	}
	q, err = h.DB.SecretQuestionOf(ctx, f.AccountID)
	if err != nil {
		return q, nil, err
	}
	if q.LockedUntil != nil && now.Before(*q.LockedUntil) {
		return q, q.LockedUntil, nil
	}
	return q, nil, nil
}

// showQuestionAnswer is GET /recover/question/answer: the question.
func (h *Handler) showQuestionAnswer(w http.ResponseWriter, r *http.Request) error {
	f, data, ok, err := h.rqFlow(w, r)
	if !ok {
		return err
	}
	if f.State != rqAnswer {
		return h.rqGoTo(w, r, f)
	}
	q, locked, err := h.rqQuestion(r.Context(), f, data)
	if err != nil {
		return err
	}
	if locked != nil {
		return h.rqLocked(w, r, *locked)
	}
	return h.App.Render(w, r, http.StatusOK, "recover_question_answer", web.Page{Title: "recoverq.answer_title",
		Data: rqAnswerData{Login: f.Identifier, Question: q.Question}})
}

// rqLocked is the page of a locked question (429), offering reset by email.
func (h *Handler) rqLocked(w http.ResponseWriter, r *http.Request, until time.Time) error {
	l := loc(r)
	web.RetryAfter(w, until.Sub(h.Now()))
	return h.App.Render(w, r, http.StatusTooManyRequests, "recover_question_locked", web.Page{Title: "recoverq.locked_title",
		Data: rqLockedData{Until: formatWhen(l, until)}})
}

// submitQuestionAnswer is POST /recover/question/answer {answer}.
func (h *Handler) submitQuestionAnswer(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	l := loc(r)
	f, data, ok, err := h.rqFlow(w, r)
	if !ok {
		return err
	}
	if f.State != rqAnswer {
		return h.rqGoTo(w, r, f)
	}
	q, locked, err := h.rqQuestion(ctx, f, data)
	if err != nil {
		return err
	}
	if locked != nil {
		return h.rqLocked(w, r, *locked)
	}
	again := func(status int, msg string) error {
		return h.App.Render(w, r, status, "recover_question_answer", web.Page{Title: "recoverq.answer_title",
			Data: rqAnswerData{Login: f.Identifier, Question: q.Question, Error: msg}})
	}
	answer := r.PostFormValue("answer")
	if strings.TrimSpace(answer) == "" || len(answer) > 4*account.MaxAnswerRunes {
		return again(http.StatusUnprocessableEntity, l.T("recoverq.answer_required"))
	}
	// One client address may not spray answers over many accounts.
	now := h.Now()
	ip := web.Info(ctx).ClientIP
	if wait, err := h.AnswerTries.Wait(ctx, ip, now); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		return again(http.StatusTooManyRequests, l.T("recoverq.too_many", l.WaitSeconds(wait)))
	}

	// The try is counted before the answer is compared, in one statement,
	// so parallel requests cannot compare more answers than the limit.
	var (
		left     int        // tries left before the lock
		lockedAt *time.Time // set when this try locked the question
		right    bool
	)
	if data.Decoy != "" {
		t, err := h.DB.HitThrottle(ctx, "answer:decoy:"+data.Decoy, now, rqDecoyWindow)
		if err != nil {
			return err
		}
		if err := h.Accounts.Hasher.DummyVerify(ctx, account.FoldAnswer(answer)); err != nil {
			return busyOr(err)
		}
		left = h.QuestionMaxFailures - t.Count%h.QuestionMaxFailures
		if t.Count%h.QuestionMaxFailures == 0 {
			until := now.Add(h.QuestionLock)
			lockedAt = &until
		}
	} else {
		n, until, err := h.DB.SecretAnswerFailed(ctx, f.AccountID, h.QuestionMaxFailures, now, h.QuestionLock)
		if err != nil {
			return err
		}
		if n > 0 && until != nil && now.Before(*until) {
			return h.rqLocked(w, r, *until) // another request locked it meanwhile
		}
		if right, err = h.Accounts.CheckSecret(ctx, q, answer); err != nil {
			return busyOr(err)
		}
		left = h.QuestionMaxFailures - n
		if n == 0 {
			lockedAt = until
		}
	}
	if right {
		return h.rqRight(w, r, f)
	}

	h.AnswerTries.Fail(ctx, ip, now)
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "question.failure", AccountID: f.AccountID, Details: rqDetails(f, data)})
	if lockedAt == nil {
		msg := l.T("recoverq.wrong", left, lockDuration(l, h.QuestionLock))
		if left == 1 {
			msg = l.T("recoverq.wrong_last", lockDuration(l, h.QuestionLock))
		}
		return again(http.StatusUnprocessableEntity, msg)
	}
	if data.Decoy == "" {
		if err := h.rqNotifyLocked(ctx, f.AccountID, *lockedAt); err != nil {
			return err
		}
	} else {
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "question.locked", AccountID: f.AccountID, Details: rqDetails(f, data)})
	}
	return h.rqLocked(w, r, *lockedAt)
}

func rqDetails(f store.LoginFlow, data rqData) map[string]string {
	d := map[string]string{}
	if f.AccountID == "" {
		d["login"] = trimForAudit(f.Identifier)
	}
	if data.Decoy != "" {
		d["question"] = "none"
	}
	return d
}

// rqNotifyLocked tells the account's addresses that its question locked,
// in the account's language when it has one.
func (h *Handler) rqNotifyLocked(ctx context.Context, accountID string, until time.Time) error {
	a, err := h.DB.AccountByID(ctx, accountID)
	if err != nil {
		return err
	}
	lang := web.Info(ctx).Lang
	if a.Locale != "" && i18n.Supported(a.Locale) {
		lang = a.Locale
	}
	l := i18n.Localizer{Lang: lang}
	return h.DB.InTx(ctx, func(tx *store.DB) error {
		if err := h.Audit.Record(ctx, tx, store.AuditEvent{Type: "question.locked", AccountID: accountID,
			Details: map[string]string{"until": until.UTC().Format(time.RFC3339)}}); err != nil {
			return err
		}
		return h.Notify.Send(ctx, tx, a, notify.QuestionLocked, lang, map[string]any{"Until": formatWhen(l, until)})
	})
}

// rqRight moves the flow on after a right answer: to the new password, or
// to the refusal for accounts that may not reset by themselves.
func (h *Handler) rqRight(w http.ResponseWriter, r *http.Request, f store.LoginFlow) error {
	ctx := r.Context()
	if err := h.DB.SecretAnswerSucceeded(ctx, f.AccountID); err != nil {
		return err
	}
	a, err := h.DB.AccountByID(ctx, f.AccountID)
	if err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "question.success", AccountID: a.ID})
	to := rqPassword
	if rqRefusal(a, h.Now()) != "" {
		to = rqRefused
	}
	if err := h.DB.AdvanceLoginFlow(ctx, f.ID, rqAnswer, to); errors.Is(err, store.ErrNotFound) {
		return web.Redirect(w, r, rqPath+"/answer") // another request moved it first
	} else if err != nil {
		return err
	}
	f.State = to
	return h.rqGoTo(w, r, f)
}

// rqRefusal says why an account may not reset its password itself ("" when it may).
func rqRefusal(a store.Account, now time.Time) string {
	switch {
	case a.Kind == store.KindTemporary:
		return "recoverq.refused_temporary"
	case a.State == store.StateDisabled:
		return "recoverq.refused_disabled"
	case a.State == store.StateProvisioned:
		return "recoverq.refused_provisioned"
	}
	return ""
}

// rqRefuse shows why the reset stops here, with the support contact (403).
func (h *Handler) rqRefuse(w http.ResponseWriter, r *http.Request, f store.LoginFlow) error {
	ctx := r.Context()
	a, err := h.DB.AccountByID(ctx, f.AccountID)
	if err != nil {
		return err
	}
	reason := rqRefusal(a, h.Now())
	if reason == "" { // the account changed since: start again
		rqClear(w, h.Sessions.Secure)
		return web.Redirect(w, r, rqPath+"?expired=1")
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "password.reset_refused", AccountID: a.ID,
		Details: map[string]string{"method": "question", "reason": strings.TrimPrefix(reason, "recoverq.refused_")}})
	return h.App.Render(w, r, http.StatusForbidden, "recover_question_refused", web.Page{Title: "recoverq.refused_title",
		Data: rqRefusedData{Reason: reason, Login: reason == "recoverq.refused_provisioned"}})
}

// showQuestionPassword is GET /recover/question/password.
func (h *Handler) showQuestionPassword(w http.ResponseWriter, r *http.Request) error {
	f, _, ok, err := h.rqFlow(w, r)
	if !ok {
		return err
	}
	if f.State != rqPassword {
		return h.rqGoTo(w, r, f)
	}
	if _, ok, err := h.rqAccount(w, r, f); !ok {
		return err
	}
	web.NoReferrer(w)
	return h.App.Render(w, r, http.StatusOK, "recover_question_password", web.Page{Title: "recoverq.password_title",
		Data: rqPasswordData{Login: f.Identifier, Policy: h.Accounts.Policy.View(loc(r), nil, false)}})
}

// submitQuestionPassword is POST /recover/question/password {new_password, confirm_password}.
func (h *Handler) submitQuestionPassword(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	l := loc(r)
	f, _, ok, err := h.rqFlow(w, r)
	if !ok {
		return err
	}
	if f.State != rqPassword {
		return h.rqGoTo(w, r, f)
	}
	web.NoReferrer(w)
	next := r.PostFormValue("new_password")
	confirm := r.PostFormValue("confirm_password")
	again := func(v []account.Violation) error {
		return h.App.Render(w, r, http.StatusUnprocessableEntity, "recover_question_password", web.Page{Title: "recoverq.password_title",
			Data: rqPasswordData{Login: f.Identifier, Policy: h.Accounts.Policy.View(l, v, true), Error: l.T("recoverq.password_refused")}})
	}
	a, ok, err := h.rqAccount(w, r, f)
	if !ok {
		return err
	}
	emails, err := h.DB.EmailsOf(ctx, a.ID)
	if err != nil {
		return err
	}
	v := h.Accounts.Policy.Check(next, account.Personal(a, emails))
	if next != confirm {
		v = append(v, account.Violation{Code: "match"})
	}
	if len(v) > 0 {
		return again(v)
	}
	// Claim the flow so the password is set once, however many submissions race.
	if err := h.DB.AdvanceLoginFlow(ctx, f.ID, rqPassword, rqSaving); errors.Is(err, store.ErrNotFound) {
		return web.Redirect(w, r, rqPath+"?expired=1")
	} else if err != nil {
		return err
	}
	err = h.Accounts.SetPassword(ctx, a.ID, next, "self", "", true)
	if err != nil {
		h.DB.AdvanceLoginFlow(ctx, f.ID, rqSaving, rqPassword) // let the person try again
		var pe *account.PolicyError
		if errors.As(err, &pe) {
			return again(pe.Violations)
		}
		return busyOr(err)
	}
	now := h.Now()
	// A reset also ends every pending reset and sign-in link or code.
	if err := h.DB.EndTokens(ctx, a.ID, now, store.PurposeResetLink, store.PurposeResetCode,
		store.PurposeLoginLink, store.PurposeLoginCode); err != nil {
		return err
	}
	if err := h.DB.AdvanceLoginFlow(ctx, f.ID, rqSaving, rqDone); err != nil {
		return err
	}
	rqClear(w, h.Sessions.Secure)
	if cur := session.FromContext(ctx); cur != nil {
		h.Sessions.End(ctx, w, cur) // no session fixation
	}
	s, err := h.Sessions.Start(ctx, w, a.ID, "question", false)
	if err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "password.reset", AccountID: a.ID,
		Details: map[string]string{"method": "question", "session_id": s.ID}})
	return web.Redirect(w, r, "/account?done=question_reset")
}

// rqAccount returns the flow's account for the new password; ok is false
// (and the browser was sent back to the start) when the password changed
// since the flow began: a reset, by any way, ends every pending one.
func (h *Handler) rqAccount(w http.ResponseWriter, r *http.Request, f store.LoginFlow) (store.Account, bool, error) {
	a, err := h.DB.AccountByID(r.Context(), f.AccountID)
	if err != nil {
		return a, false, err
	}
	if a.PasswordChangedAt != nil && a.PasswordChangedAt.After(f.CreatedAt) {
		rqClear(w, h.Sessions.Secure)
		return a, false, web.Redirect(w, r, rqPath+"?expired=1")
	}
	return a, true, nil
}

// decoyKey is the hex SHA-256 naming an identifier without a question.
func decoyKey(s string) string {
	sum := sha256.Sum256([]byte("campusid recover question decoy\x00" + s))
	return hex.EncodeToString(sum[:])
}

// decoyQuestion picks, from the key, one of the suggested questions in the
// default language: always the same one for the same identifier, and
// independent of the page's language, as a real question is.
func (h *Handler) decoyQuestion(key string) string {
	raw, _ := hex.DecodeString(key)
	var n uint64
	if len(raw) >= 8 {
		n = binary.BigEndian.Uint64(raw[:8])
	}
	lang := h.App.DefaultLang
	if !i18n.Supported(lang) {
		lang = i18n.Languages[0]
	}
	return i18n.Localizer{Lang: lang}.T(questionSuggestions[n%uint64(len(questionSuggestions))])
}
