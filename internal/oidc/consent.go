package oidc

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"

	"campusid/internal/i18n"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

type consentData struct {
	ID          string
	ClientName  string
	AccountName string
	AccountMail string
	Items       []string // what the application will get, in plain words
	NotYou      string   // sign in with another account, then back here
}

// ScopeText says in plain words what a scope gives an application.
func ScopeText(l i18n.Localizer, scope string) string {
	switch scope {
	case ScopeOpenID, ScopeProfile, ScopeEmail, ScopeOffline:
		return l.T("oidc.scope." + scope)
	}
	return l.T("oidc.scope.other", scope)
}

func (h *Handler) showConsent(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ar, cl, err := h.request(ctx, r.URL.Query().Get("id"))
	if err != nil {
		return err
	}
	cur := session.FromContext(ctx)
	if cur == nil {
		return web.Redirect(w, r, ContinuePath(ar.ID))
	}
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	d := consentData{ID: ar.ID, ClientName: cl.Name, AccountName: cur.Account.DisplayName,
		NotYou: "/login?" + url.Values{"return_to": {ContinuePath(ar.ID)}, "reauth": {"1"}}.Encode()}
	if d.AccountName == "" {
		d.AccountName = cur.Account.Identifier
	}
	emails, err := h.DB.EmailsOf(ctx, cur.Account.ID)
	if err != nil {
		return err
	}
	if e, ok := primaryVerified(emails); ok {
		d.AccountMail = e.Address
	} else {
		d.AccountMail = cur.Account.Identifier
	}
	for _, sc := range ar.Scopes {
		d.Items = append(d.Items, ScopeText(l, sc))
	}
	web.AllowFormsTo(w, ar.RedirectURI) // "Refuser" ends at the application
	return h.App.Render(w, r, http.StatusOK, "oidc_consent", web.Page{Title: "oidc.consent.title", Data: d})
}

// submitConsent records the decision: "allow" remembers it for the account
// and the application; "deny" sends access_denied to the application.
func (h *Handler) submitConsent(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	ar, cl, err := h.request(ctx, r.PostFormValue("id"))
	if err != nil {
		return err
	}
	cur := session.FromContext(ctx)
	if cur == nil {
		return web.Redirect(w, r, ContinuePath(ar.ID))
	}
	details := map[string]string{"client_id": cl.ID, "scope": strings.Join(ar.Scopes, " ")}
	switch r.PostFormValue("decision") {
	case "allow":
		now := h.Now()
		err := h.DB.InTx(ctx, func(tx *store.DB) error {
			c, err := tx.OIDCConsentOf(ctx, cur.Account.ID, cl.ID)
			if err != nil {
				c = store.OIDCConsent{AccountID: cur.Account.ID, ClientID: cl.ID, CreatedAt: now}
			}
			for _, sc := range ar.Scopes {
				if !slices.Contains(c.Scopes, sc) {
					c.Scopes = append(c.Scopes, sc)
				}
			}
			c.UpdatedAt = now
			if err := tx.SaveOIDCConsent(ctx, c); err != nil {
				return err
			}
			return tx.ConsentOIDCAuthRequest(ctx, ar.ID, cur.Account.ID)
		})
		if err != nil {
			return expiredOrNotFound(err)
		}
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "oidc.consent", AccountID: cur.Account.ID, Details: details})
		return web.Redirect(w, r, ContinuePath(ar.ID))
	case "deny":
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "oidc.consent_denied", AccountID: cur.Account.ID, Details: details})
		return h.clientError(w, r, ar, cl, oidc.ErrAccessDenied().WithDescription("the person refused"))
	}
	return web.BadRequest("oidc.error.bad_request")
}

func expiredOrNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return errExpired
	}
	return err
}
