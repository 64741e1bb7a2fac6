package i18n

import (
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

func TestCatalogsHaveTheSameKeys(t *testing.T) {
	frKeys, enKeys := Keys("fr"), Keys("en")
	fr, en := catalogs["fr"], catalogs["en"]
	for _, k := range frKeys {
		if !slices.Contains(enKeys, k) {
			t.Errorf("key %q is in fr but not en", k)
		}
	}
	for _, k := range enKeys {
		if !slices.Contains(frKeys, k) {
			t.Errorf("key %q is in en but not fr", k)
		}
	}
	for _, k := range frKeys {
		if strings.Count(fr[k], "%") != strings.Count(en[k], "%") {
			t.Errorf("key %q: fr and en take different arguments: %q / %q", k, fr[k], en[k])
		}
	}
}

func TestNegotiate(t *testing.T) {
	cases := []struct{ name, cookie, accept, want string }{
		{"default", "", "", "fr"},
		{"english browser", "", "en-US,en;q=0.9", "en"},
		{"french preferred", "", "en;q=0.5,fr-FR;q=0.8", "fr"},
		{"unsupported falls back", "", "de-DE", "fr"},
		{"cookie wins", "en", "fr-FR", "en"},
		{"bad cookie ignored", "xx", "en", "en"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if c.accept != "" {
				r.Header.Set("Accept-Language", c.accept)
			}
			if c.cookie != "" {
				r.Header.Set("Cookie", CookieName+"="+c.cookie)
			}
			if got := Negotiate(r, "fr"); got != c.want {
				t.Errorf("Negotiate = %q, want %q", got, c.want)
			}
		})
	}
}
