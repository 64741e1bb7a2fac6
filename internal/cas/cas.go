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
	PathProxy     = "/cas/proxy"
	renewValidity = 30 * time.Minute
)

// Error codes of the specification.
const (
	InvalidRequest           = "INVALID_REQUEST"
	InvalidTicketSpec        = "INVALID_TICKET_SPEC"
	UnauthorizedServiceProxy = "UNAUTHORIZED_SERVICE_PROXY"
	InvalidProxyCallback     = "INVALID_PROXY_CALLBACK"
	InvalidTicket            = "INVALID_TICKET"
	InvalidService           = "INVALID_SERVICE"
	InternalError            = "INTERNAL_ERROR"
	UnauthorizedService      = "UNAUTHORIZED_SERVICE" // of /cas/proxy
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
	// ProxyClient calls the pgtUrl callbacks: it must verify certificates
	// and not follow redirects (NewProxyClient).
	ProxyClient *http.Client
}

// Register adds the routes.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.Handle(PathLogin, h.App.Handle(h.login))
	mux.Handle("GET "+PathLogout, h.App.Handle(h.logout))
	mux.HandleFunc(PathValidate, h.validate1)
	for _, p := range []string{PathSV, PathP3SV} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { h.validate(w, r, false) })
	}
	for _, p := range []string{PathPV, PathP3PV} {
		mux.HandleFunc(p, func(w http.ResponseWriter, r *http.Request) { h.validate(w, r, true) })
	}
	mux.HandleFunc(PathProxy, h.proxy)
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
	post := back.Get("method") == "POST"
	// A ticket is from a new login (isFromNewLogin, and valid for renew=true)
	// when the person signed in during this request's round trip through
	// /login: the start time travels MACed, the session's auth_time follows it.
	now := h.Now()
	fresh := false
	if t, mac := param(r, "rt"), param(r, "rmac"); cur != nil && t != "" && hmac.Equal([]byte(mac), []byte(h.renewMAC(t))) {
		if start, err := strconv.ParseInt(t, 10, 64); err == nil && now.Sub(time.UnixMilli(start)) < renewValidity &&
			!cur.Session.AuthTime.Before(time.UnixMilli(start)) {
			fresh = true
		}
	}
	if cur != nil && (fresh || !renew) {
		return h.issue(w, r, svc, service, norm, cur, fresh, post)
	}
	if cur == nil && gateway && !renew {
		http.Redirect(w, r, service, http.StatusFound)
		return nil
	}
	t := strconv.FormatInt(now.UnixMilli(), 10)
	if renew {
		back.Set("renew", "true")
	}
	back.Set("rt", t)
	back.Set("rmac", h.renewMAC(t))
	q := url.Values{"return_to": {PathLogin + "?" + back.Encode()}}
	if cur != nil {
		q.Set("reauth", "1") // renew=true with a session: the password again
	}
	return web.Redirect(w, r, "/login?"+q.Encode())
}

// issue creates a service ticket and sends the browser to the service.
func (h *Handler) issue(w http.ResponseWriter, r *http.Request, svc store.CASService, service, norm string, cur *session.Current, fresh, post bool) error {
	ctx := r.Context()
	now := h.Now()
	t := store.CASTicket{ID: "ST-" + session.NewToken(), ServiceID: svc.ID, ServiceURL: norm, AccountID: cur.Account.ID,
		SessionID: cur.Session.ID, AuthTime: cur.Session.AuthTime, Renewed: fresh, LongTerm: cur.Session.Remember,
		CreatedAt: now, ExpiresAt: now.Add(h.TicketLifetime)}
	if err := h.DB.CreateCASTicket(ctx, t); err != nil {
		return err
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.ticket", AccountID: cur.Account.ID,
		Details: map[string]string{"service_id": svc.ID, "session_id": cur.Session.ID, "new_login": strconv.FormatBool(fresh)}})
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
	pgtIOU     string
	proxies    []string
}

func failure(code, desc string) outcome { return outcome{code: code, desc: desc} }

// check validates ticket for service (the shared part of every endpoint).
// allowPT: proxy tickets are accepted (/proxyValidate). attrs: the
// attributes are released: every endpoint but CAS 1.0 does (docs/decisions.md,
// "CAS attributes on /serviceValidate"). A pgtUrl asks for a proxy-granting
// ticket (grantPGT).
func (h *Handler) check(ctx context.Context, r *http.Request, allowPT, attrs bool) outcome {
	q := r.URL.Query()
	ticket, service := q.Get("ticket"), q.Get("service")
	if ticket == "" || service == "" {
		return failure(InvalidRequest, "'ticket' and 'service' parameters are both required")
	}
	switch {
	case len(ticket) > 200:
		return failure(InvalidTicket, "ticket not recognized")
	case strings.HasPrefix(ticket, "ST-"):
	case strings.HasPrefix(ticket, "PT-") && allowPT:
	case strings.HasPrefix(ticket, "PT-"):
		return failure(InvalidTicketSpec, "a proxy ticket is validated at /proxyValidate, not /serviceValidate")
	case strings.HasPrefix(ticket, "PGT"):
		return failure(InvalidTicketSpec, "a proxy-granting ticket is not validated: ask /proxy for a proxy ticket")
	default:
		return failure(InvalidTicket, "ticket "+ticket+" not recognized")
	}
	now := h.Now()
	t, err := h.DB.ConsumeCASTicket(ctx, ticket, now)
	if errors.Is(err, store.ErrNotFound) {
		return failure(InvalidTicket, "ticket "+ticket+" not recognized")
	} else if err != nil {
		return failure(InternalError, "internal error")
	}
	if !now.Before(t.ExpiresAt) {
		return failure(InvalidTicket, "ticket "+ticket+" expired")
	}
	if norm, ok := Normalize(service); !ok || norm != t.ServiceURL {
		return failure(InvalidService, "ticket "+ticket+" was not issued for this service")
	}
	if truthy(q.Get("renew")) && !t.Renewed {
		return failure(InvalidTicket, "ticket "+ticket+" does not come from a fresh sign-in (renew)")
	}
	acct, err := h.DB.AccountByID(ctx, t.AccountID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && acct.State != store.StateActive) {
		return failure(InvalidTicket, "ticket "+ticket+" not recognized")
	} else if err != nil {
		return failure(InternalError, "internal error")
	}
	svc, err := h.DB.CASServiceByID(ctx, t.ServiceID)
	if errors.Is(err, store.ErrNotFound) {
		return failure(InvalidService, "service no longer registered")
	} else if err != nil {
		return failure(InternalError, "internal error")
	}
	o := outcome{user: acct.Identifier, proxies: t.Proxies}
	if pgtURL := q.Get("pgtUrl"); pgtURL != "" {
		if o.pgtIOU, o.code, o.desc = h.grantPGT(ctx, svc, t, pgtURL); o.code != "" {
			return o
		}
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.validate", AccountID: acct.ID,
		Details: map[string]string{"service_id": svc.ID, "session_id": t.SessionID, "kind": ticket[:2],
			"proxies": strings.Join(t.Proxies, " ")}})
	if attrs {
		o.attrs = append(o.attrs, [2]string{"authenticationDate", t.AuthTime.UTC().Format(time.RFC3339)},
			[2]string{"longTermAuthenticationRequestTokenUsed", strconv.FormatBool(t.LongTerm)},
			[2]string{"isFromNewLogin", strconv.FormatBool(t.Renewed)})
		vals, err := h.attributes(ctx, acct, svc.Attributes)
		if err != nil {
			return failure(InternalError, "internal error")
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
	o := h.check(r.Context(), r, false, false)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if o.code != "" {
		w.Write([]byte("no\n"))
		return
	}
	w.Write([]byte("yes\n" + o.user + "\n"))
}

// validate is /serviceValidate, /proxyValidate (allowPT) and their /p3/
// forms: the same answer on both, attributes included (as Apereo CAS does
// with cas.view.cas2.v3ForwardCompatible), so CAS 2.0 clients such as
// mod_auth_cas get them without special settings.
func (h *Handler) validate(w http.ResponseWriter, r *http.Request, allowPT bool) {
	o := h.check(r.Context(), r, allowPT, true)
	if wantJSON(r) {
		var body map[string]any
		if o.code != "" {
			body = map[string]any{"authenticationFailure": map[string]string{"code": o.code, "description": o.desc}}
		} else {
			attrs := map[string][]string{}
			for _, kv := range o.attrs {
				attrs[kv[0]] = append(attrs[kv[0]], kv[1])
			}
			succ := map[string]any{"user": o.user, "attributes": attrs}
			if o.pgtIOU != "" {
				succ["proxyGrantingTicket"] = o.pgtIOU
			}
			if len(o.proxies) > 0 {
				succ["proxies"] = o.proxies
			}
			body = map[string]any{"authenticationSuccess": succ}
		}
		writeJSON(w, body)
		return
	}
	var b strings.Builder
	if o.code != "" {
		b.WriteString(`  <cas:authenticationFailure code="` + o.code + `">`)
		xmlText(&b, o.desc)
		b.WriteString("</cas:authenticationFailure>\n")
	} else {
		b.WriteString("  <cas:authenticationSuccess>\n")
		element(&b, "    ", "user", o.user)
		b.WriteString("    <cas:attributes>\n")
		for _, kv := range o.attrs {
			element(&b, "      ", kv[0], kv[1])
		}
		b.WriteString("    </cas:attributes>\n")
		if o.pgtIOU != "" {
			element(&b, "    ", "proxyGrantingTicket", o.pgtIOU)
		}
		if len(o.proxies) > 0 {
			b.WriteString("    <cas:proxies>\n")
			for _, p := range o.proxies {
				element(&b, "      ", "proxy", p)
			}
			b.WriteString("    </cas:proxies>\n")
		}
		b.WriteString("  </cas:authenticationSuccess>\n")
	}
	writeXML(w, b.String())
}

func wantJSON(r *http.Request) bool { return strings.EqualFold(r.URL.Query().Get("format"), "JSON") }

// element writes <cas:name>value</cas:name> (name is one of ours).
func element(b *strings.Builder, indent, name, value string) {
	b.WriteString(indent + "<cas:" + name + ">")
	xmlText(b, value)
	b.WriteString("</cas:" + name + ">\n")
}

func xmlText(b *strings.Builder, s string) { xml.EscapeText(b, []byte(s)) }

// writeXML wraps inner in the serviceResponse.
func writeXML(w http.ResponseWriter, inner string) {
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Write([]byte("<cas:serviceResponse xmlns:cas=\"http://www.yale.edu/tp/cas\">\n" + inner + "</cas:serviceResponse>\n"))
}

// writeJSON wraps inner in the serviceResponse.
func writeJSON(w http.ResponseWriter, inner map[string]any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(map[string]any{"serviceResponse": inner})
}
