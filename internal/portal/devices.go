package portal

import (
	"context"
	"errors"
	"net/http"
	"time"

	"campusid/internal/account"
	"campusid/internal/i18n"
	"campusid/internal/notify"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// Connected devices and applications: every working refresh-token grant
// (a code flow with offline_access, a device flow) is listed under its
// application on the account page, with "sign out this device".

// appEntry is one application of the account page's "apps" section: its
// consent (when it has one: "Revoke access") and its connected devices.
type appEntry struct {
	appView
	Consent bool // the application has a consent to revoke
	Devices []deviceView
}

// deviceView is one grant: a device or an installation of the application.
type deviceView struct {
	ID       string
	Device   string // what the device is ("Windows", "Firefox sur Linux"...)
	Name     string // the application and the device, for the screen reader's button text
	Created  time.Time
	LastUsed time.Time
}

func init() { notices["device_signed_out"] = "account.done_device_signed_out" }

// loadDevices adds the account's working grants to the applications with a
// consent, and lists after them the applications that have grants but no
// consent (first-party applications).
func (h *Handler) loadDevices(ctx context.Context, l i18n.Localizer, accountID string, apps []appView) ([]appEntry, error) {
	grants, err := h.DB.ListLiveOIDCGrants(ctx, accountID, h.Now())
	if err != nil {
		return nil, err
	}
	out := make([]appEntry, 0, len(apps))
	index := map[string]int{}
	for _, a := range apps {
		index[a.ClientID] = len(out)
		out = append(out, appEntry{appView: a, Consent: true})
	}
	for _, g := range grants {
		i, ok := index[g.ClientID]
		if !ok {
			i = len(out)
			index[g.ClientID] = i
			out = append(out, appEntry{appView: appView{ClientID: g.ClientID, Name: g.ClientName, Since: g.CreatedAt}})
		}
		dev := g.DeviceName
		if dev == "" {
			dev = notify.Device(l, g.UserAgent)
		}
		out[i].Devices = append(out[i].Devices, deviceView{ID: g.ID, Device: dev, Name: account.GrantName(l, g),
			Created: g.CreatedAt, LastUsed: g.LastUsedAt})
	}
	return out, nil
}

// signOutDevice ends one grant of the account: its refresh tokens stop
// working (invalid_grant) and its access tokens are revoked. Another
// account's grant, or one already ended, is 404.
func (h *Handler) signOutDevice(w http.ResponseWriter, r *http.Request, cur *session.Current) error {
	ctx := r.Context()
	g, err := h.DB.OIDCGrantByID(ctx, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) || (err == nil && (g.AccountID != cur.Account.ID || g.RevokedAt != nil)) {
		return web.NotFound()
	}
	if err != nil {
		return err
	}
	if err := h.DB.RevokeOIDCGrant(ctx, g.ID, "user", h.Now()); errors.Is(err, store.ErrNotFound) {
		return web.NotFound()
	} else if err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "grant.revoke", AccountID: cur.Account.ID,
		Details: map[string]string{"client_id": g.ClientID, "grant_id": g.ID, "reason": "user"}})
	return done(w, r, "device_signed_out", "apps")
}
