package i18n

// The device authorization grant (internal/oidc/device.go): the /device
// page, its consent page and what follows.
func init() {
	register("fr", map[string]string{
		"device.title":                "Connecter un appareil",
		"device.intro":                "Saisissez le code affiché par l'application sur votre ordinateur ou votre appareil.",
		"device.code_label":           "Code",
		"device.code_hint":            "8 lettres, par exemple WDJB-MJHT. Majuscules, minuscules, espaces et tirets : comme vous voulez.",
		"device.submit":               "Continuer",
		"device.wrong_code":           "Ce code n'est pas valable : il est faux, a expiré ou a déjà servi. Vérifiez le code affiché par l'application ; s'il n'est plus affiché, recommencez la connexion depuis l'application.",
		"device.wait":                 "Trop de codes erronés. Patientez %s avant de réessayer.",
		"device.expired":              "Cette demande a expiré ou a déjà reçu une réponse. Recommencez la connexion depuis l'application.",
		"device.consent.intro":        "%s demande l'accès à votre compte.",
		"device.consent.intro_device": "%s sur %s demande l'accès à votre compte.",
		"device.consent.check":        "Vérifiez que l'application affiche bien ce code :",
		"device.consent.allow":        "Autoriser l'accès",
		"device.consent.hint":         "N'autorisez que si c'est vous qui venez de lancer la connexion depuis cette application. Vous pourrez retirer cet accès à tout moment depuis votre compte.",
		"device.done_allowed_title":   "Accès autorisé",
		"device.done_allowed_text":    "C'est terminé : %s est connecté à votre compte. Vous pouvez fermer cette page et revenir à l'application.",
		"device.done_denied_title":    "Accès refusé",
		"device.done_denied_text":     "Vous avez refusé : %s n'a pas accès à votre compte.",
		"device.to_account":           "Voir mon compte",
	})
}
