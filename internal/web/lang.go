package web

import (
	"net/http"
	"time"

	"campusid/internal/i18n"
)

// LangSwitch is GET /lang/{lang}?return_to=PATH: it remembers the chosen
// language in a cookie and goes back to the page (a plain link, so it works
// without JavaScript).
func LangSwitch(secure bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		lang := r.PathValue("lang")
		if !i18n.Supported(lang) {
			http.NotFound(w, r)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: i18n.CookieName, Value: lang, Path: "/", MaxAge: int((365 * 24 * time.Hour).Seconds()),
			HttpOnly: true, Secure: secure, SameSite: http.SameSiteLaxMode})
		target := r.URL.Query().Get("return_to")
		if !LocalPath(target) {
			target = "/login"
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
	})
}
