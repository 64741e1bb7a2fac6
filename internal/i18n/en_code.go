package i18n

// Sign-in by a one-time code or a link sent by email (internal/login/code.go, link.go).
func init() {
	register("en", map[string]string{
		"login_code.or":           "Or, without a password:",
		"login_code.ask":          "Email me a code",
		"login_code.forgot":       "Forgot your password?",
		"login_code.title":        "Code sent by email",
		"login_code.sent":         "A 6-digit code was sent to %s at %s. It is valid for %s.",
		"login_code.your_address": "your account's email address",
		"login_code.label":        "6-digit code",
		"login_code.hint":         "You can paste it as it is: spaces and dashes are ignored.",
		"login_code.submit":       "Sign in",
		"login_code.resend":       "Send a new code",
		"login_code.resend_at":    "Nothing yet? Look in your spam folder. You can ask for a new code at %s.",
		"login_code.resend_now":   "Nothing yet? Look in your spam folder, then ask for a new code.",
		"login_code.use_password": "Back to the password",
		"login_code.wrong":        "Wrong code. You have %d tries left.",
		"login_code.wrong_last":   "Wrong code. You have 1 try left.",
		"login_code.dead":         "This code no longer works: it has expired, has already been used or had too many wrong tries. Ask for a new code.",
		"login_code.required":     "Enter the 6-digit code you received by email.",
		"login_code.too_soon":     "A code has just left (at %s). You can ask for a new one in %s.",
		"login_code.client_wait":  "Too many messages were asked for from your connection. You can ask for a new one in %s.",
		"login_code.no_address":   "Your account has no verified email address: sign in with your password or contact support.",

		"login_link.ask":           "Email me a sign-in link",
		"login_link.sent_title":    "Check your email",
		"login_link.sent":          "A sign-in link was sent to %s at %s. It is valid for %s and works only once.",
		"login_link.patience":      "The message can take a few minutes to arrive: no need to ask again. Remember to look in your spam folder.",
		"login_link.resend_at":     "You can ask for a new link at %s.",
		"login_link.resend_now":    "Still nothing after a few minutes? You can ask for a new link.",
		"login_link.resend_keeps":  "A new link does not cancel the earlier one: the first one used ends the others.",
		"login_link.resend":        "Send a new link",
		"login_link.too_soon":      "A link has just left (at %s): it can take a few minutes to arrive, no need to ask again. You can ask for a new one in %s.",
		"login_link.title":         "Sign in with a link",
		"login_link.explain":       "You are about to sign in with the link sent to %s.",
		"login_link.other_browser": "This link was asked for from another browser (%s, %s). Continue only if it was you.",
		"login_link.button":        "Sign me in",
		"login_link.dead_title":    "Link expired or already used",
		"login_link.dead":          "This sign-in link no longer works: it has expired, has already been used, or another link sent for this account was used. Ask for a new one from the sign-in page.",
		"login_link.to_login":      "Go to the sign-in page",
	})
}
