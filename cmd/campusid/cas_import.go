package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// apereoService is what one registry file gives.
type apereoService struct {
	file     string
	spec     cas.ServiceSpec
	warnings []string
	skip     string // why the file is not imported (not a CAS service, disabled)
}

// importApereoServices registers the services of Apereo CAS JSON service
// registry files (cas-service import).
func importApereoServices(ctx context.Context, e *env, db *store.DB, paths []string, dryRun bool) error {
	files, err := apereoFiles(paths)
	if err != nil {
		return err
	}
	var svcs []apereoService
	var errs []string
	for _, f := range files {
		s, err := readApereoService(f)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		svcs = append(svcs, s)
	}
	// Validate the services and their ids (among themselves here, against
	// the database below).
	byID := map[string]string{}
	var valid []store.CASService
	var kept []apereoService
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
		valid = append(valid, svc)
		kept = append(kept, s)
	}
	if len(errs) > 0 {
		return importFailed(errs)
	}

	// What exists already: identical services are left alone, others are errors.
	var added, unchanged int
	states := make([]string, len(valid))
	write := func(tx *store.DB) error {
		added, unchanged = 0, 0
		var errs []string
		var todo []int
		for i, svc := range valid {
			old, err := tx.CASServiceByID(ctx, svc.ID)
			switch {
			case errors.Is(err, store.ErrNotFound):
				todo = append(todo, i)
			case err != nil:
				return err
			case sameCASService(old, svc):
				unchanged++
				states[i] = "unchanged (exists already)"
			default:
				errs = append(errs, fmt.Sprintf("%s: a different CAS service %q exists already (see 'campusid cas-service show %s'): delete it, or change it with 'campusid cas-service update', and import again", kept[i].file, svc.ID, svc.ID))
			}
		}
		if len(errs) > 0 {
			return importFailed(errs)
		}
		if dryRun {
			added = len(todo)
			return nil
		}
		for _, i := range todo {
			if err := tx.CreateCASService(ctx, valid[i]); errors.Is(err, store.ErrConflict) {
				return importFailed([]string{fmt.Sprintf("%s: a CAS service %q was added meanwhile: run the import again", kept[i].file, valid[i].ID)})
			} else if err != nil {
				return err
			}
			added++
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
	verb := "added"
	if dryRun {
		verb = "would be added"
	}
	nwarn, skipped, noLogout := 0, 0, 0
	for _, s := range svcs {
		if s.skip != "" {
			skipped++
			fmt.Fprintf(e.stdout, "skipped %s: %s\n", s.file, s.skip)
			continue
		}
		i := slices.IndexFunc(kept, func(k apereoService) bool { return k.file == s.file })
		svc, state := valid[i], cond(states[i] != "", states[i], verb)
		fmt.Fprintf(e.stdout, "CAS service %s %s: %q, %s %s, order %d, attributes %s%s%s (%s)\n", svc.ID, state, svc.Name, svc.Match,
			svc.URLPattern, svc.Order, orNone(strings.Join(svc.Attributes, ",")), cond(svc.AllowProxy, ", proxy", ""),
			cond(svc.LogoutURL != "", ", logout URL "+svc.LogoutURL, ""), filepath.Base(s.file))
		for _, w := range s.warnings {
			fmt.Fprintf(e.stdout, "  warning: %s\n", w)
			nwarn++
		}
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

func orNone(s string) string { return cond(s == "", "none", s) }

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
		list, err := filepath.Glob(filepath.Join(p, "*.json"))
		if err != nil {
			return nil, err
		}
		var found []string
		for _, f := range list {
			if fi, err := os.Stat(f); err == nil && !fi.IsDir() {
				found = append(found, f)
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

// The service classes of Apereo CAS (org.apereo.cas.services, formerly
// org.jasig.cas.services) that are CAS services.
var apereoCASClasses = []string{"CasRegisteredService", "RegexRegisteredService"}

// readApereoService reads and maps one registry file.
func readApereoService(file string) (apereoService, error) {
	s := apereoService{file: file}
	data, err := os.ReadFile(file)
	if err != nil {
		return s, fmt.Errorf("cannot read %s: %w", file, err)
	}
	clean := lenientJSON(data)
	dec := json.NewDecoder(bytes.NewReader(clean))
	dec.UseNumber()
	var raw any
	if err := dec.Decode(&raw); err != nil {
		where := ""
		var se *json.SyntaxError
		if errors.As(err, &se) {
			where = fmt.Sprintf(" at line %d", 1+bytes.Count(clean[:min(int(se.Offset), len(clean))], []byte("\n")))
		}
		return s, fmt.Errorf("%s: not JSON%s: %v (campusid reads JSON with comments and trailing commas; rewrite other Hjson syntax such as unquoted keys or strings as JSON)", file, where, err)
	}
	m, ok := raw.(map[string]any)
	if !ok {
		return s, fmt.Errorf("%s: want one service (a JSON object) per file, as Apereo's JSON service registry keeps them", file)
	}
	class := str(m["@class"])
	short := class[strings.LastIndex(class, ".")+1:]
	switch {
	case class == "":
		return s, fmt.Errorf("%s: no \"@class\": is this an Apereo CAS service registry file?", file)
	case !slices.Contains(apereoCASClasses, short):
		s.skip = fmt.Sprintf("%s is not a CAS service", short)
		switch short {
		case "OidcRegisteredService", "OAuthRegisteredService":
			s.skip += " (register OpenID Connect clients with 'campusid client add', see docs/oidc.md)"
		case "SamlRegisteredService":
			s.skip += " (campusid has no SAML)"
		}
		return s, nil
	}
	w := func(format string, args ...any) { s.warnings = append(s.warnings, fmt.Sprintf(format, args...)) }

	// Access strategy: a disabled service is not imported.
	if as, ok := m["accessStrategy"].(map[string]any); ok {
		if b, ok := as["enabled"].(bool); ok && !b {
			s.skip = "disabled in Apereo (accessStrategy.enabled: false)"
			return s, nil
		}
		if c := shortClass(as); c != "" && c != "DefaultRegisteredServiceAccessStrategy" {
			w("accessStrategy %s not imported: campusid gives tickets to whoever signs in", c)
		} else if len(unwrapMap(as["requiredAttributes"])) > 0 || len(unwrapMap(as["rejectedAttributes"])) > 0 {
			w("accessStrategy required/rejected attributes not imported: campusid gives tickets to whoever signs in")
		}
		if b, ok := as["ssoEnabled"].(bool); ok && !b {
			w("accessStrategy.ssoEnabled false not imported: single sign-on applies (the application may send renew=true)")
		}
	}

	// Name and id.
	s.spec.Name = strings.TrimSpace(str(m["name"]))
	num := str(m["id"])
	if num == "" {
		// Apereo names the files Name-ID.json.
		base := strings.TrimSuffix(filepath.Base(file), filepath.Ext(file))
		if i := strings.LastIndex(base, "-"); i >= 0 && isDigits(base[i+1:]) {
			num = base[i+1:]
		}
	}
	if s.spec.Name == "" {
		return s, fmt.Errorf("%s: no \"name\": add one to the file", file)
	}
	if !isDigits(num) {
		return s, fmt.Errorf("%s: no numeric \"id\": add one to the file (or name it Name-ID.json)", file)
	}
	s.spec.ID = apereoID(s.spec.Name, num)

	// serviceId: a Java regex matched whole (campusid anchors it too), or
	// with CAS 7's matchingStrategy, a partial regex or a literal.
	sid := str(m["serviceId"])
	if sid == "" {
		return s, fmt.Errorf("%s: no \"serviceId\": add the service URL pattern to the file", file)
	}
	// Apereo compiles serviceId case-insensitively.
	s.spec.URL, s.spec.Match = "(?i)"+sid, "regex"
	if ms, ok := m["matchingStrategy"].(map[string]any); ok {
		switch c := shortClass(ms); c {
		case "", "FullRegexRegisteredServiceMatchingStrategy":
		case "PartialRegexRegisteredServiceMatchingStrategy":
			s.skip = fmt.Sprintf("serviceId %q is matched partially (anywhere in the URL), which cannot say which hosts it accepts: write it as a whole-URL pattern and register it with 'campusid cas-service add --match regex'", sid)
			return s, nil
		case "LiteralRegisteredServiceMatchingStrategy":
			s.spec.Match = "exact"
			if b, _ := ms["caseInsensitive"].(bool); b {
				w("literal serviceId compared case-insensitively by Apereo: campusid ignores case in the scheme and host only")
			}
		default:
			return s, fmt.Errorf("%s: matchingStrategy %s: campusid does not know it; register the service with 'campusid cas-service add' and leave this file out", file, c)
		}
	}
	if s.spec.Match == "regex" {
		if _, err := regexp.Compile(`^(?:` + s.spec.URL + `)$`); err != nil {
			return s, fmt.Errorf("%s: serviceId %q is a Java regular expression Go cannot run (no look-around, back-references, possessive quantifiers or \\Z): %v; rewrite it without them in the file (or register the service with 'campusid cas-service add') and import again", file, sid, err)
		}
		if cas.AnyHost(s.spec.URL) {
			s.skip = fmt.Sprintf("serviceId %q accepts any site, which campusid refuses (every application anywhere could get tickets): register the applications it stood for with 'campusid cas-service add'", sid)
			return s, nil
		}
	}

	// Attributes.
	s.spec.Attributes = apereoAttributes(m["attributeReleasePolicy"], w)

	// Evaluation order: the same meaning (the lowest answers first).
	if o := str(m["evaluationOrder"]); o != "" {
		n, err := strconv.Atoi(o)
		if err != nil {
			return s, fmt.Errorf("%s: evaluationOrder %q is not a whole number: fix it in the file", file, o)
		}
		s.spec.Order = n
	}

	// The user name: campusid always sends the identifier.
	if up, ok := m["usernameAttributeProvider"].(map[string]any); ok {
		if c := shortClass(up); c != "" && c != "DefaultRegisteredServiceUsernameProvider" {
			attr := str(up["usernameAttribute"])
			w("usernameAttributeProvider %s%s not imported: campusid sends the campusid identifier as the user", c,
				cond(attr != "", " ("+attr+")", ""))
		}
	}

	// Proxy.
	if pp, ok := m["proxyPolicy"].(map[string]any); ok {
		switch c := shortClass(pp); c {
		case "RegexMatchingRegisteredServiceProxyPolicy":
			s.spec.Proxy = true
			w("proxy allowed: campusid requires the pgtUrl to be https and to match this service's own serviceId (Apereo's pattern %s is not used)", str(pp["pattern"]))
		case "", "RefuseRegisteredServiceProxyPolicy":
		default:
			w("proxyPolicy %s not understood: no proxy ('campusid cas-service update %s --proxy' allows it)", c, s.spec.ID)
		}
	}

	// Single logout.
	lu, lt := str(m["logoutUrl"]), strings.ToUpper(str(m["logoutType"]))
	switch lt {
	case "", "BACK_CHANNEL":
		s.spec.LogoutURL = lu
	case "FRONT_CHANNEL":
		w("logoutType FRONT_CHANNEL: campusid has back-channel single logout only; no logout URL registered (if the application accepts back-channel requests: 'campusid cas-service update %s --logout-url URL')", s.spec.ID)
	case "NONE":
		if lu != "" {
			w("logoutType NONE: logoutUrl %s not registered", lu)
		}
	default:
		w("logoutType %s not understood: no logout URL registered", lt)
	}

	// The rest.
	if rt := strings.ToUpper(str(m["responseType"])); rt != "" && rt != "REDIRECT" {
		w("responseType %s not imported: campusid redirects with the ticket unless the application asks method=POST", rt)
	}
	for _, k := range []string{"multifactorPolicy", "authenticationPolicy", "expirationPolicy", "ticketGrantingTicketExpirationPolicy",
		"serviceTicketExpirationPolicy", "proxyGrantingTicketExpirationPolicy", "proxyTicketExpirationPolicy", "requiredHandlers",
		"publicKey", "contacts", "acceptableUsagePolicy", "webflowInterruptPolicy"} {
		if v, ok := m[k]; ok && !emptyValue(v) {
			w("%s not imported (campusid has no per-service setting for it)", k)
		}
	}
	return s, nil
}

// apereoAttributes maps an attributeReleasePolicy to the attributes
// campusid releases; warn reports what is left out.
func apereoAttributes(v any, warn func(string, ...any)) []string {
	p, ok := v.(map[string]any)
	if !ok {
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
		for _, a := range cas.Attributes {
			if strings.EqualFold(a, name) {
				hint = fmt.Sprintf(" (campusid has %q)", a)
			}
		}
		warn("attribute %q not released: campusid does not have it%s; it releases %s", name, hint, strings.Join(cas.Attributes, ", "))
	}
	if b, _ := p["authorizedToReleaseCredentialPassword"].(bool); b {
		warn("authorizedToReleaseCredentialPassword not imported: campusid never releases the password")
	}
	if b, _ := p["authorizedToReleaseProxyGrantingTicket"].(bool); b {
		warn("authorizedToReleaseProxyGrantingTicket not imported: campusid does not release the proxy-granting ticket as an attribute")
	}
	switch c := shortClass(p); c {
	case "ReturnAllowedAttributeReleasePolicy":
		for _, a := range unwrapList(p["allowedAttributes"]) {
			keep(str(a))
		}
	case "ReturnAllAttributeReleasePolicy":
		for _, a := range cas.Attributes {
			if !slices.ContainsFunc(unwrapList(p["excludedAttributes"]), func(x any) bool { return str(x) == a }) {
				names = append(names, a)
			}
		}
	case "ReturnMappedAttributeReleasePolicy":
		m := unwrapMap(p["allowedAttributes"])
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			var targets []string
			if l := unwrapList(m[k]); l != nil {
				for _, t := range l {
					targets = append(targets, str(t))
				}
			} else {
				targets = []string{str(m[k])}
			}
			renamed := slices.ContainsFunc(targets, func(t string) bool { return t != k })
			if !slices.Contains(cas.Attributes, k) {
				keep(k) // the warning
				continue
			}
			if renamed {
				warn("attribute %q released by Apereo as %s: campusid releases it as %q (it does not rename attributes)", k, strings.Join(targets, ", "), k)
			}
			keep(k)
		}
	case "DenyAllAttributeReleasePolicy":
	case "ChainingAttributeReleasePolicy":
		for _, sub := range unwrapList(p["policies"]) {
			for _, a := range apereoAttributes(sub, warn) {
				if !slices.Contains(names, a) {
					names = append(names, a)
				}
			}
		}
	default:
		warn("attributeReleasePolicy %s not understood: no attributes released ('campusid cas-service update ID --attributes ...')", c)
	}
	return names
}

// shortClass is the class name of a Jackson object, without its package.
func shortClass(m map[string]any) string {
	c := str(m["@class"])
	return c[strings.LastIndex(c, ".")+1:]
}

// unwrapList reads a list written plainly or in Jackson's typed form
// ["java.util.ArrayList", [...]]; nil when v is not a list.
func unwrapList(v any) []any {
	l, ok := v.([]any)
	if !ok {
		return nil
	}
	if len(l) == 2 {
		if c, ok := l[0].(string); ok && strings.HasPrefix(c, "java.") {
			if inner, ok := l[1].([]any); ok {
				return inner
			}
		}
	}
	return l
}

// unwrapMap reads a map, without Jackson's "@class" key.
func unwrapMap(v any) map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	out := map[string]any{}
	for k, x := range m {
		if k != "@class" {
			out[k] = x
		}
	}
	return out
}

func emptyValue(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(unwrapMap(x)) == 0
	case []any:
		return len(unwrapList(x)) == 0
	}
	return false
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return ""
}

func isDigits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
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

// lenientJSON removes what Apereo's lenient parser (Hjson) accepts and
// encoding/json does not: comments (//, /* */ and #) outside strings, a
// byte order mark, and commas before a closing bracket. Line breaks are
// kept, so that error positions still point at the right line.
func lenientJSON(in []byte) []byte {
	in = bytes.TrimPrefix(in, []byte("\xef\xbb\xbf"))
	out := make([]byte, 0, len(in))
	inStr := false
	for i := 0; i < len(in); i++ {
		c := in[i]
		if inStr {
			out = append(out, c)
			if c == '\\' && i+1 < len(in) {
				i++
				out = append(out, in[i])
			} else if c == '"' {
				inStr = false
			}
			continue
		}
		switch {
		case c == '"':
			inStr = true
			out = append(out, c)
		case c == '#' || (c == '/' && i+1 < len(in) && in[i+1] == '/'):
			for i < len(in) && in[i] != '\n' {
				i++
			}
			if i < len(in) {
				out = append(out, '\n')
			}
		case c == '/' && i+1 < len(in) && in[i+1] == '*':
			i += 2
			for i < len(in) && !(in[i] == '*' && i+1 < len(in) && in[i+1] == '/') {
				if in[i] == '\n' {
					out = append(out, '\n')
				}
				i++
			}
			i++ // the '/'
			out = append(out, ' ')
		case c == '}' || c == ']':
			// Drop a trailing comma (and keep what follows it).
			j := len(out) - 1
			for j >= 0 && (out[j] == ' ' || out[j] == '\t' || out[j] == '\n' || out[j] == '\r') {
				j--
			}
			if j >= 0 && out[j] == ',' {
				out = append(out[:j], out[j+1:]...)
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}
