package login

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"campusid/internal/i18n"
	"campusid/internal/onetime"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// proofMethod is one way to prove that a provisioned account is yours.
// The proof page shows the panel of every method that applies to the
// account, in the order of proofMethods; each panel's button posts
// method=Name to /activate/proof, which calls Start.
//
// To add a method (the federation issue adds "prove it through your
// university"):
//  1. write a proofMethod: a stable Name (kept in the flow's data and in the
//     account.activate audit event), the session method it earns, Panel
//     (what the page says about it for this account, and whether it applies:
//     e.g. the account's establishment has an upstream identity provider),
//     and Start (send something, or redirect to the upstream provider);
//  2. when the proof comes back (a link redeemed, an upstream callback that
//     matched the account), call h.proved in the transaction that consumes
//     the proof: it opens the password step in the browser that brought it;
//  3. append it to proofMethods and add its messages to the catalogs
//     (fr_activate.go, en_activate.go).
type proofMethod struct {
	Name string
	// SessionMethod is the method recorded on the session it ends with.
	SessionMethod string
	// Panel describes the method for this flow; ok false hides it (it
	// cannot serve this account).
	Panel func(h *Handler, r *http.Request, s *actStep) (p methodPanel, ok bool, err error)
	// Start begins the proof (POST /activate/proof with method=Name) and
	// answers the request itself.
	Start func(h *Handler, w http.ResponseWriter, r *http.Request, s *actStep) error
}

// methodPanel is a method's part of the proof page, localized.
type methodPanel struct {
	Name      string   // posted back as "method"
	Heading   string   // shown when several methods apply
	Notice    string   // what already happened ("a link left at 14:31 to ...")
	Text      []string // paragraphs
	Button    string
	Secondary bool // the button is not the main action (a resend)
}

// proofMethods are the proof methods, in the order of the page. (A function,
// not a variable: the methods' functions use the list themselves.)
func proofMethods() []proofMethod {
	return []proofMethod{
		{Name: emailLinkName, SessionMethod: "link", Panel: (*Handler).emailLinkPanel, Start: (*Handler).sendActivationLink},
	}
}

func proofMethodNamed(name string) (proofMethod, bool) {
	for _, m := range proofMethods() {
		if m.Name == name {
			return m, true
		}
	}
	return proofMethod{}, false
}

// sessionMethod is the session method earned by the proof method name.
func sessionMethod(name string) string {
	if m, ok := proofMethodNamed(name); ok && m.SessionMethod != "" {
		return m.SessionMethod
	}
	return "activation"
}

type proofData struct {
	actPage
	Panels   []methodPanel
	Error    string // tied to the panel of ErrorFor
	ErrorFor string
}

func (h *Handler) showProof(w http.ResponseWriter, r *http.Request, s *actStep) error {
	return h.renderProof(w, r, s, http.StatusOK, "", "")
}

// renderProof shows the proof page, with an error under the method's panel.
func (h *Handler) renderProof(w http.ResponseWriter, r *http.Request, s *actStep, status int, method, msg string) error {
	d := proofData{actPage: h.actPage(s.L, s), Error: msg, ErrorFor: method}
	for _, m := range proofMethods() {
		p, ok, err := m.Panel(h, r, s)
		if err != nil {
			return err
		}
		if ok {
			p.Name = m.Name
			d.Panels = append(d.Panels, p)
		}
	}
	title := "activate.proof_title"
	if s.D.SentAt != nil {
		title = "activate.sent_title"
	}
	return h.App.Render(w, r, status, "activate_proof", web.Page{Title: title, Data: d})
}

func (h *Handler) submitProof(w http.ResponseWriter, r *http.Request, s *actStep) error {
	m, ok := proofMethodNamed(r.PostFormValue("method"))
	if !ok {
		return web.BadRequest("error.bad_request")
	}
	if _, ok, err := m.Panel(h, r, s); err != nil {
		return err
	} else if !ok {
		return web.BadRequest("error.bad_request")
	}
	return m.Start(h, w, r, s)
}

// proved records that the person proved the account by method, in tx (the
// transaction that consumed the proof): the flow it started from (origin,
// if still there) is over, and a new flow at the password step, bound to
// this browser, keeps where to go back. It returns the new reference.
func (h *Handler) proved(w http.ResponseWriter, r *http.Request, tx *store.DB, a store.Account, originID, method string, d activation) (string, error) {
	ctx := r.Context()
	now := h.Now()
	var returnTo, login string
	if originID != "" {
		o, err := tx.LoginFlowByID(ctx, originID)
		switch {
		case err == nil && o.Purpose == PurposeActivate && o.AccountID == a.ID:
			returnTo, login = o.ReturnTo, o.Identifier
			if o.State == actProof {
				o.State = actMoved
				if err := tx.UpdateLoginFlow(ctx, o, actProof); err != nil && !errors.Is(err, store.ErrNotFound) {
					return "", err
				}
			}
		case err != nil && !errors.Is(err, store.ErrNotFound):
			return "", err
		}
	}
	if login == "" {
		login = a.Identifier
	}
	d.Method = method
	data, err := json.Marshal(d)
	if err != nil {
		return "", err
	}
	ref := session.NewToken()
	f := store.LoginFlow{ID: session.HashToken(ref), AccountID: a.ID, Identifier: login, ReturnTo: returnTo,
		State: actPassword, Purpose: PurposeActivate, BrowserHash: h.bindLoginBrowser(w, r), Data: string(data),
		CreatedAt: now, ExpiresAt: now.Add(h.FlowLifetime)}
	if err := tx.CreateLoginFlow(ctx, &f); err != nil {
		return "", err
	}
	return ref, h.Audit.Record(ctx, tx, store.AuditEvent{Type: "activation.proved", AccountID: a.ID,
		Details: map[string]string{"method": method, "email_id": d.ProofEmailID}})
}

// ---------------------------------------------------------------- proof by email link

// emailLinkName is the proof method that sends a single-use link to a
// verified address of the account; opening it (in any browser) proves the
// person reads that address.
const emailLinkName = "email_link"

// proofAddress is where the link goes: the address typed, when it is a
// verified address of the account, else the primary (or first) verified one.
func (h *Handler) proofAddress(ctx context.Context, s *actStep) (store.Email, bool, error) {
	emails, err := h.DB.EmailsOf(ctx, s.A.ID)
	if err != nil {
		return store.Email{}, false, err
	}
	typed := strings.ToLower(strings.TrimSpace(s.F.Identifier))
	var best *store.Email
	for i, e := range emails {
		if e.VerifiedAt == nil {
			continue
		}
		if e.Address == typed {
			return e, true, nil
		}
		if best == nil || (e.Primary && !best.Primary) {
			best = &emails[i]
		}
	}
	if best == nil {
		return store.Email{}, false, nil
	}
	return *best, true, nil
}

func (h *Handler) emailLinkPanel(r *http.Request, s *actStep) (methodPanel, bool, error) {
	ctx := r.Context()
	l := s.L
	e, ok, err := h.proofAddress(ctx, s)
	if err != nil || !ok {
		return methodPanel{}, false, err
	}
	validity := onetime.Human(l, h.Tokens.Validity[store.PurposeActivation])
	p := methodPanel{Heading: l.T("activate.method_email_link")}
	if s.D.SentAt == nil || s.D.Method != emailLinkName {
		p.Text = []string{l.T("activate.email_link_explain", web.MaskEmail(e.Address), validity)}
		p.Button = l.T("activate.email_link_send")
		return p, true, nil
	}
	_, wait, err := h.Tokens.LastSent(ctx, s.A.ID, store.PurposeActivation)
	if err != nil {
		return p, false, err
	}
	p.Notice = l.T("activate.email_link_sent", web.ClockTime(*s.D.SentAt), web.MaskEmail(s.D.ProofTo))
	p.Text = []string{l.T("activate.email_link_wait"), l.T("activate.email_link_validity", validity)}
	if wait > 0 {
		p.Text = append(p.Text, l.T("activate.email_link_resend_at", web.ClockTime(h.Now().Add(wait))))
	} else {
		p.Text = append(p.Text, l.T("activate.email_link_resend_now"))
	}
	p.Button, p.Secondary = l.T("activate.email_link_resend"), true
	return p, true, nil
}

// sendActivationLink sends the activation link, at most one per
// ResendInterval for the account, and counts it against the client address.
func (h *Handler) sendActivationLink(w http.ResponseWriter, r *http.Request, s *actStep) error {
	ctx := r.Context()
	l := s.L
	ip := web.Info(ctx).ClientIP
	if wait, err := h.Tokens.ClientWait(ctx, ip); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.throttled", AccountID: s.A.ID,
			Details: map[string]string{"what": "send", "limit": "client"}})
		return h.renderProof(w, r, s, http.StatusTooManyRequests, emailLinkName, l.T("activate.client_wait", l.WaitSeconds(wait)))
	}
	e, ok, err := h.proofAddress(ctx, s)
	if err != nil {
		return err
	}
	if !ok {
		return web.BadRequest("error.bad_request")
	}
	now := h.Now()
	err = h.DB.InTx(ctx, func(tx *store.DB) error {
		err := h.Tokens.SendLink(ctx, tx, onetime.Message{Purpose: store.PurposeActivation, Lang: l.Lang, To: e.Address,
			AccountID: s.A.ID, EmailID: e.ID, FlowID: s.F.ID, Path: "/activate/link",
			Data: map[string]any{"Name": s.A.DisplayName, "Identifier": s.A.Identifier}}, ip)
		if err != nil {
			return err
		}
		s.D.Method, s.D.ProofTo, s.D.ProofEmailID, s.D.SentAt = emailLinkName, e.Address, e.ID, &now
		if err := h.save(ctx, tx, s, actProof); err != nil {
			return err
		}
		return h.Audit.Record(ctx, tx, store.AuditEvent{Type: "activation.link_sent", AccountID: s.A.ID,
			Details: map[string]string{"email_id": e.ID}})
	})
	var soon onetime.ErrTooSoon
	if errors.As(err, &soon) {
		last, _, lerr := h.Tokens.LastSent(ctx, s.A.ID, store.PurposeActivation)
		if lerr != nil {
			return lerr
		}
		web.RetryAfter(w, soon.Wait)
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.throttled", AccountID: s.A.ID,
			Details: map[string]string{"what": "send", "limit": "resend_interval"}})
		return h.renderProof(w, r, s, http.StatusTooManyRequests, emailLinkName,
			l.T("activate.link_too_soon", web.ClockTime(last), web.ClockTime(now.Add(soon.Wait)), l.WaitSeconds(soon.Wait)))
	}
	if err != nil {
		return h.moved(w, r, s, err)
	}
	return web.Redirect(w, r, "/activate/proof?req="+url.QueryEscape(s.Ref))
}

// ---------------------------------------------------------------- the link

type linkData struct {
	Token      string
	Name       string
	Identifier string
}

// showActivationLink shows a button: a mail scanner that fetches the link
// must not use it up; the POST does.
func (h *Handler) showActivationLink(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ctx := r.Context()
	tok := r.URL.Query().Get("token")
	t, err := h.Tokens.PeekLink(ctx, tok, store.PurposeActivation)
	if errors.Is(err, store.ErrNotFound) {
		return h.deadLink(w, r, tok)
	}
	if err != nil {
		return err
	}
	a, err := h.DB.AccountByID(ctx, t.AccountID)
	if err != nil {
		return err
	}
	if stop, err := h.cannotActivate(w, r, a); stop || err != nil {
		return err
	}
	return h.App.Render(w, r, http.StatusOK, "activate_link", web.Page{Title: "activate.link_title",
		Data: linkData{Token: tok, Name: a.DisplayName, Identifier: a.Identifier}})
}

// submitActivationLink uses the link and continues the activation in this
// browser, whichever browser asked for the link.
func (h *Handler) submitActivationLink(w http.ResponseWriter, r *http.Request) error {
	web.NoReferrer(w)
	ctx := r.Context()
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	tok := r.PostFormValue("token")
	now := h.Now()
	ip := web.Info(ctx).ClientIP
	// Links are not guessable, but tries of dead ones are slowed down like
	// lookups of unknown identifiers.
	if wait, err := h.Lookups.Wait(ctx, ip, now); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		return h.App.Render(w, r, http.StatusTooManyRequests, "activate_info", web.Page{Title: "activate.link_title",
			Data: actInfoData{Text: l.T("activate.throttled", l.WaitSeconds(wait))}})
	}
	// The account must still be waiting for activation; look before using the link.
	if t, err := h.Tokens.PeekLink(ctx, tok, store.PurposeActivation); err == nil {
		a, err := h.DB.AccountByID(ctx, t.AccountID)
		if err != nil {
			return err
		}
		if stop, err := h.cannotActivate(w, r, a); stop || err != nil {
			return err
		}
	}
	var ref string
	err := h.DB.InTx(ctx, func(tx *store.DB) error {
		t, err := h.Tokens.RedeemLink(ctx, tx, tok, store.PurposeActivation)
		if err != nil {
			return err
		}
		a, err := tx.AccountByID(ctx, t.AccountID)
		if err != nil {
			return err
		}
		if a.State != store.StateProvisioned {
			return store.ErrNotFound
		}
		ref, err = h.proved(w, r, tx, a, t.FlowID, emailLinkName, activation{ProofTo: t.SentTo, ProofEmailID: t.EmailID})
		return err
	})
	if errors.Is(err, store.ErrNotFound) {
		h.Lookups.Fail(ctx, ip, now)
		return h.deadLink(w, r, tok)
	}
	if err != nil {
		return err
	}
	return web.Redirect(w, r, "/activate/password?req="+url.QueryEscape(ref))
}

// deadLink explains why a link no longer works: used, expired or unknown.
func (h *Handler) deadLink(w http.ResponseWriter, r *http.Request, tok string) error {
	ctx := r.Context()
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	d := actInfoData{Text: l.T("activate.link_invalid"), NewLink: true}
	status := http.StatusNotFound
	reason := "unknown"
	var t store.EmailToken
	var err error
	if tok != "" && len(tok) <= 100 {
		t, err = h.DB.TokenByHash(ctx, session.HashToken(tok))
	} else {
		err = store.ErrNotFound
	}
	switch {
	case err == nil && t.Purpose == store.PurposeActivation:
		status = http.StatusGone
		a, aerr := h.DB.AccountByID(ctx, t.AccountID)
		switch {
		case aerr == nil && a.State == store.StateActive:
			reason = "activated"
			d = actInfoData{Text: l.T("activate.link_done"), SignIn: true}
		case t.UsedAt != nil:
			reason = "used"
			d.Text = l.T("activate.link_used")
		default:
			reason = "expired"
			d.Text = l.T("activate.link_expired", onetime.Human(l, t.ExpiresAt.Sub(t.CreatedAt)))
		}
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "activation.link_refused", AccountID: t.AccountID,
		Details: map[string]string{"reason": reason}})
	return h.App.Render(w, r, status, "activate_info", web.Page{Title: "activate.link_title", Data: d})
}
