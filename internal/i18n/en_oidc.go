package i18n

// The OpenID Connect provider (see fr_oidc.go).
func init() {
	register("en", map[string]string{
		"oidc.error.unknown_client":  "campusid does not know this application. Check the link that brought you here, or tell the team that runs the application.",
		"oidc.error.redirect_uri":    "The return address the application asked for is not registered: for your safety, campusid does not send you there. Tell the team that runs the application.",
		"oidc.error.request_expired": "This sign-in request has expired or was already used. Go back to the application and start again.",
		"oidc.error.bad_request":     "The application's request is incomplete or invalid. Go back to the application and start again.",
		"oidc.error.logout":          "This sign-out request is invalid or has expired: you were not signed out. To sign out, use the \"Sign out\" button at the top of the page.",

		"oidc.consent.title":        "Allow access",
		"oidc.consent.intro":        "%s wants to access your account.",
		"oidc.consent.account":      "Account:",
		"oidc.consent.will_get":     "If you allow it, %s will get:",
		"oidc.consent.allow":        "Allow",
		"oidc.consent.deny":         "Deny",
		"oidc.consent.not_you":      "Not you? Use another account",
		"oidc.consent.revoke_hint":  "You can withdraw this access at any time from your account, under \"Applications with access\".",
		"oidc.scope.openid":         "an identifier that stands for you with this application (never your email address)",
		"oidc.scope.profile":        "your name, your identifier and your institution",
		"oidc.scope.email":          "your primary email address",
		"oidc.scope.offline_access": "access that lasts even when you are not using it (for instance to sync your files), until you withdraw it",
		"oidc.scope.other":          "the \"%s\" access",

		"oidc.form_post.title":  "Back to the application",
		"oidc.form_post.text":   "Going back to %s…",
		"oidc.form_post.button": "Continue",

		"oidc.logout.title":    "Sign out",
		"oidc.logout.text_app": "%s asks to sign you out of campusid. You will be signed out of campusid in this browser; other applications may ask you to sign in again.",
		"oidc.logout.text":     "An application asks to sign you out of campusid. You will be signed out of campusid in this browser; other applications may ask you to sign in again.",
		"oidc.logout.confirm":  "Sign out",
		"oidc.logout.cancel":   "Stay signed in",

		"login.reauth": "Confirm who you are to continue: type your email address or identifier, or those of another account.",

		"account.apps":             "Applications with access",
		"account.apps_hint":        "The applications you allowed to access your account. Revoking an access signs the application out; it will ask for your permission again.",
		"account.apps_none":        "No application has access to your account.",
		"account.apps_since":       "allowed on %s",
		"account.apps_revoke":      "Revoke",
		"account.done_app_revoked": "The application's access was withdrawn.",
	})
}
