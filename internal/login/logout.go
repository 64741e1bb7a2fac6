package login

import (
	"net/http"
	"net/url"

	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// showLogout asks for confirmation: a link or an image elsewhere must not
// sign people out. The button on every page posts directly.
func (h *Handler) showLogout(w http.ResponseWriter, r *http.Request) error {
	if session.FromContext(r.Context()) == nil {
		return web.Redirect(w, r, loginURL("", url.Values{"logged_out": {"1"}}))
	}
	return h.App.Render(w, r, http.StatusOK, "logout", web.Page{Title: "logout.title"})
}

func (h *Handler) submitLogout(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	cur := session.FromContext(ctx)
	if err := h.Sessions.End(ctx, w, cur); err != nil {
		return err
	}
	if cur != nil {
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "logout", AccountID: cur.Account.ID,
			Details: map[string]string{"session_id": cur.Session.ID}})
	}
	return web.Redirect(w, r, loginURL("", url.Values{"logged_out": {"1"}}))
}
