package oidc

// The device authorization grant (RFC 8628), for desktop and command-line
// clients (a sync client, a CLI):
//
//	POST /oauth2/device_authorization (client_id, scope) ──▶ device_code, user_code WDJB-MJHT,
//	     │                                                   verification_uri(_complete) /device[?user_code=]
//	     │ the device shows the code and polls the token endpoint
//	     ▼
//	GET /device[?user_code=] ── no session ──▶ /login?return_to=/device?user_code=... ──▶ back here
//	     │ the code typed (any case, spaces and dashes ignored) or pre-filled; wrong codes throttled per address
//	     ▼
//	consent page "<application> sur <device> demande l'accès à votre compte" ── POST /device/consent allow | deny
//	     ▼
//	POST /oauth2/token grant_type=urn:ietf:params:oauth:grant-type:device_code
//	     authorization_pending │ slow_down (faster than the interval) │ access_denied │ expired_token
//	     │ approved: the device code is claimed once, then tokens (a grant: a connected device)
//
// zitadel/oidc serves the device_authorization endpoint over
// op.DeviceAuthorizationStorage; the token endpoint's device_code grant is
// campusid's own (deviceToken), because the library reads the wall clock,
// turns every storage error into access_denied and cannot claim the device
// code once: here the injected clock decides expiry and slow_down, and a
// device code gives tokens exactly once.

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	httphelper "github.com/zitadel/oidc/v3/pkg/http"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"campusid/internal/i18n"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/throttle"
	"campusid/internal/web"
)

const (
	PathDeviceAuthorization = "/oauth2/device_authorization"
	PathDevice              = "/device"
	PathDeviceConsent       = "/device/consent"
)

// Defaults of the device flow when the Handler leaves them zero.
const (
	defaultDeviceLifetime     = 10 * time.Minute
	defaultDevicePollInterval = 5 * time.Second
	slowDownStep              = 5 // seconds added to the interval after a slow_down (RFC 8628, 3.5)
)

var _ op.DeviceAuthorizationStorage = (*storage)(nil)

func (h *Handler) deviceLifetime() time.Duration {
	if h.DeviceCodeLifetime > 0 {
		return h.DeviceCodeLifetime
	}
	return defaultDeviceLifetime
}

func (h *Handler) devicePollInterval() time.Duration {
	if h.DevicePollInterval > 0 {
		return h.DevicePollInterval
	}
	return defaultDevicePollInterval
}

func (h *Handler) deviceConfig() *op.DeviceAuthorizationConfig {
	return &op.DeviceAuthorizationConfig{Lifetime: h.deviceLifetime(), PollInterval: h.devicePollInterval(),
		UserFormPath: PathDevice, UserCode: op.UserCodeBase20}
}

// userCodeGuesses limits wrong user codes per client address.
func (h *Handler) userCodeGuesses() throttle.Backoff {
	return throttle.Backoff{DB: h.DB, Prefix: "device:ip:", Free: 5, Max: time.Minute, Window: 15 * time.Minute}
}

// NormalizeUserCode keeps the letters of a typed user code, upper case:
// "wdjb mjht", "WDJB-MJHT" and "wdjbmjht" are one code.
func NormalizeUserCode(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		}
		if b.Len() > 32 {
			break
		}
	}
	return b.String()
}

// FormatUserCode shows a normalized code in groups of four (WDJB-MJHT).
func FormatUserCode(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// deviceAuthorization checks the client and its scopes, then lets the
// library answer (StoreDeviceAuthorization keeps the request).
func (h *Handler) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(h.ctx(r))
	if r.Method != http.MethodPost {
		op.RequestError(w, r, oidc.ErrInvalidRequest().WithDescription("POST required"), nil)
		return
	}
	clientID, authenticated, err := op.ClientIDFromRequest(r, h.op)
	if err != nil {
		op.RequestError(w, r, err, nil)
		return
	}
	cl, err := h.storage.client(r.Context(), clientID)
	if err != nil || authenticated != op.IsConfidentialType(cl) {
		op.RequestError(w, r, oidc.ErrInvalidClient().WithDescription("unknown client or wrong credentials"), nil)
		return
	}
	if !cl.hasGrant(GrantDeviceCode) {
		op.RequestError(w, r, oidc.ErrUnauthorizedClient().WithDescription("this client may not use the device flow"), nil)
		return
	}
	for _, sc := range strings.Fields(r.Form.Get("scope")) {
		if !cl.IsScopeAllowed(sc) || (sc == ScopeOffline && !cl.hasGrant(GrantRefresh)) {
			op.RequestError(w, r, oidc.ErrInvalidScope().WithDescription("scope %q is not allowed for this client", sc), nil)
			return
		}
	}
	op.DeviceAuthorization(w, r, h.op)
}

// StoreDeviceAuthorization keeps a device request. The expiry is the
// injected clock's (the library's comes from the wall clock); the user code
// is kept without its dash.
func (s *storage) StoreDeviceAuthorization(ctx context.Context, clientID, deviceCode, userCode string, _ time.Time, scopes []string) error {
	now := s.now()
	return s.db().CreateOIDCDeviceCode(ctx, store.OIDCDeviceCode{DeviceCodeHash: hashToken(deviceCode),
		UserCode: NormalizeUserCode(userCode), ClientID: clientID, Scopes: scopes,
		DeviceName: truncate(strings.TrimSpace(web.Info(ctx).UserAgent), 120), CreatedAt: now,
		ExpiresAt: now.Add(s.h.deviceLifetime()), PollInterval: int(s.h.devicePollInterval() / time.Second)})
}

// GetDeviceAuthorizatonState answers the library's device token endpoint,
// which campusid does not use (deviceToken does the job); kept correct for
// the interface: the expiry is moved to the wall clock.
func (s *storage) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	d, err := s.db().OIDCDeviceCodeByHash(ctx, hashToken(deviceCode))
	if err != nil {
		return nil, err
	}
	if d.ClientID != clientID {
		return nil, errors.New("oidc: device code of another client")
	}
	st := &op.DeviceAuthorizationState{ClientID: d.ClientID, Scopes: d.Scopes, Expires: time.Now().Add(d.ExpiresAt.Sub(s.now())),
		Done: d.State == store.DeviceCodeApproved, Denied: d.State == store.DeviceCodeDenied, Subject: d.AccountID, AMR: d.AMR}
	if d.AuthTime != nil {
		st.AuthTime = *d.AuthTime
	}
	return st, nil
}

// deviceRequest is an approved device authorization being turned into tokens.
type deviceRequest struct {
	d          store.OIDCDeviceCode
	clientName string
}

var _ op.IDTokenRequest = (*deviceRequest)(nil)

func (r *deviceRequest) GetAMR() []string      { return r.d.AMR }
func (r *deviceRequest) GetAudience() []string { return []string{r.d.ClientID} }
func (r *deviceRequest) GetClientID() string   { return r.d.ClientID }
func (r *deviceRequest) GetScopes() []string   { return r.d.Scopes }
func (r *deviceRequest) GetSubject() string    { return r.d.AccountID }
func (r *deviceRequest) sessionID() string     { return r.d.SessionID }
func (r *deviceRequest) GetAuthTime() time.Time {
	if r.d.AuthTime == nil {
		return time.Time{}
	}
	return *r.d.AuthTime
}

// deviceGrantName names the connected device: the application, and the
// device when it said what it is.
func deviceGrantName(clientName, device string) string {
	if device == "" {
		return clientName
	}
	return truncate(clientName+" ("+device+")", 200)
}

// deviceToken is the token endpoint's device_code grant (RFC 8628, 3.4-3.5).
func (h *Handler) deviceToken(w http.ResponseWriter, r *http.Request) {
	r = r.WithContext(h.ctx(r))
	if err := h.deviceTokenErr(w, r); err != nil {
		op.RequestError(w, r, err, nil)
	}
}

func (h *Handler) deviceTokenErr(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	clientID, authenticated, err := op.ClientIDFromRequest(r, h.op)
	if err != nil {
		return err
	}
	cl, err := h.storage.client(ctx, clientID)
	if err != nil || authenticated != op.IsConfidentialType(cl) {
		return oidc.ErrInvalidClient().WithDescription("unknown client or wrong credentials")
	}
	if !cl.hasGrant(GrantDeviceCode) {
		return oidc.ErrUnauthorizedClient().WithDescription("this client may not use the device flow")
	}
	code := r.PostForm.Get("device_code")
	if code == "" {
		return oidc.ErrInvalidRequest().WithDescription("device_code is missing")
	}
	hash := hashToken(code)
	d, err := h.DB.OIDCDeviceCodeByHash(ctx, hash)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.ClientID != clientID) {
		return errGrant("unknown device code")
	}
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	now := h.Now()
	if d.State == store.DeviceCodeUsed {
		return errGrant("this device code was already used")
	}
	if !now.Before(d.ExpiresAt) {
		return oidc.ErrExpiredDeviceCode()
	}
	interval := d.PollInterval
	tooSoon := d.LastPollAt != nil && now.Sub(*d.LastPollAt) < time.Duration(interval)*time.Second
	if tooSoon {
		interval += slowDownStep
	}
	if err := h.DB.PollOIDCDeviceCode(ctx, hash, now, interval); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	if tooSoon {
		return oidc.ErrSlowDown()
	}
	switch d.State {
	case store.DeviceCodePending:
		return oidc.ErrAuthorizationPending()
	case store.DeviceCodeDenied:
		return oidc.ErrAccessDenied().WithDescription("the person refused")
	case store.DeviceCodeApproved:
	default:
		return errGrant("unknown device code")
	}
	if _, err := h.storage.liveAccount(ctx, d.AccountID); err != nil {
		return errGrant("the account may not sign in")
	}
	req := &deviceRequest{d: d, clientName: cl.c.Name}
	id, refresh, exp, err := h.storage.deviceTokens(ctx, req, hash)
	if err != nil {
		return err
	}
	access, err := op.CreateBearerToken(id, d.AccountID, h.op.Crypto())
	if err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	resp := &oidc.AccessTokenResponse{AccessToken: access, RefreshToken: refresh, TokenType: oidc.BearerToken,
		ExpiresIn: uint64(max(exp.Sub(now), 0) / time.Second), Scope: d.Scopes}
	if containsScope(d.Scopes, ScopeOpenID) {
		resp.IDToken, err = op.CreateIDToken(ctx, h.Issuer, req, cl.IDTokenLifetime(), access, "", h.storage, cl)
		if err != nil {
			return oidc.ErrServerError().WithParent(err)
		}
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "oidc.device_token", AccountID: d.AccountID, Actor: "client:" + clientID,
		Details: map[string]string{"client_id": clientID, "scope": strings.Join(d.Scopes, " ")}})
	w.Header().Set("Cache-Control", "no-store")
	httphelper.MarshalJSON(w, resp)
	return nil
}

func containsScope(scopes []string, s string) bool {
	for _, x := range scopes {
		if x == s {
			return true
		}
	}
	return false
}

// deviceTokens claims the device code (once) and issues an access token,
// with a grant and its refresh token when offline_access was granted.
func (s *storage) deviceTokens(ctx context.Context, r *deviceRequest, hash string) (string, string, time.Time, error) {
	now := s.now()
	d := r.d
	t := store.OIDCAccessToken{Scopes: d.Scopes, AccountID: d.AccountID, ClientID: d.ClientID, SessionID: d.SessionID,
		AuthTime: d.AuthTime, CreatedAt: now, ExpiresAt: now.Add(s.h.AccessTokenLifetime)}
	refresh := ""
	cl, err := s.client(ctx, d.ClientID)
	if err != nil {
		return "", "", time.Time{}, err
	}
	offline := containsScope(d.Scopes, ScopeOffline) && cl.hasGrant(GrantRefresh)
	info := web.Info(ctx)
	err = s.db().InTx(ctx, func(tx *store.DB) error {
		if err := tx.ClaimOIDCDeviceCode(ctx, hash); errors.Is(err, store.ErrNotFound) {
			return errGrant("this device code was already used")
		} else if err != nil {
			return err
		}
		if offline {
			refresh = session.NewToken()
			g := store.OIDCGrant{AccountID: d.AccountID, ClientID: d.ClientID, Scopes: d.Scopes, AuthTime: r.GetAuthTime(),
				AMR: d.AMR, SessionID: d.SessionID, DeviceName: deviceGrantName(r.clientName, d.DeviceName),
				UserAgent: truncate(info.UserAgent, 300), IP: info.ClientIP, CreatedAt: now, LastUsedAt: now}
			if err := tx.CreateOIDCGrant(ctx, &g); err != nil {
				return err
			}
			if err := tx.CreateOIDCRefreshToken(ctx, store.OIDCRefreshToken{TokenHash: hashToken(refresh), GrantID: g.ID,
				CreatedAt: now, ExpiresAt: now.Add(s.h.RefreshTokenLifetime)}); err != nil {
				return err
			}
			t.GrantID = g.ID
		}
		return tx.CreateOIDCAccessToken(ctx, &t)
	})
	if err != nil {
		var oe *oidc.Error
		if errors.As(err, &oe) {
			return "", "", time.Time{}, oe
		}
		return "", "", time.Time{}, oidc.ErrServerError().WithParent(err)
	}
	return t.ID, refresh, t.ExpiresAt, nil
}

// --- the /device pages --------------------------------------------------------

type deviceData struct {
	UserCode    string // as typed or pre-filled
	CodeError   bool
	ClientName  string
	Device      string
	Intro       string
	Account     string
	AccountMail string
	Items       []string
	NotYou      string
}

func devicePath(userCode string) string {
	if userCode == "" {
		return PathDevice
	}
	return PathDevice + "?" + url.Values{"user_code": {userCode}}.Encode()
}

// showDevice: sign in first; then the code form, or straight the consent
// page when the link carried a good code.
func (h *Handler) showDevice(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	typed := truncate(r.URL.Query().Get("user_code"), 64)
	cur := session.FromContext(ctx)
	if cur == nil {
		return web.Redirect(w, r, "/login?"+url.Values{"return_to": {devicePath(typed)}}.Encode())
	}
	if typed == "" {
		return h.App.Render(w, r, http.StatusOK, "device", web.Page{Title: "device.title", Data: deviceData{}})
	}
	return h.checkUserCode(w, r, cur, typed)
}

func (h *Handler) submitDevice(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	typed := truncate(r.PostFormValue("user_code"), 64)
	cur := session.FromContext(ctx)
	if cur == nil {
		return web.Redirect(w, r, "/login?"+url.Values{"return_to": {devicePath(typed)}}.Encode())
	}
	return h.checkUserCode(w, r, cur, typed)
}

// checkUserCode finds the pending request of a typed code and shows its
// consent page; a wrong code counts against the client address.
func (h *Handler) checkUserCode(w http.ResponseWriter, r *http.Request, cur *session.Current, typed string) error {
	ctx := r.Context()
	l := i18n.Localizer{Lang: web.Info(ctx).Lang}
	ip := web.Info(ctx).ClientIP
	guesses := h.userCodeGuesses()
	now := h.Now()
	again := func(status int, msg string) error {
		return h.App.Render(w, r, status, "device", web.Page{Title: "device.title", Error: msg,
			Data: deviceData{UserCode: typed, CodeError: true}})
	}
	if wait, err := guesses.Wait(ctx, ip, now); err != nil {
		return err
	} else if wait > 0 {
		web.RetryAfter(w, wait)
		return again(http.StatusTooManyRequests, l.T("device.wait", l.Seconds(int(wait.Seconds())+1)))
	}
	d, err := h.DB.OIDCDeviceCodeByUserCode(ctx, NormalizeUserCode(typed))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil || d.State != store.DeviceCodePending || !now.Before(d.ExpiresAt) {
		if err := guesses.Fail(ctx, ip, now); err != nil {
			return err
		}
		return again(http.StatusBadRequest, l.T("device.wrong_code"))
	}
	cl, err := h.DB.OIDCClientByID(ctx, d.ClientID)
	if err != nil {
		return err
	}
	code := FormatUserCode(d.UserCode)
	data := deviceData{UserCode: code, ClientName: cl.Name, Device: d.DeviceName, Account: cur.Account.DisplayName,
		NotYou: "/login?" + url.Values{"return_to": {devicePath(code)}, "reauth": {"1"}}.Encode()}
	if d.DeviceName != "" {
		data.Intro = l.T("device.consent.intro_device", cl.Name, d.DeviceName)
	} else {
		data.Intro = l.T("device.consent.intro", cl.Name)
	}
	if data.Account == "" {
		data.Account = cur.Account.Identifier
	}
	emails, err := h.DB.EmailsOf(ctx, cur.Account.ID)
	if err != nil {
		return err
	}
	if e, ok := primaryVerified(emails); ok {
		data.AccountMail = e.Address
	} else {
		data.AccountMail = cur.Account.Identifier
	}
	for _, sc := range d.Scopes {
		data.Items = append(data.Items, ScopeText(l, sc))
	}
	return h.App.Render(w, r, http.StatusOK, "device_consent", web.Page{Title: "oidc.consent.title", Data: data})
}

// submitDeviceConsent records the decision; the device learns it at its next poll.
func (h *Handler) submitDeviceConsent(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	typed := truncate(r.PostFormValue("user_code"), 64)
	cur := session.FromContext(ctx)
	if cur == nil {
		return web.Redirect(w, r, "/login?"+url.Values{"return_to": {devicePath(typed)}}.Encode())
	}
	code := NormalizeUserCode(typed)
	d, err := h.DB.OIDCDeviceCodeByUserCode(ctx, code)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (d.State != store.DeviceCodePending || !h.Now().Before(d.ExpiresAt))) {
		return &web.Error{Status: http.StatusBadRequest, Key: "device.expired"}
	}
	if err != nil {
		return err
	}
	state, event, key := store.DeviceCodeApproved, "oidc.device_allow", "device.done_allowed"
	switch r.PostFormValue("decision") {
	case "allow":
	case "deny":
		state, event, key = store.DeviceCodeDenied, "oidc.device_deny", "device.done_denied"
	default:
		return web.BadRequest("oidc.error.bad_request")
	}
	s := cur.Session
	if err := h.DB.DecideOIDCDeviceCode(ctx, code, state, cur.Account.ID, s.ID, s.AuthTime, strings.Fields(s.AuthMethods)); errors.Is(err, store.ErrNotFound) {
		return &web.Error{Status: http.StatusBadRequest, Key: "device.expired"}
	} else if err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: event, AccountID: cur.Account.ID,
		Details: map[string]string{"client_id": d.ClientID, "session_id": s.ID, "scope": strings.Join(d.Scopes, " ")}})
	cl, err := h.DB.OIDCClientByID(ctx, d.ClientID)
	if err != nil {
		return err
	}
	return h.App.Render(w, r, http.StatusOK, "device_done", web.Page{Title: key + "_title",
		Data: deviceData{ClientName: cl.Name, CodeError: state == store.DeviceCodeDenied}})
}
