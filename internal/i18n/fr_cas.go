package i18n

// Le serveur CAS (service central d'authentification).
func init() {
	register("fr", map[string]string{
		"cas.error.unknown_service": "campusid ne connaît pas l'application qui vous a envoyé ici : il ne vous y connecte donc pas. Vérifiez le lien, ou prévenez l'équipe qui gère l'application.",
		"cas.redirect.title":        "Retour à l'application",
		"cas.redirect.text":         "Suite vers %s…",
		"cas.redirect.button":       "Continuer",
		"cas.warn.text":             "Vous allez vous connecter à %s avec le compte %s.",
	})
}
