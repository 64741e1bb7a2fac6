// Package cas is campusid's CAS server (Apereo CAS Protocol 3.0): the
// service registry, /cas/login, service tickets, the validation endpoints
// (1.0, 2.0 XML, 3.0 with attributes, XML or JSON) and /cas/logout. The
// single sign-on session (the ticket-granting ticket of the specification)
// is campusid's session, shared with OpenID Connect. See docs/cas.md.
package cas

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"campusid/internal/store"
)

// Attributes a service may receive. memberOf is accepted and released once
// campusid keeps groups (they arrive with SCIM provisioning); until then
// accounts have none, so it is never in an answer.
var Attributes = []string{"uid", "mail", "displayName", "givenName", "sn", "eduPersonPrincipalName", "supannEtablissement", "memberOf"}

// ServiceSpec is a service as given on the command line or in the file.
type ServiceSpec struct {
	ID, Name, URL, Match string
	Attributes           []string
	Proxy                bool
	LogoutURL            string
	Order                int
}

var idRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Service checks the spec and returns the service.
func (s ServiceSpec) Service() (store.CASService, error) {
	var errs []error
	if !idRe.MatchString(s.ID) {
		errs = append(errs, fmt.Errorf("id: want 1 to 64 letters, digits, '.', '_' or '-', got %q", s.ID))
	}
	if strings.TrimSpace(s.Name) == "" {
		errs = append(errs, errors.New("name: must not be empty"))
	}
	if s.Match == "" {
		s.Match = "exact"
	}
	switch s.Match {
	case "exact", "prefix":
		// What Normalize refuses could never match: say so now.
		if _, ok := Normalize(s.URL); !ok {
			errs = append(errs, fmt.Errorf("url: want an absolute http(s) URL with a plain ASCII host and no user name, "+
				"backslash, dot segment or encoded slash, got %q", s.URL))
		}
	case "regex":
		if s.URL == "" {
			errs = append(errs, errors.New("url: must not be empty"))
		} else if _, err := regexp.Compile(s.URL); err != nil {
			errs = append(errs, fmt.Errorf("url: not a regular expression: %v", err))
		} else if AnyHost(s.URL) {
			errs = append(errs, fmt.Errorf("url: %q accepts any site: every application anywhere could get tickets; name the hosts (for example https://app\\.univ\\.example/.*)", s.URL))
		}
	default:
		errs = append(errs, fmt.Errorf("match: want exact, prefix or regex, got %q", s.Match))
	}
	for _, a := range s.Attributes {
		if !slices.Contains(Attributes, a) {
			errs = append(errs, fmt.Errorf("attributes: unknown %q (known: %s)", a, strings.Join(Attributes, ", ")))
		}
	}
	if s.LogoutURL != "" {
		if u, err := url.Parse(s.LogoutURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("logout-url: want an absolute http(s) URL, got %q", s.LogoutURL))
		}
	}
	return store.CASService{ID: s.ID, Name: strings.TrimSpace(s.Name), URLPattern: s.URL, Match: s.Match,
		Attributes: s.Attributes, AllowProxy: s.Proxy, LogoutURL: s.LogoutURL, Order: s.Order}, errors.Join(errs...)
}

// Normalize puts a service URL in the form tickets are bound to, patterns
// are matched against, and the browser is sent to: scheme and host in lower
// case, no default port, no fragment, no ;jsessionid= parameter (Java
// containers add it at times), the path and query with a canonical
// percent-encoding. ok is false for what is not an absolute http(s) URL
// with a plain ASCII host, and for what a browser or a web server could
// read otherwise than Go does: a backslash, a NUL, a dot segment ("..",
// "%2e%2e", Tomcat's "..;"), an encoded slash, or a double encoding of
// those in the path.
func Normalize(raw string) (string, bool) {
	raw = strings.TrimSpace(raw)
	if strings.ContainsRune(raw, '\\') {
		return "", false
	}
	u, err := url.Parse(raw)
	if err != nil || (strings.ToLower(u.Scheme) != "https" && strings.ToLower(u.Scheme) != "http") || u.Host == "" || u.User != nil ||
		u.Opaque != "" || !plainHost(u.Host) {
		return "", false
	}
	ep := strings.ToLower(u.EscapedPath())
	for _, bad := range []string{"%2f", "%5c", "%00", "%252e", "%252f", "%255c"} {
		if strings.Contains(ep, bad) {
			return "", false
		}
	}
	var segs []string
	for seg := range strings.SplitSeq(u.Path, "/") {
		name, params, _ := strings.Cut(seg, ";")
		if name == "." || name == ".." {
			return "", false
		}
		if k, _, _ := strings.Cut(params, "="); params != "" && strings.ToLower(k) == "jsessionid" {
			seg = name
		}
		segs = append(segs, seg)
	}
	u.Path = strings.Join(segs, "/")
	u.Scheme, u.Host = strings.ToLower(u.Scheme), strings.ToLower(u.Host)
	if p := u.Port(); (u.Scheme == "https" && p == "443") || (u.Scheme == "http" && p == "80") {
		u.Host = u.Hostname()
	}
	u.Fragment, u.RawFragment, u.RawPath, u.ForceQuery = "", "", "", false
	if u.Path == "" {
		u.Path = "/"
	}
	u.RawQuery = canonicalQuery(u.RawQuery)
	return u.String(), true
}

// plainHost accepts a DNS name or an IP literal in ASCII, with an optional
// port: an internationalised name must come in its punycode form, so that
// Go and the browser read the same host.
func plainHost(hostport string) bool {
	host := hostport
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		if p == "" {
			return false
		}
		host = h
	}
	if strings.HasPrefix(host, "[") || strings.Contains(host, ":") {
		return net.ParseIP(strings.Trim(host, "[]")) != nil
	}
	if host == "" || strings.HasSuffix(host, ".") || strings.HasPrefix(host, ".") {
		return false
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// canonicalQuery re-encodes each pair, keeping their order; a pair whose
// escapes are invalid is kept as it came.
func canonicalQuery(raw string) string {
	var parts []string
	for p := range strings.SplitSeq(raw, "&") {
		if p == "" {
			continue
		}
		k, v, has := strings.Cut(p, "=")
		uk, kerr := url.QueryUnescape(k)
		uv, verr := url.QueryUnescape(v)
		switch {
		case kerr != nil || verr != nil:
			parts = append(parts, p)
		case has:
			parts = append(parts, url.QueryEscape(uk)+"="+url.QueryEscape(uv))
		default:
			parts = append(parts, url.QueryEscape(uk))
		}
	}
	return strings.Join(parts, "&")
}

// Matches reports whether the normalised service URL norm is one of svc's.
func Matches(svc store.CASService, norm string) bool { return Explain(svc, norm) == "" }

// Explain says why svc does not take norm: "" when it does, "no match", or
// why a regex that matched is refused.
func Explain(svc store.CASService, norm string) string {
	if !matches(svc, norm) {
		return "no match"
	}
	if svc.Match == "regex" {
		switch hostConfined(compiled(svc.URLPattern), norm) {
		case hostAny:
			return "the pattern would accept this URL with any host: its wildcard runs from the host into the path"
		case hostLonger:
			return "the pattern would accept this URL with its host cut short: it does not say where the host ends"
		case hostStart:
			return "the pattern would accept this URL with another name glued to the start of its host: it does not say where the name starts"
		case hostDots:
			return "the pattern would accept this URL with a '-' for a dot of its host: escape the dots (\\.)"
		}
	}
	return ""
}

func matches(svc store.CASService, norm string) bool {
	switch svc.Match {
	case "exact":
		p, ok := Normalize(svc.URLPattern)
		return ok && p == norm
	case "prefix":
		p, ok := Normalize(svc.URLPattern)
		if !ok || !strings.HasPrefix(norm, p) {
			return false
		}
		// Only on a boundary: https://app.example must not match https://app.example.evil.
		rest := norm[len(p):]
		return rest == "" || strings.HasSuffix(p, "/") || strings.ContainsAny(rest[:1], "/?")
	case "regex":
		re := compiled(svc.URLPattern)
		return re != nil && re.MatchString(norm)
	}
	return false
}

// What hostConfined found.
const (
	hostOK     = iota
	hostAny    // an unrelated host would do
	hostLonger // a host cut short would do: the pattern does not say where the host ends
	hostStart  // a host glued to another name would do: it does not say where the name starts
	hostDots   // a host with a '-' for one of its last dots would do: a '.' is not escaped
)

// probeHosts are names no service has, in the shapes narrow patterns take
// ([a-z]+\.[a-z]+ misses a hyphen, a single label, an address).
var probeHosts = []string{"campusid-probe.invalid", "campusidprobe.invalid", "campusidprobe", "192.0.2.1"}

// hostConfined tells whether re matched norm because of its host and not
// in spite of it. A pattern's wildcard may run from the host into the path
// (https://.*\.univ\.example/.* meets https://evil.example/x.univ.example/),
// take in the end of the host (https://app\.univ\.example.* meets
// https://app.univ.example.evil.example/), its start (https://.*univ\.example/.*
// meets https://eviluniv.example/), or a dot (https://app.univ.example/.*
// meets https://app-univ.example/). norm is refused when the pattern would
// accept it just as well with such a host instead of its own.
func hostConfined(re *regexp.Regexp, norm string) int {
	u, err := url.Parse(norm)
	if err != nil {
		return hostAny
	}
	with := func(host string) bool {
		v := *u
		v.Host = host
		if p := u.Port(); p != "" {
			v.Host += ":" + p
		}
		return re.MatchString(v.String())
	}
	for _, h := range probeHosts {
		if with(h) {
			return hostAny
		}
	}
	name := u.Hostname()
	if net.ParseIP(name) != nil {
		return hostOK
	}
	labels := strings.Split(name, ".")
	for i := len(labels) - 1; i >= 1; i-- {
		if with(strings.Join(labels[:i], ".")) {
			return hostLonger
		}
	}
	// The name a university registers is its last two labels (univ.example)
	// or more: another name glued to them must not do.
	for i := max(0, len(labels)-2); i < len(labels); i++ {
		if with("campusidprobe" + strings.Join(labels[i:], ".")) {
			return hostStart
		}
	}
	// The registrable part of a university's name is its last two or three
	// labels: the last two dots must be the pattern's own.
	for i := max(1, len(labels)-2); i < len(labels); i++ {
		if with(strings.Join(labels[:i], ".") + "-" + strings.Join(labels[i:], ".")) {
			return hostDots
		}
	}
	return hostOK
}

// AnyHost reports whether a regex pattern accepts any host (a catch-all
// such as ^https://.*), which registration refuses.
func AnyHost(pattern string) bool {
	re := compiled(pattern)
	if re == nil {
		return false
	}
	rests := append([]string{"/", "/x/y?z=1"}, literalPaths(pattern)...)
	for _, h := range probeHosts {
		for _, rest := range rests {
			if re.MatchString("https://"+h+rest) || re.MatchString("http://"+h+rest) {
				return true
			}
		}
	}
	return false
}

// literalPaths returns the runs of literal text of a pattern that start
// with '/' (its escapes undone), each with and without a trailing "x", so
// that a pattern pinning a path but not a host
// (^https?://.*/claExternalID/associate/.*) is caught at registration.
func literalPaths(pattern string) []string {
	var out []string
	var run strings.Builder
	flush := func() {
		if r := run.String(); strings.HasPrefix(r, "/") && r != "/" {
			out = append(out, r, r+"x")
		}
		run.Reset()
	}
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '\\' && i+1 < len(pattern) && strings.IndexByte(`./-_?+*()[]{}|^$`, pattern[i+1]) >= 0:
			i++
			run.WriteByte(pattern[i])
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/-_~=&%,;:@", c) >= 0:
			if c == '/' && run.Len() > 0 && !strings.HasPrefix(run.String(), "/") {
				run.Reset() // the path starts at the first '/' of the run
			}
			run.WriteByte(c)
		default:
			flush()
		}
	}
	flush()
	return out
}

// regexps caches the anchored form of each regex pattern (nil: invalid):
// every /cas/login tries every service.
var regexps sync.Map

func compiled(pattern string) *regexp.Regexp {
	if re, ok := regexps.Load(pattern); ok {
		return re.(*regexp.Regexp)
	}
	re, err := regexp.Compile(`^(?:` + pattern + `)$`)
	if err != nil {
		re = nil
	}
	regexps.Store(pattern, re)
	return re
}

// SortServices puts services in the order FindService tries them.
func SortServices(list []store.CASService) {
	slices.SortStableFunc(list, func(a, b store.CASService) int {
		switch {
		case before(a, b):
			return -1
		case before(b, a):
			return 1
		}
		return 0
	})
}

var rank = map[string]int{"exact": 0, "prefix": 1, "regex": 2}

// before reports whether a should answer rather than b when both match:
// the lower order, then exact over prefix over regex, the longer prefix,
// then the id.
func before(a, b store.CASService) bool {
	if a.Order != b.Order {
		return a.Order < b.Order
	}
	if ra, rb := rank[a.Match], rank[b.Match]; ra != rb {
		return ra < rb
	}
	if a.Match == "prefix" {
		na, _ := Normalize(a.URLPattern)
		nb, _ := Normalize(b.URLPattern)
		if len(na) != len(nb) {
			return len(na) > len(nb)
		}
	}
	return a.ID < b.ID
}

// FindService returns the registered service of a URL.
func FindService(ctx context.Context, db *store.DB, raw string) (store.CASService, string, error) {
	norm, ok := Normalize(raw)
	if !ok {
		return store.CASService{}, "", store.ErrNotFound
	}
	list, err := db.ListCASServices(ctx)
	if err != nil {
		return store.CASService{}, "", err
	}
	found := -1
	for i, s := range list {
		if Matches(s, norm) && (found < 0 || before(s, list[found])) {
			found = i
		}
	}
	if found < 0 {
		return store.CASService{}, norm, store.ErrNotFound
	}
	return list[found], norm, nil
}

// SyncServices makes the configuration file's services the database's
// services of source "config": upserted as written, the others removed.
func SyncServices(ctx context.Context, db *store.DB, specs []ServiceSpec, now time.Time) error {
	var svcs []store.CASService
	var errs []error
	for i, sp := range specs {
		s, err := sp.Service()
		if err != nil {
			errs = append(errs, fmt.Errorf("cas.services[%d]: %w", i, err))
		}
		s.Source, s.CreatedAt, s.UpdatedAt = store.ClientFromConfig, now, now
		svcs = append(svcs, s)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return db.InTx(ctx, func(tx *store.DB) error {
		existing, err := tx.ListCASServices(ctx)
		if err != nil {
			return err
		}
		for _, s := range svcs {
			if old := slices.IndexFunc(existing, func(e store.CASService) bool { return e.ID == s.ID }); old >= 0 {
				if existing[old].Source != store.ClientFromConfig {
					return fmt.Errorf("cas.services: %q exists already (added with 'campusid cas-service add'): delete it first", s.ID)
				}
				s.CreatedAt = existing[old].CreatedAt
			}
			if err := tx.UpsertCASService(ctx, s); err != nil {
				return err
			}
		}
		for _, e := range existing {
			if e.Source == store.ClientFromConfig && !slices.ContainsFunc(svcs, func(s store.CASService) bool { return s.ID == e.ID }) {
				if err := tx.DeleteCASService(ctx, e.ID); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Destination names the CAS service a sign-in's return_to leads to (a
// /cas/login URL), or "".
func Destination(ctx context.Context, db *store.DB, returnTo string) string {
	u, err := url.Parse(returnTo)
	if err != nil || u.Path != PathLogin {
		return ""
	}
	svc, _, err := FindService(ctx, db, u.Query().Get("service"))
	if err != nil {
		return ""
	}
	return svc.Name
}
