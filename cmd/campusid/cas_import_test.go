package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"campusid/internal/store"
)

// cas-service import (issue 5): an Apereo CAS JSON service registry in
// testdata/apereo/ becomes campusid services that work.

func TestCASImport(t *testing.T) {
	forEachDB(t, func(t *testing.T, d store.Dialect) {
		n := newNode(t, d)
		n.user("jdupont", goodPassword, "jean.dupont@univ.example")
		list := func() string {
			t.Helper()
			out, err := n.cli("cas-service", "list")
			if err != nil {
				t.Fatal(err)
			}
			return out
		}

		// --dry-run: the whole report, nothing written.
		out, err := n.cli("cas-service", "import", "--dry-run", "testdata/apereo")
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{
			`CAS service ent-1001 would be added: "ENT", regex (?i)^https://ent\.univ\.example/portail/.*, order 10, attributes uid,mail,eduPersonPrincipalName, logout URL https://ent.univ.example/portail/Logout (ENT-1001.json)`,
			`attribute "cn" not released: campusid does not have it`,
			`CAS service moodle-1002 would be added: "Moodle", regex`,
			`attribute "mail" released by Apereo as email: campusid releases it as "mail"`,
			`CAS service scolarite-pegase-1003 would be added: "Scolarité (Pégase)"`,
			`attributes uid,mail,displayName,givenName,sn,eduPersonPrincipalName,supannEtablissement, proxy (Scolarite-1003.json)`,
			"campusid requires the pgtUrl to be https and to match this service's own serviceId",
			"logoutType FRONT_CHANNEL",
			"usernameAttributeProvider PrincipalAttributeRegisteredServiceUsernameProvider (supannEtuId) not imported",
			"skipped testdata/apereo/Portail-OIDC-2001.json: OidcRegisteredService is not a CAS service (register OpenID Connect clients with 'campusid client add'",
			"3 CAS service(s) would be added, 0 unchanged, 1 skipped, 5 warning(s).",
			"Note: 2 service(s) have no logout URL",
			"Dry run: nothing written.",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("dry run lacks %q:\n%s", want, out)
			}
		}
		if l := list(); strings.Contains(l, "ent-1001") {
			t.Fatalf("dry run wrote:\n%s", l)
		}

		// All or nothing: one bad file, nothing from the directory.
		_, err = n.cli("cas-service", "import", "testdata/apereo/invalid")
		if err == nil {
			t.Fatal("an invalid registry was imported")
		}
		for _, want := range []string{"nothing imported (1 error(s))", "Intranet-1005.json", "(?!admin/)",
			"is a Java regular expression Go cannot run", "rewrite it without them"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error lacks %q: %v", want, err)
			}
		}
		if l := list(); strings.Contains(l, "annuaire-1004") {
			t.Fatalf("the valid half of an invalid import was written:\n%s", l)
		}

		// The import.
		out, err = n.cli("cas-service", "import", "testdata/apereo")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, "CAS service ent-1001 added:") || !strings.Contains(out, "3 CAS service(s) added, 0 unchanged, 1 skipped") {
			t.Fatalf("import:\n%s", out)
		}
		l := list()
		for _, id := range []string{"ent-1001", "moodle-1002", "scolarite-pegase-1003"} {
			if !strings.Contains(l, id) {
				t.Errorf("list lacks %s:\n%s", id, l)
			}
		}
		if strings.Contains(l, "portail") && strings.Contains(l, "2001") {
			t.Errorf("the OIDC service was imported:\n%s", l)
		}
		svc, err := n.srv.db.CASServiceByID(t.Context(), "scolarite-pegase-1003")
		if err != nil || !svc.AllowProxy || svc.LogoutURL != "" || svc.Match != "regex" || svc.Source != store.ClientFromCLI ||
			slices.Contains(svc.Attributes, "memberOf") {
			t.Fatalf("scolarite: %+v %v", svc, err)
		}
		svc, err = n.srv.db.CASServiceByID(t.Context(), "moodle-1002")
		if err != nil || !slices.Equal(svc.Attributes, []string{"givenName", "mail", "sn", "uid"}) || svc.AllowProxy {
			t.Fatalf("moodle: %+v %v", svc, err)
		}

		// Again: identical services are left alone.
		out, err = n.cli("cas-service", "import", "testdata/apereo/ENT-1001.json", "testdata/apereo/Moodle-1002.json")
		if err != nil || !strings.Contains(out, "CAS service ent-1001 unchanged (exists already)") ||
			!strings.Contains(out, "0 CAS service(s) added, 2 unchanged") {
			t.Fatalf("re-import: %v\n%s", err, out)
		}
		// A different service under an imported id: an error naming it.
		if _, err := n.cli("cas-service", "update", "moodle-1002", "--name", "Moodle 4"); err != nil {
			t.Fatal(err)
		}
		_, err = n.cli("cas-service", "import", "testdata/apereo")
		if err == nil || !strings.Contains(err.Error(), `a different CAS service "moodle-1002" exists already`) ||
			!strings.Contains(err.Error(), "cas-service show moodle-1002") {
			t.Fatalf("conflict: %v", err)
		}

		// The imported ENT works: a ticket for a page its regex matches
		// validates, with the imported attributes.
		page := casApp + "cours?id=3"
		b := n.browser()
		p := b.get("/cas/login?service=" + url.QueryEscape(page))
		if p.Status != http.StatusSeeOther || !strings.HasPrefix(p.Location, "/login?") {
			t.Fatalf("login: %d %q", p.Status, p.Location)
		}
		tk := casTicket(t, localFollow(b, casSignIn(b, p.Location)))
		r := casValidate(t, n, "/cas/p3/serviceValidate", tk, page)
		if code(r) != "success:jdupont" {
			t.Fatalf("p3: %s", code(r))
		}
		attrs := attrMap(r)
		if attrs["uid"] != "jdupont" || attrs["mail"] != "jean.dupont@univ.example" ||
			!strings.HasPrefix(attrs["eduPersonPrincipalName"], "jdupont@") || attrs["givenName"] != "" || attrs["cn"] != "" {
			t.Fatalf("attributes: %v", attrs)
		}
		// Outside the regex: no ticket.
		if p := b.get("/cas/login?service=" + url.QueryEscape("https://ent.univ.example/autre/")); p.Status != http.StatusForbidden {
			t.Fatalf("outside the pattern: %d %q", p.Status, p.Location)
		}
	})
}

// TestCASImportFiles checks the reading of registry files: comments and
// trailing commas, ids, errors that say what to do.
func TestCASImportFiles(t *testing.T) {
	in := `{
  // a comment with "quotes"
  "a" : "https://x.example/y", /* block
  comment */ "b" : [ "c", "d", ], # Hjson comment
  "e" : "not // a comment, nor /* this */ nor # this",
  "f" : "escaped \" quote // still a string",
}`
	var m map[string]any
	if err := json.Unmarshal(lenientJSON([]byte(in)), &m); err != nil {
		t.Fatalf("%v\n%s", err, lenientJSON([]byte(in)))
	}
	if m["a"] != "https://x.example/y" || m["e"] != "not // a comment, nor /* this */ nor # this" ||
		m["f"] != `escaped " quote // still a string` || len(m["b"].([]any)) != 2 {
		t.Fatalf("parsed: %v", m)
	}
	if got := strings.Count(string(lenientJSON([]byte(in))), "\n"); got != strings.Count(in, "\n") {
		t.Errorf("line breaks: %d, want %d", got, strings.Count(in, "\n"))
	}

	for name, want := range map[string]string{
		"ENT": "ent-1001", "Scolarité (Pégase)": "scolarite-pegase-1001", "  --  ": "service-1001",
		"Bibliothèque universitaire: accès aux ressources électroniques depuis l'extérieur": "",
	} {
		got := apereoID(name, "1001")
		if !regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`).MatchString(got) || (want != "" && got != want) {
			t.Errorf("apereoID(%q) = %q, want %q (valid id)", name, got, want)
		}
	}

	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct{ name, body, want string }{
		{"Broken-1.json", `{"@class": "org.apereo.cas.services.CasRegisteredService", serviceId: "x"}`, "not JSON at line 1"},
		{"NoClass-2.json", `{"serviceId": "^https://a\\.example/.*", "name": "A", "id": 2}`, `no "@class"`},
		{"NoService-3.json", `{"@class": "org.apereo.cas.services.CasRegisteredService", "name": "A", "id": 3}`, `no "serviceId"`},
		{"Array-4.json", `[]`, "want one service (a JSON object) per file"},
		{"Crafted-5.json", `{"@class": "org.apereo.cas.services.CasRegisteredService", "serviceId": ")|(", "name": "A", "id": 5}`,
			"a Java regular expression Go cannot run"},
	} {
		if _, err := readApereoService(write(tc.name, tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A literal serviceId becomes an exact service, as it is.
	lit, err := readApereoService(write("Literal-6.json", `{"@class": "org.apereo.cas.services.CasRegisteredService",
		"serviceId": "https://app.example/login", "name": "Lit", "id": 6,
		"matchingStrategy": {"@class": "org.apereo.cas.services.LiteralRegisteredServiceMatchingStrategy"}}`))
	if err != nil || lit.spec.Match != "exact" || lit.spec.URL != "https://app.example/login" {
		t.Errorf("literal: %+v %v", lit.spec, err)
	} else if _, err := lit.spec.Service(); err != nil {
		t.Errorf("literal service refused: %v", err)
	}
	// A directory whose name looks like a pattern is read as a directory.
	odd := filepath.Join(t.TempDir(), "reg[1]")
	if err := os.Mkdir(odd, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(odd, "A-1.json"), []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if files, err := apereoFiles([]string{odd}); err != nil || len(files) != 1 {
		t.Errorf("directory %s: %v %v", odd, files, err)
	}
	// The id from the file name; a disabled service and one matching
	// every site.
	s, err := readApereoService(write("Wiki-77.json", `{"@class": "org.apereo.cas.services.CasRegisteredService",
		"serviceId": "^(https|imaps)://.*", "name": "Wiki"}`))
	if err != nil || s.spec.ID != "wiki-77" || !strings.Contains(s.skip, "accepts any site") {
		t.Errorf("wiki: %+v %v", s, err)
	}
	s, err = readApereoService(write("Old-5.json", `{"@class": "org.apereo.cas.services.RegexRegisteredService",
		"serviceId": "^https://old\\.example/.*", "name": "Old", "id": 5,
		"accessStrategy": {"@class": "org.apereo.cas.services.DefaultRegisteredServiceAccessStrategy", "enabled": false}}`))
	if err != nil || !strings.Contains(s.skip, "disabled") {
		t.Errorf("disabled: %+v %v", s, err)
	}
	// Jackson's typed lists and maps, policies in a chain; the line of a
	// syntax error counts the comments before it.
	s, err = readApereoService(write("Chain-8.json", `{"@class": "org.apereo.cas.services.CasRegisteredService",
		"serviceId": "^https://c\\.example/.*", "name": "Chain", "id": 8,
		"attributeReleasePolicy": {"@class": "org.apereo.cas.services.ChainingAttributeReleasePolicy", "policies": ["java.util.ArrayList", [
			{"@class": "org.apereo.cas.services.ReturnAllowedAttributeReleasePolicy", "allowedAttributes": ["java.util.ArrayList", ["uid", "UID"]]},
			{"@class": "org.apereo.cas.services.ReturnMappedAttributeReleasePolicy",
				"allowedAttributes": {"@class": "java.util.TreeMap", "sn": ["java.util.ArrayList", ["sn", "surname"]], "uid": "uid"}}]]}}`))
	if err != nil || !slices.Equal(s.spec.Attributes, []string{"uid", "sn"}) || len(s.warnings) != 2 ||
		!strings.Contains(s.warnings[0], `(campusid has "uid")`) || !strings.Contains(s.warnings[1], `"sn" released by Apereo as sn, surname`) {
		t.Errorf("chain: %+v %v", s, err)
	}
	if _, err := readApereoService(write("Late-9.json", "/* a\n b */ # c\n{\n\"name\": x}")); err == nil || !strings.Contains(err.Error(), "not JSON at line 4") {
		t.Errorf("error line: %v", err)
	}
	if _, err := apereoFiles([]string{t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no .json file") {
		t.Errorf("empty directory: %v", err)
	}
}
