package cas

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"campusid/internal/audit"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// Paths of the CAS server.
const (
	PathLogin     = "/cas/login"
	PathLogout    = "/cas/logout"
	PathValidate  = "/cas/validate"
	PathSV        = "/cas/serviceValidate"
	PathPV        = "/cas/proxyValidate"
	PathP3SV      = "/cas/p3/serviceValidate"
	PathP3PV      = "/cas/p3/proxyValidate"
	renewValidity = 30 * time.Minute
)

// Error codes of the specification (those this slice can produce).
const (
	InvalidRequest    = "INVALID_REQUEST"
	InvalidTicketSpec = "INVALID_TICKET_SPEC"
	InvalidTicket     = "INVALID_TICKET"
	InvalidService    = "INVALID_SERVICE"
	InternalError     = "INTERNAL_ERROR"
)

// Handler serves /cas/.
type Handler struct {
	App            *web.App
	DB             *store.DB
	Sessions       *session.Manager
	Audit          *audit.Log
	Now            func() time.Time
	TicketLifetime time.Duration
	EPPNScope      string
	RenewKey       [32]byte // MACs the start time of a renew=true sign-in
}

// Register adds the routes.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle(PathLogin, h.App.Handle(h.login))
	mux.Handle("GET "+PathLogout, h.App.Handle(h.logout))
	mux.HandleFunc(PathValidate, h.validate1)
	for _, p := range []string{PathSV, PathPV} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { h.validate(w, r, false) })
	}
	for _, p := range []string{PathP3SV, PathP3PV} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { h.validate(w, r, true) })
	}
}

var errUnknownService = &web.Error{Status: http.StatusForbidden, Key: "cas.error.unknown_service"}

func param(r *http.Request, k string) string {
	if v := r.URL.Query().Get(k); v != "" {
		return v
	}
	if r.Method == http.MethodPost {
		return r.PostFormValue(k)
	}
	return ""
}

func truthy(s string) bool { return s == "true" || s == "1" }

func (h *Handler) renewMAC(t string) string {
	m := hmac.New(sha256.New, h.RenewKey[:])
	m.Write([]byte("cas renew " + t))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// login is /cas/login (specification 2.1).
func (h *Handler) login(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	cur := session.FromContext(ctx)
	service := param(r, "service")
	if service == "" {
		if cur != nil {
			return web.Redirect(w, r, "/account")
		}
		return web.Redirect(w, r, "/login")
	}
	svc, norm, err := FindService(ctx, h.DB, service)
	if errors.Is(err, store.ErrNotFound) {
		return errUnknownService
	} else if err != nil {
		return err
	}
	renew, gateway := truthy(param(r, "renew")), truthy(param(r, "gateway"))
	back := url.Values{"service": {service}}
	if m := param(r, "method"); strings.EqualFold(m, "POST") {
		back.Set("method", "POST")
	}
	if renew {
		// A fresh sign-in is one that happened after this request started:
		// the start time travels MACed, and the session's auth_time must follow it.
		now := h.Now()
		if t, mac := param(r, "rt"), param(r, "rmac"); cur != nil && t != "" && hmac.Equal([]byte(mac), []byte(h.renewMAC(t))) {
			if start, err := strconv.ParseInt(t, 10, 64); err == nil && now.Sub(time.UnixMilli(start)) < renewValidity &&
				!cur.Session.AuthTime.Before(time.UnixMilli(start)) {
				return h.issue(w, r, svc, service, norm, cur, true, back.Get("method") == "POST")
			}
		}
		t := strconv.FormatInt(now.UnixMilli(), 10)
		back.Set("renew", "true")
		back.Set("rt", t)
		back.Set("rmac", h.renewMAC(t))
		q := url.Values{"return_to": {PathLogin + "?" + back.Encode()}}
		if cur != nil {
			q.Set("reauth", "1")
		}
		return web.Redirect(w, r, "/login?"+q.Encode())
	}
	if cur == nil {
		if gateway {
			http.Redirect(w, r, service, http.StatusFound)
			return nil
		}
		return web.Redirect(w, r, "/login?"+url.Values{"return_to": {PathLogin + "?" + back.Encode()}}.Encode())
	}
	return h.issue(w, r, svc, service, norm, cur, false, back.Get("method") == "POST")
}

// issue creates a service ticket and sends the browser to the service.
func (h *Handler) issue(w http.ResponseWriter, r *http.Request, svc store.CASService, service, norm string, cur *session.Current, renewed, post bool) error {
	ctx := r.Context()
	now := h.Now()
	t := store.CASTicket{ID: "ST-" + session.NewToken(), ServiceID: svc.ID, ServiceURL: norm, AccountID: cur.Account.ID,
		SessionID: cur.Session.ID, AuthTime: cur.Session.AuthTime, Renewed: renewed, LongTerm: cur.Session.Remember,
		CreatedAt: now, ExpiresAt: now.Add(h.TicketLifetime)}
	if err := h.DB.CreateCASTicket(ctx, t); err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.ticket", AccountID: cur.Account.ID,
		Details: map[string]string{"service_id": svc.ID, "session_id": cur.Session.ID, "renew": strconv.FormatBool(renewed)}})
	web.NoReferrer(w)
	if post {
		web.AllowFormsTo(w, service)
		return h.App.Render(w, r, http.StatusOK, "cas_form_post", web.Page{Title: "cas.redirect.title",
			Data: postData{Action: template.URL(service), Name: svc.Name, Ticket: t.ID}})
	}
	target := withTicket(service, t.ID)
	if r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		http.Redirect(w, r, target, http.StatusFound)
		return nil
	}
	// After one of campusid's forms, CSP form-action would stop a redirect to another origin.
	w.Header().Set("Refresh", "0;url="+target)
	return h.App.Render(w, r, http.StatusOK, "cas_redirect", web.Page{Title: "cas.redirect.title",
		Data: redirectData{Target: template.URL(target), Name: svc.Name}})
}

type redirectData struct {
	Target template.URL // a registered service URL
	Name   string
}

type postData struct {
	Action template.URL
	Name   string
	Ticket string
}

func withTicket(service, ticket string) string {
	u, err := url.Parse(service)
	if err != nil {
		return service
	}
	frag := u.Fragment
	u.Fragment = ""
	s := u.String()
	sep := "?"
	if u.RawQuery != "" || strings.HasSuffix(s, "?") {
		sep = "&"
	}
	s += sep + "ticket=" + url.QueryEscape(ticket)
	if frag != "" {
		s += "#" + frag
	}
	return s
}

// logout is /cas/logout: the session ends; service, when registered, is
// where the browser goes next.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	cur := session.FromContext(ctx)
	if err := h.Sessions.End(ctx, w, cur); err != nil {
		return err
	}
	if cur != nil {
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.logout", AccountID: cur.Account.ID,
			Details: map[string]string{"session_id": cur.Session.ID}})
	}
	if service := r.URL.Query().Get("service"); service != "" {
		if _, _, err := FindService(ctx, h.DB, service); err == nil {
			http.Redirect(w, r, service, http.StatusFound)
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	return web.Redirect(w, r, "/login?logged_out=1")
}

// outcome is a validation's result.
type outcome struct {
	code, desc string
	user       string
	attrs      [][2]string // name, value; in order
}

// check validates ticket for service (the shared part of every endpoint).
func (h *Handler) check(ctx context.Context, r *http.Request, p3 bool) outcome {
	q := r.URL.Query()
	ticket, service := q.Get("ticket"), q.Get("service")
	if ticket == "" || service == "" {
		return outcome{code: InvalidRequest, desc: "ticket and service are required"}
	}
	if !strings.HasPrefix(ticket, "ST-") {
		if strings.HasPrefix(ticket, "PT-") || strings.HasPrefix(ticket, "PGT") {
			return outcome{code: InvalidTicketSpec, desc: "not a service ticket"}
		}
		return outcome{code: InvalidTicket, desc: "ticket " + ticket + " not recognized"}
	}
	if len(ticket) > 200 {
		return outcome{code: InvalidTicket, desc: "ticket not recognized"}
	}
	now := h.Now()
	t, err := h.DB.ConsumeCASTicket(ctx, ticket, now)
	if errors.Is(err, store.ErrNotFound) {
		return outcome{code: InvalidTicket, desc: "ticket " + ticket + " not recognized"}
	} else if err != nil {
		return outcome{code: InternalError, desc: "internal error"}
	}
	if !now.Before(t.ExpiresAt) {
		return outcome{code: InvalidTicket, desc: "ticket " + ticket + " expired"}
	}
	if norm, ok := Normalize(service); !ok || norm != t.ServiceURL {
		return outcome{code: InvalidService, desc: "ticket " + ticket + " was not issued for this service"}
	}
	if truthy(q.Get("renew")) && !t.Renewed {
		return outcome{code: InvalidTicket, desc: "ticket " + ticket + " does not come from a fresh sign-in (renew)"}
	}
	acct, err := h.DB.AccountByID(ctx, t.AccountID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && acct.State != store.StateActive) {
		return outcome{code: InvalidTicket, desc: "ticket " + ticket + " not recognized"}
	} else if err != nil {
		return outcome{code: InternalError, desc: "internal error"}
	}
	svc, err := h.DB.CASServiceByID(ctx, t.ServiceID)
	if err != nil {
		return outcome{code: InvalidService, desc: "service no longer registered"}
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.validate", AccountID: acct.ID,
		Details: map[string]string{"service_id": svc.ID, "session_id": t.SessionID}})
	o := outcome{user: acct.Identifier}
	if p3 {
		o.attrs = append(o.attrs, [2]string{"authenticationDate", t.AuthTime.UTC().Format(time.RFC3339)},
			[2]string{"longTermAuthenticationRequestTokenUsed", strconv.FormatBool(t.LongTerm)},
			[2]string{"isFromNewLogin", strconv.FormatBool(t.Renewed)})
		vals, err := h.attributes(ctx, acct, svc.Attributes)
		if err != nil {
			return outcome{code: InternalError, desc: "internal error"}
		}
		o.attrs = append(o.attrs, vals...)
	}
	return o
}

func (h *Handler) attributes(ctx context.Context, a store.Account, names []string) ([][2]string, error) {
	var out [][2]string
	add := func(k, v string) {
		if v != "" {
			out = append(out, [2]string{k, v})
		}
	}
	for _, n := range names {
		switch n {
		case "uid":
			add(n, a.Identifier)
		case "mail":
			emails, err := h.DB.EmailsOf(ctx, a.ID)
			if err != nil {
				return nil, err
			}
			if len(emails) > 0 {
				add(n, emails[0].Address)
			}
		case "displayName":
			add(n, a.DisplayName)
		case "givenName":
			add(n, a.GivenName)
		case "sn":
			add(n, a.FamilyName)
		case "eduPersonPrincipalName":
			add(n, a.Identifier+"@"+h.EPPNScope)
		case "supannEtablissement":
			add(n, a.Establishment)
		}
	}
	return out, nil
}

// validate1 is CAS 1.0 /validate: "yes\nuser\n" or "no\n".
func (h *Handler) validate1(w http.ResponseWriter, r *http.Request) {
	o := h.check(r.Context(), r, false)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if o.code != "" {
		w.Write([]byte("no\n"))
		return
	}
	w.Write([]byte("yes\n" + o.user + "\n"))
}

// validate is /serviceValidate, /proxyValidate and their /p3/ forms.
func (h *Handler) validate(w http.ResponseWriter, r *http.Request, p3 bool) {
	o := h.check(r.Context(), r, p3)
	if strings.EqualFold(r.URL.Query().Get("format"), "JSON") {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		var body any
		if o.code != "" {
			body = map[string]any{"serviceResponse": map[string]any{"authenticationFailure": map[string]string{"code": o.code, "description": o.desc}}}
		} else {
			succ := map[string]any{"user": o.user}
			if p3 {
				attrs := map[string][]string{}
				for _, kv := range o.attrs {
					attrs[kv[0]] = append(attrs[kv[0]], kv[1])
				}
				succ["attributes"] = attrs
			}
			body = map[string]any{"serviceResponse": map[string]any{"authenticationSuccess": succ}}
		}
		json.NewEncoder(w).Encode(body)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	var b strings.Builder
	b.WriteString("<cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\">\n")
	if o.code != "" {
		b.WriteString(`  <cas:authenticationFailure code="` + o.code + `">`)
		xml.EscapeText(&b, []byte(o.desc))
		b.WriteString("</cas:authenticationFailure>\n")
	} else {
		b.WriteString("  <cas:authenticationSuccess>\n    <cas:user>")
		xml.EscapeText(&b, []byte(o.user))
		b.WriteString("</cas:user>\n")
		if p3 {
			b.WriteString("    <cas:attributes>\n")
			for _, kv := range o.attrs {
				b.WriteString("      <cas:" + kv[0] + ">")
				xml.EscapeText(&b, []byte(kv[1]))
				b.WriteString("</cas:" + kv[0] + ">\n")
			}
			b.WriteString("    </cas:attributes>\n")
		}
		b.WriteString("  </cas:authenticationSuccess>\n")
	}
	b.WriteString("</cas:serviceResponse>\n")
	w.Write([]byte(b.String()))
}
