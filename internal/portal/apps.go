package portal

import (
	"context"
	"net/http"
	"time"

	"campusid/internal/i18n"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// appView is an application the account allowed (an OpenID Connect consent).
type appView struct {
	ClientID, Name string
	Items          []string // what it gets, in plain words
	Since          time.Time
}

func (h *Handler) loadApps(ctx context.Context, l i18n.Localizer, accountID string) ([]appView, error) {
	consents, err := h.DB.ListOIDCConsents(ctx, accountID)
	if err != nil {
		return nil, err
	}
	out := make([]appView, 0, len(consents))
	for _, c := range consents {
		v := appView{ClientID: c.ClientID, Name: c.ClientName, Since: c.CreatedAt}
		for _, sc := range c.Scopes {
			if l.Has("oidc.scope." + sc) {
				v.Items = append(v.Items, l.T("oidc.scope."+sc))
			} else {
				v.Items = append(v.Items, l.T("oidc.scope.other", sc))
			}
		}
		out = append(out, v)
	}
	return out, nil
}

// revokeApp withdraws an application's access: the consent, and every
// refresh and access token it holds for the account.
func (h *Handler) revokeApp(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	client := r.PathValue("client")
	found, err := h.DB.RevokeOIDCClientAccess(ctx, cur.Account.ID, client, "user", h.Now())
	if err != nil {
		return err
	}
	if !found {
		return web.NotFound()
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "oidc.access_revoked", AccountID: cur.Account.ID,
		Details: map[string]string{"client_id": client}})
	return done(w, r, "app_revoked", "apps")
}
