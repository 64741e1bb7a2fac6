// Package i18n holds the message catalogs (French, the default, and
// English) and picks the language of a request.
package i18n

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Languages lists the supported languages, default first.
var Languages = []string{"fr", "en"}

var catalogs = map[string]map[string]string{"fr": fr, "en": en}

// register adds messages to a catalog: each area of the product may keep
// its messages in a file of its own (fr_recover.go...) with an init func.
func register(lang string, m map[string]string) {
	for k, v := range m {
		if _, dup := catalogs[lang][k]; dup {
			panic("i18n: duplicate key " + lang + ":" + k)
		}
		catalogs[lang][k] = v
	}
}

// CookieName holds the language chosen with the switcher.
const CookieName = "campusid_lang"

// Supported reports whether lang has a catalog.
func Supported(lang string) bool { _, ok := catalogs[lang]; return ok }

// Localizer translates for one language.
type Localizer struct{ Lang string }

// T returns the message for key, formatted with args (fmt verbs). A missing
// key shows itself, so tests that compare catalogs catch it.
func (l Localizer) T(key string, args ...any) string {
	msg, ok := catalogs[l.Lang][key]
	if !ok {
		if msg, ok = catalogs["fr"][key]; !ok {
			return key
		}
	}
	if len(args) > 0 {
		return fmt.Sprintf(msg, args...)
	}
	return msg
}

// Seconds says n seconds with the right plural ("1 seconde", "2 secondes").
func (l Localizer) Seconds(n int) string {
	if n == 1 {
		return l.T("duration.one_second")
	}
	return l.T("duration.seconds", n)
}

// WaitSeconds says a wait in whole seconds, rounded up ("45 secondes").
func (l Localizer) WaitSeconds(d time.Duration) string {
	return l.Seconds(int(math.Ceil(d.Seconds())))
}

// Has reports whether key exists in the catalog.
func (l Localizer) Has(key string) bool { _, ok := catalogs[l.Lang][key]; return ok }

// Keys returns the keys of a language's catalog (for tests).
func Keys(lang string) []string {
	out := make([]string, 0, len(catalogs[lang]))
	for k := range catalogs[lang] {
		out = append(out, k)
	}
	return out
}

// Negotiate picks the language: the switcher's cookie, then the best
// Accept-Language match, then def.
func Negotiate(r *http.Request, def string) string {
	if c, err := r.Cookie(CookieName); err == nil && Supported(c.Value) {
		return c.Value
	}
	if lang := FromAcceptLanguage(r.Header.Get("Accept-Language")); lang != "" {
		return lang
	}
	return def
}

// FromAcceptLanguage returns the supported language with the highest
// quality in an Accept-Language header, or "".
func FromAcceptLanguage(h string) string {
	best, bestQ := "", 0.0
	for part := range strings.SplitSeq(h, ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if Supported(base) && q > bestQ {
			best, bestQ = base, q
		}
	}
	return best
}
