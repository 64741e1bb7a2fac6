package cas

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"campusid/internal/audit"
	"campusid/internal/session"
	"campusid/internal/store"
	"campusid/internal/web"
)

// Paths of the CAS server.
const (
	PathLogin    = "/cas/login"
	PathLogout   = "/cas/logout"
	PathValidate = "/cas/validate"
	PathSV       = "/cas/serviceValidate"
	PathPV       = "/cas/proxyValidate"
	PathP3SV     = "/cas/p3/serviceValidate"
	PathP3PV     = "/cas/p3/proxyValidate"
	PathProxy    = "/cas/proxy"
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
	FlowKey        [32]byte // MACs the trips through /login (flowMAC)
	Secure         bool     // cookies only over HTTPS
	// ProxyClient calls the pgtUrl callbacks: it must verify certificates
	// and not follow redirects (NewProxyClient).
	ProxyClient *http.Client
	Metrics     *Metrics // nil: none
}

// Metrics are the CAS server's Prometheus counters.
type Metrics struct {
	Tickets     *prometheus.CounterVec // issued, by kind (ST, PT, PGT)
	Validations *prometheus.CounterVec // by result: success or the error code
}

// NewMetrics registers the counters in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Tickets: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "campusid_cas_tickets_total",
			Help: "CAS tickets issued, by kind (ST service, PT proxy, PGT proxy-granting)."}, []string{"kind"}),
		Validations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "campusid_cas_validations_total",
			Help: "CAS ticket validations, by result (success or the error code)."}, []string{"result"}),
	}
	reg.MustRegister(m.Tickets, m.Validations)
	return m
}

func (h *Handler) countTicket(kind string) {
	if h.Metrics != nil {
		h.Metrics.Tickets.WithLabelValues(kind).Inc()
	}
}

func (h *Handler) countValidation(result string) {
	if h.Metrics != nil {
		h.Metrics.Validations.WithLabelValues(result).Inc()
	}
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

// set reads a flag parameter the way the specification words it ("if this
// parameter is set"): any value but false or 0 sets it.
func set(v string) bool {
	v = strings.ToLower(v)
	return v != "" && v != "false" && v != "0"
}

// Trips through /login. flowCookie holds a nonce of the browser that left
// /cas/login for the sign-in page; the start time, the service and that
// nonce travel MACed in the return URL. A ticket is from a new login
// (isFromNewLogin, and good for renew=true) when the same browser comes
// back with a session signed in since the start, within freshLogin of that
// sign-in; the nonce is then spent, so a return URL replayed from the
// history is not a new login.
const (
	flowCookie     = "campusid_cas_flow"
	flowValidity   = 30 * time.Minute
	freshLogin     = 2 * time.Minute
	flowSkew       = 30 * time.Second // between the clocks of the nodes that start and end a trip
	flowCookiePath = "/cas/"
)

// flowIDRe: a trip's id names its cookie (one per trip, so tabs do not
// overwrite each other's).
var flowIDRe = regexp.MustCompile(`^[A-Za-z0-9_-]{10}$`)

func (h *Handler) flowMAC(id, start, service, nonce string) string {
	m := hmac.New(sha256.New, h.FlowKey[:])
	m.Write([]byte("cas flow\x00" + id + "\x00" + start + "\x00" + service + "\x00" + nonce))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (h *Handler) flowCookie(w http.ResponseWriter, id, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: flowCookie + "_" + id, Value: value, Path: flowCookiePath, MaxAge: maxAge,
		HttpOnly: true, Secure: h.Secure, SameSite: http.SameSiteLaxMode})
}

// newLogin reports whether this request ends a trip through /login in which
// cur's sign-in happened (and spends the trip).
func (h *Handler) newLogin(w http.ResponseWriter, r *http.Request, cur *session.Current, service string, now time.Time) bool {
	id, start, mac := param(r, "rf"), param(r, "rt"), param(r, "rmac")
	if cur == nil || !flowIDRe.MatchString(id) || start == "" {
		return false
	}
	c, err := r.Cookie(flowCookie + "_" + id)
	if err != nil || !hmac.Equal([]byte(mac), []byte(h.flowMAC(id, start, service, c.Value))) {
		return false
	}
	ms, err := strconv.ParseInt(start, 10, 64)
	if err != nil {
		return false
	}
	t, auth := time.UnixMilli(ms), cur.Session.AuthTime
	if now.Sub(t) >= flowValidity || auth.Before(t.Add(-flowSkew)) || now.Sub(auth) >= freshLogin {
		return false
	}
	h.flowCookie(w, id, "", -1)
	return true
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
		h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.unknown_service", Details: map[string]string{"service": service}})
		return errUnknownService
	} else if err != nil {
		return err
	}
	renew, gateway := set(param(r, "renew")), set(param(r, "gateway"))
	back := url.Values{"service": {service}}
	if m := param(r, "method"); strings.EqualFold(m, "POST") {
		back.Set("method", "POST")
	}
	if set(param(r, "warn")) {
		back.Set("warn", "true")
	}
	now := h.Now()
	fresh := h.newLogin(w, r, cur, service, now)
	if cur != nil && (fresh || !renew) {
		return h.issue(w, r, svc, destination(service, norm), norm, cur, fresh, back)
	}
	if cur == nil && gateway && !renew {
		http.Redirect(w, r, destination(service, norm), http.StatusFound)
		return nil
	}
	id, start, nonce := session.NewToken()[:10], strconv.FormatInt(now.UnixMilli(), 10), session.NewToken()
	h.flowCookie(w, id, nonce, int(flowValidity/time.Second))
	if renew {
		back.Set("renew", "true")
	}
	back.Set("rf", id)
	back.Set("rt", start)
	back.Set("rmac", h.flowMAC(id, start, service, nonce))
	q := url.Values{"return_to": {PathLogin + "?" + back.Encode()}}
	if cur != nil {
		q.Set("reauth", "1") // renew=true with a session: the password again
	}
	return web.Redirect(w, r, "/login?"+q.Encode())
}

// destination is where the browser goes for a service URL: its normalised
// form, the one the registry matched (so that no part a browser reads
// differently can lead elsewhere), with the fragment of the URL as sent.
func destination(raw, norm string) string {
	if i := strings.IndexByte(raw, '#'); i >= 0 {
		return norm + raw[i:]
	}
	return norm
}

// ticketID is a ticket of the given kind: 256 random bits in the
// specification's alphabet (letters, digits and '-'; CAS 3.0, 3.7).
func ticketID(prefix string) string { return prefix + rand.Text() + rand.Text() }

// issue creates a service ticket for norm and sends the browser to dest
// (destination).
func (h *Handler) issue(w http.ResponseWriter, r *http.Request, svc store.CASService, dest, norm string, cur *session.Current, fresh bool, opts url.Values) error {
	ctx := r.Context()
	now := h.Now()
	t := store.CASTicket{ID: ticketID("ST-"), ServiceID: svc.ID, ServiceURL: norm, AccountID: cur.Account.ID,
		SessionID: cur.Session.ID, AuthTime: cur.Session.AuthTime, Renewed: fresh, LongTerm: cur.Session.Remember,
		CreatedAt: now, ExpiresAt: now.Add(h.TicketLifetime)}
	if err := h.DB.CreateCASTicket(ctx, t); err != nil {
		return err
	}
	h.countTicket("ST")
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.ticket", AccountID: cur.Account.ID,
		Details: map[string]string{"service_id": svc.ID, "session_id": cur.Session.ID, "new_login": strconv.FormatBool(fresh)}})
	web.NoReferrer(w)
	// warn (CAS 3.0, 2.1.1): single sign-on is not transparent; the person
	// is told where they are going and goes on by hand.
	warn := opts.Get("warn") != "" && !fresh
	if opts.Get("method") == "POST" {
		web.AllowFormsTo(w, norm)
		return h.App.Render(w, r, http.StatusOK, "cas_form_post", web.Page{Title: "cas.redirect.title",
			Data: postData{Action: template.URL(norm), Name: svc.Name, Ticket: t.ID, Warn: warn, User: cur.Account.Identifier}})
	}
	target := withTicket(dest, t.ID)
	if !warn && r.Header.Get("Sec-Fetch-Site") != "same-origin" {
		http.Redirect(w, r, target, http.StatusFound)
		return nil
	}
	if !warn {
		// After one of campusid's forms, CSP form-action would stop a redirect to another origin.
		w.Header().Set("Refresh", "0;url="+target)
	}
	return h.App.Render(w, r, http.StatusOK, "cas_redirect", web.Page{Title: "cas.redirect.title",
		Data: redirectData{Target: template.URL(target), Name: svc.Name, Warn: warn, User: cur.Account.Identifier}})
}

type redirectData struct {
	Target template.URL // a registered service URL
	Name   string
	Warn   bool
	User   string
}

type postData struct {
	Action template.URL
	Name   string
	Ticket string
	Warn   bool // no automatic submission
	User   string
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
		if _, norm, err := FindService(ctx, h.DB, service); err == nil {
			http.Redirect(w, r, destination(service, norm), http.StatusFound)
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
// allowPT: proxy tickets are accepted (/proxyValidate). cas1: CAS 1.0
// /validate, which releases no attributes and grants no PGT; every other
// endpoint releases the attributes (docs/decisions.md, "CAS attributes on
// /serviceValidate") and answers a pgtUrl (grantPGT).
func (h *Handler) check(ctx context.Context, r *http.Request, allowPT, cas1 bool) (o outcome) {
	q := r.URL.Query()
	ticket, service := q.Get("ticket"), q.Get("service")
	var accountID string
	defer func() {
		if o.code != "" {
			h.countValidation(o.code)
			h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.validate_failure", AccountID: accountID,
				Details: map[string]string{"code": o.code, "service": service}})
		} else {
			h.countValidation("success")
		}
	}()
	if f := q.Get("format"); f != "" && !strings.EqualFold(f, "XML") && !strings.EqualFold(f, "JSON") {
		return failure(InvalidRequest, "format must be XML or JSON")
	}
	if ticket == "" || service == "" {
		return failure(InvalidRequest, "'ticket' and 'service' parameters are both required")
	}
	if strings.HasPrefix(ticket, "PGT") {
		return failure(InvalidTicketSpec, "a proxy-granting ticket is not validated: ask /proxy for a proxy ticket")
	}
	if len(ticket) > 200 || (!strings.HasPrefix(ticket, "ST-") && !strings.HasPrefix(ticket, "PT-")) {
		return failure(InvalidTicket, "ticket not recognized")
	}
	now := h.Now()
	// Consumed first, whatever comes next: one validation attempt per ticket.
	t, err := h.DB.ConsumeCASTicket(ctx, ticket, now)
	switch {
	case strings.HasPrefix(ticket, "PT-") && !allowPT:
		accountID = t.AccountID
		return failure(InvalidTicketSpec, "a proxy ticket is validated at /proxyValidate, not /serviceValidate")
	case errors.Is(err, store.ErrNotFound):
		return failure(InvalidTicket, "ticket "+ticket+" not recognized")
	case err != nil:
		return failure(InternalError, "internal error")
	}
	accountID = t.AccountID
	if !now.Before(t.ExpiresAt) {
		return failure(InvalidTicket, "ticket "+ticket+" expired")
	}
	if norm, ok := Normalize(service); !ok || norm != t.ServiceURL {
		return failure(InvalidService, "ticket "+ticket+" was not issued for this service")
	}
	if set(q.Get("renew")) && !t.Renewed {
		return failure(InvalidTicket, "ticket "+ticket+" does not come from a fresh sign-in (renew)")
	}
	acct, code, desc := h.signedIn(ctx, t.SessionID, now)
	if code != "" {
		return failure(code, "ticket "+ticket+": "+desc)
	}
	svc, err := h.DB.CASServiceByID(ctx, t.ServiceID)
	if errors.Is(err, store.ErrNotFound) {
		return failure(InvalidService, "service no longer registered")
	} else if err != nil {
		return failure(InternalError, "internal error")
	}
	o = outcome{user: acct.Identifier, proxies: t.Proxies}
	if pgtURL := q.Get("pgtUrl"); pgtURL != "" && !cas1 {
		if o.pgtIOU, o.code, o.desc = h.grantPGT(ctx, svc, t, pgtURL); o.code != "" {
			return o
		}
	}
	h.Audit.Record(ctx, nil, store.AuditEvent{Type: "cas.validate", AccountID: acct.ID,
		Details: map[string]string{"service_id": svc.ID, "session_id": t.SessionID, "kind": ticket[:2],
			"proxies": strings.Join(t.Proxies, " ")}})
	if !cas1 {
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

// signedIn returns the account of the sign-in a ticket came from, while it
// lasts: its session not ended, its account active. Otherwise an error code
// and why.
func (h *Handler) signedIn(ctx context.Context, sessionID string, now time.Time) (store.Account, string, string) {
	acct, err := h.DB.AccountOfLiveSession(ctx, sessionID, now)
	switch {
	case errors.Is(err, store.ErrNotFound) || (err == nil && acct.State != store.StateActive):
		return acct, InvalidTicket, "the sign-in it came from has ended"
	case err != nil:
		return acct, InternalError, "internal error"
	}
	return acct, "", ""
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
	o := h.check(r.Context(), r, false, true)
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
	o := h.check(r.Context(), r, allowPT, false)
	if o.code != "" {
		writeFailure(w, r, "authenticationFailure", o.code, o.desc)
		return
	}
	if wantJSON(r) {
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
		writeJSON(w, map[string]any{"authenticationSuccess": succ})
		return
	}
	var b strings.Builder
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

// writeFailure answers a failure of kind tag (authenticationFailure,
// proxyFailure) in the format asked.
func writeFailure(w http.ResponseWriter, r *http.Request, tag, code, desc string) {
	if wantJSON(r) {
		writeJSON(w, map[string]any{tag: map[string]string{"code": code, "description": desc}})
		return
	}
	var b strings.Builder
	b.WriteString("  <cas:" + tag + ` code="` + code + `">`)
	xmlText(&b, desc)
	b.WriteString("</cas:" + tag + ">\n")
	writeXML(w, b.String())
}

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
