package oidc

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"

	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// RP-initiated logout: the library validates the end_session request (the
// post_logout_redirect_uri must be registered for the client named by
// client_id or by the id_token_hint), then TerminateSessionFromRequest sends
// the browser to /oidc/logout with the outcome sealed in the link. That page
// asks for confirmation; only the POST ends the campusid session, then
// the browser goes to the registered URI (or to the sign-in page).

// logoutTicketLifetime bounds how long a confirmation page stays usable.
const logoutTicketLifetime = 30 * time.Minute

type logoutTicket struct {
	ClientID string `json:"c,omitempty"`
	Redirect string `json:"r"`
	Expires  int64  `json:"e"`
}

// logoutConfirmURL seals the validated outcome of an end_session request.
func (h *Handler) logoutConfirmURL(clientID, redirect string) (string, error) {
	b, _ := json.Marshal(logoutTicket{ClientID: clientID, Redirect: redirect, Expires: h.Now().Add(logoutTicketLifetime).Unix()})
	sealed, err := h.op.Crypto().Encrypt(string(b))
	if err != nil {
		return "", err
	}
	return PathLogout + "?" + url.Values{"t": {sealed}}.Encode(), nil
}

func (h *Handler) openTicket(sealed string) (logoutTicket, error) {
	var t logoutTicket
	if sealed == "" || len(sealed) > 4000 {
		return t, errLogout
	}
	s, err := h.op.Crypto().Decrypt(sealed)
	if err != nil || json.Unmarshal([]byte(s), &t) != nil || h.Now().Unix() > t.Expires || t.Redirect == "" {
		return t, errLogout
	}
	return t, nil
}

var errLogout = &web.Error{Status: http.StatusBadRequest, Key: "oidc.error.logout"}

// endSession runs the library's end_session endpoint; its refusals (an
// unregistered post_logout_redirect_uri...) become a campusid page.
func (h *Handler) endSession(w http.ResponseWriter, r *http.Request) error {
	rec := &recorder{header: http.Header{}, status: http.StatusOK}
	op.EndSession(rec, r.WithContext(h.ctx(r)), h.op)
	if rec.status >= 400 {
		return &web.Error{Status: http.StatusBadRequest, Key: "oidc.error.logout", Err: errors.New(rec.body.String())}
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	_, err := w.Write(rec.body.Bytes())
	return err
}

type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
func (r *recorder) WriteHeader(status int)      { r.status = status }

type logoutData struct {
	Ticket     string
	ClientName string
}

func (h *Handler) showLogout(w http.ResponseWriter, r *http.Request) error {
	sealed := r.URL.Query().Get("t")
	t, err := h.openTicket(sealed)
	if err != nil {
		return err
	}
	if session.FromContext(r.Context()) == nil {
		return web.Redirect(w, r, t.Redirect) // nothing to end
	}
	d := logoutData{Ticket: sealed}
	if t.ClientID != "" {
		if c, err := h.DB.OIDCClientByID(r.Context(), t.ClientID); err == nil {
			d.ClientName = c.Name
		}
	}
	web.NoReferrer(w)
	web.AllowFormsTo(w, t.Redirect) // the confirmation ends at the application
	return h.App.Render(w, r, http.StatusOK, "oidc_logout", web.Page{Title: "oidc.logout.title", Data: d})
}

func (h *Handler) submitLogout(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	t, err := h.openTicket(r.PostFormValue("t"))
	if err != nil {
		return err
	}
	cur := session.FromContext(ctx)
	if err := h.Sessions.End(ctx, w, cur); err != nil {
		return err
	}
	if cur != nil {
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "logout", AccountID: cur.Account.ID,
			Details: map[string]string{"session_id": cur.Session.ID, "client_id": t.ClientID}})
	}
	return web.Redirect(w, r, t.Redirect)
}
