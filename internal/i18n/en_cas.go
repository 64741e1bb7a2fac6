package i18n

// The CAS server (see fr_cas.go).
func init() {
	register("en", map[string]string{
		"cas.error.unknown_service": "campusid does not know the application that sent you here, so it does not sign you in to it. Check the link, or tell the team that runs the application.",
		"cas.redirect.title":        "Back to the application",
		"cas.redirect.text":         "Going on to %s…",
		"cas.redirect.button":       "Continue",
		"cas.warn.text":             "You are about to sign in to %s as %s.",
	})
}
