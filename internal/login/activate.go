package login

// Activation of a provisioned account: the person proves the account is
// theirs (one of the proof methods of activate_proof.go), then chooses a
// password and, when the settings ask for them, a secret question and a
// personal address verified by a code. Each step only writes to the flow's
// Data (the password as its argon2id hash, never in clear; the answer as
// its hash); one transaction at the end writes everything and makes the
// account active, so a person who stops midway leaves the account exactly
// as it was. Then the person is signed in like any other sign-in (complete).
//
//	POST /login {login} ──provisioned──┐
//	GET, POST /activate {login} ───────┴──▶ act_proof ◀──┐ POST /activate/proof {method}:
//	                                          │  └───────┘ the link is sent (again)
//	    GET /activate/link?token shows a button; its POST uses the link, in any browser:
//	                                          ├──▶ act_moved (this flow ends: "go on where you opened the link")
//	                                          ▼ a NEW flow, bound to the browser that opened the link
//	                                     act_password
//	                                          ▼
//	                                     act_question     if self_service.activation_secret_question
//	                                          ▼
//	                                     act_personal ◀──┐ if self_service.activation_personal_email
//	                                          ▼ code sent │ "change address"
//	                                     act_code ───────┘
//	                                          ▼ after the last step on: ONE transaction writes everything
//	                                     act_activated
//	                                          ▼ complete(): the session starts
//	                                        done ──▶ return_to, or /account?done=activated
//
// Steps turned off in the settings are skipped by nextState, the one
// transition table. Every page carries the flow reference (req), and the
// flow is also bound to the browser by its device cookie (bindLoginBrowser,
// link.go): a reference seen elsewhere (history, a shared screen) opens
// nothing in another browser. A flow in act_proof lives as long as the link
// it may send; the flow after the proof lives FlowLifetime.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// PurposeActivate is the LoginFlow.Purpose of an activation.
const PurposeActivate = "activate"

// Activation states (LoginFlow.State), prefixed so that no sign-in step
// ever accepts an activation flow.
const (
	actProof     = "act_proof"     // prove the account is yours
	actMoved     = "act_moved"     // proved in another browser: this flow is over
	actPassword  = "act_password"  // choose a password
	actQuestion  = "act_question"  // choose a secret question and its answer
	actPersonal  = "act_personal"  // type a personal address
	actCode      = "act_code"      // type the code sent to it
	actActivated = "act_activated" // written; complete() moves it to done
)

// actPaths is where each state's page lives.
var actPaths = map[string]string{
	actProof: "/activate/proof", actPassword: "/activate/password", actQuestion: "/activate/question",
	actPersonal: "/activate/personal", actCode: "/activate/code",
}

// activation is what the steps gather, kept as JSON in the flow's Data
// until the final transaction. No secret is ever kept in clear.
type activation struct {
	Method       string     `json:"method,omitempty"`   // proof method started, then used
	ProofTo      string     `json:"proof_to,omitempty"` // address the proof went to
	ProofEmailID string     `json:"proof_email_id,omitempty"`
	SentAt       *time.Time `json:"sent_at,omitempty"`       // when this flow last sent the proof
	PasswordHash string     `json:"password_hash,omitempty"` // argon2id of the chosen password
	Question     string     `json:"question,omitempty"`
	AnswerHash   string     `json:"answer_hash,omitempty"` // argon2id of the folded answer
	Personal     string     `json:"personal,omitempty"`    // personal address, waiting for its code
	CodeSentAt   *time.Time `json:"code_sent_at,omitempty"`
	Verified     bool       `json:"personal_verified,omitempty"` // the code for Personal was right
}

// registerActivation adds the activation routes (called by Register).
func (h *Handler) registerActivation(mux *http.ServeMux) {
	mux.Handle("GET /activate", h.App.Handle(h.showActivate))
	mux.Handle("POST /activate", h.App.Handle(h.submitActivate))
	mux.Handle("GET /activate/proof", h.actStep(actProof, h.showProof))
	mux.Handle("POST /activate/proof", h.actStep(actProof, h.submitProof))
	mux.Handle("GET /activate/link", h.App.Handle(h.showActivationLink))
	mux.Handle("POST /activate/link", h.App.Handle(h.submitActivationLink))
	mux.Handle("GET /activate/password", h.actStep(actPassword, h.showActPassword))
	mux.Handle("POST /activate/password", h.actStep(actPassword, h.submitActPassword))
	mux.Handle("GET /activate/question", h.actStep(actQuestion, h.showActQuestion))
	mux.Handle("POST /activate/question", h.actStep(actQuestion, h.submitActQuestion))
	mux.Handle("GET /activate/personal", h.actStep(actPersonal, h.showActPersonal))
	mux.Handle("POST /activate/personal", h.actStep(actPersonal, h.submitActPersonal))
	mux.Handle("GET /activate/code", h.actStep(actCode, h.showActCode))
	mux.Handle("POST /activate/code", h.actStep(actCode, h.submitActCode))
	mux.Handle("POST /activate/code/resend", h.actStep(actCode, h.resendActCode))
	mux.Handle("POST /activate/code/change", h.actStep(actCode, h.changeActPersonal))
}

// order lists the states a person goes through, with the settings' steps.
func (h *Handler) order() []string {
	o := []string{actProof, actPassword}
	if h.ActivationQuestion {
		o = append(o, actQuestion)
	}
	if h.ActivationPersonalEmail {
		o = append(o, actPersonal, actCode)
	}
	return append(o, actActivated)
}

// nextState is the state after from (actActivated: write everything).
// The other moves are: act_proof -> act_moved (the proof arrived in
// another browser) and act_code -> act_personal ("change address").
func (h *Handler) nextState(from string) string {
	o := h.order()
	for i, s := range o[:len(o)-1] {
		if s == from {
			return o[i+1]
		}
	}
	return actActivated
}

// stepView is one item of the progress list shown on every step.
type stepView struct {
	Label         string
	Current, Done bool
}

// actPage is what every activation step page shares.
type actPage struct {
	Req        string
	Steps      []stepView
	StepsLabel string // names the list for screen readers
	StepDone   string // "done", said after a finished step
	Last       bool   // this step ends the activation (its button says so)
}

// stepKeys are the message keys of the states that are steps of their own.
var stepKeys = map[string]string{actProof: "activate.step_proof", actPassword: "activate.step_password",
	actQuestion: "activate.step_question", actPersonal: "activate.step_personal"}

// stepLabels lists what the activation asks, in order, for the entry page.
func (h *Handler) stepLabels(l i18n.Localizer) []string {
	var out []string
	for _, st := range h.order() {
		if key, ok := stepKeys[st]; ok {
			out = append(out, l.T(key))
		}
	}
	return out
}

func (h *Handler) actPage(l i18n.Localizer, s *actStep) actPage {
	cur := s.F.State
	if cur == actCode {
		cur = actPersonal
	}
	p := actPage{Req: s.Ref, Last: h.nextState(s.F.State) == actActivated,
		StepsLabel: l.T("activate.steps"), StepDone: l.T("activate.step_done")}
	done := true
	for _, st := range h.order() {
		key, ok := stepKeys[st]
		if !ok {
			continue
		}
		if st == cur {
			done = false
			p.Steps = append(p.Steps, stepView{Label: l.T(key), Current: true})
			continue
		}
		p.Steps = append(p.Steps, stepView{Label: l.T(key), Done: done})
	}
	return p
}

// actStep is one request on a live activation flow.
type actStep struct {
	Ref string
	F   *store.LoginFlow
	D   *activation
	A   store.Account
	L   i18n.Localizer
}

type actStepFunc func(w http.ResponseWriter, r *http.Request, s *actStep) error

// actStep serves a step of state: it finds the flow of the request's
// reference (query on GET, form on POST), bound to this browser; sends the
// browser to the page of the flow's actual state when it is elsewhere (back
// button, second tab), and stops when the account can no longer be
// activated.
func (h *Handler) actStep(state string, fn actStepFunc) http.Handler {
	return h.App.Handle(func(w http.ResponseWriter, r *http.Request) error {
		web.NoReferrer(w)
		ctx := r.Context()
		ref := r.URL.Query().Get("req")
		if r.Method == http.MethodPost {
			ref = r.PostFormValue("req")
		}
		f, d, err := h.actFlow(r, ref)
		if err != nil {
			return err
		}
		if f == nil {
			return web.Redirect(w, r, "/activate?expired=1")
		}
		l := i18n.Localizer{Lang: web.Info(ctx).Lang}
		if f.State == actMoved {
			return h.actInfo(w, r, http.StatusOK, "activate.moved_title", "activate.moved", false)
		}
		if f.State != state {
			if p, ok := actPaths[f.State]; ok {
				return web.Redirect(w, r, p+"?req="+url.QueryEscape(ref))
			}
			return web.Redirect(w, r, "/activate?expired=1")
		}
		a, err := h.DB.AccountByID(ctx, f.AccountID)
		if errors.Is(err, store.ErrNotFound) {
			return web.Redirect(w, r, "/activate?expired=1")
		}
		if err != nil {
			return err
		}
		if stop, err := h.cannotActivate(w, r, a); stop || err != nil {
			return err
		}
		return fn(w, r, &actStep{Ref: ref, F: f, D: d, A: a, L: l})
	})
}

// cannotActivate shows why the account cannot be activated (disabled,
// ended, already active) and reports whether it did.
func (h *Handler) cannotActivate(w http.ResponseWriter, r *http.Request, a store.Account) (bool, error) {
	l := i18n.Localizer{Lang: web.Info(r.Context()).Lang}
	switch problem := account.SignInProblem(a, h.Now()); problem {
	case "provisioned":
		return false, nil
	case "":
		return true, h.actInfo(w, r, http.StatusConflict, "activate.title", "activate.already_active", true)
	default:
		h.Audit.Record(r.Context(), nil, store.AuditEvent{Type: "activation.refused", AccountID: a.ID, Details: map[string]string{"reason": problem}})
		return true, h.App.Render(w, r, http.StatusForbidden, "activate_info", web.Page{Title: "activate.title",
			Data: actInfoData{Text: problemMessage(l, a, problem)}})
	}
}

// actInfoData is a page that only says something (activate_info.html).
type actInfoData struct {
	Text    string
	SignIn  bool // offer the sign-in page
	NewLink bool // offer to start the activation again
}

func (h *Handler) actInfo(w http.ResponseWriter, r *http.Request, status int, title, key string, signIn bool) error {
	l := i18n.Localizer{Lang: web.Info(r.Context()).Lang}
	return h.App.Render(w, r, status, "activate_info", web.Page{Title: title, Data: actInfoData{Text: l.T(key), SignIn: signIn}})
}

// actFlow returns the live activation flow of ref held by this browser,
// with its data, or nil.
func (h *Handler) actFlow(r *http.Request, ref string) (*store.LoginFlow, *activation, error) {
	if ref == "" || len(ref) > 100 {
		return nil, nil, nil
	}
	f, err := h.DB.LoginFlowByID(r.Context(), session.HashToken(ref))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	if f.Purpose != PurposeActivate || !h.Now().Before(f.ExpiresAt) || f.AccountID == "" {
		return nil, nil, nil
	}
	if !sameLoginBrowser(r, &f) {
		return nil, nil, nil
	}
	d := &activation{}
	if err := json.Unmarshal([]byte(f.Data), d); err != nil {
		return nil, nil, fmt.Errorf("login: activation data: %w", err)
	}
	return &f, d, nil
}

// errFlowMoved: another request moved the flow first (double submission).
var errFlowMoved = errors.New("login: activation flow moved on")

// save writes the step's data and moves the flow to state to, through db
// (a transaction or h.DB); errFlowMoved when another request moved it first.
func (h *Handler) save(ctx context.Context, db *store.DB, s *actStep, to string) error {
	b, err := json.Marshal(s.D)
	if err != nil {
		return err
	}
	from := s.F.State
	s.F.State, s.F.Data = to, string(b)
	if err := db.UpdateLoginFlow(ctx, *s.F, from); err != nil {
		s.F.State = from
		if errors.Is(err, store.ErrNotFound) {
			return errFlowMoved
		}
		return err
	}
	return nil
}

// advance saves the step and goes on: to the next page, or, after the last
// step, writes everything and signs the person in.
func (h *Handler) advance(w http.ResponseWriter, r *http.Request, s *actStep) error {
	next := h.nextState(s.F.State)
	if next == actActivated {
		return h.finish(w, r, s)
	}
	if err := h.save(r.Context(), h.DB, s, next); err != nil {
		return h.moved(w, r, s, err)
	}
	return web.Redirect(w, r, actPaths[next]+"?req="+url.QueryEscape(s.Ref))
}

// moved answers a request that lost a race on the flow: the page of the
// flow's state now.
func (h *Handler) moved(w http.ResponseWriter, r *http.Request, s *actStep, err error) error {
	if !errors.Is(err, errFlowMoved) {
		return err
	}
	return web.Redirect(w, r, actPaths[actProof]+"?req="+url.QueryEscape(s.Ref))
}

// errActivated: the account is no longer provisioned at the final write.
var errActivated = errors.New("login: account no longer provisioned")

// finish writes everything the steps gathered in one transaction (password,
// secret question, verified personal address, state active, audit events),
// then signs the person in.
func (h *Handler) finish(w http.ResponseWriter, r *http.Request, s *actStep) error {
	ctx := r.Context()
	now := h.Now()
	d := s.D
	if d.PasswordHash == "" || (h.ActivationQuestion && d.AnswerHash == "") || (h.ActivationPersonalEmail && !d.Verified) {
		return fmt.Errorf("login: activation finished with a step missing (state %s)", s.F.State)
	}
	var a store.Account
	var personalID string
	err := h.DB.InTx(ctx, func(tx *store.DB) error {
		var err error
		if a, err = tx.AccountByID(ctx, s.A.ID); err != nil {
			return err
		}
		if a.State != store.StateProvisioned {
			return errActivated
		}
		if err := tx.SetPassword(ctx, a.ID, d.PasswordHash, now); err != nil {
			return err
		}
		if err := h.Audit.Record(ctx, tx, store.AuditEvent{Type: "password.change", AccountID: a.ID,
			Details: map[string]string{"reason": "activation"}}); err != nil {
			return err
		}
		if d.AnswerHash != "" {
			if err := tx.SetSecretQuestion(ctx, store.SecretQuestion{AccountID: a.ID, Question: d.Question,
				AnswerHash: d.AnswerHash, UpdatedAt: now}); err != nil {
				return err
			}
			if err := h.Audit.Record(ctx, tx, store.AuditEvent{Type: "question.change", AccountID: a.ID,
				Details: map[string]string{"reason": "activation"}}); err != nil {
				return err
			}
		}
		if d.Personal != "" && d.Verified {
			e := store.Email{AccountID: a.ID, Address: d.Personal, Kind: store.EmailPersonal, VerifiedAt: &now, CreatedAt: now}
			if err := tx.AddEmail(ctx, &e); err != nil {
				return err
			}
			personalID = e.ID
			if err := h.Audit.Record(ctx, tx, store.AuditEvent{Type: "email.add", AccountID: a.ID,
				Details: map[string]string{"email_id": e.ID, "kind": e.Kind, "verified_by": "code", "reason": "activation"}}); err != nil {
				return err
			}
		}
		if err := tx.SetAccountState(ctx, a.ID, store.StateActive, now); err != nil {
			return err
		}
		if err := tx.EndTokens(ctx, a.ID, now, store.PurposeActivation, store.PurposeFlowCode); err != nil {
			return err
		}
		if err := h.Audit.Record(ctx, tx, store.AuditEvent{Type: "account.activate", AccountID: a.ID,
			Details: map[string]string{"method": d.Method, "secret_question": fmt.Sprint(d.AnswerHash != ""),
				"personal_email": fmt.Sprint(personalID != "")}}); err != nil {
			return err
		}
		// The flow keeps no hash once they are written.
		s.D = &activation{Method: d.Method}
		return h.save(ctx, tx, s, actActivated)
	})
	l := s.L
	switch {
	case errors.Is(err, errActivated):
		if a.State == store.StateActive {
			return h.actInfo(w, r, http.StatusConflict, "activate.title", "activate.already_active", true)
		}
		_, err := h.cannotActivate(w, r, a)
		return err
	case errors.Is(err, store.ErrConflict):
		// The personal address went to another account meanwhile.
		s.D, d.Verified = d, false
		if err := h.save(ctx, h.DB, s, actPersonal); err != nil {
			return h.moved(w, r, s, err)
		}
		return h.renderPersonal(w, r, s, http.StatusConflict, personalData{Email: d.Personal, EmailError: l.T("activate.personal_taken")})
	case errors.Is(err, errFlowMoved):
		return h.moved(w, r, s, err)
	case err != nil:
		return err
	}
	a.State, a.PasswordHash = store.StateActive, d.PasswordHash
	// complete moves the flow from act_activated to done and starts the
	// session; its return target says the account is active.
	if s.F.ReturnTo == "" {
		s.F.ReturnTo = "/account?done=activated"
	}
	return h.complete(w, r, s.F, a, sessionMethod(d.Method), false)
}

// ---------------------------------------------------------------- entry

type activateData struct {
	Steps    []string // what the activation will ask
	Login    string
	ReturnTo string
	Error    string // tied to the field
	SignIn   string // "already active": link to the sign-in page
}

// showActivate is the entry page: the same field as the sign-in page.
func (h *Handler) showActivate(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	returnTo := safeReturn(q.Get("return_to"))
	if session.FromContext(r.Context()) != nil {
		return web.Redirect(w, r, orAccount(returnTo))
	}
	l := i18n.Localizer{Lang: web.Info(r.Context()).Lang}
	p := web.Page{Title: "activate.title", Data: activateData{Login: q.Get("login"), ReturnTo: returnTo, Steps: h.stepLabels(l)}}
	if q.Has("expired") {
		p.Notice = "activate.flow_expired"
	}
	return h.App.Render(w, r, http.StatusOK, "activate", p)
}

// submitActivate starts an activation for a provisioned account. Other
// accounts get what the sign-in page would give them, so this page tells
// no more about which accounts exist than /login does.
func (h *Handler) submitActivate(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	login := strings.TrimSpace(r.PostFormValue("login"))
	returnTo := safeReturn(r.PostFormValue("return_to"))
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	again := func(status int, d activateData) error {
		d.Login, d.ReturnTo, d.Steps = login, returnTo, h.stepLabels(l)
		return h.App.Render(w, r, status, "activate", web.Page{Title: "activate.title", Data: d})
	}
	if login == "" || len(login) > 320 {
		return again(http.StatusUnprocessableEntity, activateData{Error: l.T("login.login_required")})
	}
	now := h.Now()
	ip := web.Info(ctx).ClientIP
	if wait, err := h.Lookups.Wait(ctx, ip, now); err != nil {
		return err
	} else if wait > 0 {
		secs := int(math.Ceil(wait.Seconds()))
		web.RetryAfter(w, wait)
		return again(http.StatusTooManyRequests, activateData{Error: l.T("login.too_many", l.Seconds(secs))})
	}
	a, err := h.DB.AccountByLogin(ctx, login)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if !h.RevealUnknown {
			return h.submitIdentify(w, r) // the password step, as for any unknown identifier
		}
		h.count("unknown")
		h.Lookups.Fail(ctx, ip, now)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.unknown", Details: map[string]string{"login": truncate(login, 100), "page": "activate"}})
		return again(http.StatusUnprocessableEntity, activateData{Error: l.T("login.unknown")})
	case err != nil:
		return err
	}
	switch problem := account.SignInProblem(a, now); problem {
	case "provisioned":
		return h.startActivation(w, r, a, login, returnTo, "activate")
	case "":
		if !h.RevealUnknown {
			return h.submitIdentify(w, r)
		}
		return again(http.StatusConflict, activateData{Error: l.T("activate.already_active"),
			SignIn: loginURL(returnTo, url.Values{"login": {login}})})
	default:
		h.count(problem)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "login.refused", AccountID: a.ID, Details: map[string]string{"reason": problem, "page": "activate"}})
		return again(http.StatusForbidden, activateData{Error: problemMessage(l, a, problem)})
	}
}

// startActivation opens an activation flow for a provisioned account
// (from /login or /activate) and shows its proof step.
func (h *Handler) startActivation(w http.ResponseWriter, r *http.Request, a store.Account, login, returnTo, via string) error {
	ctx := r.Context()
	now := h.Now()
	// The proof page stays valid as long as the link it sends.
	life := max(h.FlowLifetime, h.Tokens.Validity[store.PurposeActivation])
	ref := session.NewToken()
	f := store.LoginFlow{ID: session.HashToken(ref), AccountID: a.ID, Identifier: login, ReturnTo: returnTo,
		State: actProof, Purpose: PurposeActivate, BrowserHash: h.bindLoginBrowser(w, r), CreatedAt: now, ExpiresAt: now.Add(life)}
	if err := h.DB.CreateLoginFlow(ctx, &f); err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.start", AccountID: a.ID, Details: map[string]string{"via": via}})
	return web.Redirect(w, r, "/activate/proof?req="+url.QueryEscape(ref))
}
