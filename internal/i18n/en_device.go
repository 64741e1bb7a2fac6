package i18n

// The device authorization grant (see fr_device.go).
func init() {
	register("en", map[string]string{
		"device.title":                "Connect a device",
		"device.intro":                "Type the code the application shows on your computer or device.",
		"device.code_label":           "Code",
		"device.code_hint":            "8 letters, for instance WDJB-MJHT. Upper or lower case, spaces and dashes: as you like.",
		"device.submit":               "Continue",
		"device.wrong_code":           "This code is not valid: it is wrong, has expired or was already used. Check the code the application shows; if it is gone, start the connection again from the application.",
		"device.wait":                 "Too many wrong codes. Wait %s before trying again.",
		"device.expired":              "This request has expired or was already answered. Start the connection again from the application.",
		"device.consent.intro":        "%s asks for access to your account.",
		"device.consent.intro_device": "%s on %s asks for access to your account.",
		"device.consent.check":        "Check that the application shows this code:",
		"device.consent.allow":        "Allow access",
		"device.consent.hint":         "Only allow it if you just started the connection from this application. You can withdraw this access at any time from your account.",
		"device.done_allowed_title":   "Access allowed",
		"device.done_allowed_text":    "Done: %s is connected to your account. You can close this page and go back to the application.",
		"device.done_denied_title":    "Access denied",
		"device.done_denied_text":     "You refused: %s has no access to your account.",
		"device.to_account":           "See my account",
	})
}
