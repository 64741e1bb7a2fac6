package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"campusid/internal/i18n"
)

// RequestInfo is what the middleware learns about a request.
type RequestInfo struct {
	RequestID string
	ClientIP  string
	UserAgent string
	Lang      string
	Route     string // the mux pattern that matched, for metrics
	// MailQueued is set when the request queued an email, so the mail
	// worker can be woken once the request's transaction has committed.
	MailQueued bool
	Start      time.Time
}

type infoKey struct{}

// Routed records the pattern mux matched in the request's info, for the
// metrics. It wraps the ServeMux itself: a middleware between them that
// copies the request (WithContext) would hide the pattern, which the mux
// sets on the request it is given.
func Routed(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		Info(r.Context()).Route = r.Pattern
	})
}

// Info returns the request's metadata (a zero value outside the middleware).
func Info(ctx context.Context) *RequestInfo {
	if i, ok := ctx.Value(infoKey{}).(*RequestInfo); ok {
		return i
	}
	return &RequestInfo{Lang: "fr", Start: time.Now()}
}

// WithInfo returns ctx carrying info (for work started outside HTTP, e.g. the CLI).
func WithInfo(ctx context.Context, info *RequestInfo) context.Context {
	return context.WithValue(ctx, infoKey{}, info)
}

// Options configure the middleware chain.
type Options struct {
	PublicURL      string
	DefaultLang    string
	TrustedProxies []string // CIDRs or addresses
	Metrics        *Metrics
	// CrossOriginBypass lists mux patterns exempt from the cross-origin form
	// check: endpoints other sites call by design and that take no cookie
	// (the OAuth 2.0 token, introspection, revocation... endpoints).
	CrossOriginBypass []string
}

// Middleware wraps the mux with everything a request goes through: panic
// recovery, request id, client address, language, logging, metrics,
// security headers and cross-origin form protection. The route label of
// the metrics comes from Routed, which must wrap the ServeMux itself.
func (a *App) Middleware(mux http.Handler, o Options) http.Handler {
	proxies := parsePrefixes(o.TrustedProxies)
	secure := strings.HasPrefix(o.PublicURL, "https://")
	cop := http.NewCrossOriginProtection()
	if u, err := url.Parse(o.PublicURL); err == nil {
		cop.AddTrustedOrigin(u.Scheme + "://" + u.Host)
	}
	for _, p := range o.CrossOriginBypass {
		cop.AddInsecureBypassPattern(p)
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.Fail(w, r, &Error{Status: http.StatusForbidden, Key: "error.cross_origin"})
	}))
	inner := cop.Handler(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &RequestInfo{Start: time.Now(), UserAgent: r.UserAgent()}
		info.ClientIP = clientIP(r, proxies)
		info.RequestID = r.Header.Get("X-Request-Id")
		if info.RequestID == "" || len(info.RequestID) > 64 || !isPeer(r, proxies) {
			info.RequestID = newRequestID()
		}
		info.Lang = i18n.Negotiate(r, o.DefaultLang)
		r = r.WithContext(WithInfo(r.Context(), info))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			if p := recover(); p != nil {
				a.Log.Error("panic", "request_id", info.RequestID, "panic", p, "stack", string(debug.Stack()))
				if !sw.wrote {
					a.Fail(sw, r, &Error{Status: http.StatusInternalServerError, Key: "error.internal"})
				}
			}
			d := time.Since(info.Start)
			if o.Metrics != nil {
				o.Metrics.observe(info.Route, r.Method, sw.status, d)
			}
			a.Log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("request_id", info.RequestID),
				slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", sw.status),
				slog.Duration("duration", d), slog.String("client_ip", info.ClientIP))
		}()
		h := sw.Header()
		h.Set("X-Request-Id", info.RequestID)
		h.Set("Content-Security-Policy", contentSecurityPolicy(""))
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if !strings.HasPrefix(r.URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		h.Set("Vary", "Cookie, Accept-Language")
		if secure {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		inner.ServeHTTP(sw, r)
	})
}

// contentSecurityPolicy is the policy of every page; forms may post to
// this server and to the extra sources (space-separated).
func contentSecurityPolicy(formSources string) string {
	if formSources != "" {
		formSources = " " + formSources
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"form-action 'self'" + formSources + "; frame-ancestors 'none'; base-uri 'none'"
}

// AllowFormsTo lets the page's forms, and the redirects that follow their
// submission (browsers check those too), reach the origins of these URLs:
// a page whose form ends at an application (OpenID Connect form_post,
// consent refused, logout back to the application).
func AllowFormsTo(w http.ResponseWriter, urls ...string) {
	var sources []string
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" {
			continue
		}
		src := u.Scheme + ":"
		if u.Host != "" {
			src = u.Scheme + "://" + u.Host
		}
		if !strings.ContainsAny(src, " ;,'\"\r\n") {
			sources = append(sources, src)
		}
	}
	w.Header().Set("Content-Security-Policy", contentSecurityPolicy(strings.Join(sources, " ")))
}

// NoReferrer marks a response that carries a secret in its URL (token pages).
func NoReferrer(w http.ResponseWriter) { w.Header().Set("Referrer-Policy", "no-referrer") }

type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func parsePrefixes(list []string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

func trusted(addr string, proxies []netip.Prefix) bool {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func isPeer(r *http.Request, proxies []netip.Prefix) bool { return trusted(remoteHost(r), proxies) }

// clientIP is the peer address, or, when the peer is a trusted proxy, the
// right-most address of X-Forwarded-For that is not itself a trusted proxy.
func clientIP(r *http.Request, proxies []netip.Prefix) string {
	ip := remoteHost(r)
	if !trusted(ip, proxies) {
		return ip
	}
	hops := strings.Split(r.Header.Get("X-Forwarded-For"), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		h := strings.TrimSpace(hops[i])
		if h == "" {
			continue
		}
		if _, err := netip.ParseAddr(h); err != nil {
			break
		}
		if !trusted(h, proxies) {
			return h
		}
		ip = h
	}
	return ip
}

// LocalPath reports whether target is a path on this server, safe to
// redirect to: it starts with one "/", has no scheme or host, and no
// backslash or control character that a browser could read as one.
func LocalPath(target string) bool {
	if target == "" || target[0] != '/' || strings.HasPrefix(target, "//") {
		return false
	}
	if strings.ContainsAny(target, "\\\r\n\t") {
		return false
	}
	u, err := url.Parse(target)
	return err == nil && u.Scheme == "" && u.Host == "" && u.User == nil
}
