package oidc

import (
	"context"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// errConsentRequired is the OpenID Connect error of prompt=none when consent is missing.
func errConsentRequired() *oidc.Error { return &oidc.Error{ErrorType: "consent_required"} }

var errExpired = &web.Error{Status: http.StatusBadRequest, Key: "oidc.error.request_expired"}

// request loads a live request in state new or done, with its client.
func (h *Handler) request(ctx context.Context, id string) (store.OIDCAuthRequest, store.OIDCClient, error) {
	if id == "" || len(id) > 100 {
		return store.OIDCAuthRequest{}, store.OIDCClient{}, errExpired
	}
	ar, err := h.DB.OIDCAuthRequestByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return ar, store.OIDCClient{}, errExpired
	}
	if err != nil {
		return ar, store.OIDCClient{}, err
	}
	if !h.Now().Before(ar.ExpiresAt) || (ar.State != store.AuthRequestNew && ar.State != store.AuthRequestDone) {
		return ar, store.OIDCClient{}, errExpired
	}
	cl, err := h.DB.OIDCClientByID(ctx, ar.ClientID)
	if errors.Is(err, store.ErrNotFound) {
		return ar, cl, errExpired
	}
	return ar, cl, err
}

// showContinue is where the authorize endpoint sends the browser (the
// client's LoginURL): it decides between signing in, consent and done.
func (h *Handler) showContinue(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ar, cl, err := h.request(ctx, r.URL.Query().Get("id"))
	if err != nil {
		return err
	}
	cur := session.FromContext(ctx)
	if h.needsLogin(ar, cur) {
		if slices.Contains(ar.Prompt, oidc.PromptNone) {
			return h.clientError(w, r, ar, cl, oidc.ErrLoginRequired())
		}
		if err := h.DB.SendOIDCAuthRequestToLogin(ctx, ar.ID, loginMark(cur)); errors.Is(err, store.ErrNotFound) {
			return errExpired
		} else if err != nil {
			return err
		}
		q := url.Values{"return_to": {ContinuePath(ar.ID)}}
		if ar.LoginHint != "" {
			q.Set("login", ar.LoginHint)
		}
		if cur != nil {
			q.Set("reauth", "1") // a session is there, but not good enough
		}
		return web.Redirect(w, r, "/login?"+q.Encode())
	}
	need, err := h.needsConsent(ctx, cl, ar, cur.Account.ID)
	if err != nil {
		return err
	}
	if need {
		if slices.Contains(ar.Prompt, oidc.PromptNone) {
			return h.clientError(w, r, ar, cl, errConsentRequired())
		}
		return web.Redirect(w, r, PathConsent+"?id="+url.QueryEscape(ar.ID))
	}
	s := cur.Session
	if err := h.DB.CompleteOIDCAuthRequest(ctx, ar.ID, cur.Account.ID, s.ID, s.AuthTime, strings.Fields(s.AuthMethods)); errors.Is(err, store.ErrNotFound) {
		return errExpired
	} else if err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "oidc.authorize", AccountID: cur.Account.ID,
		Details: map[string]string{"client_id": cl.ID, "session_id": s.ID, "scope": strings.Join(ar.Scopes, " ")}})
	return web.Redirect(w, r, op.AuthCallbackURL(h.op)(h.ctx(r), ar.ID))
}

// loginMark is what the browser's sign-in was when it was sent to sign in:
// the session and (part of the hash of) its token ("" without one). A
// sign-in of the same person keeps the session but gives it a new token.
func loginMark(cur *session.Current) string {
	if cur == nil {
		return ""
	}
	return cur.Session.ID + " " + cur.Session.TokenHash[:min(16, len(cur.Session.TokenHash))]
}

// needsLogin: no session, or one that does not meet prompt or max_age. A
// sign-in other than the one the browser had when it was sent to sign in
// (another session, or the same one signed into again) is a fresh one,
// which meets them all.
func (h *Handler) needsLogin(ar store.OIDCAuthRequest, cur *session.Current) bool {
	if cur == nil {
		return true
	}
	if ar.LoginFrom != nil && *ar.LoginFrom != loginMark(cur) {
		return false
	}
	if slices.Contains(ar.Prompt, oidc.PromptLogin) || slices.Contains(ar.Prompt, oidc.PromptSelectAccount) {
		return true
	}
	if ar.MaxAge != nil {
		if *ar.MaxAge == 0 || h.Now().Sub(cur.Session.AuthTime) > time.Duration(*ar.MaxAge)*time.Second {
			return true
		}
	}
	return false
}

// needsConsent: a third-party application asks for scopes the account has
// not allowed it, or prompt=consent, unless this very request was approved.
func (h *Handler) needsConsent(ctx context.Context, cl store.OIDCClient, ar store.OIDCAuthRequest, accountID string) (bool, error) {
	if cl.FirstParty || ar.ConsentedBy == accountID {
		return false, nil
	}
	if slices.Contains(ar.Prompt, oidc.PromptConsent) {
		return true, nil
	}
	c, err := h.DB.OIDCConsentOf(ctx, accountID, cl.ID)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	for _, sc := range ar.Scopes {
		if !slices.Contains(c.Scopes, sc) {
			return true, nil
		}
	}
	return false, nil
}

// clientError ends the request and sends the error to the application's
// (validated) redirect URI.
func (h *Handler) clientError(w http.ResponseWriter, r *http.Request, ar store.OIDCAuthRequest, cl store.OIDCClient, e *oidc.Error) error {
	if err := h.DB.DeleteOIDCAuthRequest(r.Context(), ar.ID); err != nil {
		return err
	}
	e.State = ar.OAuthState
	if ar.ResponseMode == string(oidc.ResponseModeFormPost) {
		values := map[string][]string{}
		if err := h.op.Encoder().Encode(e, values); err != nil {
			return err
		}
		return h.formPost(w, r, cl.Name, ar.RedirectURI, values)
	}
	u, err := op.AuthResponseURL(ar.RedirectURI, oidc.ResponseType(ar.ResponseType), oidc.ResponseModeQuery, e, h.op.Encoder())
	if err != nil {
		return err
	}
	http.Redirect(w, r, u, http.StatusFound)
	return nil
}

// callback hands out the code of a done request, only to the browser
// session that completed it (a leaked request id gives nothing).
func (h *Handler) callback(w http.ResponseWriter, r *http.Request) error {
	r = r.WithContext(h.ctx(r))
	ctx := r.Context()
	ar, cl, err := h.request(ctx, r.URL.Query().Get("id"))
	if err != nil {
		return err
	}
	cur := session.FromContext(ctx)
	if ar.State != store.AuthRequestDone || cur == nil || cur.Session.ID != ar.SessionID {
		return web.Redirect(w, r, ContinuePath(ar.ID))
	}
	req := &authRequest{ar}
	if ar.ResponseMode == string(oidc.ResponseModeFormPost) {
		payload, err := op.BuildAuthResponseCodeResponsePayload(ctx, req, h.op)
		if err != nil {
			return expiredOr(err)
		}
		values := map[string][]string{}
		if err := h.op.Encoder().Encode(payload, values); err != nil {
			return err
		}
		return h.formPost(w, r, cl.Name, ar.RedirectURI, values)
	}
	u, err := op.BuildAuthResponseCallbackURL(ctx, req, h.op)
	if err != nil {
		return expiredOr(err)
	}
	return h.toClient(w, r, cl.Name, u)
}

// toClient sends the browser to the application. A browser arriving here
// through redirects from one of campusid's forms (the password step, the
// consent page: Sec-Fetch-Site same-origin) would refuse a redirect to
// another origin (CSP form-action applies to the redirects after a form):
// it gets a page that goes on by itself (a Refresh header, or the link).
func (h *Handler) toClient(w http.ResponseWriter, r *http.Request, clientName, target string) error {
	if r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		http.Redirect(w, r, target, http.StatusFound)
		return nil
	}
	web.NoReferrer(w)
	w.Header().Set("Refresh", "0;url="+target)
	return h.App.Render(w, r, http.StatusOK, "oidc_redirect", web.Page{Title: "oidc.form_post.title",
		Data: redirectData{Target: template.URL(target), ClientName: clientName}})
}

type redirectData struct {
	Target     template.URL
	ClientName string
}

func expiredOr(err error) error {
	var oe *oidc.Error
	if errors.As(err, &oe) && oe.ErrorType == oidc.InvalidRequest {
		return errExpired
	}
	return err
}

type formField struct{ Name, Value string }

type formPostData struct {
	Action     template.URL // a registered redirect URI (ValidateRedirectURI refused unsafe schemes)
	ClientName string
	Fields     []formField
}

// formPost answers with response_mode=form_post: a page whose form posts
// the response to the application, sent by a small script (or the button).
// Its Content-Security-Policy lets forms go to the application's origin.
func (h *Handler) formPost(w http.ResponseWriter, r *http.Request, clientName, action string, values map[string][]string) error {
	d := formPostData{Action: template.URL(action), ClientName: clientName}
	for _, k := range []string{"code", "state", "error", "error_description", "error_uri", "session_state", "iss"} {
		for _, v := range values[k] {
			d.Fields = append(d.Fields, formField{k, v})
		}
	}
	web.AllowFormsTo(w, action)
	web.NoReferrer(w)
	return h.App.Render(w, r, http.StatusOK, "oidc_form_post", web.Page{Title: "oidc.form_post.title", Data: d})
}
