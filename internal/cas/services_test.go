package cas

import (
	"strings"
	"testing"
	"time"

	"campusid/internal/store"
)

func TestNormalize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"https://App.Example/x", "https://app.example/x"},
		{"HTTPS://app.example:443/x", "https://app.example/x"},
		{"http://app.example:80", "http://app.example/"},
		{"https://app.example:8443/x", "https://app.example:8443/x"},
		{"https://app.example/x?b=a%20b&a=1", "https://app.example/x?b=a+b&a=1"},
		{"https://app.example/x?b=a+b&a=1#frag", "https://app.example/x?b=a+b&a=1"},
		{"https://app.example/%7Euser", "https://app.example/~user"},
		{"https://app.example/x;JSESSIONID=0A1B?a=1", "https://app.example/x?a=1"},
		{"https://app.example/x;jsessionid=0A1B/y", "https://app.example/x/y"},
		{"https://app.example/" + strings.Repeat("Ⱥ", 20) + ";jsessionid=1", "https://app.example/" + strings.Repeat("%C8%BA", 20)},
		{"https://app.example/x?a=1;b=2", "https://app.example/x?a=1%3Bb%3D2"},
		{"https://app.example/x?a=%zz&b=1", "https://app.example/x?a=%zz&b=1"},
		{"https://app.example/x?", "https://app.example/x"},
		{"https://[::1]:8443/x", "https://[::1]:8443/x"},
	} {
		if got, ok := Normalize(c.in); !ok || got != c.want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", c.in, got, ok, c.want)
		}
	}
	for _, bad := range []string{"", "/relative", "ftp://app.example/", "https://user:pw@app.example/", "javascript:alert(1)",
		`https://app.example\@evil.example/`, `https://app.example/a\b`, "https://app.example/a/../b", "https://app.example/a/%2e%2E/b",
		"https://app.example/a/./b", "https://app.example/a%2fb", "https://app.example/a%5Cb", "https:app.example",
		"https://app.example/p/;jsessionid=x/../../admin/", "https://app.example/p/..;/admin/", "https://app.example/p/%252e%252e/x",
		"https://app.example/p%00", "https://%C3%A9nt.example/", "https://ént.example/", "https://app.example./", "https://app.example:/",
		"https://evil.com／x.univ.example/"} {
		if got, ok := Normalize(bad); ok {
			t.Errorf("Normalize(%q) = %q, want refused", bad, got)
		}
	}
}

func TestMatches(t *testing.T) {
	svc := func(match, pattern string) store.CASService {
		return store.CASService{Match: match, URLPattern: pattern}
	}
	for _, c := range []struct {
		svc  store.CASService
		url  string
		want bool
	}{
		{svc("exact", "https://app.example/login"), "https://APP.example:443/login", true},
		{svc("exact", "https://app.example/login"), "https://app.example/login/x", false},
		{svc("prefix", "https://app.example/ent"), "https://app.example/ent", true},
		{svc("prefix", "https://app.example/ent"), "https://app.example/ent/x", true},
		{svc("prefix", "https://app.example/ent"), "https://app.example/ent?x=1", true},
		{svc("prefix", "https://app.example/ent"), "https://app.example/entx", false},
		{svc("prefix", "https://app.example"), "https://app.example.evil/", false},
		{svc("prefix", "https://app.example/"), "https://app.example/anything", true},
		{svc("prefix", "https://app.example/"), "http://app.example/anything", false},
		{svc("regex", `https://(www\.)?app\.example/.*`), "https://www.app.example/x", true},
		{svc("regex", `https://app\.example/.*`), "https://evil.example/?https://app.example/", false}, // anchored
		{svc("regex", `https://app\.example/x`), "https://app.example/x/y", false},
		// A pattern must say where its host starts and ends, and escape its dots.
		{svc("regex", `https://.*univ\.example/.*`), "https://eviluniv.example/", false},
		{svc("regex", `https://\w+\.\w+/.*`), "https://evil.com/", false},
		{svc("regex", `https://[a-z]+\.[a-z]+/.*`), "https://evil.com/", false},
		{svc("regex", `.*(?:univ\.example).*`), "https://notuniv.example/", false},
		{svc("regex", `https://example.app.org/login`), "https://example-app.org/login", false},
		{svc("regex", `https://example.app.org/login`), "https://example.app.org/login", false}, // refused too: fix the pattern
		{svc("regex", `https://app1.*`), "https://app1.univ.example/", false},
		{svc("regex", `(?i)https://ENT\.univ\.example/.*`), "https://ent.univ.example/x", true},
		{svc("regex", `https://([a-z0-9-]+\.)+univ\.example/.*`), "https://a.b.univ.example/x", true},
		{svc("regex", `https://.*\.univ-nantes\.fr/.*`), "https://ent.univ-nantes.fr/x", true},
		{svc("regex", `https://(.*\.)?univ\.example/.*`), "https://univ.example/x", true},
		{svc("regex", `https://127\.0\.0\.1:8443/.*`), "https://127.0.0.1:8443/x", true},
	} {
		norm, ok := Normalize(c.url)
		if !ok {
			t.Fatalf("Normalize(%q) refused", c.url)
		}
		if got := Matches(c.svc, norm); got != c.want {
			t.Errorf("%s %q vs %q: %v, want %v", c.svc.Match, c.svc.URLPattern, c.url, got, c.want)
		}
	}
}

func TestServiceSpec(t *testing.T) {
	good := ServiceSpec{ID: "ent", Name: "ENT", URL: "https://ent.example/", Match: "prefix",
		Attributes: []string{"uid", "memberOf"}, Proxy: true, LogoutURL: "https://ent.example/slo"}
	if _, err := good.Service(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{`^https?://.*/claExternalID/associate/.*`, `https://.*/cas/login`, `https://[^/]+/app/.*`} {
		if _, err := (ServiceSpec{ID: "x", Name: "X", URL: p, Match: "regex"}).Service(); err == nil || !strings.Contains(err.Error(), "accepts any site") {
			t.Errorf("pattern %q pins a path but no host: %v", p, err)
		}
	}
	for _, p := range []string{`https://.*\.univ\.example/.*`, `^https://ent\.univ\.example/cas/login`, `https://(www\.)?app\.example/x/.*`} {
		if _, err := (ServiceSpec{ID: "x", Name: "X", URL: p, Match: "regex"}).Service(); err != nil {
			t.Errorf("pattern %q refused: %v", p, err)
		}
	}
	for _, u := range []string{"https://app.example/a/../b", "https://user@app.example/", "ftp://app.example/", "https://ént.example/"} {
		if _, err := (ServiceSpec{ID: "x", Name: "X", URL: u, Match: "prefix"}).Service(); err == nil {
			t.Errorf("prefix %q, which could never match, was accepted", u)
		}
	}
	bad := ServiceSpec{ID: "-x", Name: " ", URL: "(", Match: "regex", Attributes: []string{"cn"}, LogoutURL: "ftp://x"}
	_, err := bad.Service()
	for _, want := range []string{"id:", "name:", "url:", "attributes: unknown \"cn\"", "logout-url:"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error mentioning %q, got %v", want, err)
		}
	}
}

func TestLogoutRequest(t *testing.T) {
	x, err := LogoutRequest("ST-<&>", fixedTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol"`,
		`<samlp:SessionIndex>ST-&lt;&amp;&gt;</samlp:SessionIndex>`, `IssueInstant="2026-12-05T10:00:00Z"`, `Version="2.0"`} {
		if !strings.Contains(x, want) {
			t.Errorf("logoutRequest lacks %s:\n%s", want, x)
		}
	}
}

var fixedTime = time.Date(2026, 12, 5, 11, 0, 0, 0, time.FixedZone("CET", 3600))

// TestSortServices: when several services match, the lowest order answers;
// at equal order exact beats prefix (the longest first), which beats regex.
func TestSortServices(t *testing.T) {
	list := []store.CASService{
		{ID: "a-catchall", Match: "regex", URLPattern: `https://.*`, Order: 0},
		{ID: "b-regex", Match: "regex", URLPattern: `https://ent\.example/.*`, Order: 0},
		{ID: "c-short", Match: "prefix", URLPattern: "https://ent.example/", Order: 0},
		{ID: "d-long", Match: "prefix", URLPattern: "https://ent.example/portail/", Order: 0},
		{ID: "e-exact", Match: "exact", URLPattern: "https://ent.example/portail/x", Order: 0},
		{ID: "f-first", Match: "regex", URLPattern: `https://ent\.example/portail/.*`, Order: -1},
		{ID: "g-last", Match: "exact", URLPattern: "https://ent.example/portail/x", Order: 5},
	}
	SortServices(list)
	var got []string
	for _, s := range list {
		got = append(got, s.ID)
	}
	want := "f-first e-exact d-long c-short a-catchall b-regex g-last"
	if strings.Join(got, " ") != want {
		t.Fatalf("order: %s, want %s", strings.Join(got, " "), want)
	}
}
