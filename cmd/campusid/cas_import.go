package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"campusid/internal/cas"
	"campusid/internal/store"
)

// cas-service import: the services of an Apereo CAS JSON service registry
// (one service per file, as Apereo's JsonServiceRegistry keeps them) become
// campusid CAS services. Everything is checked first; then every service is
// written in one transaction, or none. See docs/cas.md, "Moving from
// Apereo CAS".

// apereoService is one registry file: what it maps to, and what the import
// makes of it.
type apereoService struct {
	file      string
	spec      cas.ServiceSpec
	warnings  []string
	skip      string           // why the file is not imported (not a CAS service, disabled)
	svc       store.CASService // spec, checked
	unchanged bool             // svc exists already
}

func (s *apereoService) warn(format string, args ...any) {
	s.warnings = append(s.warnings, fmt.Sprintf(format, args...))
}

// importApereoServices registers the services of Apereo CAS JSON service
// registry files (cas-service import).
func importApereoServices(ctx context.Context, e *env, db *store.DB, paths []string, dryRun bool) error {
	files, err := apereoFiles(paths)
	if err != nil {
		return err
	}
	var svcs []*apereoService
	var errs []string
	for _, f := range files {
		s, err := readApereoService(f)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		svcs = append(svcs, &s)
	}
	// Validate the services and their ids (among themselves here, against
	// the database below).
	byID := map[string]string{}
	var kept []*apereoService
	for _, s := range svcs {
		if s.skip != "" {
			continue
		}
		svc, err := s.spec.Service()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %s", s.file, strings.ReplaceAll(err.Error(), "\n", "; ")))
			continue
		}
		if other, ok := byID[svc.ID]; ok {
			errs = append(errs, fmt.Sprintf("%s: id %q is also the id of %s (campusid ids come from name and id): give one of them another name or id", s.file, svc.ID, other))
			continue
		}
		byID[svc.ID] = s.file
		now := e.now()
		svc.Source, svc.CreatedAt, svc.UpdatedAt = store.ClientFromCLI, now, now
		s.svc = svc
		kept = append(kept, s)
	}
	if len(errs) > 0 {
		return importFailed(errs)
	}

	// What exists already: identical services are left alone, others are errors.
	var added, unchanged int
	write := func(tx *store.DB) error {
		var errs []string
		var todo []*apereoService
		for _, s := range kept {
			old, err := tx.CASServiceByID(ctx, s.svc.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				todo = append(todo, s)
			case err != nil:
				return err
			case sameCASService(old, s.svc):
				s.unchanged = true
				unchanged++
			default:
				errs = append(errs, fmt.Sprintf("%s: a different CAS service %q exists already (see 'campusid cas-service show %s'): delete it, or change it with 'campusid cas-service update', and import again", s.file, s.svc.ID, s.svc.ID))
			}
		}
		if len(errs) > 0 {
			return importFailed(errs)
		}
		added = len(todo)
		if dryRun {
			return nil
		}
		for _, s := range todo {
			if err := tx.CreateCASService(ctx, s.svc); errors.Is(err, store.ErrConflict) {
				return importFailed([]string{fmt.Sprintf("%s: a CAS service %q was added meanwhile: run the import again", s.file, s.svc.ID)})
			} else if err != nil {
				return err
			}
		}
		return nil
	}
	if dryRun {
		err = write(db)
	} else {
		err = db.InTx(ctx, write)
	}
	if err != nil {
		return err
	}

	// The report: one line per file, its warnings under it.
	verb := cond(dryRun, "would be added", "added")
	nwarn, skipped, noLogout := 0, 0, 0
	for _, s := range svcs {
		if s.skip != "" {
			skipped++
			fmt.Fprintf(e.stdout, "skipped %s: %s\n", s.file, s.skip)
			continue
		}
		svc := s.svc
		fmt.Fprintf(e.stdout, "CAS service %s %s: %q, %s %s, order %d, attributes %s%s%s (%s)\n", svc.ID,
			cond(s.unchanged, "unchanged (exists already)", verb), svc.Name, svc.Match, svc.URLPattern, svc.Order,
			cmp.Or(strings.Join(svc.Attributes, ","), "none"), cond(svc.AllowProxy, ", proxy", ""),
			cond(svc.LogoutURL != "", ", logout URL "+svc.LogoutURL, ""), filepath.Base(s.file))
		for _, w := range s.warnings {
			fmt.Fprintf(e.stdout, "  warning: %s\n", w)
		}
		nwarn += len(s.warnings)
		if svc.LogoutURL == "" {
			noLogout++
		}
	}
	fmt.Fprintf(e.stdout, "%d CAS service(s) %s, %d unchanged, %d skipped, %d warning(s).\n", added, verb, unchanged, skipped, nwarn)
	if noLogout > 0 {
		fmt.Fprintf(e.stdout, "Note: %d service(s) have no logout URL: campusid sends single logout requests only to a registered\n"+
			"logout URL, never to the service URL as Apereo does ('campusid cas-service update ID --logout-url URL').\n", noLogout)
	}
	if dryRun {
		fmt.Fprintln(e.stdout, "Dry run: nothing written. Run again without --dry-run to import.")
	}
	return nil
}

func importFailed(errs []string) error {
	return fmt.Errorf("nothing imported (%d error(s)):\n  %s\nFix the files (or leave them out) and run the import again; --dry-run checks without writing",
		len(errs), strings.Join(errs, "\n  "))
}

func cond(ok bool, a, b string) string {
	if ok {
		return a
	}
	return b
}

func sameCASService(a, b store.CASService) bool {
	return a.ID == b.ID && a.Name == b.Name && a.URLPattern == b.URLPattern && a.Match == b.Match &&
		slices.Equal(a.Attributes, b.Attributes) && a.AllowProxy == b.AllowProxy && a.LogoutURL == b.LogoutURL &&
		a.Order == b.Order
}

// apereoFiles lists the files to read: files as given, every *.json of a
// directory (not its subdirectories), in name order.
func apereoFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p, err)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		entries, err := os.ReadDir(p) // not Glob: the directory's name may hold [ * ?
		if err != nil {
			return nil, fmt.Errorf("cannot read %s: %w", p, err)
		}
		var found []string
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(e.Name(), ".json") {
				found = append(found, filepath.Join(p, e.Name()))
			}
		}
		if len(found) == 0 {
			return nil, fmt.Errorf("no .json file in directory %s: give the directory of Apereo's JSON service registry (cas.service-registry.json.location)", p)
		}
		slices.Sort(found)
		files = append(files, found...)
	}
	// A file named twice (alone and through its directory) is read once.
	seen := map[string]bool{}
	return slices.DeleteFunc(files, func(f string) bool {
		f = filepath.Clean(f)
		dup := seen[f]
		seen[f] = true
		return dup
	}), nil
}

// readApereoService reads and maps one registry file, section by section:
// first what can be an error or a reason to skip the file (which ends the
// mapping), then what can only be warned about.
func readApereoService(file string) (apereoService, error) {
	s := apereoService{file: file}
	data, err := os.ReadFile(file)
	if err != nil {
		return s, fmt.Errorf("cannot read %s: %w", file, err)
	}
	m, err := decodeApereo(data)
	for _, check := range []func(jobj) error{s.mapClass, s.mapAccess, s.mapNameID, s.mapServiceID, s.mapOrder} {
		if err != nil || s.skip != "" {
			break
		}
		err = check(m)
	}
	if err != nil {
		return s, fmt.Errorf("%s: %w", file, err)
	}
	if s.skip == "" {
		s.spec.Attributes = s.released(m["attributeReleasePolicy"])
		s.mapUsername(m)
		s.mapProxy(m)
		s.mapLogout(m)
		s.mapRest(m)
	}
	return s, nil
}

// decodeApereo reads a registry file's one JSON object, with the comments
// and trailing commas Apereo accepts.
func decodeApereo(data []byte) (jobj, error) {
	data = lenientJSON(data)
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		where := ""
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			where = fmt.Sprintf(" at line %d", 1+bytes.Count(data[:min(int(se.Offset), len(data))], []byte("\n")))
		}
		return nil, fmt.Errorf("not JSON%s: %v (campusid reads JSON with comments and trailing commas; rewrite other Hjson syntax such as unquoted keys or strings as JSON)", where, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, errors.New("want one service (a JSON object) per file, as Apereo's JSON service registry keeps them")
	}
	return m, nil
}

// The service classes of Apereo CAS (org.apereo.cas.services, formerly
// org.jasig.cas.services) that are CAS services.
var apereoCASClasses = []string{"CasRegisteredService", "RegexRegisteredService"}

func (s *apereoService) mapClass(m jobj) error {
	switch short := m.class(); {
	case m.str("@class") == "":
		return errors.New(`no "@class": is this an Apereo CAS service registry file?`)
	case !slices.Contains(apereoCASClasses, short):
		s.skip = fmt.Sprintf("%s is not a CAS service", short)
		switch short {
		case "OidcRegisteredService", "OAuthRegisteredService":
			s.skip += " (register OpenID Connect clients with 'campusid client add', see docs/oidc.md)"
		case "SamlRegisteredService":
			s.skip += " (campusid has no SAML)"
		}
	}
	return nil
}

// mapAccess: a disabled service is not imported, access rules are not kept.
// (A key == false is a JSON false, not a missing key.)
func (s *apereoService) mapAccess(m jobj) error {
	as := m.obj("accessStrategy")
	if as["enabled"] == false {
		s.skip = "disabled in Apereo (accessStrategy.enabled: false)"
		return nil
	}
	if c := as.class(); c != "" && c != "DefaultRegisteredServiceAccessStrategy" {
		s.warn("accessStrategy %s not imported: campusid gives tickets to whoever signs in", c)
	} else if len(as.obj("requiredAttributes").keys()) > 0 || len(as.obj("rejectedAttributes").keys()) > 0 {
		s.warn("accessStrategy required/rejected attributes not imported: campusid gives tickets to whoever signs in")
	}
	if as["ssoEnabled"] == false {
		s.warn("accessStrategy.ssoEnabled false not imported: single sign-on applies (the application may send renew=true)")
	}
	return nil
}

// mapNameID: the campusid id comes from the name and the numeric id.
func (s *apereoService) mapNameID(m jobj) error {
	s.spec.Name = strings.TrimSpace(m.str("name"))
	num := m.str("id")
	if num == "" {
		// Apereo names the files Name-ID.json.
		base := strings.TrimSuffix(filepath.Base(s.file), filepath.Ext(s.file))
		if i := strings.LastIndex(base, "-"); i >= 0 {
			num = base[i+1:]
		}
	}
	if s.spec.Name == "" {
		return errors.New(`no "name": add one to the file`)
	}
	if num == "" || strings.Trim(num, "0123456789") != "" {
		return errors.New(`no numeric "id": add one to the file (or name it Name-ID.json)`)
	}
	s.spec.ID = apereoID(s.spec.Name, num)
	return nil
}

// mapServiceID: serviceId is a Java regex matched whole (campusid anchors
// it too), or with CAS 7's matchingStrategy, a partial regex or a literal.
func (s *apereoService) mapServiceID(m jobj) error {
	sid := m.str("serviceId")
	if sid == "" {
		return errors.New(`no "serviceId": add the service URL pattern to the file`)
	}
	s.spec.URL, s.spec.Match = sid, "regex"
	switch ms := m.obj("matchingStrategy"); ms.class() {
	case "", "FullRegexRegisteredServiceMatchingStrategy":
	case "PartialRegexRegisteredServiceMatchingStrategy":
		s.skip = fmt.Sprintf("serviceId %q is matched partially (anywhere in the URL), which cannot say which hosts it accepts: write it as a whole-URL pattern and register it with 'campusid cas-service add --match regex'", sid)
		return nil
	case "LiteralRegisteredServiceMatchingStrategy":
		s.spec.Match = "exact"
		if ms["caseInsensitive"] == true {
			s.warn("literal serviceId compared case-insensitively by Apereo: campusid ignores case in the scheme and host only")
		}
		return nil
	default:
		return fmt.Errorf("matchingStrategy %s: campusid does not know it; register the service with 'campusid cas-service add' and leave this file out", ms.class())
	}
	// Apereo compiles serviceId case-insensitively. The pattern is checked
	// alone, as registration does (wrapped, ")|(" would pass).
	s.spec.URL = "(?i)" + sid
	if _, err := regexp.Compile(sid); err != nil {
		return fmt.Errorf("serviceId %q is a Java regular expression Go cannot run (no look-around, back-references, possessive quantifiers or \\Z): %v; rewrite it without them in the file (or register the service with 'campusid cas-service add') and import again", sid, err)
	}
	if cas.AnyHost(s.spec.URL) {
		s.skip = fmt.Sprintf("serviceId %q accepts any site, which campusid refuses (every application anywhere could get tickets): register the applications it stood for with 'campusid cas-service add'", sid)
	}
	return nil
}

// released maps an attributeReleasePolicy to the attributes campusid
// releases, and warns about what it leaves out.
func (s *apereoService) released(v any) []string {
	p := asObj(v)
	if p == nil {
		return nil // Apereo's default policy releases nothing
	}
	var names []string
	keep := func(name string) {
		if slices.Contains(cas.Attributes, name) {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
			return
		}
		hint := ""
		if i := slices.IndexFunc(cas.Attributes, func(a string) bool { return strings.EqualFold(a, name) }); i >= 0 {
			hint = fmt.Sprintf(" (campusid has %q)", cas.Attributes[i])
		}
		s.warn("attribute %q not released: campusid does not have it%s; it releases %s", name, hint, strings.Join(cas.Attributes, ", "))
	}
	if p["authorizedToReleaseCredentialPassword"] == true {
		s.warn("authorizedToReleaseCredentialPassword not imported: campusid never releases the password")
	}
	if p["authorizedToReleaseProxyGrantingTicket"] == true {
		s.warn("authorizedToReleaseProxyGrantingTicket not imported: campusid does not release the proxy-granting ticket as an attribute")
	}
	switch c := p.class(); c {
	case "ReturnAllowedAttributeReleasePolicy":
		for _, a := range jstrs(p["allowedAttributes"]) {
			keep(a)
		}
	case "ReturnAllAttributeReleasePolicy":
		excluded := jstrs(p["excludedAttributes"])
		for _, a := range cas.Attributes {
			if !slices.Contains(excluded, a) {
				keep(a)
			}
		}
	case "ReturnMappedAttributeReleasePolicy":
		m := p.obj("allowedAttributes")
		for _, k := range m.keys() {
			targets := jstrs(m[k])
			if _, ok := m[k].([]any); !ok {
				targets = []string{jstr(m[k])}
			}
			if slices.Contains(cas.Attributes, k) && slices.ContainsFunc(targets, func(t string) bool { return t != k }) {
				s.warn("attribute %q released by Apereo as %s: campusid releases it as %q (it does not rename attributes)", k, strings.Join(targets, ", "), k)
			}
			keep(k)
		}
	case "DenyAllAttributeReleasePolicy":
	case "ChainingAttributeReleasePolicy":
		for _, sub := range jlist(p["policies"]) {
			for _, a := range s.released(sub) {
				keep(a)
			}
		}
	default:
		s.warn("attributeReleasePolicy %s not understood: no attributes released ('campusid cas-service update ID --attributes ...')", c)
	}
	return names
}

// mapOrder: Apereo's evaluationOrder has campusid's meaning (the lowest
// answers first).
func (s *apereoService) mapOrder(m jobj) (err error) {
	if o := m.str("evaluationOrder"); o != "" {
		if s.spec.Order, err = strconv.Atoi(o); err != nil {
			return fmt.Errorf("evaluationOrder %q is not a whole number: fix it in the file", o)
		}
	}
	return nil
}

// mapUsername: campusid always sends the identifier as the user.
func (s *apereoService) mapUsername(m jobj) {
	up := m.obj("usernameAttributeProvider")
	if c := up.class(); c != "" && c != "DefaultRegisteredServiceUsernameProvider" {
		attr := up.str("usernameAttribute")
		s.warn("usernameAttributeProvider %s%s not imported: campusid sends the campusid identifier as the user", c,
			cond(attr != "", " ("+attr+")", ""))
	}
}

func (s *apereoService) mapProxy(m jobj) {
	switch pp := m.obj("proxyPolicy"); pp.class() {
	case "RegexMatchingRegisteredServiceProxyPolicy":
		s.spec.Proxy = true
		s.warn("proxy allowed: campusid requires the pgtUrl to be https and to match this service's own serviceId (Apereo's pattern %s is not used)", pp.str("pattern"))
	case "", "RefuseRegisteredServiceProxyPolicy":
	default:
		s.warn("proxyPolicy %s not understood: no proxy ('campusid cas-service update %s --proxy' allows it)", pp.class(), s.spec.ID)
	}
}

// mapLogout: campusid has back-channel single logout only.
func (s *apereoService) mapLogout(m jobj) {
	switch lu, lt := m.str("logoutUrl"), strings.ToUpper(m.str("logoutType")); lt {
	case "", "BACK_CHANNEL":
		s.spec.LogoutURL = lu
	case "FRONT_CHANNEL":
		s.warn("logoutType FRONT_CHANNEL: campusid has back-channel single logout only; no logout URL registered (if the application accepts back-channel requests: 'campusid cas-service update %s --logout-url URL')", s.spec.ID)
	case "NONE":
		if lu != "" {
			s.warn("logoutType NONE: logoutUrl %s not registered", lu)
		}
	default:
		s.warn("logoutType %s not understood: no logout URL registered", lt)
	}
}

// The settings campusid has no per-service equivalent of.
var apereoUnsupported = []string{"multifactorPolicy", "authenticationPolicy", "expirationPolicy", "ticketGrantingTicketExpirationPolicy",
	"serviceTicketExpirationPolicy", "proxyGrantingTicketExpirationPolicy", "proxyTicketExpirationPolicy", "requiredHandlers",
	"publicKey", "contacts", "acceptableUsagePolicy", "webflowInterruptPolicy"}

func (s *apereoService) mapRest(m jobj) {
	if rt := strings.ToUpper(m.str("responseType")); rt != "" && rt != "REDIRECT" {
		s.warn("responseType %s not imported: campusid redirects with the ticket unless the application asks method=POST", rt)
	}
	for _, k := range apereoUnsupported {
		if !emptyValue(m[k]) {
			s.warn("%s not imported (campusid has no per-service setting for it)", k)
		}
	}
}

// jobj is a JSON object as decoded (numbers as json.Number). Reading a
// missing key, or one of another type, gives the zero value.
type jobj map[string]any

func asObj(v any) jobj {
	m, _ := v.(map[string]any)
	return m
}

func (o jobj) obj(k string) jobj   { return asObj(o[k]) }
func (o jobj) str(k string) string { return jstr(o[k]) }

// class is the class name of a Jackson object, without its package.
func (o jobj) class() string {
	c := o.str("@class")
	return c[strings.LastIndex(c, ".")+1:]
}

// jstr reads a string or a number as text.
func jstr(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

// jlist reads a list written plainly or in Jackson's typed form
// ["java.util.ArrayList", [...]]; nil when v is not a list.
func jlist(v any) []any {
	l, _ := v.([]any)
	if len(l) == 2 {
		c, _ := l[0].(string)
		if inner, ok := l[1].([]any); ok && strings.HasPrefix(c, "java.") {
			return inner
		}
	}
	return l
}

// jstrs reads a list's elements as text.
func jstrs(v any) []string {
	var out []string
	for _, x := range jlist(v) {
		out = append(out, jstr(x))
	}
	return out
}

// keys lists the keys in order, without Jackson's "@class".
func (o jobj) keys() []string {
	return slices.DeleteFunc(slices.Sorted(maps.Keys(o)), func(k string) bool { return k == "@class" })
}

// emptyValue: null, or an object or a list with nothing in it.
func emptyValue(v any) bool {
	switch x := v.(type) {
	case map[string]any:
		return len(jobj(x).keys()) == 0
	case []any:
		return len(jlist(x)) == 0
	}
	return v == nil
}

// apereoID makes a campusid id from an Apereo service's name and numeric
// id: "Scolarité (Pégase)", 1003 -> "scolarite-pegase-1003".
func apereoID(name, num string) string {
	plain, _, err := transform.String(transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC), name)
	if err != nil {
		plain = name
	}
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(plain) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	slug := strings.TrimRight(b.String(), "-")
	if max := 63 - len(num); len(slug) > max {
		slug = strings.TrimRight(slug[:max], "-")
	}
	if slug == "" {
		slug = "service"
	}
	return slug + "-" + num
}

// lenientJSON blanks out what Apereo's lenient parser (Hjson) accepts and
// encoding/json does not: comments (//, /* */ and #) outside strings and
// commas before a closing bracket; it drops a byte order mark. Every other
// byte stays in place, so that error positions still point at the right line.
func lenientJSON(in []byte) []byte {
	out := bytes.Clone(bytes.TrimPrefix(in, []byte("\xef\xbb\xbf")))
	blank := func(from, to int) {
		for ; from < to; from++ {
			if out[from] != '\n' {
				out[from] = ' '
			}
		}
	}
	for i := 0; i < len(out); i++ {
		rest := out[i:]
		switch {
		case rest[0] == '"':
			for i++; i < len(out) && out[i] != '"'; i++ {
				if out[i] == '\\' {
					i++
				}
			}
		case rest[0] == '#' || bytes.HasPrefix(rest, []byte("//")):
			n := bytes.IndexByte(rest, '\n')
			if n < 0 {
				n = len(rest)
			}
			blank(i, i+n)
			i += n - 1
		case bytes.HasPrefix(rest, []byte("/*")):
			n := bytes.Index(rest[2:], []byte("*/")) + 4
			if n < 4 {
				n = len(rest) // to the end of the file
			}
			blank(i, i+n)
			i += n - 1
		case rest[0] == '}' || rest[0] == ']':
			// A trailing comma: the last thing before the bracket.
			if j := len(bytes.TrimRight(out[:i], " \t\r\n")) - 1; j >= 0 && out[j] == ',' {
				out[j] = ' '
			}
		}
	}
	return out
}
