package i18n

// Sign-in by a one-time code or a link sent by email (internal/login/code.go, link.go).
func init() {
	register("fr", map[string]string{
		"login_code.or":           "Ou, sans mot de passe :",
		"login_code.ask":          "Recevoir un code par email",
		"login_code.forgot":       "Mot de passe oublié ?",
		"login_code.title":        "Code reçu par email",
		"login_code.sent":         "Un code à 6 chiffres a été envoyé à %s à %s. Il est valable %s.",
		"login_code.your_address": "l'adresse email de votre compte",
		"login_code.label":        "Code à 6 chiffres",
		"login_code.hint":         "Vous pouvez le coller tel quel : les espaces et les tirets sont ignorés.",
		"login_code.submit":       "Se connecter",
		"login_code.resend":       "Renvoyer un code",
		"login_code.resend_at":    "Pas reçu ? Regardez dans vos courriers indésirables. Vous pourrez demander un nouveau code à %s.",
		"login_code.resend_now":   "Pas reçu ? Regardez dans vos courriers indésirables, puis demandez un nouveau code.",
		"login_code.use_password": "Revenir au mot de passe",
		"login_code.wrong":        "Code incorrect. Il vous reste %d essais.",
		"login_code.wrong_last":   "Code incorrect. Il vous reste 1 essai.",
		"login_code.dead":         "Ce code n'est plus valable : il a expiré, il a déjà servi ou il a reçu trop d'essais incorrects. Demandez un nouveau code.",
		"login_code.required":     "Saisissez le code à 6 chiffres reçu par email.",
		"login_code.too_soon":     "Un code vient de partir (à %s). Vous pourrez en demander un nouveau dans %s.",
		"login_code.client_wait":  "Trop de messages ont été demandés depuis votre connexion. Vous pourrez en demander un nouveau dans %s.",
		"login_code.no_address":   "Votre compte n'a aucune adresse email vérifiée : connectez-vous avec votre mot de passe ou contactez le support.",

		"login_link.ask":           "Recevoir un lien de connexion par email",
		"login_link.sent_title":    "Consultez votre messagerie",
		"login_link.sent":          "Un lien de connexion a été envoyé à %s à %s. Il est valable %s et ne peut servir qu'une fois.",
		"login_link.patience":      "Le message peut mettre quelques minutes à arriver : inutile de refaire une demande. Pensez à regarder dans vos courriers indésirables.",
		"login_link.resend_at":     "Vous pourrez demander un nouveau lien à %s.",
		"login_link.resend_now":    "Toujours rien après quelques minutes ? Vous pouvez demander un nouveau lien.",
		"login_link.resend_keeps":  "Un nouveau lien n'annule pas le précédent : le premier utilisé désactive les autres.",
		"login_link.resend":        "Renvoyer un lien",
		"login_link.too_soon":      "Un lien vient de partir (à %s) : il peut mettre quelques minutes à arriver, inutile d'en demander un autre. Vous pourrez en demander un nouveau dans %s.",
		"login_link.title":         "Connexion par lien",
		"login_link.explain":       "Vous allez vous connecter avec le lien envoyé à %s.",
		"login_link.other_browser": "Ce lien a été demandé depuis un autre navigateur (%s, %s). Continuez seulement si c'est vous.",
		"login_link.button":        "Me connecter",
		"login_link.dead_title":    "Lien expiré ou déjà utilisé",
		"login_link.dead":          "Ce lien de connexion n'est plus valable : il a expiré, il a déjà servi, ou un autre lien envoyé pour ce compte a été utilisé. Demandez-en un nouveau depuis la page de connexion.",
		"login_link.to_login":      "Aller à la page de connexion",
	})
}
