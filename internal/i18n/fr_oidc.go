package i18n

// The OpenID Connect provider: consent, form_post, logout and its errors
// (internal/oidc), the "applications" section of the account page, the
// sign-in page asked to confirm who is there.
func init() {
	register("fr", map[string]string{
		"oidc.error.unknown_client":  "Cette application n'est pas connue de campusid. Vérifiez le lien qui vous a mené ici, ou signalez-le à l'équipe qui gère l'application.",
		"oidc.error.redirect_uri":    "L'adresse de retour demandée par l'application n'est pas enregistrée : par sécurité, campusid ne vous y envoie pas. Signalez-le à l'équipe qui gère l'application.",
		"oidc.error.request_expired": "Cette demande de connexion a expiré ou a déjà servi. Retournez à l'application et recommencez.",
		"oidc.error.bad_request":     "La demande de l'application est incomplète ou invalide. Retournez à l'application et recommencez.",
		"oidc.error.logout":          "Cette demande de déconnexion est invalide ou a expiré : vous n'avez pas été déconnecté·e. Pour vous déconnecter, utilisez le bouton « Se déconnecter » en haut de la page.",

		"oidc.consent.title":        "Autoriser l'accès",
		"oidc.consent.intro":        "%s souhaite accéder à votre compte.",
		"oidc.consent.account":      "Compte :",
		"oidc.consent.will_get":     "Si vous l'autorisez, %s obtiendra :",
		"oidc.consent.allow":        "Autoriser",
		"oidc.consent.deny":         "Refuser",
		"oidc.consent.not_you":      "Ce n'est pas vous ? Utiliser un autre compte",
		"oidc.consent.revoke_hint":  "Vous pourrez retirer cet accès à tout moment depuis votre compte, rubrique « Applications autorisées ».",
		"oidc.scope.openid":         "un identifiant qui vous désigne auprès de cette application (jamais votre adresse email)",
		"oidc.scope.profile":        "votre nom, votre identifiant et votre établissement",
		"oidc.scope.email":          "votre adresse email principale",
		"oidc.scope.offline_access": "un accès qui dure même quand vous ne l'utilisez pas (par exemple pour synchroniser vos fichiers), jusqu'à ce que vous le retiriez",
		"oidc.scope.other":          "l'accès « %s »",

		"oidc.form_post.title":  "Retour à l'application",
		"oidc.form_post.text":   "Retour vers %s…",
		"oidc.form_post.button": "Continuer",

		"oidc.logout.title":    "Se déconnecter",
		"oidc.logout.text_app": "%s demande à vous déconnecter de campusid. Vous serez déconnecté·e de campusid dans ce navigateur ; les autres applications pourront vous demander de vous reconnecter.",
		"oidc.logout.text":     "Une application demande à vous déconnecter de campusid. Vous serez déconnecté·e de campusid dans ce navigateur ; les autres applications pourront vous demander de vous reconnecter.",
		"oidc.logout.confirm":  "Se déconnecter",
		"oidc.logout.cancel":   "Rester connecté·e",

		"login.reauth": "Confirmez qui vous êtes pour continuer : saisissez votre adresse email ou votre identifiant, ou ceux d'un autre compte.",

		"account.apps":             "Applications autorisées",
		"account.apps_hint":        "Les applications auxquelles vous avez permis d'accéder à votre compte. Révoquer un accès déconnecte l'application ; elle vous redemandera l'autorisation.",
		"account.apps_none":        "Aucune application n'a accès à votre compte.",
		"account.apps_since":       "autorisée le %s",
		"account.apps_revoke":      "Révoquer",
		"account.done_app_revoked": "L'accès de l'application a été retiré.",
	})
}
