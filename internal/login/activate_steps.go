package login

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"campusid/internal/account"
	"campusid/internal/onetime"
	"campusid/internal/store"
	"campusid/internal/web"
)

// ---------------------------------------------------------------- password

type actPasswordData struct {
	actPage
	Name, Identifier string
	Policy           web.PolicyView
	Error            string // tied to the password field
	Mismatch         bool   // the only problem is the confirmation
}

func (h *Handler) renderActPassword(w http.ResponseWriter, r *http.Request, s *actStep, status int, d actPasswordData) error {
	d.actPage = h.actPage(s.L, s)
	d.Name, d.Identifier = s.A.DisplayName, s.A.Identifier
	if d.Policy.ID == "" {
		d.Policy = h.Accounts.Policy.View(s.L, nil, false)
	}
	return h.App.Render(w, r, status, "activate_password", web.Page{Title: "activate.password_title", Data: d})
}

func (h *Handler) showActPassword(w http.ResponseWriter, r *http.Request, s *actStep) error {
	return h.renderActPassword(w, r, s, http.StatusOK, actPasswordData{})
}

// submitActPassword checks the password against the policy (with the
// account's names and addresses) and keeps only its hash in the flow.
func (h *Handler) submitActPassword(w http.ResponseWriter, r *http.Request, s *actStep) error {
	ctx := r.Context()
	l := s.L
	pw, confirm := r.PostFormValue("new_password"), r.PostFormValue("confirm_password")
	emails, err := h.DB.EmailsOf(ctx, s.A.ID)
	if err != nil {
		return err
	}
	var v []account.Violation
	if len(pw) > 1024 {
		v = []account.Violation{{Code: account.RuleLength}}
	} else {
		v = h.Accounts.Policy.Check(pw, account.Personal(s.A, emails))
	}
	if pw != confirm {
		v = append(v, account.Violation{Code: "match"})
	}
	if len(v) > 0 {
		d := actPasswordData{Error: l.T("activate.password_refused"), Policy: h.Accounts.Policy.View(l, v, true)}
		if len(v) == 1 && v[0].Code == "match" {
			d.Error, d.Mismatch = l.T("activate.password_mismatch"), true
		}
		return h.renderActPassword(w, r, s, http.StatusUnprocessableEntity, d)
	}
	hash, err := h.Accounts.Hasher.Hash(ctx, h.Accounts.Policy.Normalize(pw))
	if err != nil {
		return busy(err)
	}
	s.D.PasswordHash = hash
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.password_chosen", AccountID: s.A.ID})
	return h.advance(w, r, s)
}

// ---------------------------------------------------------------- secret question

// questionSuggestions are offered in a list; people may write their own.
// The same suggestions as the account page and recovery: a decoy question for
// an unknown identifier is drawn from them too, so a suggested question never
// tells that an account exists.
var questionSuggestions = []string{"question.suggest_1", "question.suggest_2", "question.suggest_3", "question.suggest_4"}

// secretMessages words account.ValidateSecret's refusals for this page.
var secretMessages = map[string]string{
	"question.question_invalid":   "activate.question_invalid",
	"question.answer_invalid":     "activate.answer_invalid",
	"question.answer_in_question": "activate.answer_in_question",
}

type actQuestionData struct {
	actPage
	Question    string
	Suggestions []string
	QuestionErr string
	AnswerErr   string
}

func (h *Handler) renderActQuestion(w http.ResponseWriter, r *http.Request, s *actStep, status int, d actQuestionData) error {
	d.actPage = h.actPage(s.L, s)
	for _, k := range questionSuggestions {
		d.Suggestions = append(d.Suggestions, s.L.T(k))
	}
	return h.App.Render(w, r, status, "activate_question", web.Page{Title: "activate.question_title", Data: d})
}

func (h *Handler) showActQuestion(w http.ResponseWriter, r *http.Request, s *actStep) error {
	return h.renderActQuestion(w, r, s, http.StatusOK, actQuestionData{Question: s.D.Question})
}

// submitActQuestion keeps the question and the hash of the folded answer.
func (h *Handler) submitActQuestion(w http.ResponseWriter, r *http.Request, s *actStep) error {
	ctx := r.Context()
	question, answer := strings.TrimSpace(r.PostFormValue("question")), r.PostFormValue("answer")
	q, err := h.Accounts.HashSecret(ctx, question, answer)
	var ie *account.InputError
	if errors.As(err, &ie) {
		d := actQuestionData{Question: question}
		key, ok := secretMessages[ie.Key]
		if !ok {
			key = "activate." + ie.Field + "_invalid"
		}
		msg := s.L.T(key)
		if ie.Field == "question" {
			d.QuestionErr = msg
		} else {
			d.AnswerErr = msg
		}
		return h.renderActQuestion(w, r, s, http.StatusUnprocessableEntity, d)
	}
	if err != nil {
		return busy(err)
	}
	s.D.Question, s.D.AnswerHash = q.Question, q.AnswerHash
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.question_chosen", AccountID: s.A.ID})
	return h.advance(w, r, s)
}

// ---------------------------------------------------------------- personal address

type personalData struct {
	actPage
	Email      string
	EmailError string
}

func (h *Handler) renderPersonal(w http.ResponseWriter, r *http.Request, s *actStep, status int, d personalData) error {
	d.actPage = h.actPage(s.L, s)
	return h.App.Render(w, r, status, "activate_personal", web.Page{Title: "activate.personal_title", Data: d})
}

func (h *Handler) showActPersonal(w http.ResponseWriter, r *http.Request, s *actStep) error {
	return h.renderPersonal(w, r, s, http.StatusOK, personalData{Email: s.D.Personal})
}

// submitActPersonal checks the personal address and sends it a code.
func (h *Handler) submitActPersonal(w http.ResponseWriter, r *http.Request, s *actStep) error {
	ctx := r.Context()
	l := s.L
	raw := strings.TrimSpace(r.PostFormValue("email"))
	again := func(status int, msg string) error {
		return h.renderPersonal(w, r, s, status, personalData{Email: raw, EmailError: msg})
	}
	addr, err := account.NormalizeEmail(raw)
	if err != nil {
		return again(http.StatusUnprocessableEntity, l.T("activate.email_invalid"))
	}
	emails, err := h.DB.EmailsOf(ctx, s.A.ID)
	if err != nil {
		return err
	}
	domain := addr[strings.LastIndex(addr, "@")+1:]
	for _, e := range emails {
		if e.Address == addr {
			return again(http.StatusUnprocessableEntity, l.T("activate.personal_mine"))
		}
	}
	// An address of the establishment's domain does not outlive the studies
	// or the job: it cannot recover the account once they end.
	for _, e := range emails {
		if e.Kind == store.EmailInstitutional && strings.EqualFold(e.Address[strings.LastIndex(e.Address, "@")+1:], domain) {
			return again(http.StatusUnprocessableEntity, l.T("activate.personal_institutional", domain))
		}
	}
	if _, err := h.DB.AccountByLogin(ctx, addr); err == nil {
		return again(http.StatusConflict, l.T("activate.personal_taken"))
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if status, msg, err := h.sendFlowCode(w, r, s, addr); err != nil || msg != "" {
		if err != nil {
			return h.moved(w, r, s, err)
		}
		return again(status, msg)
	}
	return web.Redirect(w, r, actPaths[actCode]+"?req="+url.QueryEscape(s.Ref))
}

// sendFlowCode sends a code to addr and moves the flow to act_code, in one
// transaction (the codes sent to another address before end there). A
// refusal comes back as a status and a message for the page.
func (h *Handler) sendFlowCode(w http.ResponseWriter, r *http.Request, s *actStep, addr string) (int, string, error) {
	ctx := r.Context()
	l := s.L
	ip := web.Info(ctx).ClientIP
	if wait, err := h.Tokens.ClientWait(ctx, ip); err != nil {
		return 0, "", err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.throttled", AccountID: s.A.ID,
			Details: map[string]string{"what": "code_send", "limit": "client"}})
		return http.StatusTooManyRequests, l.T("activate.client_wait", l.WaitSeconds(wait)), nil
	}
	now := h.Now()
	err := h.DB.InTx(ctx, func(tx *store.DB) error {
		if s.D.Personal != addr {
			if err := tx.EndTokens(ctx, s.A.ID, now, store.PurposeFlowCode); err != nil {
				return err
			}
		}
		err := h.Tokens.SendCode(ctx, tx, onetime.Message{Purpose: store.PurposeFlowCode, Template: "flow_code", Lang: l.Lang,
			To: addr, AccountID: s.A.ID, FlowID: s.F.ID, Data: map[string]any{"Name": s.A.DisplayName}}, ip)
		if err != nil {
			return err
		}
		s.D.Personal, s.D.CodeSentAt, s.D.Verified = addr, &now, false
		if err := h.save(ctx, tx, s, actCode); err != nil {
			return err
		}
		return h.Audit.Record(ctx, tx, store.AuditEvent{Type: "activation.code_sent", AccountID: s.A.ID,
			Details: map[string]string{"kind": store.EmailPersonal}})
	})
	var soon onetime.ErrTooSoon
	if errors.As(err, &soon) {
		last, _, lerr := h.Tokens.LastSent(ctx, s.A.ID, store.PurposeFlowCode)
		if lerr != nil {
			return 0, "", lerr
		}
		web.RetryAfter(w, soon.Wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.throttled", AccountID: s.A.ID,
			Details: map[string]string{"what": "code_send", "limit": "resend_interval"}})
		return http.StatusTooManyRequests, l.T("activate.code_too_soon", web.ClockTime(last), web.ClockTime(now.Add(soon.Wait)), l.WaitSeconds(soon.Wait)), nil
	}
	return 0, "", err
}

// ---------------------------------------------------------------- code

type actCodeData struct {
	actPage
	Sent      string // where and when the code left, its validity
	ResendAt  string // when another may be asked ("" = now)
	CodeError string // tied to the code field
	Error     string // about sending
	Resent    bool
}

func (h *Handler) renderActCode(w http.ResponseWriter, r *http.Request, s *actStep, status int, d actCodeData) error {
	ctx := r.Context()
	l := s.L
	d.actPage = h.actPage(l, s)
	at := h.Now()
	if s.D.CodeSentAt != nil {
		at = *s.D.CodeSentAt
	}
	d.Sent = l.T("activate.code_sent", web.ClockTime(at), s.D.Personal, onetime.Human(l, h.Tokens.CodeValidity()))
	_, wait, err := h.Tokens.LastSent(ctx, s.A.ID, store.PurposeFlowCode)
	if err != nil {
		return err
	}
	if wait > 0 {
		d.ResendAt = web.ClockTime(h.Now().Add(wait))
	}
	p := web.Page{Title: "activate.code_title", Data: d}
	if d.Resent {
		p.Notice = "activate.code_resent"
	}
	return h.App.Render(w, r, status, "activate_code", p)
}

func (h *Handler) showActCode(w http.ResponseWriter, r *http.Request, s *actStep) error {
	return h.renderActCode(w, r, s, http.StatusOK, actCodeData{Resent: r.URL.Query().Has("resent")})
}

// submitActCode checks the code: onetime limits the tries per code; wrong
// codes also slow down the account's activation and the client address.
func (h *Handler) submitActCode(w http.ResponseWriter, r *http.Request, s *actStep) error {
	ctx := r.Context()
	l := s.L
	now := h.Now()
	ip := web.Info(ctx).ClientIP
	key := "activate:" + s.A.ID
	waitA, err := h.PerAccount.Wait(ctx, key, now)
	if err != nil {
		return err
	}
	waitC, err := h.PerClient.Wait(ctx, ip, now)
	if err != nil {
		return err
	}
	if wait := max(waitA, waitC); wait > 0 {
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.throttled", AccountID: s.A.ID,
			Details: map[string]string{"what": "code"}})
		return h.renderActCode(w, r, s, http.StatusTooManyRequests, actCodeData{CodeError: l.T("activate.throttled", l.WaitSeconds(wait))})
	}
	t, err := h.Tokens.CheckCode(ctx, s.F.ID, store.PurposeFlowCode, r.PostFormValue("code"))
	if err == nil && t.SentTo != s.D.Personal {
		err = onetime.ErrCodeDead // a code of an address since changed
	}
	switch {
	case errors.Is(err, onetime.ErrCodeWrong), errors.Is(err, onetime.ErrCodeDead):
		h.PerAccount.Fail(ctx, key, now)
		h.PerClient.Fail(ctx, ip, now)
		reason, msg := "wrong", l.T("activate.code_wrong")
		if errors.Is(err, onetime.ErrCodeDead) {
			reason, msg = "dead", l.T("activate.code_dead")
		}
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.code_failure", AccountID: s.A.ID,
			Details: map[string]string{"reason": reason}})
		h.padFailure(ctx)
		return h.renderActCode(w, r, s, http.StatusUnprocessableEntity, actCodeData{CodeError: msg})
	case err != nil:
		return err
	}
	h.PerAccount.Reset(ctx, key)
	s.D.Verified = true
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.personal_verified", AccountID: s.A.ID})
	return h.advance(w, r, s)
}

// resendActCode sends another code to the same address.
func (h *Handler) resendActCode(w http.ResponseWriter, r *http.Request, s *actStep) error {
	// sendFlowCode moves act_code to act_code.
	status, msg, err := h.sendFlowCode(w, r, s, s.D.Personal)
	if err != nil {
		return h.moved(w, r, s, err)
	}
	if msg != "" {
		return h.renderActCode(w, r, s, status, actCodeData{Error: msg})
	}
	return web.Redirect(w, r, actPaths[actCode]+"?req="+url.QueryEscape(s.Ref)+"&resent=1")
}

// changeActPersonal goes back to typing the address.
func (h *Handler) changeActPersonal(w http.ResponseWriter, r *http.Request, s *actStep) error {
	if err := h.save(r.Context(), h.DB, s, actPersonal); err != nil {
		return h.moved(w, r, s, err)
	}
	return web.Redirect(w, r, actPaths[actPersonal]+"?req="+url.QueryEscape(s.Ref))
}
