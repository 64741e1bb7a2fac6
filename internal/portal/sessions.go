package portal

import (
	"errors"
	"fmt"
	"net/http"

	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

func (h *Handler) revokeSession(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	id := r.PathValue("id")
	if id == cur.Session.ID { // "sign out this session" on the current one is a logout
		if err := h.Sessions.End(ctx, w, cur); err != nil {
			return err
		}
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "logout", AccountID: cur.Account.ID, Details: map[string]string{"session_id": id}})
		return web.Redirect(w, r, "/login?logged_out=1")
	}
	err := h.DB.RevokeSession(ctx, cur.Account.ID, id, h.Now())
	if errors.Is(err, store.ErrNotFound) {
		return web.NotFound()
	}
	if err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "session.revoke", AccountID: cur.Account.ID, Details: map[string]string{"session_id": id}})
	return done(w, r, "session_ended", "sessions")
}

func (h *Handler) revokeOthers(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	n, err := h.DB.RevokeOtherSessions(ctx, cur.Account.ID, cur.Session.ID, h.Now())
	if err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "session.revoke_others", AccountID: cur.Account.ID,
		Details: map[string]string{"count": fmt.Sprint(n)}})
	return done(w, r, "others_ended", "sessions")
}
