package i18n

// Connected devices and applications (internal/portal/devices.go): the
// account page's list of OpenID Connect grants, and the password form's
// choice to sign them out.
func init() {
	register("fr", map[string]string{
		"account.devices_hint":           "Les applications auxquelles vous avez permis d'accéder à votre compte, et les appareils où elles restent connectées (application de bureau, téléphone…). « Déconnecter cet appareil » le déconnecte seul : il vous redemandera de vous connecter. « Révoquer l'accès » retire l'autorisation et déconnecte tous ses appareils.",
		"account.devices_title":          "Appareils connectés :",
		"account.device_times":           "connecté le %s · dernière utilisation le %s",
		"account.device_signout":         "Déconnecter cet appareil",
		"account.apps_revoke_access":     "Révoquer l'accès",
		"account.done_device_signed_out": "L'appareil a été déconnecté. Pour le reconnecter, ouvrez l'application et connectez-vous à nouveau.",
		"account.signout_devices":        "Déconnecter aussi mes appareils et applications connectés (Nextcloud, …)",
		"account.signout_devices_hint":   "Inutile si vous changez simplement de mot de passe : ils ne le connaissent pas. Cochez si un appareil a été perdu ou volé.",
	})
}
