package i18n

// Connected devices and applications (see fr_devices.go).
func init() {
	register("en", map[string]string{
		"account.devices_hint":           "The applications you allowed to access your account, and the devices where they stay signed in (desktop client, phone…). \"Sign out this device\" signs that one out: it will ask you to sign in again. \"Revoke access\" withdraws the permission and signs out all its devices.",
		"account.devices_title":          "Connected devices:",
		"account.device_times":           "connected on %s · last used on %s",
		"account.device_signout":         "Sign out this device",
		"account.apps_revoke_access":     "Revoke access",
		"account.done_device_signed_out": "The device was signed out. To reconnect it, open the application and sign in again.",
		"account.signout_devices":        "Also sign out my connected devices and applications (Nextcloud, …)",
		"account.signout_devices_hint":   "Not needed if you are simply changing your password: they do not know it. Tick it if a device was lost or stolen.",
	})
}
